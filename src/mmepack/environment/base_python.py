"""Find a local shared-library CPython to seed a portable Python backend environment.

Triton's stub embeds Python by loading `libpython3.X.so`, then treats the environment as a whole
Python prefix, so a venv is not enough: the seed must be a real, `--enable-shared` CPython of the
exact minor version the stub was built for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack_contract import PYTHON_VARIABLE

_PROBE = (
    "import json, sys, sysconfig; v = sysconfig.get_config_var; print(json.dumps({"
    "'version': '%d.%d.%d' % sys.version_info[:3], 'prefix': sys.base_prefix, "
    "'libdir': v('LIBDIR'), 'ldlibrary': v('LDLIBRARY'), 'instsoname': v('INSTSONAME'), "
    "'shared': bool(v('Py_ENABLE_SHARED')), 'stdlib': sysconfig.get_path('stdlib'), "
    "'implementation': sys.implementation.name}))"
)


@dataclass(frozen=True)
class BaseInterpreter:
    """A CPython installation whose prefix can be copied into a self-contained environment."""

    executable: Path
    prefix: Path
    version: str
    libdir: Path
    ldlibrary: str
    instsoname: str
    stdlib: Path

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def _probe(executable: Path) -> BaseInterpreter | None:
    try:
        result = subprocess.run(
            [str(executable), "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        info = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if info["implementation"] != "cpython" or not info["shared"]:
        return None
    libdir = Path(info["libdir"])
    if not (libdir / info["instsoname"]).exists():
        return None
    return BaseInterpreter(
        executable=executable,
        prefix=Path(info["prefix"]),
        version=info["version"],
        libdir=libdir,
        ldlibrary=info["ldlibrary"],
        instsoname=info["instsoname"],
        stdlib=Path(info["stdlib"]),
    )


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def _candidates(minor: str) -> list[Path]:
    found: list[Path] = []
    explicit = os.environ.get(f"{PYTHON_VARIABLE}{minor.replace('.', '_')}")
    if explicit:
        found.append(Path(explicit))
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        versions = Path(root) / "versions"
        if versions.is_dir():
            matches = [p for p in versions.glob(f"{minor}.*") if re.fullmatch(r"[\d.]+", p.name)]
            for match in sorted(matches, key=_version_key, reverse=True):
                found.append(match / "bin" / f"python{minor}")
    on_path = shutil.which(f"python{minor}")
    if on_path:
        found.append(Path(on_path))
    return found


def find_base_interpreter(minor: str) -> BaseInterpreter:
    """The first usable shared-library CPython `minor` (e.g. "3.11"), or a message saying how
    to provide one."""
    if not re.fullmatch(r"3\.\d+", minor):
        raise MmepackError(f"python version {minor!r} is not valid; expected e.g. '3.11'")
    tried = []
    for candidate in _candidates(minor):
        interpreter = _probe(candidate)
        if interpreter is not None and interpreter.minor == minor:
            return interpreter
        tried.append(str(candidate))
    raise MmepackError(
        f"no shared-library CPython {minor} found (tried: {', '.join(tried) or 'nothing'}); "
        f"install one built with --enable-shared (e.g. `PYTHON_CONFIGURE_OPTS=--enable-shared "
        f"pyenv install {minor}`) or point {PYTHON_VARIABLE}{minor.replace('.', '_')} at its "
        "python executable"
    )
