"""The two ways to make a whole Python prefix for a model's steps, behind one interface.

Both end the same way (the caller slims, packs with conda-pack and proves the prefix); they
differ only in where the interpreter comes from:

- conda: a conda, mamba or micromamba creates the prefix from a channel with the target Python,
  then pip installs requirements.txt into it. The production path for teams that have conda.
- portable: a local shared-library CPython of the target version is copied into the prefix and
  pip installs into that. Needs no channel, which is what works on machines without conda.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mmepack.environment.base_python import BaseInterpreter, find_base_interpreter
from mmepack.environment.determinism import deterministic_variables
from mmepack.errors import MmepackError
from mmepack_contract import CONDA_VARIABLE as CONTRACT_CONDA_VARIABLE

Log = Callable[[str], None]
BUILDER_KINDS = ("auto", "conda", "portable")
CONDA_VARIABLE = CONTRACT_CONDA_VARIABLE
_CONDA_NAMES = ("micromamba", "mamba", "conda")
# pip lines worth showing while an install runs for minutes.
_PROGRESS_PREFIXES = ("Collecting ", "Downloading ", "Building wheel", "Installing collected")
# Parts of the standard library a served model never imports.
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "__pycache__"}


class EnvBuilder(Protocol):
    """Makes a Python prefix with requirements installed; the caller packs and proves it."""

    kind: str

    def identity(self, python: str) -> str:
        """Everything about the builder that changes the prefix's bytes (for the cache key)."""
        ...

    def populate(
        self, requirements: Path, extra: list[str], python: str, prefix: Path, locked: bool = False
    ) -> str:
        """Create `prefix` and install into it; return the full Python version. `locked`:
        `requirements` is a lock, installed exactly (hashes required, no resolution)."""
        ...


def install_environment() -> dict[str, str]:
    """The variables pip runs with: no user site, no leaking PYTHONPATH, no version nag, and no
    bytecode written with times or build paths in it (see determinism)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(deterministic_variables())
    return env


def run_step(argv: list[str], what: str, log: Log | None = None) -> None:
    """Run one build command; stream its progress lines to `log`, and on failure raise with the
    command's last output lines (pip's own reason)."""
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=install_environment(),
    )
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        if log is not None and line.lstrip().startswith(_PROGRESS_PREFIXES):
            log(f"  {line.strip()}")
    code = process.wait()
    if code != 0:
        raise MmepackError(f"{what} failed (exit {code}):\n" + "\n".join(tail))


def pip_install(
    python: Path,
    requirements: Path,
    extra: list[str],
    what: str,
    log: Log | None,
    locked: bool = False,
) -> None:
    """`pip install -r`; from a lock: exactly its wheels (hashes checked, no dependency
    resolution). Bytecode is compiled afterwards, reproducibly (determinism.make_reproducible)."""
    exact = ["--require-hashes", "--no-deps", "--only-binary=:all:"] if locked else []
    run_step(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-input",
            "--no-warn-script-location",
            "--no-compile",
            *exact,
            "-r",
            str(requirements),
            *extra,
        ],
        what,
        log,
    )


class PortableBuilder:
    """Copies a local shared-library CPython prefix; see base_python for how it is found."""

    kind = "portable"

    def __init__(self, log: Log | None = None) -> None:
        self.log = log
        self._bases: dict[str, BaseInterpreter] = {}

    def _base(self, python: str) -> BaseInterpreter:
        """Found once per builder: finding it runs each candidate interpreter."""
        if python not in self._bases:
            self._bases[python] = find_base_interpreter(python)
        return self._bases[python]

    def identity(self, python: str) -> str:
        return f"portable:cpython-{self._base(python).version}"

    def populate(
        self, requirements: Path, extra: list[str], python: str, prefix: Path, locked: bool = False
    ) -> str:
        base = self._base(python)
        if self.log:
            self.log(f"portable builder: seeding Python {base.version} from {base.prefix}")
        _copy_prefix(base, prefix)
        interpreter = prefix / "bin" / f"python{base.minor}"
        run_step([str(interpreter), "-m", "ensurepip", "--default-pip"], "bootstrapping pip")
        pip_install(
            interpreter, requirements, extra, f"installing {requirements}", self.log, locked
        )
        shutil.rmtree(prefix / "include", ignore_errors=True)
        (prefix / "conda-meta").mkdir()
        (prefix / "conda-meta" / "history").write_text("# built by mmepack (portable builder)\n")
        return base.version


class CondaBuilder:
    """Creates the prefix with conda, mamba or micromamba from a channel (conda-forge)."""

    kind = "conda"

    def __init__(self, executable: Path, channel: str = "conda-forge", log: Log | None = None):
        self.executable = executable
        self.channel = channel
        self.log = log

    def identity(self, python: str) -> str:
        return f"conda:{self.executable.name}:{self.channel}:python={python}"

    def populate(
        self, requirements: Path, extra: list[str], python: str, prefix: Path, locked: bool = False
    ) -> str:
        if self.log:
            self.log(
                f"conda builder: {self.executable} creating Python {python} from {self.channel}"
            )
        run_step(
            [
                str(self.executable),
                "create",
                "-y",
                "-p",
                str(prefix),
                "--override-channels",
                "-c",
                self.channel,
                f"python={python}",
                "pip",
            ],
            f"creating the conda environment with {self.executable.name}",
            self.log,
        )
        interpreter = prefix / "bin" / "python"
        if not interpreter.exists():
            raise MmepackError(
                f"{self.executable} reported success but {interpreter} does not exist; check that "
                f"it is a conda, mamba or micromamba executable"
            )
        pip_install(
            interpreter, requirements, extra, f"installing {requirements}", self.log, locked
        )
        version = subprocess.run(
            [str(interpreter), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return version


def find_conda(configured: str | None = None) -> Path | None:
    """The conda-like executable: the configured one, $MMEPACK_CONDA_EXE, $CONDA_EXE, $MAMBA_EXE,
    then micromamba, mamba or conda on PATH."""
    candidates = [
        configured,
        os.environ.get(CONDA_VARIABLE),
        os.environ.get("MAMBA_EXE"),
        os.environ.get("CONDA_EXE"),
    ]
    for candidate in filter(None, candidates):
        found = shutil.which(candidate)
        if found is None:
            raise MmepackError(
                f"conda executable {candidate!r} (from the configuration or environment) does not "
                "exist or is not executable"
            )
        return Path(found)
    for name in _CONDA_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def choose_builder(kind: str, conda: str | None = None, log: Log | None = None) -> EnvBuilder:
    """`auto`: conda when one is found, else portable. `conda`: conda or an error (teams that
    accept only conda builds). `portable`: always the embedded builder."""
    if kind not in BUILDER_KINDS:
        raise MmepackError(
            f"environment builder {kind!r} is not known; expected one of {', '.join(BUILDER_KINDS)}"
        )
    if kind == "portable":
        return PortableBuilder(log)
    executable = find_conda(conda)
    if executable is not None:
        return CondaBuilder(executable, log=log)
    if kind == "conda":
        raise MmepackError(
            'the conda builder is required (builder = "conda", which forbids the portable '
            f"builder) but none of {', '.join(_CONDA_NAMES)} is on PATH; install one, point "
            f'{CONDA_VARIABLE} at it, or allow the portable builder with builder = "auto"'
        )
    return PortableBuilder(log)


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
