"""Where an artifact carries its Python environment, and what the packager rewrites for it.

Data scientists write, in each Python step's config, what Triton's documentation shows:
`EXECUTION_ENV_PATH = "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz"`. Placed literally, that is one
copy of the environment per step (two in the example, 2 x 51 MB), each unpacked by Triton at load
time. Every step of one model uses the same environment (one `requirements.lock` per model), so
the packager ships it once and points every step at it.

What Triton 2.51 (python_backend r24.10) does with the parameter, read in its source and seen on
the real server (tests/test_env_layout.py):
- `$$TRITON_MODEL_DIRECTORY` at the start of the value is replaced by the step's model folder,
  whatever follows is kept, so `$$TRITON_MODEL_DIRECTORY/../<ensemble>/python_env.tar` names a
  file in the ensemble's folder (SageMaker unpacks the whole tar into one folder, so the sibling
  is always there).
- The environment manager takes `realpath()` of the value and keeps one extraction per resolved
  path (and file time) for the server's life: steps whose paths resolve to the same file share
  one extraction instead of one each.
- It reads the archive with libarchive's tar reader and gzip filter, so a plain `.tar` is
  accepted as well as a `.tar.gz`; a directory is used in place with no extraction. It never
  runs conda-pack's `conda-unpack`: mmepack's environments need none (no build path is left in
  them, see `mmepack.environment.determinism`).
- The ensemble ignores files in its folder other than `config.pbtxt` and version folders, so
  the environment there changes nothing about how SageMaker finds and loads the ensemble.

The stub cannot be shared: the Python backend looks for `triton_python_backend_stub` only in
each step's own model folder (then its backend folder), and a link between steps is refused by
the artifact's safe-files rule (a link in a tar can point anywhere once unpacked, which is why
publish refuses links), so each step keeps its own 1.4 MB copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack.model.config import parse_model_config
from mmepack.model.repository import ModelDirectory, TritonModel
from mmepack.names import (
    CONFIG_FILE,
    ENV_ARCHIVE,
    ENV_PATH_PARAMETER,
    MODEL_DIR_VARIABLE,
    SHARED_ENV_TAR,
)


class EnvLayout(str, enum.Enum):
    """How the environment travels inside the artifact.

    SHARED_TAR is the default, chosen by measurement (benchmarks/env_layout_bench.py, README):
    one uncompressed tar in the ensemble's folder, compressed once by the artifact's gzip (the
    environment build's own compression, spliced in). PER_STEP is the layout before it, kept so
    the benchmark can compare both in one run.
    """

    PER_STEP = "per-step"  # a python_env.tar.gz where each step's config points (before)
    SHARED_ARCHIVE = "shared-tar.gz"  # one python_env.tar.gz for all steps, stored as is
    SHARED_TAR = "shared-tar"  # one python_env.tar for all steps, compressed once

    @classmethod
    def default(cls) -> EnvLayout:
        return cls.SHARED_TAR


@dataclass(frozen=True)
class EnvPlacement:
    """Where the environment goes and, per step, the config text to ship instead."""

    members: tuple[str, ...]  # tar member names that hold the environment
    configs: dict[str, bytes]  # tar member name of a config.pbtxt -> rewritten bytes


def _holder(directory: ModelDirectory, users: list[TritonModel]) -> TritonModel:
    """The model folder that holds the one environment: the ensemble SageMaker loads, or the
    only step when there is no ensemble (a one-model artifact)."""
    ensemble = directory.ensemble
    if ensemble is not None:
        return ensemble
    return users[0]


def shared_value(step: TritonModel, holder: TritonModel, file_name: str) -> str:
    """The EXECUTION_ENV_PATH that makes `step` find the environment in `holder`'s folder."""
    if step.name == holder.name:
        return f"{MODEL_DIR_VARIABLE}{file_name}"
    return f"{MODEL_DIR_VARIABLE}../{holder.name}/{file_name}"


def rewrite_env_path(model: TritonModel, value: str) -> bytes:
    """`model`'s config.pbtxt with only EXECUTION_ENV_PATH's string changed to `value`.

    The text is edited on the line protobuf's parser recorded for the string, and the new text
    parsed: it must equal the config already parsed but for that value, or the packager refuses
    (a value split over several quoted pieces, say) rather than ship a config it did not mean
    to write.
    """
    raw = model.env_path()
    assert raw is not None
    path = model.folder / CONFIG_FILE
    line = model.positions.entry("parameters", "key", ENV_PATH_PARAMETER).child("value")
    number = line.line("string_value")
    lines = model.text.splitlines(keepends=True)
    how = (
        f"write its value as one double-quoted string on the string_value line, e.g. "
        f'string_value: "{MODEL_DIR_VARIABLE}{ENV_ARCHIVE}"'
    )
    if number is None or not 0 < number <= len(lines):
        raise MmepackError(f"{path}: cannot find where {ENV_PATH_PARAMETER} is written; {how}")
    quoted = f'"{raw}"'
    if lines[number - 1].count(quoted) != 1:
        raise MmepackError(
            f"{path}:{number}: {ENV_PATH_PARAMETER}: the packager rewrites this value to point "
            f"at the artifact's one shared environment but cannot find {quoted} once on this "
            f"line; {how}"
        )
    lines[number - 1] = lines[number - 1].replace(quoted, f'"{value}"')
    text = "".join(lines)
    # The config as already parsed, not the text parsed again: one parse per config.
    expected = type(model.config)()
    expected.CopyFrom(model.config)
    expected.parameters[ENV_PATH_PARAMETER].string_value = value
    if parse_model_config(text, path) != expected:
        raise MmepackError(f"{path}:{number}: {ENV_PATH_PARAMETER}: rewriting failed; {how}")
    return text.encode("utf-8")


def place_environment(directory: ModelDirectory, layout: EnvLayout) -> EnvPlacement:
    """Where the environment's member(s) go and which configs change, for `layout`.

    Steps' own paths are used as written for PER_STEP (each its own copy) and whenever only
    one step uses the environment and it is the holder (nothing to share).
    """
    users = [m for m in directory.models if m.execution_env_relpath() is not None]
    if not users:
        return EnvPlacement((), {})
    if layout is EnvLayout.PER_STEP:
        return EnvPlacement(tuple(f"{m.name}/{m.execution_env_relpath()}" for m in users), {})
    file_name = ENV_ARCHIVE if layout is EnvLayout.SHARED_ARCHIVE else SHARED_ENV_TAR
    holder = _holder(directory, users)
    configs: dict[str, bytes] = {}
    for step in users:
        value = shared_value(step, holder, file_name)
        if step.env_path() != value:
            configs[f"{step.name}/{CONFIG_FILE}"] = rewrite_env_path(step, value)
    target = f"{holder.name}/{file_name}"
    if (holder.folder / file_name).exists() and not any(
        step.name == holder.name and step.execution_env_relpath() == file_name for step in users
    ):
        raise MmepackError(
            f"{holder.folder / file_name}: the packager places the model's one Python "
            "environment here, but the folder already has a file there that it would silently "
            "replace; rename that file"
        )
    return EnvPlacement((target,), configs)


def check_layout_name(value: str) -> EnvLayout:
    """An `EnvLayout` from its name, or an error listing the names."""
    try:
        return EnvLayout(value)
    except ValueError:
        names = ", ".join(layout.value for layout in EnvLayout)
        raise MmepackError(f"unknown environment layout {value!r}; use one of: {names}") from None
