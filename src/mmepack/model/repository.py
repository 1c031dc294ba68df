"""What a model directory holds: the Triton model folders that go into one MME artifact.

A deployable model directory (e.g. `models/screen_detector/`) is itself a Triton model
repository: every sub-folder with a `config.pbtxt` is a model, and at most one of them is the
ensemble that SageMaker will load. Everything else in the directory (`model_version.txt`,
`requirements.txt`, `tests/`, `BUILD`) is build input, not artifact content.

Each model is read once, with Triton's schema (`mmepack.model.config`); validation and
packaging share that reading and the packaging rules of `mmepack.model.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import (
    ModelConfig,
    Positions,
    Problem,
    Severity,
    parse_model_config_with_positions,
    read_config_text,
)
from mmepack.model.rules import (
    ENSEMBLE_PLATFORM,
    env_path_relpath,
    packaging_problems,
    top_ensembles,
)
from mmepack.names import CONFIG_FILE, ENV_PATH_PARAMETER


@dataclass(frozen=True)
class TritonModel:
    """One Triton model folder: its config as Triton parses it, the text, and where each field is.

    The model's name is its folder's: Triton loads a model only from the folder of its name
    (a differing `name:` is a packaging error, see `mmepack.model.rules`).
    """

    folder: Path
    text: str
    config: ModelConfig
    positions: Positions

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def platform(self) -> str:
        return str(self.config.platform)

    @property
    def backend(self) -> str:
        return str(self.config.backend)

    @property
    def is_ensemble(self) -> bool:
        return self.platform == ENSEMBLE_PLATFORM

    @property
    def names_its_backend(self) -> bool:
        """A step that leaves platform, backend and default_model_filename to Triton, in a
        folder `<name>.<backend>`: Triton's custom-backend form, where the name must keep its
        dot (mmepack.validate.triton_rules.inferred_platform_backend)."""
        config = self.config
        return "." in self.name and not (
            config.platform or config.backend or config.default_model_filename
        )

    @property
    def is_python(self) -> bool:
        return self.backend == "python"

    @property
    def max_batch_size(self) -> int:
        return int(self.config.max_batch_size)

    def env_path(self) -> str | None:
        """The `EXECUTION_ENV_PATH` parameter as written, if set."""
        if ENV_PATH_PARAMETER not in self.config.parameters:
            return None
        return str(self.config.parameters[ENV_PATH_PARAMETER].string_value)

    def execution_env_relpath(self) -> str | None:
        """Where inside this model folder the packed Python environment must be placed."""
        raw = self.env_path()
        if raw is None:
            return None
        rel = env_path_relpath(raw)
        if rel is None:
            # read_model_directory refuses such a path; a model read on its own may still hold it.
            raise MmepackError(
                "\n".join(str(p) for p in packaging_problems(self.folder.parent, [self], 1))
            )
        return rel

    def problem(
        self, line: int | None, field: str, message: str, severity: Severity = "error"
    ) -> Problem:
        """A finding about this model's config.pbtxt."""
        return Problem(self.config_path, line, field, message, severity)


@dataclass(frozen=True)
class ModelDirectory:
    """A deployable model: its directory and the Triton models inside it."""

    root: Path
    models: tuple[TritonModel, ...]

    @property
    def ensemble(self) -> TritonModel | None:
        """The ensemble SageMaker loads: the one no other ensemble uses as a step."""
        ensembles = top_ensembles(self.models)
        return ensembles[0] if ensembles else None

    @property
    def name(self) -> str:
        """The deployable's name: the ensemble's, or the single model's."""
        return self.ensemble.name if self.ensemble else self.models[0].name

    def python_env_models(self) -> list[TritonModel]:
        return [m for m in self.models if m.execution_env_relpath() is not None]


def model_folders(root: Path) -> list[Path]:
    """The Triton model folders of a model directory: sub-folders holding a config.pbtxt."""
    return sorted(p.parent for p in root.glob(f"*/{CONFIG_FILE}") if p.is_file())


def read_triton_model(folder: Path) -> TritonModel:
    """Parse one model folder's config.pbtxt; raises ConfigSchemaError (an MmepackError)."""
    config_path = folder / CONFIG_FILE
    text = read_config_text(config_path)
    config, positions = parse_model_config_with_positions(text, config_path)
    return TritonModel(folder=folder, text=text, config=config, positions=positions)


def read_model_directory(root: Path) -> ModelDirectory:
    """Read every model folder under `root`; refuse a directory that breaks a packaging rule."""
    if not root.is_dir():
        raise MmepackError(f"{root}: not a directory; expected a model directory")
    folders = model_folders(root)
    if not folders:
        raise MmepackError(
            f"{root}: no Triton model found; expected sub-folders holding a {CONFIG_FILE}, e.g. "
            f"{root}/<model_name>/{CONFIG_FILE}"
        )
    models = tuple(read_triton_model(folder) for folder in folders)
    errors = [p for p in packaging_problems(root, models, len(models)) if p.severity == "error"]
    if errors:
        raise MmepackError("\n".join(str(p) for p in errors))
    return ModelDirectory(root=root, models=models)
