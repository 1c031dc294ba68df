"""The dev loop's model repository: each step folder copied from the model directory, as the
packager would ship it, with the Python environment unpacked once beside it.

Why a copy and not the model directory itself: Triton must never see a half-saved file (the
copy is made only after the static checks pass), the Python stub writes `__pycache__` into a
step's `1/` (the user's folder stays clean, and since each reload names its step, bytecode in
another step's copy reloads nothing), and the configs must point at the one unpacked
environment. Why an unpacked folder: Triton's Python backend uses a folder given as
EXECUTION_ENV_PATH in place, so no reload ever waits for an archive to unpack (an archive is
unpacked once per load into /tmp/python_env_*), and nothing lands outside the dev loop's scratch
folder.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from mmepack.artifact.env_layout import rewrite_env_path
from mmepack.artifact.safe_files import scan_model_folder
from mmepack.errors import MmepackError
from mmepack.model.repository import ModelDirectory, TritonModel
from mmepack.names import CONFIG_FILE, STUB_NAME


def unpack_environment(archive: Path, destination: Path) -> Path:
    """Unpack a packed environment (`python_env.tar.gz`) into a fresh folder."""
    destination.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="tar")
    except (tarfile.TarError, OSError) as exc:
        raise MmepackError(
            f"{archive}: cannot unpack the Python environment ({exc}); remove it from the "
            "environment cache (`mmepack env-cache prune`) and start again"
        ) from None
    return destination


class StagedRepository:
    """The folder Triton serves in the dev loop, and how a step is copied into it."""

    def __init__(self, root: Path, directory: ModelDirectory) -> None:
        self.root = root
        self.directory = directory
        self.env_dir: Path | None = None
        self.stub: Path | None = None
        root.mkdir(parents=True, exist_ok=True)

    def model(self, name: str) -> TritonModel:
        for model in self.directory.models:
            if model.name == name:
                return model
        raise MmepackError(f"{self.directory.root}: no model folder named '{name}'")

    def stage(self, name: str) -> Path:
        """Copy one step's shippable files into a fresh folder and swap it in.

        The new folder is complete before it replaces the old one, so a load never reads a
        folder that is half copied; files get new times, which Triton reads as an edit.
        """
        model = self.model(name)
        scanned = scan_model_folder(model.folder, self.directory.root)
        if scanned.unsafe:
            raise MmepackError(
                f"model '{name}': {len(scanned.unsafe)} entries must not ship:\n  "
                + "\n  ".join(str(u) for u in scanned.unsafe)
            )
        target = self.root / name
        fresh = self.root / f".{name}.staging"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        for rel, source in scanned.files:
            destination = fresh / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        if model.is_ensemble and not any(p.is_dir() for p in fresh.iterdir()):
            (fresh / "1").mkdir()  # git keeps no empty folder; Triton needs a version folder
        if model.env_path() is not None:
            if self.env_dir is None:
                raise MmepackError(
                    f"{model.config_path}: sets EXECUTION_ENV_PATH but no environment was built"
                )
            (fresh / CONFIG_FILE).write_bytes(rewrite_env_path(model, str(self.env_dir)))
            if self.stub is not None:
                shutil.copy2(self.stub, fresh / STUB_NAME)
        old = self.root / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        fresh.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    def stage_all(self) -> None:
        for model in self.directory.models:
            self.stage(model.name)

    def source_path(self, text: str) -> str:
        """Server messages name the staged copy; say the file the user edits instead."""
        return text.replace(f"{self.root}/", f"{self.directory.root}/")
