"""A small reader for protobuf text format, the language of Triton's `config.pbtxt`.

It turns the text into plain nested dictionaries without needing a schema, so mmepack can read a
config before any protobuf code is generated, and so every syntax error can say file, line and
column instead of the first-error-only message Triton prints at load time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from mmepack.errors import MmepackError

Scalar = Union[str, int, float, bool]
Value = Union[Scalar, "Message"]
Message = dict[str, list[Value]]


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+|\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)[fF]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}\[\]<>:,;])
    """,
    re.VERBOSE,
)

_MAX_DEPTH = 100
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "0": "\0"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int
    column: int


class PbtxtSyntaxError(MmepackError):
    """A syntax error with its position, formatted as `file:line:column: message`."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.reason = message


def _tokenize(text: str, path: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise PbtxtSyntaxError(
                path, line, pos - line_start + 1, f"unexpected character {text[pos]!r}"
            )
        kind = match.lastgroup or ""
        if kind == "ws" and match.group() == "\n":
            line, line_start = line + 1, match.end()
        elif kind not in ("ws", "comment"):
            tokens.append(_Token(kind, match.group(), line, pos - line_start + 1))
        pos = match.end()
    return tokens


def _unquote(token: _Token, path: str) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise PbtxtSyntaxError(
                    path, token.line, token.column + i + 1, f"unknown escape '\\{nxt}' in string"
                )
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, tokens: list[_Token], path: str) -> None:
        self.tokens = tokens
        self.path = path
        self.pos = 0
        self.depth = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _error_here(self, message: str) -> PbtxtSyntaxError:
        token = self._peek()
        if token is None:
            last = self.tokens[-1] if self.tokens else _Token("eof", "", 1, 0)
            return PbtxtSyntaxError(
                self.path, last.line, last.column + len(last.text), f"{message}, found end of file"
            )
        return PbtxtSyntaxError(
            self.path, token.line, token.column, f"{message}, found {token.text!r}"
        )

    def _take(self, text: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "punct" and token.text == text:
            self.pos += 1
            return True
        return False

    def message(self, closer: str | None) -> Message:
        fields: Message = {}
        while True:
            token = self._peek()
            if token is None:
                if closer is None:
                    return fields
                raise self._error_here(f"expected '{closer}' to close the message")
            if closer is not None and self._take(closer):
                return fields
            if token.kind != "ident":
                raise self._error_here("expected a field name")
            self.pos += 1
            values = self._field_values()
            fields.setdefault(token.text, []).extend(values)
            self._take(",") or self._take(";")

    def _field_values(self) -> list[Value]:
        has_colon = self._take(":")
        if self._take("["):
            values: list[Value] = []
            if self._take("]"):
                return values
            while True:
                values.append(self._value(has_colon=True))
                if self._take("]"):
                    return values
                if not self._take(","):
                    raise self._error_here("expected ',' or ']' in list")
        return [self._value(has_colon)]

    def _nested(self, closer: str) -> Message:
        # Real configs nest a handful of levels; refusing absurd depth keeps hostile or corrupt
        # input from exhausting Python's stack.
        if self.depth >= _MAX_DEPTH:
            self.pos -= 1
            raise self._error_here(f"messages nested more than {_MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            return self.message(closer)
        finally:
            self.depth -= 1

    def _value(self, has_colon: bool) -> Value:
        if self._take("{"):
            return self._nested("}")
        if self._take("<"):
            return self._nested(">")
        if not has_colon:
            raise self._error_here("expected ':' or '{' after the field name")
        token = self._peek()
        if token is None:
            raise self._error_here("expected a value")
        self.pos += 1
        if token.kind == "string":
            parts = [_unquote(token, self.path)]
            nxt = self._peek()
            while nxt is not None and nxt.kind == "string":  # adjacent strings concatenate
                parts.append(_unquote(nxt, self.path))
                self.pos += 1
                nxt = self._peek()
            return "".join(parts)
        if token.kind == "number":
            return _number(token, self.path)
        if token.kind == "ident":
            if token.text in ("true", "True", "t"):
                return True
            if token.text in ("false", "False", "f"):
                return False
            return token.text  # an enum value such as TYPE_FP32, compared by name
        self.pos -= 1
        raise self._error_here("expected a value")


def _number(token: _Token, path: str) -> int | float:
    text = token.text
    try:
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"[-+]?[0-9]+", text):
            return int(text)
        return float(text.rstrip("fF"))
    except ValueError:
        raise PbtxtSyntaxError(path, token.line, token.column, f"bad number {token.text!r}")


def parse_pbtxt(text: str, path: str = "<string>") -> Message:
    """Parse protobuf text format into nested dicts of field name to list of values."""
    return _Parser(_tokenize(text, path), path).message(None)


def read_pbtxt(path: Path) -> Message:
    """Parse a file, turning unreadable bytes into a positioned error rather than a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MmepackError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_pbtxt(text, str(path))
