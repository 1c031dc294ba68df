"""Static checks of Triton model directories, before anything is packaged or served.

A broken config otherwise shows up late and one mistake at a time: Triton stops loading at the
first error it meets, and under SageMaker MME that happens on the first invoke of a published
artifact. These checks read only the files, so they run in CI and editors in milliseconds, and
they report every problem at once, each with its file, line and config field.

What is checked mirrors Triton's own load-time validation (the ensemble rules of its
`ensemble_utils.cc` and `model_config_utils.cc`, the version rules of `model_lifecycle.cc`) plus
the rules the packager and SageMaker MME add (`model_version.txt`, one ensemble per tar,
`EXECUTION_ENV_PATH`, weights tracked by DVC).
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.repository import (
    CONFIG_FILE,
    ENV_PATH_PARAMETER,
    MODEL_DIR_VARIABLE,
    SAGEMAKER_ENSEMBLE_RE,
)
from mmepack.model.version import VERSION_FILE, artifact_name, check_model_name, read_model_version
from mmepack.model.config import (
    ConfigSchemaError,
    ModelConfig,
    Problem,
    Severity,
    data_type_name,
    instance_kind_name,
    parse_model_config,
)

__all__ = [
    "Problem",
    "Severity",
    "count_errors",
    "discover_model_directories",
    "validate_model_directory",
    "validate_tree",
]

REQUIREMENTS_FILE = "requirements.txt"
ENSEMBLE_PLATFORM = "ensemble"

# Sub-folders Triton never treats as versions (model_lifecycle.cc skips them by name).
_NON_VERSION_FOLDERS = frozenset({"warmup", "initial_state", "configs"})

# The file each platform or backend loads from a version folder unless default_model_filename
# says otherwise; unknown (custom) backends are not checked.
_PLATFORM_FILES = {
    "onnxruntime_onnx": "model.onnx",
    "tensorrt_plan": "model.plan",
    "pytorch_libtorch": "model.pt",
    "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow_graphdef": "model.graphdef",
}
_BACKEND_FILES = {
    "onnxruntime": "model.onnx",
    "python": "model.py",
    "tensorrt": "model.plan",
    "pytorch": "model.pt",
    "tensorflow": "model.savedmodel",
    "openvino": "model.xml",
}

# Modules every Triton Python stub can import without a packed environment.
_STUB_PROVIDED_MODULES = frozenset({"triton_python_backend_utils", "numpy"})

# S3 object keys are at most 1024 bytes, as is SageMaker's TargetModel.
_MAX_KEY_BYTES = 1024

# Folders that never hold model directories; skipping them keeps a tree walk fast.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "dist", "venv", "site-packages"})


# --------------------------------------------------------------------------------------------
# Finding lines in the raw text
# --------------------------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment`, keeping `#` inside quoted strings."""
    if "#" not in line:
        return line
    quote = ""
    escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:index]
    return line


@dataclass
class _Source:
    """A config's raw lines, so that each Problem can point at the line to edit."""

    lines: list[str]

    @classmethod
    def of(cls, text: str) -> _Source:
        return cls([_strip_comment(line) for line in text.splitlines()])

    def find(self, pattern: str, start: int | None = 1) -> int | None:
        """1-based number of the first line at or after `start` matching `pattern`."""
        if start is None:
            start = 1
        regex = re.compile(pattern)
        for number in range(max(start, 1), len(self.lines) + 1):
            if regex.search(self.lines[number - 1]):
                return number
        return None

    def field(self, name: str, start: int | None = 1) -> int | None:
        """Line of `name:` / `name {` / `name [` (a field name, not a value)."""
        return self.find(rf"(?:^|[\s{{\[,;<]){re.escape(name)}\s*[:{{\[<]", start)

    def string(self, value: str, start: int | None = 1) -> int | None:
        """Line of the quoted string `value`."""
        return self.find(rf"[\"']{re.escape(value)}[\"']", start)

    def keyed(self, key: str, value: str, start: int | None = 1) -> int | None:
        """Line of `key: "value"`, falling back to the first line quoting `value`."""
        found = self.find(rf"\b{re.escape(key)}\s*:\s*[\"']{re.escape(value)}[\"']", start)
        return found if found is not None else self.string(value, start)

    def nth_field(self, name: str, index: int) -> int | None:
        """Line of the `index`-th (0-based) occurrence of field `name`."""
        line: int | None = 0
        for _ in range(index + 1):
            line = self.field(name, (line or 0) + 1)
            if line is None:
                return None
        return line


# --------------------------------------------------------------------------------------------
# The models of one directory
# --------------------------------------------------------------------------------------------


@dataclass
class _Model:
    """One parsed Triton model folder and what validation learns about it."""

    folder: Path
    config_path: Path
    text: str
    source: _Source
    config: ModelConfig
    versions: list[int] = field(default_factory=list)
    selected_versions: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.folder.name

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
    def max_batch_size(self) -> int:
        return int(self.config.max_batch_size)

    def env_path(self) -> str | None:
        if ENV_PATH_PARAMETER not in self.config.parameters:
            return None
        return str(self.config.parameters[ENV_PATH_PARAMETER].string_value)

    def problem(
        self, line: int | None, field_name: str, message: str, severity: Severity = "error"
    ) -> Problem:
        return Problem(self.config_path, line, field_name, message, severity)


def _read_model(folder: Path, problems: list[Problem]) -> _Model | None:
    config_path = folder / CONFIG_FILE
    try:
        text = config_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(
                config_path, None, "syntax", f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            )
        )
        return None
    except OSError as exc:
        problems.append(Problem(config_path, None, "syntax", f"cannot read: {exc.strerror}"))
        return None
    try:
        config = parse_model_config(text, config_path)
    except ConfigSchemaError as exc:
        problems.append(exc.problem)
        return None
    return _Model(folder, config_path, text, _Source.of(text), config)


# --------------------------------------------------------------------------------------------
# Per-model rules
# --------------------------------------------------------------------------------------------


def _check_name(model: _Model) -> list[Problem]:
    problems: list[Problem] = []
    declared = str(model.config.name)
    if declared and declared != model.name:
        problems.append(
            model.problem(
                model.source.field("name"),
                "name",
                f"name is {declared!r} but the folder is {model.name!r}; Triton requires them to "
                "match, rename one of them",
            )
        )
    try:
        check_model_name(model.name, model.folder)
    except MmepackError:
        problems.append(
            model.problem(
                model.source.field("name"),
                "name",
                f"model name {model.name!r} is not valid for an MME artifact; use letters, "
                "digits, '_' and '-', starting with a letter or digit",
            )
        )
    return problems


def _check_platform(model: _Model) -> list[Problem]:
    if model.platform or model.backend:
        return []
    return [
        model.problem(
            None,
            "platform",
            "neither 'platform' nor 'backend' is set; set one explicitly (e.g. "
            'backend: "python"), since under SageMaker MME Triton would guess it from the model '
            "name",
        )
    ]


def _check_versions(model: _Model) -> list[Problem]:
    """Version folders, and which of them the version policy loads (at least one is needed)."""
    problems: list[Problem] = []
    versions: list[int] = []
    try:
        subdirs = sorted(p for p in model.folder.iterdir() if p.is_dir())
    except OSError:
        subdirs = []
    for sub in subdirs:
        name = sub.name
        if name in _NON_VERSION_FOLDERS or name.startswith(".") or name == "__pycache__":
            continue
        if re.fullmatch(r"[1-9][0-9]*", name):
            versions.append(int(name))
        else:
            problems.append(
                Problem(
                    sub,
                    None,
                    "version",
                    f"folder {name!r} is not a positive integer without leading zeros; Triton "
                    "ignores it (or misreads it) as a version folder",
                    "warning",
                )
            )
    model.versions = sorted(versions)
    if model.is_ensemble and not versions:
        # The packager adds the ensemble's empty `1/`, which git cannot hold.
        versions = [1]
    available = sorted(versions, reverse=True)
    policy = model.config.version_policy
    choice = policy.WhichOneof("policy_choice") if model.config.HasField("version_policy") else None
    policy_line = model.source.field("version_policy")
    if choice == "all":
        selected = available
    elif choice == "specific":
        wanted = [int(v) for v in policy.specific.versions]
        selected = [v for v in available if v in wanted]
        for version in wanted:
            if version not in available:
                problems.append(
                    model.problem(
                        model.source.find(rf"\b{version}\b", policy_line) or policy_line,
                        "version_policy",
                        f"specific version {version} has no version folder {version}/; Triton "
                        "skips it",
                        "warning",
                    )
                )
    else:
        count = int(policy.latest.num_versions) if choice == "latest" else 1
        selected = available[:count]
    model.selected_versions = sorted(selected)
    if not selected:
        if not available:
            message = "no version folder (e.g. 1/); Triton needs at least one to load the model"
        else:
            listed = ", ".join(str(v) for v in sorted(available))
            message = (
                f"the version policy selects none of the version folders ({listed}); Triton "
                "refuses to load a model with no version to serve"
            )
        problems.append(model.problem(policy_line, "version_policy", message))
    return problems


def _expected_model_file(model: _Model) -> str | None:
    configured = str(model.config.default_model_filename)
    if configured:
        return configured
    if model.platform in _PLATFORM_FILES:
        return _PLATFORM_FILES[model.platform]
    return _BACKEND_FILES.get(model.backend)


def _is_present_or_tracked(path: Path) -> bool:
    """The file is there, or DVC tracks it (`<file>.dvc`, or `<version>.dvc` for the folder)."""
    if path.exists():
        return True
    if path.with_name(path.name + ".dvc").is_file():
        return True
    version_dir = path.parent
    return version_dir.with_name(version_dir.name + ".dvc").is_file()


def _check_model_file(model: _Model) -> list[Problem]:
    if model.is_ensemble:
        return []
    filename = _expected_model_file(model)
    if filename is None:
        return []
    problems: list[Problem] = []
    if model.config.default_model_filename:
        line = model.source.field("default_model_filename")
        source = "default_model_filename"
    elif model.platform in _PLATFORM_FILES:
        line = model.source.field("platform")
        source = f"platform {model.platform!r}"
    else:
        line = model.source.field("backend")
        source = f"backend {model.backend!r}"
    for version in model.selected_versions:
        path = model.folder / str(version) / filename
        if not _is_present_or_tracked(path):
            problems.append(
                model.problem(
                    line,
                    "default_model_filename",
                    f"{version}/{filename} is missing (no file and no {filename}.dvc beside it); "
                    f"{source} loads it from every version folder",
                )
            )
    return problems


def _check_instance_groups(model: _Model) -> list[Problem]:
    problems: list[Problem] = []
    groups = list(model.config.instance_group)
    if model.is_ensemble and groups:
        return [
            model.problem(
                model.source.field("instance_group"),
                "instance_group",
                "an ensemble must not set instance_group; Triton runs its steps' instances",
            )
        ]
    kind_line: int | None = 0
    for group in groups:
        if instance_kind_name(group.kind) == "KIND_GPU":
            kind_line = model.source.find(r"\bKIND_GPU\b", (kind_line or 0) + 1)
            problems.append(
                model.problem(
                    kind_line or model.source.field("instance_group"),
                    "instance_group",
                    "KIND_GPU needs a GPU host; fails to load on CPU-only test machines (leave "
                    "instance_group out to let Triton pick the GPU when there is one)",
                    "warning",
                )
            )
    return problems


def _check_env_path(model: _Model) -> list[Problem]:
    raw = model.env_path()
    if raw is None:
        return []
    line = model.source.string(ENV_PATH_PARAMETER)
    example = f"'{MODEL_DIR_VARIABLE}python_env.tar.gz'"
    if not raw.startswith(MODEL_DIR_VARIABLE):
        return [
            model.problem(
                line,
                ENV_PATH_PARAMETER,
                f"{raw!r} must start with '{MODEL_DIR_VARIABLE}', because the host path of an "
                f"MME model is only known at load time, e.g. {example}",
            )
        ]
    rel = raw[len(MODEL_DIR_VARIABLE) :]
    parts = Path(rel).parts
    if not rel or ".." in parts or Path(rel).is_absolute() or not rel.endswith(".tar.gz"):
        return [
            model.problem(
                line,
                ENV_PATH_PARAMETER,
                f"{raw!r} must name a .tar.gz inside the model folder (no '..'), e.g. {example}",
            )
        ]
    return []


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement, nested ones included, without visiting expressions (imports are
    statements, and skipping expressions makes this several times cheaper than ast.walk)."""
    for statement in body:
        yield statement
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            nested = getattr(statement, name, None)
            if isinstance(nested, list):
                yield from _statements([n for n in nested if isinstance(n, ast.stmt)])
                for child in nested:
                    if isinstance(child, (ast.ExceptHandler, ast.match_case)):
                        yield from _statements(child.body)


def _third_party_imports(path: Path) -> tuple[list[str], SyntaxError | None]:
    """Top-level modules a model.py imports that neither the stdlib nor the stub provide."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [], exc
    except (OSError, UnicodeDecodeError, ValueError):
        return [], None
    found: set[str] = set()
    for node in _statements(tree.body):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in _STUB_PROVIDED_MODULES:
                found.add(top)
    return sorted(found), None


def _check_python_step(model: _Model) -> list[Problem]:
    """A Python step that imports third-party packages needs a packed environment."""
    if model.backend != "python":
        return []
    problems: list[Problem] = []
    filename = _expected_model_file(model) or "model.py"
    for version in model.selected_versions:
        path = model.folder / str(version) / filename
        if not path.is_file():
            continue
        imports, error = _third_party_imports(path)
        if error is not None:
            problems.append(Problem(path, error.lineno, "model.py", f"does not parse: {error.msg}"))
        elif imports and model.env_path() is None:
            problems.append(
                Problem(
                    path,
                    None,
                    ENV_PATH_PARAMETER,
                    f"imports {', '.join(imports)} but {model.config_path} sets no "
                    f"{ENV_PATH_PARAMETER}; the server's Python will not have them (list them in "
                    f"{REQUIREMENTS_FILE} and point {ENV_PATH_PARAMETER} at "
                    f"{MODEL_DIR_VARIABLE}python_env.tar.gz)",
                    "warning",
                )
            )
    return problems


def _check_scheduling_kind(model: _Model) -> list[Problem]:
    if not model.is_ensemble and model.config.HasField("ensemble_scheduling"):
        return [
            model.problem(
                model.source.field("ensemble_scheduling"),
                "ensemble_scheduling",
                'ensemble_scheduling is only allowed with platform: "ensemble"',
            )
        ]
    return []


# --------------------------------------------------------------------------------------------
# Ensemble rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    """An ensemble tensor as one model sees it (Triton's TensorNode)."""

    data_type: str
    dims: tuple[int, ...]
    batching: bool
    seen_as: str

    @property
    def full_dims(self) -> tuple[int, ...]:
        return ((-1,) if self.batching else ()) + self.dims


def _dims_match(left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    """Same rank and each dimension equal, -1 matching anything (CompareDimsWithWildcard)."""
    return len(left) == len(right) and all(
        a == b or a == -1 or b == -1 for a, b in zip(left, right)
    )


def _dims_text(dims: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _consistency(name: str, first: _Tensor, other: _Tensor) -> str | None:
    """Why two views of one ensemble tensor disagree, or None (ValidateTensorConsistency)."""
    if first.data_type != other.data_type:
        return (
            f"tensor {name!r} is {other.data_type} in {other.seen_as} but {first.data_type} in "
            f"{first.seen_as}"
        )
    # A batching and a non-batching model agree when the non-batching one spells out the batch
    # dimension, so the full shapes are compared when the plain dims differ.
    if not _dims_match(first.dims, other.dims) and not _dims_match(
        first.full_dims, other.full_dims
    ):
        return (
            f"tensor {name!r} has shape {_dims_text(other.full_dims)} in {other.seen_as} but "
            f"{_dims_text(first.full_dims)} in {first.seen_as} (batch dimension included; -1 "
            "matches any size)"
        )
    return None


def _io_tensors(
    config_ios: Iterable[ModelConfig], batching: bool, where: str, use_reshape: bool
) -> dict[str, _Tensor]:
    tensors: dict[str, _Tensor] = {}
    for io in config_ios:
        dims = tuple(int(d) for d in io.dims)
        if use_reshape and io.HasField("reshape"):
            dims = tuple(int(d) for d in io.reshape.shape)
        tensors[str(io.name)] = _Tensor(
            data_type_name(io.data_type), dims, batching, f"{where} {str(io.name)!r}"
        )
    return tensors


def _find_cycle(edges: dict[int, set[int]], count: int) -> list[int] | None:
    """One cycle of steps (as indexes, first repeated at the end), or None."""
    state = [0] * count  # 0 new, 1 on the current path, 2 done
    path: list[int] = []

    def visit(node: int) -> list[int] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state[nxt] == 1:
                return path[path.index(nxt) :] + [nxt]
            if state[nxt] == 0:
                found = visit(nxt)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in range(count):
        if state[start] == 0:
            found = visit(start)
            if found is not None:
                return found
    return None


def _check_ensemble(ensemble: _Model, models: dict[str, _Model | None]) -> list[Problem]:
    """Triton's ensemble validation, collecting every finding instead of the first."""
    problems: list[Problem] = []
    src = ensemble.source
    steps = list(ensemble.config.ensemble_scheduling.step)
    if not steps:
        return [
            ensemble.problem(
                src.field("ensemble_scheduling"),
                "ensemble_scheduling",
                "an ensemble needs ensemble_scheduling with at least one step",
            )
        ]
    batching = ensemble.max_batch_size > 0
    inputs = _io_tensors(ensemble.config.input, batching, "ensemble input", True)
    outputs = _io_tensors(ensemble.config.output, batching, "ensemble output", True)
    known: dict[str, _Tensor] = {**inputs, **outputs}
    producers: dict[str, int] = {}
    consumers: dict[str, list[int]] = {}
    step_lines: list[int | None] = []

    for index, step in enumerate(steps):
        line = src.nth_field("model_name", index)
        step_lines.append(line)
        step_name = str(step.model_name)
        label = f"step {index + 1} ({step_name or 'unnamed'})"
        if not step_name:
            problems.append(
                ensemble.problem(line, "model_name", f"step {index + 1} has no model_name")
            )
        elif step_name not in models:
            problems.append(
                ensemble.problem(
                    line,
                    "model_name",
                    f"{label} names model {step_name!r}, which is not a model folder of "
                    f"{ensemble.folder.parent}; SageMaker loads only the models in this tar",
                )
            )
        step_model = models.get(step_name)
        if not step.input_map:
            problems.append(ensemble.problem(line, "input_map", f"{label} has no input_map"))
        if not step.output_map:
            problems.append(ensemble.problem(line, "output_map", f"{label} has no output_map"))

        version = int(step.model_version)
        if step_model is not None and version != -1 and version not in step_model.selected_versions:
            problems.append(
                ensemble.problem(
                    src.field("model_version", line) or line,
                    "model_version",
                    f"{label} asks for version {version}, which {step_name!r} does not load "
                    f"(loaded: {', '.join(map(str, step_model.selected_versions)) or 'none'})",
                )
            )

        step_inputs: dict[str, _Tensor] = {}
        step_outputs: dict[str, _Tensor] = {}
        optional: set[str] = set()
        if step_model is not None:
            step_batching = step_model.max_batch_size > 0
            where = f"model {step_name!r}"
            step_inputs = _io_tensors(
                step_model.config.input, step_batching, where + " input", False
            )
            step_outputs = _io_tensors(
                step_model.config.output, step_batching, where + " output", False
            )
            optional = {str(i.name) for i in step_model.config.input if i.optional}
            if batching and step_model.max_batch_size == 0:
                problems.append(
                    ensemble.problem(
                        src.field("max_batch_size"),
                        "max_batch_size",
                        f"the ensemble batches (max_batch_size {ensemble.max_batch_size}) but "
                        f"{step_name!r} does not (max_batch_size 0); Triton accepts this only if "
                        "the step's dims spell out the batch dimension (-1, ...)",
                        "warning",
                    )
                )
            elif 0 < step_model.max_batch_size < ensemble.max_batch_size:
                problems.append(
                    ensemble.problem(
                        src.field("max_batch_size"),
                        "max_batch_size",
                        f"the ensemble allows batches of {ensemble.max_batch_size} but "
                        f"{step_name!r} only {step_model.max_batch_size}; Triton refuses to load "
                        "it",
                    )
                )

        for key, value in sorted(step.input_map.items()):
            key, value = str(key), str(value)
            where_line = src.keyed("key", key, line) or line
            consumers.setdefault(value, []).append(index)
            if step_model is None:
                continue
            if key not in step_inputs:
                problems.append(
                    ensemble.problem(
                        where_line,
                        "input_map",
                        f"{label} maps {value!r} to input {key!r}, which {step_name!r} does not "
                        f"have (inputs: {', '.join(sorted(step_inputs)) or 'none'})",
                    )
                )
                continue
            problems.extend(
                _record(ensemble, known, value, step_inputs[key], where_line, "input_map")
            )
        if step_model is not None:
            for missing in sorted(set(step_inputs) - set(step.input_map) - optional):
                problems.append(
                    ensemble.problem(
                        line,
                        "input_map",
                        f"{label}: input {missing!r} of {step_name!r} is not mapped to any "
                        "ensemble tensor",
                    )
                )

        for key, value in sorted(step.output_map.items()):
            key, value = str(key), str(value)
            where_line = src.keyed("key", key, line) or line
            if value in producers:
                first = producers[value]
                problems.append(
                    ensemble.problem(
                        where_line,
                        "output_map",
                        f"{label} writes tensor {value!r}, which step {first + 1} "
                        f"({steps[first].model_name}) already writes; each ensemble tensor is "
                        "produced once",
                    )
                )
            elif value in inputs:
                problems.append(
                    ensemble.problem(
                        where_line,
                        "output_map",
                        f"{label} writes tensor {value!r}, which is an ensemble input",
                    )
                )
            else:
                producers[value] = index
            if step_model is None:
                continue
            if key not in step_outputs:
                problems.append(
                    ensemble.problem(
                        where_line,
                        "output_map",
                        f"{label} maps output {key!r} to {value!r}, but {step_name!r} has no "
                        f"such output (outputs: {', '.join(sorted(step_outputs)) or 'none'})",
                    )
                )
                continue
            problems.extend(
                _record(ensemble, known, value, step_outputs[key], where_line, "output_map")
            )

    for name in inputs:
        if name not in consumers:
            problems.append(
                ensemble.problem(
                    src.keyed("name", name),
                    "input",
                    f"ensemble input {name!r} is not used by any step; Triton refuses to load it",
                )
            )
    for name in outputs:
        if name not in producers:
            problems.append(
                ensemble.problem(
                    src.keyed("name", name),
                    "output",
                    f"ensemble output {name!r} is not produced by any step (no output_map "
                    "writes it)",
                )
            )
    for name, readers in sorted(consumers.items()):
        if name not in inputs and name not in producers:
            first = readers[0]
            problems.append(
                ensemble.problem(
                    src.keyed("value", name, step_lines[first]) or step_lines[first],
                    "input_map",
                    f"step {first + 1} ({steps[first].model_name}) reads tensor {name!r}, which "
                    "is neither an ensemble input nor written by any step",
                )
            )
    for name, writer in sorted(producers.items()):
        if name not in outputs and name not in consumers:
            problems.append(
                ensemble.problem(
                    src.keyed("value", name, step_lines[writer]) or step_lines[writer],
                    "output_map",
                    f"step {writer + 1} ({steps[writer].model_name}) writes tensor {name!r}, "
                    "which no step reads and which is not an ensemble output; Triton refuses "
                    "unused tensors",
                )
            )

    edges: dict[int, set[int]] = {}
    for name, writer in producers.items():
        for reader in consumers.get(name, []):
            edges.setdefault(writer, set()).add(reader)
    cycle = _find_cycle(edges, len(steps))
    if cycle is not None:
        names = " -> ".join(str(steps[i].model_name) for i in cycle)
        problems.append(
            ensemble.problem(
                step_lines[cycle[0]],
                "ensemble_scheduling",
                f"steps form a cycle: {names}; no step on it can ever run",
            )
        )
    return problems


def _record(
    ensemble: _Model,
    known: dict[str, _Tensor],
    name: str,
    view: _Tensor,
    line: int | None,
    field_name: str,
) -> list[Problem]:
    """Compare a new view of an ensemble tensor with the first one seen (Triton's order)."""
    first = known.get(name)
    if first is None:
        known[name] = view
        return []
    reason = _consistency(name, first, view)
    return [] if reason is None else [ensemble.problem(line, field_name, reason)]


# --------------------------------------------------------------------------------------------
# Package rules and entry points
# --------------------------------------------------------------------------------------------


def _check_version_file(root: Path, deployable: str | None) -> list[Problem]:
    path = root / VERSION_FILE
    try:
        version = read_model_version(root)
    except MmepackError as exc:
        message = str(exc).split(": ", 1)[-1]
        # The Problem already names the file and line; drop read_model_version's copy of them.
        for prefix in (f"{path}:1: ", f"{path} "):
            message = message.removeprefix(prefix)
        line = 1 if path.is_file() else None
        return [Problem(path, line, VERSION_FILE, message)]
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(path, None, VERSION_FILE, f"cannot read: {exc}")]
    if deployable is None:
        return []
    key = artifact_name(deployable, version)
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        return [
            Problem(
                path,
                1,
                VERSION_FILE,
                f"artifact name {key!r} is longer than {_MAX_KEY_BYTES} bytes, the limit of an "
                "S3 key and of SageMaker's TargetModel",
            )
        ]
    return []


def _check_package(root: Path, models: list[_Model], folders: list[Path]) -> list[Problem]:
    problems: list[Problem] = []
    ensembles = [m for m in models if m.is_ensemble]
    if len(folders) > 1 and len(ensembles) != 1:
        found = ", ".join(m.name for m in ensembles) or "none"
        problems.append(
            Problem(
                root,
                None,
                "ensemble",
                f"holds {len(folders)} Triton models and {len(ensembles)} ensembles ({found}); a "
                'multi-model SageMaker MME package needs exactly one platform: "ensemble"',
            )
        )
    for ensemble in ensembles:
        if not SAGEMAKER_ENSEMBLE_RE.search(ensemble.text):
            problems.append(
                ensemble.problem(
                    ensemble.source.field("platform"),
                    "platform",
                    'SageMaker finds the ensemble with the pattern platform:(\\s)*"ensemble"; '
                    'write it exactly as platform: "ensemble" (double quotes, nothing between)',
                )
            )

    for model in models:
        match = None if model.is_ensemble else SAGEMAKER_ENSEMBLE_RE.search(model.text)
        if match is not None:
            problems.append(
                model.problem(
                    model.text.count("\n", 0, match.start()) + 1,
                    "platform",
                    'this text matches SageMaker\'s ensemble pattern platform:(\\s)*"ensemble" '
                    "(even in a comment), so SageMaker may load this model instead of the "
                    "ensemble; reword it",
                )
            )

    env_users = [m for m in models if m.env_path() is not None]
    requirements = root / REQUIREMENTS_FILE
    if env_users and not requirements.is_file():
        for model in env_users:
            problems.append(
                model.problem(
                    model.source.string(ENV_PATH_PARAMETER),
                    ENV_PATH_PARAMETER,
                    f"is set but {requirements} is missing; the packager builds the environment "
                    f"from it (list the packages the step imports, e.g. pillow)",
                )
            )
    elif requirements.is_file() and not env_users:
        problems.append(
            Problem(
                requirements,
                None,
                REQUIREMENTS_FILE,
                f"no model sets {ENV_PATH_PARAMETER}, so these packages never reach the server; "
                f"set {ENV_PATH_PARAMETER} to '{MODEL_DIR_VARIABLE}python_env.tar.gz' on the "
                "Python steps that import them, or delete the file",
                "warning",
            )
        )
    return problems


def _problem_order(problem: Problem) -> tuple[str, int, str]:
    return (str(problem.file), problem.line or 0, problem.field)


def validate_model_directory(path: Path) -> list[Problem]:
    """Every problem of one deployable model directory (e.g. `models/screen_detector`).

    Never raises for a bad model: unreadable or unparsable configs become Problems and the
    remaining models are still checked, so one run lists everything to fix.
    """
    if not path.is_dir():
        return [Problem(path, None, "directory", "not a directory; expected a model directory")]
    folders = sorted(p.parent for p in path.glob(f"*/{CONFIG_FILE}") if p.is_file())
    if not folders:
        return [
            Problem(
                path,
                None,
                "directory",
                f"no Triton model found; expected sub-folders holding a {CONFIG_FILE}, e.g. "
                f"{path}/<model_name>/{CONFIG_FILE}",
            )
        ]
    problems: list[Problem] = []
    parsed = {folder.name: _read_model(folder, problems) for folder in folders}
    models = [m for m in parsed.values() if m is not None]
    for model in models:
        problems.extend(_check_name(model))
        problems.extend(_check_platform(model))
        problems.extend(_check_scheduling_kind(model))
        problems.extend(_check_versions(model))
        problems.extend(_check_model_file(model))
        problems.extend(_check_instance_groups(model))
        problems.extend(_check_env_path(model))
        problems.extend(_check_python_step(model))
    for model in models:
        if model.is_ensemble:
            problems.extend(_check_ensemble(model, parsed))
    ensembles = [f.name for f in folders if (m := parsed[f.name]) is not None and m.is_ensemble]
    deployable = ensembles[0] if len(ensembles) == 1 else folders[0].name
    problems.extend(_check_version_file(path, deployable))
    problems.extend(_check_package(path, models, folders))
    return sorted(problems, key=_problem_order)


def discover_model_directories(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold model folders (`*/config.pbtxt`).

    Those without `model_version.txt` are returned too, so that validation reports the missing
    file rather than silently skipping a model nobody can package.
    """
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        current = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRS
        )
        if any((current / d / CONFIG_FILE).is_file() for d in dirnames):
            found.append(current)
            dirnames[:] = []  # model folders hold versions, not more model directories
    return found


def validate_tree(root: Path) -> list[Problem]:
    """Every problem of every model directory under `root` (e.g. `models/`)."""
    if not root.is_dir():
        return [Problem(root, None, "directory", "not a directory")]
    directories = discover_model_directories(root)
    if not directories:
        return [
            Problem(
                root,
                None,
                "directory",
                f"no model directory found; expected folders holding {VERSION_FILE} beside "
                f"<model>/{CONFIG_FILE} folders",
            )
        ]
    problems: list[Problem] = []
    for directory in directories:
        problems.extend(validate_model_directory(directory))
    return problems


def count_errors(problems: Sequence[Problem]) -> int:
    """Problems that fail validation; warnings inform but never fail a build."""
    return sum(1 for p in problems if p.severity == "error")
