"""Build, slim, pack, prove and cache the `python_env.tar.gz` that Triton's Python backend unpacks.

One entry point for every caller (the CLI, the Pants plugin's builder process, tests and the
benchmark): `build_environment`. The order is chosen so that failures come as early and as cheaply
as possible, and so that only a proven environment is ever stored or returned:

1. read requirements.txt and decide which stub the artifact needs (fails in a second when the
   target server cannot run this Python, before minutes of pip);
2. answer from the content-addressed cache when an identical environment was built before;
3. otherwise build the prefix (conda or portable builder), slim it, conda-pack it, prove it
   under a real Triton stub, and only then store it in the cache.

The command line around it is `mmepack.environment.command`; packing is
`mmepack.environment.determinism.pack_reproducibly`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmepack.environment.builders import EnvBuilder, choose_builder
from mmepack.environment.cache import CachedEnv, EnvCache, EnvKey
from mmepack.environment.determinism import (
    check_no_build_path,
    make_reproducible,
    pack_reproducibly,
)
from mmepack.environment.lock import InstallSource, install_source
from mmepack.environment.probe import import_names, probe_tensor_types, prove_environment
from mmepack.environment.report import REPORT_SCHEMA, BuildReport
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.environment.requirements import (
    mentions_numpy,
    numpy_pin_conflict,
    requirement_names,
    with_requirements,
)
from mmepack.environment.slim import site_packages, slim_prefix
from mmepack.environment.startup import compile_startup_bytecode
from mmepack.errors import MmepackError, model_prefix
from mmepack.files import copy_atomically
from mmepack.names import ENV_ARCHIVE, PROGRESS_LOG
from mmepack_contract import CONTRACT_VERSION

Log = Callable[[str], None]
# The progress log starts over once it passes this size, so it never grows without bound.
_PROGRESS_LOG_LIMIT = 1 << 20


def _stderr(message: str) -> None:
    print(f"mmepack: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BuiltEnv:
    archive: Path
    stub: Path | None
    python_version: str
    cached: bool
    manifest: dict[str, Any]
    report: BuildReport


def _build_into_cache(
    request: EnvRequest,
    options: EnvOptions,
    builder: EnvBuilder,
    source: InstallSource,
    key: EnvKey,
    cache: EnvCache,
    log: Log,
) -> CachedEnv:
    """Build one environment in the cache's staging area; store it only once proven."""
    who = model_prefix(request.label)
    started = time.monotonic()
    staging = cache.staging(key)
    try:
        prefix = staging / "env"
        text = source.text
        numpy, why = options.target.numpy_requirement
        # A hash-locked install takes no extra requirement: the lock's numpy was checked against
        # the constraint before the cache lookup.
        extra = [] if source.locked else [numpy]
        log(
            f"{who}building a Python {request.python} environment from {source.path} "
            f"with the {builder.kind} builder"
            f"{'' if source.locked else f' (+ {numpy} for Triton {options.target.triton_version})'}"
            "; this takes minutes"
        )
        try:
            version = builder.populate(source.path, extra, request.python, prefix, source.locked)
        except MmepackError as exc:
            note = (
                f"\nmmepack adds `{numpy}` for Triton {options.target.triton_version} ({why}); "
                f"if {source.path} asks for another numpy, allow `{numpy}` there"
                if mentions_numpy(text)
                else ""
            )
            raise MmepackError(f"{who}{exc}{note}") from None
        slim = slim_prefix(prefix)
        log(f"{who}slimmed: {slim.describe()}")
        identity = {"python_version": version, "builder": builder.identity(request.python)}
        make_reproducible(
            prefix,
            site_packages(prefix),
            request.python,
            {**identity, "lock_sha256": source.lock_sha256},
        )
        modules = import_names(site_packages(prefix), requirement_names(text))
        compiled = compile_startup_bytecode(prefix, modules)
        check_no_build_path(prefix)
        log(f"{who}compiled {compiled} standard-library modules a stub imports at start")
        archive = staging / ENV_ARCHIVE
        log(f"{who}packing with conda-pack")
        pack_reproducibly(prefix, archive)
        shutil.rmtree(prefix)
        proof = prove_environment(
            archive,
            request.python,
            modules,
            tensor_types=request.tensor_types,
            server_stub_python=options.target.stub_python,
            label=request.label,
            log=log,
        )
        log(
            f"{who}proven: Triton {proof.triton_version} imported {', '.join(proof.modules)} "
            f"and moved {', '.join(proof.tensor_types)} tensors through the stub"
        )
        manifest = {
            **identity,
            "lock_sha256": source.lock_sha256,
            "packed_bytes": archive.stat().st_size,
            "build_seconds": round(time.monotonic() - started, 1),
            "removed_bytes": slim.removed_bytes,
            "largest_packages": dict(slim.largest),
            "proven_imports": list(proof.modules),
            "proven_with_triton": proof.triton_version,
            "proven_tensor_types": list(proof.tensor_types),
        }
        return cache.store(key, archive, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prove_new_tensor_types(
    request: EnvRequest,
    options: EnvOptions,
    key: EnvKey,
    hit: CachedEnv,
    cache: EnvCache,
    log: Log,
) -> CachedEnv:
    """A cached environment was proven with the tensor types of the model that built it; a
    model with the same requirements but other types (BYTES where the first had only FP32) gets
    its own types moved through the stub before the environment ships, once, and the cache
    remembers them."""

    def missing(entry: CachedEnv) -> list[str]:
        proven = set(entry.manifest.get("proven_tensor_types", []))
        return [t for t in probe_tensor_types(request.tensor_types) if t not in proven]

    if not missing(hit):
        return hit
    with cache.locked(key):
        current = cache.lookup(key) or hit  # a concurrent process may have proven them meanwhile
        if not missing(current):
            return current
        proven = sorted(current.manifest.get("proven_tensor_types", []))
        log(
            f"{model_prefix(request.label)}the cached environment was proven with "
            f"{', '.join(proven) or 'no'} tensors; proving {', '.join(missing(current))} as well"
        )
        proof = prove_environment(
            current.archive,
            request.python,
            list(current.manifest.get("proven_imports", ["numpy"])),
            tensor_types=request.tensor_types,
            server_stub_python=options.target.stub_python,
            label=request.label,
            log=log,
        )
        known = set(proven) | set(proof.tensor_types)
        return cache.update_manifest(
            key, {**current.manifest, "proven_tensor_types": sorted(known)}
        )


def _report(
    request: EnvRequest,
    options: EnvOptions,
    hit: CachedEnv,
    entry: str,
    cached: bool,
    output: Path,
    stub_output: Path | None,
) -> BuildReport:
    manifest = hit.manifest
    return BuildReport(
        contract=CONTRACT_VERSION,
        schema=REPORT_SCHEMA,
        label=request.label,
        python_version=str(manifest.get("python_version", request.python)),
        archive=str(output),
        archive_bytes=output.stat().st_size,
        stub=str(stub_output) if stub_output is not None else None,
        triton_version=options.target.triton_version,
        server_stub_python=options.target.stub_python,
        cache_hit=cached,
        cache_entry=entry,
        builder=str(manifest.get("builder", "")),
        proven_imports=[str(m) for m in manifest.get("proven_imports", [])],
        proven_with_triton=str(manifest.get("proven_with_triton", "")),
        removed_bytes=int(manifest.get("removed_bytes", 0)),
        largest_packages={str(k): int(v) for k, v in manifest.get("largest_packages", {}).items()},
    )


@contextmanager
def progress_log(log: Log, path: Path, tag: str) -> Iterator[Log]:
    """`log`, with each message also appended to `path` as it comes, with the time and `tag`.

    Under Pants a process's output appears only when it ends, so a minute of pip is a minute
    of silence; this file can be followed meanwhile (`tail -f`). It is a convenience: when it
    cannot be written, the build goes on with `log` alone.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        too_big = path.is_file() and path.stat().st_size > _PROGRESS_LOG_LIMIT
        handle = path.open("w" if too_big else "a", encoding="utf-8")
    except OSError:
        yield log
        return

    def both(message: str) -> None:
        log(message)
        try:
            handle.write(f"{time.strftime('%H:%M:%S')} {tag} {message}\n")
            handle.flush()
        except OSError:
            pass

    with handle:
        yield both


def build_environment(
    request: EnvRequest,
    output: Path,
    *,
    options: EnvOptions | None = None,
    stub_output: Path | None = None,
    cache: EnvCache | None = None,
    report: Path | None = None,
    log: Log = _stderr,
) -> BuiltEnv:
    """Write a proven environment to `output` (and the stub the target needs, if any, to
    `stub_output`, and a `BuildReport` to `report`); nothing is written unless every step
    succeeded. Progress also goes to the cache folder's `progress.log` (see `progress_log`)."""
    cache = cache or EnvCache()
    who = request.label or request.requirements.name
    tag = f"[{who}, Python {request.python}, pid {os.getpid()}]"
    with progress_log(log, cache.root / PROGRESS_LOG, tag) as logged:
        return _build_environment(request, output, options, stub_output, cache, report, logged)


def _build_environment(
    request: EnvRequest,
    output: Path,
    options: EnvOptions | None,
    stub_output: Path | None,
    cache: EnvCache,
    report: Path | None,
    log: Log,
) -> BuiltEnv:
    options = options or EnvOptions()
    who = model_prefix(request.label)
    install = install_source(request.requirements, request.python, request.label, log)
    stub = options.stub(request)
    builder = choose_builder(options.builder, options.conda, log)
    # The numpy constraint changes what is installed, so it is part of the key: an environment
    # cached before the constraint (numpy 2) is never reused for a server that needs numpy 1.
    numpy, why = options.target.numpy_requirement
    conflict = numpy_pin_conflict(install.text, numpy)
    if conflict:
        raise MmepackError(
            f"{who}{install.path} pins {conflict}, but Triton {options.target.triton_version} "
            f"needs {numpy} ({why}); pin a numpy that satisfies {numpy} and re-lock"
        )
    installed = install.text if install.locked else with_requirements(install.text, [numpy])
    key = EnvKey.of(installed, request.python, builder.identity(request.python))
    hit = cache.lookup(key)
    cached = hit is not None
    if hit is None:
        with cache.locked(key):
            hit = cache.lookup(key)  # built meanwhile by a concurrent process
            cached = hit is not None
            if hit is None:
                hit = _build_into_cache(request, options, builder, install, key, cache, log)
    if cached:
        hit = _prove_new_tensor_types(request, options, key, hit, cache, log)
    copy_atomically(hit.archive, output)
    shipped = None
    if stub is not None and stub_output is not None:
        copy_atomically(stub, stub_output)
        stub_output.chmod(0o755)
        shipped = stub_output
    entry = cache.entry(key).name[:12]
    summary = _report(request, options, hit, entry, cached, output, shipped)
    source = f"cache {entry}" if cached else "built now"
    stub_note = (
        f"; ships the Python {request.python} stub (Triton {options.target.triton_version}'s own "
        f"runs {options.target.stub_python})"
        if stub is not None
        else ""
    )
    log(
        f"{who}environment ready: {output} ({summary.archive_bytes / 1e6:.1f} MB, Python "
        f"{summary.python_version}, {source}){stub_note}"
    )
    if report is not None:
        summary.write(report)
    return BuiltEnv(
        archive=output,
        stub=shipped if shipped is not None else stub,
        python_version=summary.python_version,
        cached=cached,
        manifest=hit.manifest,
        report=summary,
    )
