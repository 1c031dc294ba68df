"""Valid, deterministic bytecode for the Python steps an artifact ships.

Why: without it, the step's stub compiles `model.py` on its first load and writes
`__pycache__/` into the step's version folder, which changes that folder's modification time.
On a multi-model endpoint, loading another artifact makes Triton re-poll every step of the same
name in all registered repositories, sees the changed folder and reloads the first artifact's
steps (seen on Triton 2.51). With a valid `.pyc` already there, the stub writes nothing.

The bytecode is compiled by the interpreter the step will run (the packed environment's Python,
e.g. 3.12 for the example, found like the environment builder finds it; its version is the one
the environment's build report states, read from the archive only for an environment given
without one), with
`PycInvalidationMode.CHECKED_HASH`: the `.pyc` records the source's hash instead of its
modification time, so the same source gives the same bytes (the artifact stays reproducible)
and an edited source is still recompiled rather than silently ignored.

Steps without EXECUTION_ENV_PATH run under the server's own stub Python, which differs between
a local server and the target release, so they get no bytecode.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from mmepack.artifact.gzip_tar import GzipTarWriter
from mmepack.environment.base_python import find_base_interpreter
from mmepack.errors import MmepackError
from mmepack.model.repository import ModelDirectory

_VERSION_DIR_RE = re.compile(r"^[1-9][0-9]*$")
_ENV_PYTHON_RE = re.compile(r"^(?:\./)?lib/python(3\.\d+)/")

# Runs under the step's interpreter: compile each source, report the .pyc's path.
_COMPILE = """
import importlib.util, json, os, py_compile, sys
out, pairs = sys.argv[1], json.loads(sys.argv[2])
done = []
for source, recorded in pairs:
    relative = importlib.util.cache_from_source(recorded)
    py_compile.compile(
        source,
        cfile=os.path.join(out, relative),
        dfile=recorded,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    done.append(relative)
print(json.dumps(done))
"""


def environment_python(env_archive: Path) -> str:
    """The `3.X` of a packed environment, from its `lib/python3.X/` folder."""
    with tarfile.open(env_archive, mode="r|gz") as tar:
        for member in tar:
            match = _ENV_PYTHON_RE.match(member.name)
            if match:
                return match.group(1)
    raise MmepackError(
        f"{env_archive}: no lib/python3.X/ folder inside; is it a packed Python environment?"
    )


def _interpreter(minor: str) -> str:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor:
        return sys.executable
    return str(find_base_interpreter(minor).executable)


def archive_python(env_archive: Path) -> str | None:
    """`environment_python` of an archive given without its build report, or None when it is
    not a packed environment (a stand-in the packager only places): its Python, and so the
    bytecode's, is unknown; the step compiles on load as it would without mmepack."""
    try:
        return environment_python(env_archive)
    except (tarfile.TarError, OSError, MmepackError):
        return None


def minor_version(python_version: str) -> str:
    """`3.12` of `3.12.1` (or of `3.12`)."""
    return ".".join(python_version.split(".")[:2])


def step_bytecode(directory: ModelDirectory, env_python: str | None) -> dict[str, bytes]:
    """Tar member name -> `.pyc` bytes for every `.py` in the version folders of each Python
    step that runs in the packed environment, whose Python is `env_python` (`3.X`; None: no
    environment, or one of unknown Python, so no bytecode)."""
    sources: list[tuple[str, str]] = []  # (file on disk, name recorded = tar member name)
    for model in directory.models:
        if model.execution_env_relpath() is None:
            continue
        for version in sorted(p for p in model.folder.iterdir() if p.is_dir()):
            if not _VERSION_DIR_RE.match(version.name):
                continue
            for source in sorted(version.rglob("*.py")):
                if "__pycache__" not in source.parts:
                    member = f"{model.name}/{source.relative_to(model.folder).as_posix()}"
                    sources.append((str(source), member))
    if not sources or env_python is None:
        return {}
    minor = minor_version(env_python)
    python = _interpreter(minor)
    with tempfile.TemporaryDirectory(prefix="mmepack-bytecode-") as out:
        try:
            done = subprocess.run(
                [python, "-I", "-c", _COMPILE, out, json.dumps(sources)],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        except subprocess.CalledProcessError as exc:
            raise MmepackError(
                f"model '{directory.name}': compiling the Python steps with {python} failed:\n"
                f"{exc.stderr.strip()[-2000:]}"
            ) from None
        compiled = json.loads(done.stdout)
        return {name: (Path(out) / name).read_bytes() for name in compiled}


def add_step_bytecode(
    tar: GzipTarWriter, directory: ModelDirectory, env_python: str | None
) -> tuple[str, ...]:
    """Append the steps' bytecode (and its `__pycache__/` folders) to an artifact being written,
    with the writer's fixed owners and times; returns the member names added."""
    added: list[str] = []
    for name, data in sorted(step_bytecode(directory, env_python).items()):
        folder = name.rsplit("/", 1)[0]
        if folder + "/" not in added:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.add_dir(info, "code")
            added.append(folder + "/")
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        tar.add_bytes(info, data, "code")
        added.append(name)
    return tuple(added)
