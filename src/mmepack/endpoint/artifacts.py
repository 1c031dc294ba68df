"""Where an endpoint's TargetModels come from, and how each is unpacked before a load.

Owns the part SageMaker does before Triton sees anything: a TargetModel is the artifact's key
relative to the endpoint's model prefix (here: a file name among the given artifacts, or a path
under a folder of them), it is unpacked into `<models root>/<hash>/model` under the same
bounds and refusals as publish's check (mmepack.artifact.unpack: one gzip stream, safe members,
limited size and member count, so a gzip bomb is refused, not inflated), and that folder is the `url` of the load request, with the hash
as its `model_name`. Nothing here talks to Triton.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mmepack.artifact.unpack import unpack_artifact
from mmepack.errors import MmepackError
from mmepack.names import ARTIFACT_SUFFIX

# S3 keys and SageMaker's TargetModel are at most 1024 bytes.
_MAX_TARGET_BYTES = 1024


class ArtifactUnreadable(ValueError):
    """An artifact that cannot be unpacked (truncated, corrupt): the caller's ModelError."""


class TargetModelNotFound(LookupError):
    """No artifact for a TargetModel; SageMaker answers that with a 4xx, not a load attempt."""


def model_hash(target_model: str) -> str:
    """The name SageMaker registers an artifact under (a hash of its TargetModel).

    The ensemble itself is then served under the TargetModel string; the hash only names the
    registration, so any stable digest behaves the same.
    """
    return hashlib.sha256(target_model.encode("utf-8")).hexdigest()[:32]


def _check_target(target_model: str) -> PurePosixPath:
    raw = target_model.encode("utf-8", errors="replace")
    if not target_model or len(raw) > _MAX_TARGET_BYTES:
        raise TargetModelNotFound(
            f"TargetModel must be 1 to {_MAX_TARGET_BYTES} bytes, got {len(raw)}"
        )
    path = PurePosixPath(target_model)
    if path.is_absolute() or any(part in ("", ".", "..") for part in target_model.split("/")):
        raise TargetModelNotFound(
            f"TargetModel {target_model!r} must be a key relative to the endpoint's models, "
            "e.g. screen_detector_1.tar.gz"
        )
    if not target_model.endswith(ARTIFACT_SUFFIX):
        raise TargetModelNotFound(
            f"TargetModel {target_model!r} must name a {ARTIFACT_SUFFIX} artifact, e.g. "
            "screen_detector_1.tar.gz"
        )
    return path


@dataclass(frozen=True)
class ArtifactSource:
    """The endpoint's "S3 prefix": named artifact files and/or folders searched by key."""

    files: dict[str, Path]
    folders: tuple[Path, ...] = ()

    @classmethod
    def of(cls, paths: list[Path]) -> ArtifactSource:
        """Files are offered under their file name; folders under their relative paths."""
        files: dict[str, Path] = {}
        folders: list[Path] = []
        for path in paths:
            if path.is_dir():
                folders.append(path)
            elif path.is_file():
                if path.name in files and files[path.name].resolve() != path.resolve():
                    raise ValueError(
                        f"{path}: another artifact is already offered as TargetModel "
                        f"{path.name!r} ({files[path.name]}); give each version its own name"
                    )
                files[path.name] = path
            else:
                raise ValueError(f"{path}: no such artifact or folder")
        return cls(files, tuple(folders))

    def find(self, target_model: str) -> Path:
        relative = _check_target(target_model)
        if target_model in self.files:
            return self.files[target_model]
        for folder in self.folders:
            candidate = folder.joinpath(*relative.parts)
            if candidate.is_file():
                return candidate
        offered = sorted(self.names())
        raise TargetModelNotFound(
            f"no artifact {target_model!r} on this endpoint; offered: "
            + (", ".join(offered[:20]) or "none")
            + (" ..." if len(offered) > 20 else "")
        )

    def names(self) -> list[str]:
        found = set(self.files)
        for folder in self.folders:
            found.update(
                p.relative_to(folder).as_posix() for p in folder.rglob(f"*{ARTIFACT_SUFFIX}")
            )
        return sorted(found)


def unpack(
    artifact: Path,
    models_root: Path,
    target_model: str,
    cancelled: Callable[[], bool] = lambda: False,
) -> Path:
    """Unpack as SageMaker does, into `<models_root>/<hash>/model`, with publish's bounds and
    refusals (mmepack.artifact.unpack). Returns that folder.

    Whatever goes wrong, the partial unpack is removed at once (an artifact may be large), and
    a truncated, corrupt or refused file raises ArtifactUnreadable naming it. `models_root`'s
    parent must exist: an endpoint that has removed its work folder must not have it made
    again. `cancelled` is asked between members (the endpoint stopping)."""
    folder = models_root / model_hash(target_model) / "model"
    if folder.parent.exists():
        shutil.rmtree(folder.parent)
    models_root.mkdir(exist_ok=True)
    try:
        folder.parent.mkdir()
        unpack_artifact(artifact, folder, cancelled=cancelled)
    except MmepackError as exc:
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise ArtifactUnreadable(
            f"cannot unpack artifact {exc} (the file is truncated or corrupt, or holds what "
            "an mmepack artifact never does)"
        ) from None
    except BaseException:
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    return folder


def remove_unpacked(models_root: Path, target_model: str) -> None:
    shutil.rmtree(models_root / model_hash(target_model), ignore_errors=True)
