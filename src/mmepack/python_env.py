"""Build the conda-packed `python_env.tar.gz` that Triton's Python backend unpacks at load time.

This is the "portable" builder: no conda channel is needed. It copies a local shared-library
CPython prefix (interpreter, libpython, standard library), pip-installs the model's requirements
plus numpy into it, and hands the prefix to conda-pack, which is what produces the archive layout
(`bin/activate`, `conda-unpack`) Triton expects.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmepack.base_python import BaseInterpreter, find_base_interpreter
from mmepack.errors import MmepackError

Log = Callable[[str], None]

# Parts of the standard library a served model never imports; dropping them keeps every
# artifact (and every model load, which unpacks the archive) smaller.
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "__pycache__"}


def _stderr(message: str) -> None:
    print(f"mmepack: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EnvReport:
    """What was built, for progress output and provenance."""

    output: Path
    python_version: str
    packed_bytes: int
    seconds: float


def _copy_prefix(base: BaseInterpreter, env: Path) -> None:
    minor = base.minor
    (env / "bin").mkdir(parents=True)
    shutil.copy2(base.prefix / "bin" / f"python{minor}", env / "bin" / f"python{minor}")
    for alias in ("python3", "python"):
        (env / "bin" / alias).symlink_to(f"python{minor}")
    (env / "lib").mkdir()
    for lib in sorted(
        set(base.libdir.glob(f"libpython{minor}*.so*")) | {base.libdir / "libpython3.so"}
    ):
        if lib.exists():
            shutil.copy2(lib, env / "lib" / lib.name, follow_symlinks=False)

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == base.stdlib
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".a")}
        return skipped | ({n for n in names if n in _STDLIB_SKIP} if top else set())

    shutil.copytree(base.stdlib, env / "lib" / f"python{minor}", symlinks=True, ignore=ignore)
    (env / "lib" / f"python{minor}" / "site-packages").mkdir()
    if (base.prefix / "include").is_dir():  # needed only if a requirement builds from source
        shutil.copytree(base.prefix / "include", env / "include", symlinks=True)


def _run(argv: list[str], what: str, env_vars: dict[str, str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env_vars)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        raise MmepackError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(output[-40:]))


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _largest_packages(env: Path, minor: str, count: int = 5) -> str:
    """The biggest entries of site-packages, so a bloated environment is noticed at build time."""
    site = env / "lib" / f"python{minor}" / "site-packages"
    sizes = sorted(
        ((_tree_bytes(p), p.name) for p in site.iterdir() if not p.name.endswith(".dist-info")),
        reverse=True,
    )
    return ", ".join(f"{name} {size / 1e6:.1f} MB" for size, name in sizes[:count])


def _requirements_mention_numpy(requirements: Path) -> bool:
    for line in requirements.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip().lower().replace("_", "-")
        if name.startswith("numpy") and (len(name) == 5 or not name[5].isalnum()):
            return True
    return False


def build_portable_env(
    requirements: Path,
    python_minor: str,
    output: Path,
    *,
    label: str = "",
    log: Log = _stderr,
) -> EnvReport:
    """Build and conda-pack an environment; `output` appears only if every step succeeded."""
    import conda_pack

    started = time.monotonic()
    who = f"model '{label}': " if label else ""
    if not requirements.is_file():
        raise MmepackError(f"{who}{requirements} is missing; list the Python steps' packages there")
    base = find_base_interpreter(python_minor)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    env = staging / "env"
    try:
        log(
            f"{who}building Python {base.version} environment from {requirements} (seed {base.prefix})"
        )
        _copy_prefix(base, env)
        python = str(env / "bin" / f"python{base.minor}")
        env_vars = {
            k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER")
        }
        env_vars["PYTHONNOUSERSITE"] = "1"
        env_vars["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        _run([python, "-m", "ensurepip", "--default-pip"], f"{who}bootstrapping pip", env_vars)
        extra = [] if _requirements_mention_numpy(requirements) else ["numpy"]
        log(f"{who}pip-installing {requirements.name}{' + numpy' if extra else ''}")
        _run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--no-input",
                "--no-warn-script-location",
                "-r",
                str(requirements),
                *extra,
            ],
            f"{who}installing {requirements}",
            env_vars,
        )
        _run(
            [python, "-m", "pip", "uninstall", "--yes", "pip"],
            f"{who}removing pip (a served model never installs packages)",
            env_vars,
        )
        shutil.rmtree(env / "include", ignore_errors=True)
        log(f"{who}largest packages: {_largest_packages(env, base.minor)}")
        (env / "conda-meta").mkdir()
        (env / "conda-meta" / "history").write_text("# built by mmepack (portable builder)\n")
        log(f"{who}packing with conda-pack")
        packed = staging / output.name
        conda_pack.pack(
            prefix=str(env),
            output=str(packed),
            format="tar.gz",
            n_threads=os.cpu_count() or 1,
            compress_level=4,
            verbose=False,
        )
        os.replace(packed, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    size = output.stat().st_size
    log(f"{who}environment ready: {output} ({size / 1e6:.1f} MB, {seconds:.0f} s)")
    return EnvReport(output=output, python_version=base.version, packed_bytes=size, seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    """`python -m mmepack.python_env`: the environment builder alone.

    The Pants plugin runs this narrow entry point rather than the whole CLI, so Pants' cache key
    for an environment covers only the requirements, the Python version and the builder's own
    code: editing other parts of mmepack never rebuilds environments, and models with identical
    requirements share one build.
    """
    parser = argparse.ArgumentParser(prog="mmepack-build-env")
    parser.add_argument("--requirements", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--python", required=True, help="e.g. 3.11")
    parser.add_argument("--label", default="", help="model name for messages")
    args = parser.parse_args(argv)
    try:
        build_portable_env(args.requirements, args.python, args.output, label=args.label)
    except MmepackError as exc:
        print(f"mmepack: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
