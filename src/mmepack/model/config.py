"""Read a `config.pbtxt` with Triton's own schema, the `inference.ModelConfig` protobuf message.

`mmepack.model.pbtxt` reads any protobuf text without a schema, so it cannot tell a misspelt field or
an unknown enum value from a real one; Triton can, but only when the server loads the model, and
then it reports one error at a time. Parsing against the message class generated from Triton's
`model_config.proto` (it ships inside the `tritonclient` wheel) rejects exactly what the server
would reject, before any server runs, and keeps the file, line and column of the mistake.

`Problem`, the unit of every validation finding, lives here because this parse is the first
place that produces one; `mmepack.validate` re-exports it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

import tritonclient
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from mmepack.errors import MmepackError

# The generated message classes have no type stubs; every value read from them is converted
# explicitly where it leaves this module or mmepack.validate.
ModelConfig: TypeAlias = Any

_PB2_MODULE = "tritonclient.grpc.model_config_pb2"


def _load_model_config_pb2() -> ModuleType:
    """Triton's generated `model_config_pb2`, without importing `tritonclient.grpc`.

    That package's `__init__` imports grpcio, which mmepack does not otherwise need (the
    `tritonclient[http]` requirement leaves it out); the generated module itself needs only
    protobuf. It is registered under its usual name, so a later `import tritonclient.grpc`
    reuses it instead of registering `model_config.proto` a second time.
    """
    loaded = sys.modules.get(_PB2_MODULE)
    if loaded is not None:
        return loaded
    path = Path(str(tritonclient.__file__)).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location(_PB2_MODULE, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise MmepackError(
            f"{path}: Triton's model_config_pb2 is missing from the installed tritonclient; "
            "reinstall tritonclient"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PB2_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PB2_MODULE]
        raise
    return module


model_config_pb2 = _load_model_config_pb2()
Severity = Literal["error", "warning"]

# ParseError's text starts with "line:column : "; the position is kept in separate fields.
_POSITION_PREFIX_RE = re.compile(r"^\d+:\d+ : ")


@dataclass(frozen=True)
class Problem:
    """One finding about a model directory, positioned so an editor can jump to it.

    Validation collects every Problem instead of stopping at the first, because the point of
    checking before packaging is to fix everything in one round instead of one per server start.
    """

    file: Path
    line: int | None
    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        level = "warning: " if self.severity == "warning" else ""
        return f"{where}: {level}{self.field}: {self.message}"


class ConfigSchemaError(MmepackError):
    """A `config.pbtxt` that Triton's schema rejects, with the position protobuf reports."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def new_model_config() -> ModelConfig:
    """An empty `inference.ModelConfig`, e.g. to compare against unset fields."""
    return model_config_pb2.ModelConfig()


def data_type_name(value: int) -> str:
    """`TYPE_FP32` for the enum number, as Triton's own messages name data types."""
    return str(model_config_pb2.DataType.Name(value))


def instance_kind_name(value: int) -> str:
    """`KIND_GPU` for the enum number of an instance group's kind."""
    return str(model_config_pb2.ModelInstanceGroup.Kind.Name(value))


def parse_model_config(text: str, path: Path) -> ModelConfig:
    """Parse `text` as Triton does, or raise ConfigSchemaError positioned at the first mistake.

    Unknown fields are rejected, as Triton's C++ text parser rejects them: a misspelt
    `max_batch_sizes` would otherwise be silently ignored here and fail on the server.
    """
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        line = exc.GetLine()
        column = exc.GetColumn()
        lines = text.splitlines()
        message = _POSITION_PREFIX_RE.sub("", str(exc))
        if line is not None and 0 < line <= len(lines):
            # protobuf repeats the whole line in quotes; the position already points at it.
            message = message.removeprefix(f"'{lines[line - 1]}': ")
        else:
            message = message.removeprefix("'': ")
        if line is not None and line > len(lines) or (line and not lines[line - 1].strip()):
            # An error at end of file is reported past the last line; point at the last line
            # with text, which is what an editor can show.
            filled = [number for number, body in enumerate(lines, 1) if body.strip()]
            line, column = (filled[-1] if filled else 1), None
        if column is not None:
            message = f"column {column}: {message}"
        raise ConfigSchemaError(
            Problem(path, line, "syntax", f"{message} (Triton's model_config.proto rejects it)")
        ) from None
    except (DecodeError, ValueError, TypeError, OverflowError) as exc:
        # text_format converts most mistakes into ParseError; these cover the rest (e.g. a
        # number protobuf cannot represent) so that a bad file is a finding, never a traceback.
        raise ConfigSchemaError(Problem(path, None, "syntax", f"{exc}")) from None
    return config


def read_model_config(path: Path) -> ModelConfig:
    """Read and parse one `config.pbtxt`; unreadable files are schema errors too."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigSchemaError(
            Problem(path, None, "syntax", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        ) from None
    except OSError as exc:
        raise ConfigSchemaError(
            Problem(path, None, "syntax", f"cannot read: {exc.strerror}")
        ) from None
    return parse_model_config(text, path)
