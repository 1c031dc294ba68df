"""`<artifact>.capacity.json`: a test run's capacity figures, kept beside the artifact.

Kept in its own file (not inside the test record of passed cases) so either can change alone.
`./pants test` gets it back as the test's extra output (under dist/test/); `mmepack test-cases`
outside Pants writes it beside the artifact. A publish carries the newest record of the same
bytes (same sha256) into the manifest as its `capacity` block; a record of other bytes is
ignored, since its figures describe another artifact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mmepack import __version__
from mmepack.files import atomic_path, file_hexdigest

CAPACITY_SUFFIX = ".capacity.json"
# Where a publish looks for capacity records besides the artifact's own folder: the build
# output, where `./pants test` writes them (dist/test/<target>/).
DEFAULT_RECORD_DIRS = (Path("dist"),)


def capacity_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + CAPACITY_SUFFIX)


def write_capacity(
    artifact: Path,
    figures: dict[str, Any],
    *,
    server: dict[str, Any],
    machine: dict[str, Any],
    budgets: dict[str, float | None],
    failures: list[str],
    destination: Path | None = None,
) -> Path:
    path = destination or capacity_path(artifact)
    record = {
        "artifact": artifact.name,
        "sha256": file_hexdigest(artifact, "sha256"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mmepack_version": __version__,
        "machine": machine,
        "server": server,
        **figures,
        "budgets": budgets,
        "within_budget": not failures,
        "budget_failures": failures,
    }
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_capacity(path: Path) -> dict[str, Any] | None:
    """A record, or None when the file is not one (unreadable, not JSON, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("artifact"), str):
        return None
    return data


def find_capacity(
    artifact: Path, sha256: str, record_dirs: list[Path] | tuple[Path, ...] = DEFAULT_RECORD_DIRS
) -> dict[str, Any] | None:
    """The newest capacity record of exactly these bytes, beside the artifact or under the
    folders (a bounded name search), or None."""
    name = artifact.name + CAPACITY_SUFFIX
    candidates = [capacity_path(artifact)]
    for folder in record_dirs:
        if folder.is_dir():
            candidates.extend(sorted(folder.rglob(name)))
    found = [
        record
        for record in (read_capacity(path) for path in dict.fromkeys(candidates))
        if record is not None and record.get("sha256") == sha256
    ]
    if not found:
        return None
    return max(found, key=lambda r: str(r.get("measured_at", "")))


def capacity_block(
    artifact: Path, sha256: str, record_dirs: list[Path] | None = None
) -> dict[str, Any] | None:
    """The manifest's `capacity` block: the newest record of these bytes, without the fields
    the manifest already has (artifact, sha256)."""
    record = find_capacity(
        artifact, sha256, tuple(record_dirs) if record_dirs else DEFAULT_RECORD_DIRS
    )
    if record is None:
        return None
    return {k: v for k, v in record.items() if k not in ("artifact", "sha256")}
