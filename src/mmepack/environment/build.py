"""Build, slim, pack, prove and cache the `python_env.tar.gz` that Triton's Python backend unpacks.

One entry point for every caller (the CLI, the Pants plugin's builder process, tests and the
benchmark): `build_environment`. The order is chosen so that failures come as early and as cheaply
as possible, and so that only a proven environment is ever stored or returned:

1. read requirements.txt and decide which stub the artifact needs (fails in a second when the
   target server cannot run this Python, before minutes of pip);
2. answer from the content-addressed cache when an identical environment was built before;
3. otherwise build the prefix (conda or portable builder), slim it, conda-pack it, prove it
   under a real Triton stub, and only then store it in the cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmepack.environment.builders import BUILDER_KINDS, EnvBuilder, choose_builder
from mmepack.environment.cache import CachedEnv, EnvCache, EnvKey
from mmepack.environment.probe import import_names, prove_environment
from mmepack.environment.slim import site_packages, slim_prefix
from mmepack.errors import MmepackError, model_prefix
from mmepack.files import copy_atomically
from mmepack.environment.requirements import mentions_numpy, read_requirements, requirement_names
from mmepack.triton.target import (
    DEFAULT_STUB_PYTHON,
    DEFAULT_TRITON_VERSION,
    STUB_NAME,
    TargetServer,
    stub_for,
)

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"mmepack: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EnvRequest:
    """What to build, for whom, and with which builder."""

    requirements: Path
    python: str
    label: str = ""
    builder: str = "auto"
    conda: str | None = None
    target: TargetServer = field(default_factory=TargetServer)


@dataclass(frozen=True)
class BuiltEnv:
    archive: Path
    stub: Path | None
    python_version: str
    cached: bool
    manifest: dict[str, Any]


def pack_prefix(prefix: Path, archive: Path) -> None:
    """conda-pack a prefix: it adds bin/activate and conda-unpack, which Triton's loader uses."""
    import conda_pack

    conda_pack.pack(
        prefix=str(prefix),
        output=str(archive),
        format="tar.gz",
        n_threads=os.cpu_count() or 1,
        compress_level=4,
        verbose=False,
    )


def _build_into_cache(
    request: EnvRequest, builder: EnvBuilder, text: str, key: EnvKey, cache: EnvCache, log: Log
) -> CachedEnv:
    """Build one environment in the cache's staging area; store it only once proven."""
    who = model_prefix(request.label)
    started = time.monotonic()
    staging = cache.staging(key)
    try:
        prefix = staging / "env"
        extra = [] if mentions_numpy(text) else ["numpy"]
        log(
            f"{who}building a Python {request.python} environment from {request.requirements} "
            f"with the {builder.kind} builder{' (+ numpy)' if extra else ''}; this takes minutes"
        )
        try:
            version = builder.populate(request.requirements, extra, request.python, prefix)
        except MmepackError as exc:
            raise MmepackError(f"{who}{exc}") from None
        slim = slim_prefix(prefix)
        log(f"{who}slimmed: {slim.describe()}")
        modules = import_names(site_packages(prefix), requirement_names(text))
        archive = staging / "python_env.tar.gz"
        log(f"{who}packing with conda-pack")
        pack_prefix(prefix, archive)
        shutil.rmtree(prefix)
        proof = prove_environment(
            archive,
            request.python,
            modules,
            server_stub_python=request.target.stub_python,
            label=request.label,
            log=log,
        )
        log(f"{who}proven: Triton {proof.triton_version} imported {', '.join(proof.modules)}")
        manifest = {
            "python_version": version,
            "builder": builder.identity(request.python),
            "packed_bytes": archive.stat().st_size,
            "build_seconds": round(time.monotonic() - started, 1),
            "removed_bytes": slim.removed_bytes,
            "largest_packages": dict(slim.largest),
            "proven_imports": list(proof.modules),
            "proven_with_triton": proof.triton_version,
        }
        return cache.store(key, archive, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_environment(
    request: EnvRequest,
    output: Path,
    *,
    stub_output: Path | None = None,
    cache: EnvCache | None = None,
    log: Log = _stderr,
) -> BuiltEnv:
    """Write a proven environment to `output` (and the stub the target needs, if any, to
    `stub_output`); nothing is written unless every step succeeded."""
    who = model_prefix(request.label)
    text = read_requirements(request.requirements, request.label)
    stub = stub_for(request.target, request.python, request.label)
    cache = cache or EnvCache()
    builder = choose_builder(request.builder, request.conda, log)
    key = EnvKey.of(text, request.python, builder.identity(request.python))
    hit = cache.lookup(key)
    cached = hit is not None
    if hit is None:
        with cache.locked(key):
            hit = cache.lookup(key)  # built meanwhile by a concurrent process
            cached = hit is not None
            if hit is None:
                hit = _build_into_cache(request, builder, text, key, cache, log)
    copy_atomically(hit.archive, output)
    python_version = str(hit.manifest.get("python_version", request.python))
    shipped = None
    if stub is not None and stub_output is not None:
        copy_atomically(stub, stub_output)
        stub_output.chmod(0o755)
        shipped = stub_output
    size = output.stat().st_size
    source = f"cache {cache.entry(key).name[:12]}" if cached else "built now"
    stub_note = (
        f"; ships the Python {request.python} stub (Triton {request.target.triton_version}'s own "
        f"runs {request.target.stub_python})"
        if stub is not None
        else ""
    )
    log(
        f"{who}environment ready: {output} ({size / 1e6:.1f} MB, Python "
        f"{python_version}, {source}){stub_note}"
    )
    return BuiltEnv(
        archive=output,
        stub=shipped if shipped is not None else stub,
        python_version=python_version,
        cached=cached,
        manifest=hit.manifest,
    )


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `mmepack build-env`, `mmepack package` and the builder entry point."""
    parser.add_argument("--python", default="3.11", help="environment Python, e.g. 3.11")
    parser.add_argument(
        "--builder",
        choices=BUILDER_KINDS,
        default="auto",
        help="auto: conda if found, else portable; conda: conda only; portable: no conda",
    )
    parser.add_argument("--conda", help="conda, mamba or micromamba executable to use")
    parser.add_argument(
        "--triton-version",
        default=DEFAULT_TRITON_VERSION,
        help=f"Triton server version the artifact is for (default {DEFAULT_TRITON_VERSION})",
    )
    parser.add_argument(
        "--stub-python",
        default=DEFAULT_STUB_PYTHON,
        help=f"Python of that server's own stub (default {DEFAULT_STUB_PYTHON})",
    )
    parser.add_argument(
        "--stub-dir",
        type=Path,
        help=f"folder of 3.X/{STUB_NAME} built by the target release (default: nvidia-pytriton's)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="environment cache (default: $MMEPACK_ENV_CACHE or ~/.cache)"
    )


def request_from_args(args: argparse.Namespace, requirements: Path, label: str) -> EnvRequest:
    return EnvRequest(
        requirements=requirements,
        python=args.python,
        label=label,
        builder=args.builder,
        conda=args.conda,
        target=TargetServer(args.triton_version, args.stub_python, args.stub_dir),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m mmepack.environment.build`: the environment builder alone.

    The Pants plugin runs this narrow entry point rather than the whole CLI, so Pants' cache key
    for an environment covers only the requirements, the build options and the builder's own
    code: editing other parts of mmepack never rebuilds environments, and models with identical
    requirements share one build.
    """
    parser = argparse.ArgumentParser(prog="mmepack-build-env")
    parser.add_argument("--requirements", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--stub-output", type=Path, help=f"where to write {STUB_NAME} if needed")
    parser.add_argument("--label", default="", help="model name for messages")
    add_build_options(parser)
    args = parser.parse_args(argv)
    try:
        build_environment(
            request_from_args(args, args.requirements, args.label),
            args.output,
            stub_output=args.stub_output,
            cache=EnvCache(args.cache_dir) if args.cache_dir else None,
        )
    except MmepackError as exc:
        print(f"mmepack: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
