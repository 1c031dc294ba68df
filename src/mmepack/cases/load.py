"""Read a model's case files into numpy arrays, checked against the model's config.

Every mistake a case file can hold (a misspelt input name, a shape or data type the config does
not allow, a missing `.npy`) is found here, before any server starts, and all of them are
reported at once, each naming the case file and the field. A test run that starts Triton only
to fail on a typo wastes the minutes a load takes; a run that stops at the first typo wastes one
such run per typo.

The format (docs/case.schema.json publishes it for editors):

    {"description": "...",
     "inputs":   {"<input>":  {"values": [...]} | {"npy": "f.npy"} | {"npz": "f.npz", "key": "a"}
                              | {"file": "raw bytes for one BYTES element"}},
     "expected": {"<output>": <one of the above> + optional "atol", "rtol", "gpu": {atol, rtol}},
     "expected_error": {"contains": "text the server's error must contain"}}

Paths are relative to the case file and stay inside its folder. With `max_batch_size > 0` a value may leave out the batch
dimension (it is then a batch of one).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmepack.artifact.safe_files import is_within
from mmepack.cases.signature import Signature, TensorSpec, read_signature
from mmepack.errors import MmepackError
from mmepack.files import open_regular
from mmepack.model.config import Problem
from mmepack.names import CASES_GLOB

TOP_LEVEL_KEYS = frozenset({"$schema", "description", "inputs", "expected", "expected_error"})
SOURCE_KEYS = frozenset({"values", "npy", "npz", "file"})
INPUT_KEYS = SOURCE_KEYS | {"key"}
EXPECTED_KEYS = INPUT_KEYS | {"atol", "rtol", "gpu"}
TOLERANCE_KEYS = frozenset({"atol", "rtol"})
ERROR_KEYS = frozenset({"contains"})

# Float comparisons default to these (|actual - expected| <= atol + rtol * |expected|, per
# element, as numpy.isclose); integers, booleans and bytes compare exactly.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "TYPE_FP16": (1e-3, 1e-3),
    "TYPE_FP32": (1e-5, 1e-5),
    "TYPE_FP64": (1e-8, 1e-7),
}
_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# numpy's limit on an array's dimensions (numpy 1.x; 64 from numpy 2): values nested deeper
# cannot be a tensor.
MAX_DIMS = 32
# JSON nesting reported when Python's reader gives up (a case needs about MAX_DIMS + 4 levels).
MAX_NESTING = 64
# No tensor type holds an integer of more digits (uint64 has 20); longer ones are not converted
# (Python refuses over 4,300 digits with a ValueError, and converting is quadratic below that).
_MAX_INT_DIGITS = 40
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class ExpectedOutput:
    """An output's expected value; `cpu`/`gpu` are None for exact comparison."""

    name: str
    array: np.ndarray[Any, Any]
    cpu: Tolerance | None = None
    gpu: Tolerance | None = None

    def tolerance(self, device: str) -> Tolerance | None:
        """The tolerance for a server that runs on `device` ("CPU" or "GPU ...")."""
        return self.gpu if device.upper().startswith("GPU") else self.cpu


@dataclass(frozen=True)
class Case:
    """One case file, resolved: arrays shaped and typed as the config declares."""

    name: str
    path: Path
    description: str
    inputs: dict[str, np.ndarray[Any, Any]]
    expected: dict[str, ExpectedOutput] = field(default_factory=dict)
    expected_error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the file's JSON, for record-cases


class CaseError(MmepackError):
    """Case files that do not fit the model; `problems` holds every finding."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def case_paths(model_dir: Path, pattern: str = CASES_GLOB) -> list[Path]:
    """The case files of a model directory, sorted by path (the order tests run in)."""
    return sorted(p for p in model_dir.glob(pattern) if p.is_file())


def load_cases(
    model_dir: Path, pattern: str = CASES_GLOB, *, require_expected: bool = True
) -> list[Case]:
    """Every case of `model_dir`, or CaseError listing each problem in every case file.

    `require_expected=False` accepts cases that state inputs only: `mmepack record-cases`
    fills in their expected values.
    """
    paths = case_paths(model_dir, pattern)
    if not paths:
        return []
    signature = read_signature(model_dir)
    problems: list[Problem] = []
    cases: list[Case] = []
    for path in paths:
        reader = _CaseReader(path, signature, require_expected)
        case = reader.read()
        problems += reader.problems
        if case is not None and not reader.problems:
            cases.append(case)
    if problems:
        raise CaseError(problems)
    return cases


def _close_match(name: str, choices: Sequence[str]) -> str:
    """A suggestion for a misspelt name; case is ignored (`image_bytes` for `IMAGE_BYTES`)."""
    by_upper = {choice.upper(): choice for choice in choices}
    found = difflib.get_close_matches(name.upper(), list(by_upper), n=1)
    return f" (did you mean '{by_upper[found[0]]}'?)" if found else ""


class _Invalid(Exception):
    """One problem in one field; caught per field so the rest of the file is still checked."""


class _CaseReader:
    """Reads one case file, collecting a Problem per mistake."""

    def __init__(self, path: Path, signature: Signature, require_expected: bool) -> None:
        self.path = path
        self.signature = signature
        self.require_expected = require_expected
        self.problems: list[Problem] = []
        self.config = signature.config_path

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.path, None, where, message))

    def read(self) -> Case | None:
        data = self._parse()
        if data is None:
            return None
        for key in sorted(set(data) - TOP_LEVEL_KEYS):
            self.problem(
                key,
                f"unknown key{_close_match(key, sorted(TOP_LEVEL_KEYS))}; a case holds "
                "description, inputs, expected and expected_error",
            )
        description = data.get("description", "")
        if not isinstance(description, str):
            self.problem("description", "expected text")
            description = ""
        inputs = self._inputs(data.get("inputs"))
        batch = self._one_batch(inputs)
        expected = self._expected(data.get("expected"), batch)
        expected_error = self._expected_error(data.get("expected_error"))
        if expected_error is not None and data.get("expected"):
            self.problem(
                "expected_error",
                "a case expects either outputs or an error, not both; split it into two cases",
            )
        if self.require_expected and expected_error is None and not data.get("expected"):
            self.problem(
                "expected",
                "nothing expected; state expected outputs or expected_error, or write them "
                "with `mmepack record-cases`",
            )
        return Case(
            name=self.path.stem,
            path=self.path,
            description=description,
            inputs=inputs,
            expected=expected,
            expected_error=expected_error,
            raw=data,
        )

    def _parse(self) -> dict[str, Any] | None:
        try:
            with open_regular(self.path) as handle:
                text = handle.read().decode("utf-8")
        except MmepackError as exc:
            self.problem("file", str(exc).removeprefix(f"{self.path}: "))
            return None
        except UnicodeDecodeError as exc:
            self.problem("file", f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            return None
        try:
            data = json.loads(text, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            self.problems.append(
                Problem(self.path, exc.lineno, "syntax", f"column {exc.colno}: {exc.msg}")
            )
            return None
        except RecursionError:
            line, where = _too_deep(text)
            self.problems.append(
                Problem(
                    self.path,
                    line,
                    where,
                    f"nested more than {MAX_NESTING} levels deep; a tensor has at most "
                    f"{MAX_DIMS} dimensions, so give its values as a flat or shallow list",
                )
            )
            return None
        if not isinstance(data, dict):
            self.problem("file", "expected a JSON object with 'inputs' and 'expected'")
            return None
        return data

    # ------------------------------------------------------------------------- inputs

    def _inputs(self, raw: Any) -> dict[str, np.ndarray[Any, Any]]:
        specs = self.signature.inputs
        if not isinstance(raw, dict):
            self.problem(
                "inputs",
                f"expected an object keyed by input name ({', '.join(specs)} in {self.config})",
            )
            return {}
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for name, value in raw.items():
            where = f"inputs.{name}"
            spec = specs.get(name)
            if spec is None:
                self.problem(
                    where,
                    f"model '{self.signature.model}' has no input '{name}'"
                    f"{_close_match(name, list(specs))}; its inputs are {', '.join(specs)} "
                    f"({self.config})",
                )
                continue
            try:
                arrays[name] = self._tensor(where, value, spec, INPUT_KEYS, None)
            except _Invalid as exc:
                self.problem(where, str(exc))
        for name, spec in specs.items():
            if name not in raw and not spec.optional:
                self.problem(
                    f"inputs.{name}",
                    f"missing; model '{self.signature.model}' needs it ({spec.describe()}, "
                    f"{self.config})",
                )
        return arrays

    def _one_batch(self, inputs: dict[str, np.ndarray[Any, Any]]) -> int | None:
        """The batch size every input shares (Triton requires one per request)."""
        if not self.signature.max_batch_size or not inputs:
            return None
        sizes = {name: int(array.shape[0]) for name, array in inputs.items()}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{n}: {s}" for n, s in sizes.items())
            self.problem("inputs", f"inputs differ in batch size ({listed}); use one batch size")
            return None
        return next(iter(sizes.values()))

    # ------------------------------------------------------------------------- expected

    def _expected(self, raw: Any, batch: int | None) -> dict[str, ExpectedOutput]:
        if raw is None:
            return {}
        specs = self.signature.outputs
        if not isinstance(raw, dict):
            self.problem("expected", "expected an object keyed by output name")
            return {}
        found: dict[str, ExpectedOutput] = {}
        for name, value in raw.items():
            where = f"expected.{name}"
            spec = specs.get(name)
            if spec is None:
                self.problem(
                    where,
                    f"model '{self.signature.model}' has no output '{name}'"
                    f"{_close_match(name, list(specs))}; its outputs are {', '.join(specs)} "
                    f"({self.config})",
                )
                continue
            try:
                array = self._tensor(where, value, spec, EXPECTED_KEYS, batch)
                cpu, gpu = self._tolerances(where, value, spec)
            except _Invalid as exc:
                self.problem(where, str(exc))
                continue
            found[name] = ExpectedOutput(name, array, cpu, gpu)
        return found

    def _tolerances(
        self, where: str, value: dict[str, Any], spec: TensorSpec
    ) -> tuple[Tolerance | None, Tolerance | None]:
        stated = TOLERANCE_KEYS & set(value) or "gpu" in value
        if not spec.is_float:
            if stated:
                raise _Invalid(
                    f"atol/rtol/gpu apply to floating outputs; {spec.name} is {spec.data_type} "
                    "and compares exactly: remove them"
                )
            return None, None
        atol, rtol = DEFAULT_TOLERANCES[spec.data_type]
        cpu = Tolerance(_tolerance(value, "atol", atol), _tolerance(value, "rtol", rtol))
        gpu_raw = value.get("gpu", {})
        if not isinstance(gpu_raw, dict) or set(gpu_raw) - TOLERANCE_KEYS:
            raise _Invalid("gpu: expected an object with atol and/or rtol")
        gpu = Tolerance(
            _tolerance(gpu_raw, "atol", cpu.atol), _tolerance(gpu_raw, "rtol", cpu.rtol)
        )
        return cpu, gpu

    def _expected_error(self, raw: Any) -> str | None:
        if raw is None:
            return None
        if (
            not isinstance(raw, dict)
            or set(raw) != ERROR_KEYS
            or not isinstance(raw["contains"], str)
            or not raw["contains"]
        ):
            self.problem(
                "expected_error",
                'expected {"contains": "<text the error message must contain>"}',
            )
            return None
        return str(raw["contains"])

    # ------------------------------------------------------------------------- tensors

    def _tensor(
        self,
        where: str,
        value: Any,
        spec: TensorSpec,
        allowed: frozenset[str],
        batch: int | None,
    ) -> np.ndarray[Any, Any]:
        if not isinstance(value, dict):
            raise _Invalid('expected an object such as {"values": [...]} or {"npy": "file.npy"}')
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _Invalid(
                f"unknown key '{unknown[0]}'{_close_match(unknown[0], sorted(allowed))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        sources = sorted(SOURCE_KEYS & set(value))
        if len(sources) != 1:
            raise _Invalid(
                "state exactly one of values, npy, npz (with key) or file"
                + (f" (found {', '.join(sources)})" if sources else "")
            )
        if "key" in value and sources != ["npz"]:
            raise _Invalid("'key' names an array inside an npz file; use it with 'npz' only")
        dtype = spec.numpy_dtype
        if dtype is None:
            raise _Invalid(
                f"{spec.data_type} has no numpy type, so a case cannot state it; test this model "
                "with a pytest module"
            )
        source = sources[0]
        if source == "values":
            array = _from_values(value["values"], spec, dtype)
        elif source == "file":
            array = self._from_file(value["file"], spec)
        else:
            array = self._from_numpy_file(value, source, spec, dtype)
        return _fit_shape(array, spec, self.signature.max_batch_size, batch)

    def _file(self, name: Any, what: str) -> Path:
        if not isinstance(name, str) or not name:
            raise _Invalid(f"{what}: expected a file name relative to the case file")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            # Pants carries the case files' folders into its sandbox, and nothing outside them.
            raise _Invalid(
                f"{what}: {name!r} leaves the case file's folder; keep data files beside the "
                "case files (or in a folder below them) and name them relative to it"
            )
        path = self.path.parent / relative
        target = os.path.realpath(path)
        if not is_within(target, os.path.realpath(self.path.parent)):
            # A link out of the folder would read (and send to the server) any file here, a
            # credentials file included; `mmepack package` refuses such links the same way.
            raise _Invalid(
                f"{what}: {path} is a link to {target}, outside the case file's folder; copy "
                "the file in instead"
            )
        if not path.is_file():
            raise _Invalid(f"{what}: {path} not found (paths are relative to the case file)")
        return path

    def _from_file(self, name: Any, spec: TensorSpec) -> np.ndarray[Any, Any]:
        path = self._file(name, "file")
        if not spec.is_bytes:
            raise _Invalid(
                f"'file' gives raw bytes for a BYTES (TYPE_STRING) tensor, but {spec.name} is "
                f"{spec.data_type}; use values, npy or npz"
            )
        try:
            with open_regular(path) as handle:
                data = handle.read()
        except MmepackError as exc:
            raise _Invalid(str(exc)) from None
        array = np.empty(1, dtype=object)
        array[0] = data
        if any(d not in (1, -1) for d in spec.dims):
            raise _Invalid(
                f"'file' holds one element, but {spec.name} is {spec.describe()}; "
                "give the elements as values or npy"
            )
        return array.reshape([1] * len(spec.dims))

    def _from_numpy_file(
        self, value: dict[str, Any], source: str, spec: TensorSpec, dtype: np.dtype[Any]
    ) -> np.ndarray[Any, Any]:
        path = self._file(value[source], source)
        try:
            if source == "npy":
                with open_regular(path) as handle:
                    array = np.load(handle, allow_pickle=False)
            else:
                key = value.get("key")
                if not isinstance(key, str):
                    raise _Invalid('npz: add "key": the name of the array inside the file')
                with open_regular(path) as handle, np.load(handle, allow_pickle=False) as npz:
                    if key not in npz.files:
                        raise _Invalid(
                            f"npz: {path} holds no array '{key}'{_close_match(key, npz.files)}; "
                            f"it holds {', '.join(npz.files) or 'nothing'}"
                        )
                    array = npz[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, MmepackError) as exc:
            raise _Invalid(f"{source}: cannot read {path} as a numpy file ({exc})") from None
        if not isinstance(array, np.ndarray):
            raise _Invalid(f"{source}: {path} does not hold one array")
        if spec.is_bytes:
            if array.dtype.kind not in "SU":
                raise _Invalid(
                    f"{source}: {path} holds {array.dtype}; a BYTES tensor needs a bytes ('S') "
                    "or text ('U') array (object arrays need pickle, which cases never load)"
                )
            return _as_bytes_objects(array)
        if array.dtype != dtype:
            raise _Invalid(
                f"{source}: {path} holds {array.dtype}, but {spec.name} is {spec.data_type} "
                f"({dtype}); save it with .astype(np.{dtype})"
            )
        return array


def _tolerance(value: dict[str, Any], key: str, default: float) -> float:
    found = value.get(key, default)
    if isinstance(found, bool) or not isinstance(found, (int, float)) or not found >= 0:
        raise _Invalid(f"{key}: expected a number >= 0, got {found!r}")
    return float(found)


def _as_bytes_objects(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    flat = [item.encode("utf-8") if isinstance(item, str) else bytes(item) for item in array.flat]
    result = np.empty(len(flat), dtype=object)
    result[:] = flat
    return result.reshape(array.shape)


class _HugeInt:
    """A JSON integer too long to be any tensor element, kept as its digit count."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


def _parse_int(text: str) -> int | _HugeInt:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= _MAX_INT_DIGITS else _HugeInt(digits)


def _too_deep(text: str) -> tuple[int | None, str]:
    """Line and dotted field where `text` first nests deeper than MAX_NESTING, found by
    scanning its tokens (the JSON reader itself ran out of stack)."""
    keys: list[str | None] = []  # per open object or array: its current key (None: array)
    last_string = ""
    for match in _JSON_TOKEN_RE.finditer(text):
        token = match.group()
        if token in "{[":
            keys.append("" if token == "{" else None)
            if len(keys) > MAX_NESTING:
                line = text.count("\n", 0, match.start()) + 1
                return line, ".".join(k for k in keys if k) or "file"
        elif token in "}]":
            if keys:
                keys.pop()
        elif token == ":":
            if keys and keys[-1] is not None:
                keys[-1] = last_string
        elif token.startswith('"'):
            try:
                last_string = str(json.loads(token))
            except ValueError:
                last_string = token[1:-1]
    return None, "file"


def _nested_shape(values: Any, depth: int = 0) -> tuple[list[int], list[Any]]:
    """Shape and leaves of a rectangular nested list; _Invalid for a ragged or too deep one."""
    if not isinstance(values, list):
        return [], [values]
    if depth >= MAX_DIMS:
        raise _Invalid(
            f"values: nested more than {MAX_DIMS} levels deep; a tensor has at most {MAX_DIMS} "
            "dimensions"
        )
    if not values:
        return [0], []
    parts = [_nested_shape(item, depth + 1) for item in values]
    inner = parts[0][0]
    if any(shape != inner for shape, _ in parts):
        raise _Invalid("values: rows differ in length; give a rectangular nested list")
    return [len(values)] + inner, [leaf for _, leaves in parts for leaf in leaves]


def _leaf(leaf: Any, spec: TensorSpec, dtype: np.dtype[Any]) -> Any:
    kind = dtype.kind
    if spec.is_bytes:
        if not isinstance(leaf, str):
            raise _Invalid(f"values: {spec.name} is BYTES; expected text elements, got {leaf!r}")
        return leaf.encode("utf-8")
    if kind == "b":
        if not isinstance(leaf, bool):
            raise _Invalid(f"values: {spec.name} is TYPE_BOOL; expected true/false, got {leaf!r}")
        return leaf
    if isinstance(leaf, _HugeInt):
        raise _Invalid(f"values: {leaf!r} is out of range for {spec.data_type}")
    if kind in "iu":
        info = np.iinfo(dtype)
        if isinstance(leaf, bool) or not isinstance(leaf, int):
            raise _Invalid(
                f"values: {spec.name} is {spec.data_type}; expected integers, got {leaf!r}"
            )
        if not info.min <= leaf <= info.max:
            raise _Invalid(
                f"values: {leaf} is out of range for {spec.data_type} ({info.min}..{info.max})"
            )
        return leaf
    if isinstance(leaf, str) and leaf.lower() in _FLOAT_WORDS:
        return _FLOAT_WORDS[leaf.lower()]
    if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
        raise _Invalid(
            f'values: {spec.name} is {spec.data_type}; expected numbers (or "nan", "inf"), '
            f"got {leaf!r}"
        )
    return leaf


def _from_values(values: Any, spec: TensorSpec, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    shape, leaves = _nested_shape(values)
    converted = [_leaf(leaf, spec, dtype) for leaf in leaves]
    array = np.empty(len(converted), dtype=dtype)
    if converted:
        array[:] = converted
    return array.reshape(shape)


def _fit_shape(
    array: np.ndarray[Any, Any], spec: TensorSpec, max_batch_size: int, batch: int | None
) -> np.ndarray[Any, Any]:
    """`array` with the batch dimension the config implies, or _Invalid saying what fits."""
    dims = spec.dims
    if spec.batching and array.ndim == len(dims):
        array = array.reshape((1,) + array.shape)
    want = len(dims) + (1 if spec.batching else 0)
    body = array.shape[1:] if spec.batching else array.shape
    fits = array.ndim == want and all(d < 0 or d == s for d, s in zip(dims, body))
    if not fits:
        raise _Invalid(
            f"shape {list(array.shape)} does not fit {spec.describe()} from the config"
            + (" (the batch dimension may be left out)" if spec.batching else "")
        )
    if spec.batching:
        size = int(array.shape[0])
        if not 1 <= size <= max_batch_size:
            raise _Invalid(f"batch size {size}; the config allows 1 to {max_batch_size}")
        if batch is not None and size != batch:
            raise _Invalid(f"batch size {size}, but the inputs' batch size is {batch}")
    return array
