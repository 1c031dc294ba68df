"""Validation step: a model's requirements.lock must match its requirements.txt.

The environment is installed from the lock alone, so a requirements.txt edited without relocking
would silently not take effect; `./pants lint` fails instead, naming the model and the command
that regenerates the lock. A model with requirements but no lock still builds (resolving at
build time, not reproducibly), so that is a warning.
"""

from __future__ import annotations

from pathlib import Path

from mmepack.environment.lock import lock_path, read_lock, stale_reason
from mmepack.errors import MmepackError
from mmepack.model.config import Problem
from mmepack.names import LOCK_FILE, REQUIREMENTS_FILE

_DIGEST_FIELD = "requirements-sha256"


def _header_line(text: str, field: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"# {field}:"):
            return number
    return None


def check_lock(root: Path) -> list[Problem]:
    """Problems of `<root>/requirements.lock` against `<root>/requirements.txt`."""
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
    if reason is None:
        return []
    return [
        Problem(
            path,
            _header_line(lock.text, _DIGEST_FIELD),
            _DIGEST_FIELD,
            f"model '{model}': {reason}",
        )
    ]
