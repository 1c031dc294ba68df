"""`mmepack add-weights` and `push-weights`: DVC's add and push, run inside mmepack.

A data scientist's weights workflow is record (add), share (push), fetch (pull). mmepack already
carries DVC and its S3 plugin for pulls, so running add and push here too means one tool to
install, one version of DVC for every step, and messages in mmepack's terms. DVC runs in this
process (not `python -m dvc`): from the CLI PEX the interpreter alone cannot import DVC.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.dvc_remote import default_remote, explain, require_plugin
from mmepack.model.weights import dvc_logs, tracked_files


def _require_dvc_repo(repo_root: Path, what: str) -> None:
    if not (repo_root / ".dvc").is_dir():
        raise MmepackError(
            f"{repo_root}: no .dvc/ folder, so {what} has nowhere to record weights; run from "
            "the repository root (or give --repo-root)"
        )


def add_weights(paths: list[Path], repo_root: Path) -> list[str]:
    """Record each file's current bytes in its `.dvc` file (DVC's add); one line per file."""
    _require_dvc_repo(repo_root, "add-weights")
    for path in paths:
        if not path.is_file():
            raise MmepackError(f"{path}: no such file; give the weight file to record")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    lines = []
    with Repo(str(repo_root)) as repo:
        for path in paths:
            try:
                repo.add(str(path.resolve()))
            except DvcException as exc:
                raise MmepackError(
                    f"{path}: DVC could not record it: {exc}; check that it lies inside "
                    f"{repo_root} and is not tracked by git"
                ) from None
            dvc_file = path.with_name(path.name + ".dvc")
            md5 = next((t.md5 for t in tracked_files(path.parent) if t.path == path), "?")
            lines.append(
                f"recorded {path} in {dvc_file} (md5 {md5}); next: `mmepack push-weights`, "
                f"then commit {dvc_file}"
            )
    return lines


def push_weights(model_dirs: list[Path], repo_root: Path) -> str:
    """Send the recorded weights of `model_dirs` (default: every `.dvc` file in the repository)
    to the default DVC remote (DVC's push); one line saying what was sent where."""
    _require_dvc_repo(repo_root, "push-weights")
    files = [t for d in model_dirs for t in tracked_files(d)]
    if model_dirs and not files:
        raise MmepackError(
            f"{', '.join(map(str, model_dirs))}: no .dvc files; record weights first with "
            "`mmepack add-weights <file>`"
        )
    targets = sorted({str(f.dvc_file.resolve()) for f in files}) or None
    where = ", ".join(sorted({str(f.dvc_file) for f in files})) or "every .dvc file"
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo, dvc_logs() as logs:
        remote = default_remote(repo.config, "(push)", where)
        require_plugin(remote, "(push)", where)
        try:
            pushed = repo.push(targets=targets)
        except DvcException as exc:
            raise MmepackError(
                f"cannot push {where} to {remote.describe()}: "
                + explain(remote, [*logs.failures, exc])
            ) from None
    return f"pushed {pushed} object(s) for {where} to {remote.describe()}"
