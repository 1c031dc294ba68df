"""Validation step: a model's requirements.lock must match its requirements.txt.

The environment is installed from the lock alone, so a requirements.txt edited without relocking
would silently not take effect; `./pants lint` fails instead, naming the model and the command
that regenerates the lock. A model with requirements but no lock still builds (resolving at
build time, not reproducibly), so that is a warning. A lock pinning a numpy the target server
refuses (numpy 2 for Triton 2.51.0) is an error here too, not first at package time.
"""

from __future__ import annotations

from pathlib import Path

from mmepack.environment.lock import lock_path, read_lock, stale_reason
from mmepack.environment.requirements import numpy_pin_conflict
from mmepack.errors import MmepackError
from mmepack.model.config import Problem
from mmepack.names import LOCK_FILE, REQUIREMENTS_FILE
from mmepack.triton.target import TargetServer

_DIGEST_FIELD = "requirements-sha256"


def _header_line(text: str, field: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"# {field}:"):
            return number
    return None


def _pin_line(text: str, pin: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lower().startswith(pin.lower()):
            return number
    return None


def check_lock(root: Path, target: TargetServer | None = None) -> list[Problem]:
    """Problems of `<root>/requirements.lock` against `<root>/requirements.txt` and against
    the numpy the target server (default: the library's) accepts."""
    requirements = root / REQUIREMENTS_FILE
    if not requirements.is_file():
        return []
    path = lock_path(requirements)
    model = root.resolve().name
    if not path.is_file():
        return [
            Problem(
                requirements,
                None,
                LOCK_FILE,
                f"model '{model}' has no {LOCK_FILE}, so its environment is resolved at build "
                f"time and two builds may differ; run `mmepack lock {root} --python 3.X` (the "
                f"model's python_version) or `./pants lock-envs {root}:` and commit {LOCK_FILE}",
                "warning",
            )
        ]
    try:
        lock = read_lock(path)
        reason = stale_reason(requirements, lock, model)
    except MmepackError as exc:
        return [Problem(path, None, LOCK_FILE, f"model '{model}': {exc}")]
    problems = []
    if reason is not None:
        problems.append(
            Problem(
                path,
                _header_line(lock.text, _DIGEST_FIELD),
                _DIGEST_FIELD,
                f"model '{model}': {reason}",
            )
        )
    target = target or TargetServer()
    numpy, why = target.numpy_requirement
    conflict = numpy_pin_conflict(lock.text, numpy)
    if conflict is not None:
        problems.append(
            Problem(
                path,
                _pin_line(lock.text, conflict),
                "numpy",
                f"model '{model}': {LOCK_FILE} pins {conflict}, but Triton "
                f"{target.triton_version} needs {numpy} ({why}), so packaging would refuse it; "
                f"run `mmepack lock {root} --python {lock.python}` (it caps numpy for the "
                f"target server) and commit {LOCK_FILE}",
            )
        )
    return problems
