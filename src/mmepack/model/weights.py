"""DVC-tracked weights: find what a model tracks, pull it, and prove the bytes are the tracked ones.

Weights never live in git, so an artifact is only as trustworthy as this check: every file a
`.dvc` file describes must be present with the recorded md5 before it is packed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mmepack.errors import MmepackError
from mmepack.files import file_hexdigest


@dataclass(frozen=True)
class TrackedFile:
    """One `outs` entry of a `.dvc` file."""

    dvc_file: Path
    path: Path
    md5: str
    size: int | None

    @property
    def is_directory(self) -> bool:
        return self.md5.endswith(".dir")


def _load_dvc_file(dvc_file: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(dvc_file.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise MmepackError(f"{dvc_file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("outs"), list):
        raise MmepackError(f"{dvc_file}: expected a DVC file with an 'outs' list")
    return data


def tracked_files(model_dir: Path) -> list[TrackedFile]:
    """Every output recorded by the `.dvc` files under `model_dir`."""
    found: list[TrackedFile] = []
    for dvc_file in sorted(model_dir.rglob("*.dvc")):
        for index, out in enumerate(_load_dvc_file(dvc_file)["outs"]):
            if not isinstance(out, dict) or "path" not in out or "md5" not in out:
                raise MmepackError(
                    f"{dvc_file}: outs[{index}] needs 'path' and 'md5'; re-create it with "
                    "`dvc add <file>`"
                )
            size = out.get("size")
            found.append(
                TrackedFile(
                    dvc_file=dvc_file,
                    path=dvc_file.parent / str(out["path"]),
                    md5=str(out["md5"]),
                    size=int(size) if size is not None else None,
                )
            )
    return found


def file_md5(path: Path) -> str:
    return file_hexdigest(path, "md5")


def verify_weights(model: str, files: list[TrackedFile]) -> None:
    """Fail unless every tracked file is present with its recorded content."""
    problems: list[str] = []
    for tracked in files:
        if tracked.is_directory:
            if not tracked.path.is_dir():
                problems.append(f"{tracked.path} (tracked by {tracked.dvc_file}) is missing")
            continue
        if not tracked.path.is_file():
            problems.append(f"{tracked.path} (tracked by {tracked.dvc_file}) is missing")
            continue
        actual = file_md5(tracked.path)
        if actual != tracked.md5:
            problems.append(
                f"{tracked.path} has md5 {actual} but {tracked.dvc_file} records {tracked.md5}"
            )
    if problems:
        raise MmepackError(
            f"model '{model}': DVC-tracked weights are not in place:\n  "
            + "\n  ".join(problems)
            + "\nRun `dvc pull` (or `mmepack pull-weights`) and check that the remote holds them; "
            "if you changed the file on purpose, `dvc add` and `dvc push` it."
        )


def pull_weights(model: str, repo_root: Path, files: list[TrackedFile]) -> None:
    """Fetch tracked files from the repository's default DVC remote into the working tree.

    Works without git (as in a Pants sandbox) by telling DVC there is no SCM; DVC's own error
    is kept in the message because it names the remote and the missing object.
    """
    if not files:
        return
    if not (repo_root / ".dvc").is_dir():
        raise MmepackError(
            f"model '{model}': {repo_root} has no .dvc/ folder but "
            f"{files[0].dvc_file} tracks weights; run from the repository root"
        )
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    no_scm = not (repo_root / ".git").exists()
    targets = sorted({str(f.dvc_file.resolve()) for f in files})
    try:
        with Repo(str(repo_root), config={"core": {"no_scm": no_scm}}) as repo:
            repo.pull(targets=targets)
    except DvcException as exc:
        detail = str(exc)
        cause = exc.__cause__
        if cause is not None:
            detail += f" ({cause})"
        missing = [str(f.path) for f in files if not f.path.exists()]
        raise MmepackError(
            f"model '{model}': `dvc pull` failed for {', '.join(missing) or 'its weights'} "
            f"(tracked by {', '.join(sorted({str(f.dvc_file) for f in files}))}): {detail}\n"
            "Check that the DVC remote is reachable and holds these objects (`dvc push` them "
            "from the machine that added them)."
        ) from None
