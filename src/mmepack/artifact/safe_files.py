"""Which files of a Triton model folder may ship, decided once for the packager and validation.

An artifact is unpacked on a shared endpoint host, so it must hold only what the model's author
put in the model folder on purpose: regular files and folders that live inside it. A link that
leads out of the folder would ship whatever it points to (a planted credentials file, say), a
FIFO would hang the packager, a device has no place in a tar, and hidden files (`.env`, `.git/`)
are nearly always secrets or tooling. Each is an error that names the path, so the author decides
rather than the packager guessing. Version-control and build files are left out silently: they
describe the source tree, never the model.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

# Hidden names that may sit in a model folder and are never shipped (the explicit allow-list:
# every other name starting with a dot is an error).
ALLOWED_HIDDEN = frozenset({".gitignore", ".gitkeep", ".gitattributes", ".dvcignore", ".DS_Store"})
# Folders and files that describe how a model is built or tracked, never what the server loads.
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = (".dvc", ".pyc")


def is_build_file(name: str) -> bool:
    """Pants BUILD files (`BUILD`, `BUILD.pants`, ...) never ship, at any depth."""
    return name == "BUILD" or name.startswith("BUILD.")


@dataclass(frozen=True)
class Unsafe:
    """One entry of a model folder that must not ship, and what to do about it."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ModelFiles:
    """Files to ship as (name relative to the model folder, path to read) and what is unsafe."""

    files: tuple[tuple[str, Path], ...]
    unsafe: tuple[Unsafe, ...]


def is_within(target: str, root: str) -> bool:
    """Whether the resolved path `target` is `root` or lies below it (both resolved)."""
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def scan_model_folder(folder: Path, model_dir: Path | None = None) -> ModelFiles:
    """Walk `folder` without following links and sort every entry into shipped or unsafe.

    `model_dir` (the deployable directory holding `folder`) is where a link to the model folder
    itself may lead; without it the folder itself must not be a link.
    """
    files: list[tuple[str, Path]] = []
    unsafe: list[Unsafe] = []
    try:
        folder_mode = os.lstat(folder).st_mode
    except OSError as exc:
        return ModelFiles((), (Unsafe(folder, f"cannot read ({exc.strerror})"),))
    root = os.path.realpath(folder)
    if stat.S_ISLNK(folder_mode):
        allowed = os.path.realpath(model_dir) if model_dir is not None else None
        if allowed is None or not is_within(root, allowed):
            return ModelFiles(
                (),
                (
                    Unsafe(
                        folder,
                        f"the model folder is a link to {root}, outside the model directory; "
                        "move the model folder into it",
                    ),
                ),
            )
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        current = os.path.join(root, rel_dir) if rel_dir else root
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            unsafe.append(Unsafe(folder / rel_dir, f"cannot list ({exc.strerror})"))
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            shown = folder / rel
            name = entry.name
            if name in SKIPPED_DIRS or name in ALLOWED_HIDDEN or is_build_file(name):
                continue
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            if name.startswith("."):
                unsafe.append(
                    Unsafe(
                        shown,
                        "hidden files are not shipped (they are usually secrets or tool state); "
                        f"remove it, or rename it if the model needs it (allowed hidden names: "
                        f"{', '.join(sorted(ALLOWED_HIDDEN))}, never shipped)",
                    )
                )
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                unsafe.append(Unsafe(shown, f"cannot read ({exc.strerror})"))
                continue
            if stat.S_ISLNK(mode):
                target = os.path.realpath(entry.path)
                if not is_within(target, root):
                    unsafe.append(
                        Unsafe(
                            shown,
                            f"is a link to {target}, outside the model folder; the artifact "
                            "would ship that file's content: copy the file in instead",
                        )
                    )
                    continue
                try:
                    mode = os.stat(target).st_mode
                except OSError:
                    unsafe.append(Unsafe(shown, "is a broken link; remove it"))
                    continue
                if not stat.S_ISREG(mode):
                    unsafe.append(
                        Unsafe(shown, "is a link to a folder or special file; use a real folder")
                    )
                    continue
                files.append((rel, shown))
            elif stat.S_ISDIR(mode):
                pending.append(rel)
            elif stat.S_ISREG(mode):
                files.append((rel, shown))
            else:
                unsafe.append(
                    Unsafe(
                        shown,
                        f"is {_special_kind(mode)}; an artifact holds only regular files and "
                        "folders: remove it",
                    )
                )
    return ModelFiles(tuple(sorted(files)), tuple(sorted(unsafe, key=lambda u: str(u.path))))


def config_entry_problem(config: Path) -> str | None:
    """Why an entry named config.pbtxt cannot be read as a config (a folder, FIFO, outside
    link), or None when it is a regular file inside its model folder."""
    try:
        mode = os.lstat(config).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        target = os.path.realpath(config)
        if not is_within(target, os.path.realpath(config.parent)):
            return f"is a link to {target}, outside the model folder; copy the file in instead"
        try:
            mode = os.stat(target).st_mode
        except OSError:
            return "is a broken link; replace it with the model's config"
    if stat.S_ISDIR(mode):
        return "is a folder; a model's config.pbtxt must be a text file"
    if not stat.S_ISREG(mode):
        return f"is {_special_kind(mode)}; a model's config.pbtxt must be a regular text file"
    return None
