"""What a model directory holds: the Triton model folders that go into one MME artifact.

A deployable model directory (e.g. `models/screen_detector/`) is itself a Triton model
repository: every sub-folder with a `config.pbtxt` is a model, and at most one of them is the
ensemble that SageMaker will load. Everything else in the directory (`model_version.txt`,
`requirements.txt`, `tests/`, `BUILD`) is build input, not artifact content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.pbtxt import Message, read_pbtxt

CONFIG_FILE = "config.pbtxt"
ENV_PATH_PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIR_VARIABLE = "$$TRITON_MODEL_DIRECTORY/"

# SageMaker's Triton front end picks the ensemble of a multi-model tar with this exact pattern
# over the raw config text, so mmepack applies the same test rather than a parsed comparison.
SAGEMAKER_ENSEMBLE_RE = re.compile(r'platform:(\s)*"ensemble"')


@dataclass(frozen=True)
class TritonModel:
    """One Triton model folder and the few config fields packaging depends on."""

    folder: Path
    name: str
    platform: str
    backend: str
    config: Message
    config_text: str

    @property
    def is_ensemble(self) -> bool:
        return self.platform == "ensemble"

    @property
    def is_python(self) -> bool:
        return self.backend == "python"

    def parameter(self, key: str) -> str | None:
        """A `parameters { key: ... value: { string_value: ... } }` entry, if set."""
        for entry in self.config.get("parameters", []):
            if isinstance(entry, dict) and entry.get("key") == [key]:
                for value in entry.get("value", []):
                    if isinstance(value, dict):
                        strings = value.get("string_value", [])
                        if strings and isinstance(strings[0], str):
                            return strings[0]
        return None

    def execution_env_relpath(self) -> str | None:
        """Where inside this model folder the packed Python environment must be placed."""
        raw = self.parameter(ENV_PATH_PARAMETER)
        if raw is None:
            return None
        config = self.folder / CONFIG_FILE
        if not raw.startswith(MODEL_DIR_VARIABLE):
            raise MmepackError(
                f"{config}: parameter {ENV_PATH_PARAMETER} is {raw!r}; it must start with "
                f"'{MODEL_DIR_VARIABLE}' because the host path of an MME model is only known "
                f"at load time, e.g. '{MODEL_DIR_VARIABLE}python_env.tar.gz'"
            )
        rel = raw[len(MODEL_DIR_VARIABLE) :]
        parts = Path(rel).parts
        if not rel or ".." in parts or Path(rel).is_absolute() or not rel.endswith(".tar.gz"):
            raise MmepackError(
                f"{config}: parameter {ENV_PATH_PARAMETER} is {raw!r}; expected a .tar.gz path "
                f"inside the model folder, e.g. '{MODEL_DIR_VARIABLE}python_env.tar.gz'"
            )
        return rel


@dataclass(frozen=True)
class ModelDirectory:
    """A deployable model: its directory and the Triton models inside it."""

    root: Path
    models: tuple[TritonModel, ...]

    @property
    def ensemble(self) -> TritonModel | None:
        ensembles = [m for m in self.models if m.is_ensemble]
        return ensembles[0] if ensembles else None

    @property
    def name(self) -> str:
        """The deployable's name: the ensemble's, or the single model's."""
        return self.ensemble.name if self.ensemble else self.models[0].name

    def python_env_models(self) -> list[TritonModel]:
        return [m for m in self.models if m.execution_env_relpath() is not None]


def _first_string(config: Message, field: str) -> str:
    values = config.get(field, [])
    return values[0] if values and isinstance(values[0], str) else ""


def read_triton_model(folder: Path) -> TritonModel:
    config_path = folder / CONFIG_FILE
    config = read_pbtxt(config_path)
    name = _first_string(config, "name") or folder.name
    if name != folder.name:
        raise MmepackError(
            f"{config_path}: name is {name!r} but the folder is {folder.name!r}; Triton requires "
            "them to match, rename one of them"
        )
    platform = _first_string(config, "platform")
    backend = _first_string(config, "backend")
    if not platform and not backend:
        raise MmepackError(
            f"{config_path}: neither 'platform' nor 'backend' is set; set one explicitly (e.g. "
            'backend: "python"), since under SageMaker MME Triton would guess it from the '
            "model name"
        )
    return TritonModel(
        folder=folder,
        name=name,
        platform=platform,
        backend=backend,
        config=config,
        config_text=config_path.read_text(encoding="utf-8"),
    )


def read_model_directory(root: Path) -> ModelDirectory:
    """Read every model folder under `root` and check the MME rule of one ensemble per tar."""
    if not root.is_dir():
        raise MmepackError(f"{root}: not a directory; expected a model directory")
    folders = sorted(p.parent for p in root.glob(f"*/{CONFIG_FILE}"))
    if not folders:
        raise MmepackError(
            f"{root}: no Triton model found; expected sub-folders holding a {CONFIG_FILE}, e.g. "
            f"{root}/<model_name>/{CONFIG_FILE}"
        )
    models = tuple(read_triton_model(folder) for folder in folders)
    ensembles = [m for m in models if m.is_ensemble]
    if len(models) > 1:
        if len(ensembles) != 1:
            found = ", ".join(m.name for m in ensembles) or "none"
            raise MmepackError(
                f"{root}: holds {len(models)} Triton models and {len(ensembles)} ensembles "
                f"({found}); a multi-model SageMaker MME package needs exactly one ensemble"
            )
        if not SAGEMAKER_ENSEMBLE_RE.search(ensembles[0].config_text):
            raise MmepackError(
                f"{ensembles[0].folder / CONFIG_FILE}: SageMaker finds the ensemble with the "
                'pattern platform:(\\s)*"ensemble"; write the line exactly as '
                'platform: "ensemble" (double quotes, no comments in between)'
            )
    return ModelDirectory(root=root, models=models)
