"""Which files of a model directory changed, and what each change asks the dev loop to redo.

Polling, not inotify: a stat of every file of a model directory every quarter second costs
well under a millisecond for a model's few dozen files, needs no package, and behaves the same
on every file system (network mounts and container bind mounts drop inotify events).

Editors save in several steps (a swap file, a rename, a second write); a change is acted on
only once two scans in a row agree, and their scratch files are never looked at.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from mmepack.names import CASES_GLOB, CONFIG_FILE, LOCK_FILE, REQUIREMENTS_FILE

# (mtime in ns, size) per file, by path relative to the model directory (POSIX separators).
Snapshot = dict[str, tuple[int, int]]

# Never a model's source: the Python stub's bytecode, version control, editors' scratch files.
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".dvc", ".pytest_cache", ".mypy_cache"})
_SCRATCH_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig", ".pyc")
# vim writes and deletes a file named 4913 to test whether it may write in a folder.
_SCRATCH_NAMES = frozenset({"4913"})


def is_scratch(name: str) -> bool:
    """A name no model file has: hidden files, editor backups and swap files."""
    return name.startswith((".", "#")) or name.endswith(_SCRATCH_SUFFIXES) or name in _SCRATCH_NAMES


def scan(root: Path) -> Snapshot:
    """Every regular file under `root` that could be part of the model, with its mtime and size.

    Links are not followed (the packager refuses them anyway); a file that vanishes between the
    listing and its stat (an editor's rename) is simply absent from this scan.
    """
    found: Snapshot = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            entries = list(os.scandir(root / rel_dir if rel_dir else root))
        except OSError:
            continue
        for entry in entries:
            if is_scratch(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _SKIPPED_DIRS:
                        pending.append(rel)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            found[rel] = (info.st_mtime_ns, info.st_size)
    return found


def changed_paths(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two scans, sorted."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


@dataclass
class Plan:
    """What one batch of changes asks for, in the order the loop does it.

    `steps`: Triton model folders whose files changed (reload each); `weights`: steps whose
    `.dvc` record changed (pull and verify first); `environment`: requirements changed (rebuild
    it, then reload every Python step); `cases`: only the cases need reading again; `ignored`:
    files the loop does not serve (BUILD, model_version.txt, test code), named so a user knows
    their save was seen.
    """

    changed: list[str] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    weights: set[str] = field(default_factory=set)
    environment: bool = False
    cases: bool = False
    ignored: list[str] = field(default_factory=list)
    new_models: list[str] = field(default_factory=list)

    @property
    def reloads(self) -> bool:
        return bool(self.steps or self.environment)


def plan_changes(changed: list[str], model_names: set[str], cases_glob: str = CASES_GLOB) -> Plan:
    """Sort changed paths into what must be redone; pure, so the rules are unit-tested."""
    plan = Plan(changed=list(changed))
    cases_dir = cases_glob.rsplit("/", 1)[0] if "/" in cases_glob else ""
    for path in changed:
        parts = path.split("/")
        top = parts[0]
        if top in model_names:
            plan.steps.add(top)
            if path.endswith(".dvc"):
                plan.weights.add(top)
        elif path in (REQUIREMENTS_FILE, LOCK_FILE):
            plan.environment = True
        elif fnmatch.fnmatch(path, cases_glob) or (cases_dir and path.startswith(f"{cases_dir}/")):
            # A case's data files (images, .npy) live beside its JSON.
            plan.cases = True
        elif len(parts) == 2 and parts[1] == CONFIG_FILE:
            plan.new_models.append(top)
        else:
            plan.ignored.append(path)
    return plan
