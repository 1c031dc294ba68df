"""Read a `config.pbtxt` with Triton's own schema, the `inference.ModelConfig` protobuf message.

This is the one reader of `config.pbtxt` in mmepack: validation and packaging both build on it.
A schemaless reader cannot tell a misspelt field or an unknown enum value from a real one; Triton
can, but only when the server loads the model, and then it reports one error at a time. Parsing
against the message class generated from Triton's `model_config.proto` (it ships inside the
`tritonclient` wheel) rejects exactly what the server would reject, before any server runs, and
keeps the file, line and column of the mistake.

Findings about a well-formed config need positions too. They come from the same parse: while
protobuf's `text_format` parser reads the text, `Positions` records the line of every field
occurrence from protobuf's own tokenizer, so comments, strings and nesting can never mislead it
the way a search of the raw lines could.

`Problem`, the unit of every validation finding, lives here because this parse is the first
place that produces one; `mmepack.validate` re-exports it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

import tritonclient
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from mmepack.errors import MmepackError
from mmepack.files import open_regular

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
# Python's unescaping warns where protobuf's C++ tokenizer (Triton's) fails the whole file.
_INVALID_ESCAPE_RE = re.compile(r"invalid escape sequence '\\(.)'")
# Escapes C++ accepts that Python's decoder does not know.
_CPP_ONLY_ESCAPES = frozenset("?")


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


@dataclass
class Positions:
    """Where each field of one parsed message was written (the role of C++'s ParseInfoTree).

    `lines[name]` holds the 1-based line of every occurrence of field `name`, in parse order, so
    index i is the i-th element of a repeated field; `nested[name]` holds the same record for
    each occurrence of a message field. A lookup that finds nothing answers None (or an empty
    record), so a finding about a field that is not written in the file simply has no line.
    """

    lines: dict[str, list[int]] = field(default_factory=dict)
    nested: dict[str, list[Positions]] = field(default_factory=dict)
    # A map entry's own `key` and (string) `value`, to find the entry for a given key or value.
    strings: dict[str, str] = field(default_factory=dict)

    def line(self, name: str, index: int = 0) -> int | None:
        """Line of the `index`-th occurrence of field `name`, or None if it is not written."""
        found = self.lines.get(name, [])
        return found[index] if 0 <= index < len(found) else None

    def child(self, name: str, index: int = 0) -> Positions:
        """The record of the `index`-th occurrence of message field `name` (empty if none)."""
        found = self.nested.get(name, [])
        return found[index] if 0 <= index < len(found) else _NOWHERE

    def entry(self, name: str, side: Literal["key", "value"], text: str) -> Positions:
        """The first entry of map field `name` whose key (or string value) is `text`."""
        for nested in self.nested.get(name, []):
            if nested.strings.get(side) == text:
                return nested
        return _NOWHERE


_NOWHERE = Positions()
_MAP_ENTRY_FIELDS = frozenset({"key", "value"})


def _token_line(tokenizer: text_format.Tokenizer) -> int:
    """1-based line of the tokenizer's current token (protobuf keeps it 0-based in `_line`)."""
    return int(getattr(tokenizer, "_line")) + 1


class _RecordingParser(text_format._Parser):
    """protobuf's own text parser, noting the line of each field as it merges it.

    Python's `text_format` has no `info=ParseInfoTree` argument (only the C++ parser has one),
    so this subclass hooks the three merge steps of the parser `text_format.Parse` uses: the
    field name's line is taken when a field starts, and each message value opens a nested
    record. Only positions are added; parsing and its errors are protobuf's, unchanged.
    """

    def __init__(self, root: Positions) -> None:
        super().__init__()
        self._stack = [root]
        self._pending: int | None = None

    def _occurrence(self, tokenizer: text_format.Tokenizer, name: str) -> None:
        # The first value of a field is placed at its name; later values of a `[ ... ]` list
        # at their own token.
        line = self._pending if self._pending is not None else _token_line(tokenizer)
        self._pending = None
        self._stack[-1].lines.setdefault(name, []).append(line)

    def _MergeField(self, tokenizer: text_format.Tokenizer, message: Any) -> None:
        self._pending = _token_line(tokenizer)
        super()._MergeField(tokenizer, message)  # type: ignore[misc]

    def _MergeMessageField(self, tokenizer: text_format.Tokenizer, message: Any, fd: Any) -> None:
        self._occurrence(tokenizer, fd.name)
        nested = Positions()
        self._stack[-1].nested.setdefault(fd.name, []).append(nested)
        self._stack.append(nested)
        try:
            super()._MergeMessageField(tokenizer, message, fd)  # type: ignore[misc]
        finally:
            self._stack.pop()

    def _MergeScalarField(self, tokenizer: text_format.Tokenizer, message: Any, fd: Any) -> None:
        self._occurrence(tokenizer, fd.name)
        super()._MergeScalarField(tokenizer, message, fd)  # type: ignore[misc]
        if fd.name in _MAP_ENTRY_FIELDS and message.DESCRIPTOR.GetOptions().map_entry:
            value = getattr(message, fd.name)
            if isinstance(value, str):
                self._stack[-1].strings[fd.name] = value


def parse_model_config(text: str, path: Path) -> ModelConfig:
    """Parse `text` as Triton does, or raise ConfigSchemaError positioned at the first mistake.

    Unknown fields are rejected, as Triton's C++ text parser rejects them: a misspelt
    `max_batch_sizes` would otherwise be silently ignored here and fail on the server.
    """
    return _parse(text, path, text_format._Parser())


def parse_model_config_with_positions(text: str, path: Path) -> tuple[ModelConfig, Positions]:
    """The parsed config and where each of its fields was written, from one protobuf parse."""
    positions = Positions()
    return _parse(text, path, _RecordingParser(positions)), positions


def _escape_position(text: str, letter: str) -> tuple[int, int] | None:
    """Line and column (1-based) of the first `\\<letter>` that is not itself an escaped
    backslash."""
    for number, body in enumerate(text.splitlines(), 1):
        for match in re.finditer(r"\\+", body):
            end = match.end()
            if len(match.group()) % 2 == 1 and body[end : end + 1] == letter:
                return number, end
    return None


def _check_escapes(caught: list[warnings.WarningMessage], text: str, path: Path) -> None:
    """Refuse a string escape Triton's parser refuses ("Invalid escape sequence in string
    literal", seen on Triton 2.51) and Python's only warns about."""
    for warning in caught:
        match = _INVALID_ESCAPE_RE.search(str(warning.message))
        if match is None or match.group(1) in _CPP_ONLY_ESCAPES:
            continue
        letter = match.group(1)
        where = _escape_position(text, letter)
        column = f"column {where[1]}: " if where else ""
        raise ConfigSchemaError(
            Problem(
                path,
                where[0] if where else None,
                "syntax",
                f"{column}invalid escape sequence '\\{letter}' in a string: Triton's text "
                "parser refuses the whole file; write '\\\\' for a literal backslash",
            )
        )


def _parse(text: str, path: Path, parser: text_format._Parser) -> ModelConfig:
    config = model_config_pb2.ModelConfig()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            parser.ParseLines(text.split("\n"), config)
        _check_escapes(caught, text, path)
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


def read_config_text(path: Path) -> str:
    """The text of one `config.pbtxt`; unreadable or non-UTF-8 files are schema errors too."""
    try:
        # Only a regular file is read: a FIFO named config.pbtxt would block forever.
        with open_regular(path) as handle:
            text = handle.read().decode("utf-8")
    except MmepackError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ConfigSchemaError(Problem(path, None, "syntax", reason)) from None
    except UnicodeDecodeError as exc:
        raise ConfigSchemaError(
            Problem(path, None, "syntax", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        ) from None
    except OSError as exc:
        raise ConfigSchemaError(
            Problem(path, None, "syntax", f"cannot read: {exc.strerror}")
        ) from None
    return text


def read_model_config(path: Path) -> ModelConfig:
    """Read and parse one `config.pbtxt` (no positions: the cheapest schema-aware read)."""
    return parse_model_config(read_config_text(path), path)
