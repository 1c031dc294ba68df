"""`mmepack record-cases`: write a model's answers into its case files as expected values.

Writing expected values by hand is slow and error-prone; copying them blindly from the model
makes a test that can never fail. So recording is a review step: a case without expected
values gets the model's outputs; a case that has them is compared, and a value that changed is
shown with the same report a failing test gives and written only with `--accept`. A case that
expects an error is left alone.

Which outputs are written: every output of the model for a case with no `expected`; only the
outputs it already names for one that has them (leaving out an output is a choice to keep).
Small values are written inline; larger ones, and bytes that are not UTF-8 text, go to a `.npy`
file beside the case (`<case>.<OUTPUT>.npy`), which `values` would make unreadable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmepack.artifact.freshness import require_fresh
from mmepack.cases.compare import compare_output
from mmepack.cases.invoke import invoke
from mmepack.cases.load import Case, load_cases
from mmepack.cases.signature import Signature, read_signature
from mmepack.errors import MmepackError
from mmepack.files import atomic_path
from mmepack.names import CASES_GLOB
from mmepack.testing import serve_artifact

# Values with more elements than this go to a .npy file instead of the case file.
INLINE_LIMIT = 64


@dataclass
class RecordReport:
    """What one recording run did, for the summary and the exit status."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def record_cases(
    artifact: Path,
    model_dir: Path,
    pattern: str = CASES_GLOB,
    *,
    accept: bool = False,
    startup_timeout: float = 300.0,
) -> RecordReport:
    """Run each case's inputs through `artifact` and record the outputs (see module doc)."""
    cases = load_cases(model_dir, pattern, require_expected=False)
    if not cases:
        raise MmepackError(
            f"no case files match {model_dir}/{pattern}; write one with inputs first, e.g. "
            f'{model_dir}/tests/cases/first.json holding {{"inputs": {{...}}}}'
        )
    signature = read_signature(model_dir)
    if artifact.is_file():
        # Recording from an artifact of older sources would write the old model's answers.
        require_fresh(artifact, model_dir)
    report = RecordReport()
    with serve_artifact(artifact, startup_timeout=startup_timeout) as served:
        for case in cases:
            if case.expected_error is not None:
                report.skipped.append(f"{case.path}: expects an error; left as it is")
                continue
            answer = invoke(served.client, served.model_name, case, signature)
            if answer.error is not None:
                raise MmepackError(
                    f"{case.path}: the model refused this case's inputs, so there is nothing to "
                    f"record; fix the inputs or add expected_error:\n  {answer.error}"
                )
            _record_case(case, signature, answer.outputs, served.device, accept, report)
    return report


def _record_case(
    case: Case,
    signature: Signature,
    outputs: dict[str, np.ndarray[Any, Any]],
    device: str,
    accept: bool,
    report: RecordReport,
) -> None:
    data = dict(case.raw)
    expected_raw: dict[str, Any] = dict(data.get("expected") or {})
    names = list(expected_raw) or list(signature.outputs)
    changed = False
    for name in names:
        actual = outputs.get(name)
        where = f"{case.path}: expected.{name}"
        if actual is None:
            report.skipped.append(f"{where}: the model returned no such output")
            continue
        old = case.expected.get(name)
        if old is not None:
            # The new value is compared as exactly as a test would, and kept when it passes so
            # a recording run does not churn files with last-digit noise.
            difference = compare_output(old, actual, device)
            if difference is None:
                report.unchanged.append(where)
                continue
            if not accept:
                report.differing.append(f"{where}: the model's answer differs:\n{difference}")
                continue
        entry = dict(expected_raw.get(name) or {})
        for key in ("values", "npy", "npz", "key", "file"):
            entry.pop(key, None)
        entry = {**_source(case, name, actual, signature.outputs[name].is_bytes), **entry}
        expected_raw[name] = entry
        changed = True
        report.written.append(where)
    if changed:
        data.pop("expected_error", None)
        data["expected"] = expected_raw
        with atomic_path(case.path) as tmp:
            tmp.write_text(dump_case(data))


def _source(case: Case, name: str, array: np.ndarray[Any, Any], is_bytes: bool) -> dict[str, Any]:
    """`{"values": ...}` for a small value, else `{"npy": ...}` written beside the case."""
    if is_bytes:
        items = [bytes(item) for item in array.flat]
        try:
            texts = [item.decode("utf-8") for item in items]
        except UnicodeDecodeError:
            texts = None
        if texts is not None and array.size <= INLINE_LIMIT:
            return {"values": np.array(texts, dtype=object).reshape(array.shape).tolist()}
        npy = np.array(items, dtype=bytes).reshape(array.shape)
    elif array.size <= INLINE_LIMIT:
        return {"values": _json_values(array)}
    else:
        npy = array
    path = case.path.with_name(f"{case.path.stem}.{name}.npy")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, npy, allow_pickle=False)
    return {"npy": path.name}


def _json_values(array: np.ndarray[Any, Any]) -> Any:
    """Nested lists whose numbers read back as the same values of the array's type.

    A float32 printed through Python's float shows noise digits (0.30000001192092896); numpy's
    shortest repr of the float32 itself ("0.3") reads back to the identical float32.
    """
    if array.dtype.kind == "f":

        def convert(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return [convert(v) for v in value]
            number = float(value)
            if math.isnan(number):
                return "nan"
            if math.isinf(number):
                return "inf" if number > 0 else "-inf"
            return float(str(value))

        return convert(array if array.ndim else array[()])
    return array.tolist()


def dump_case(data: dict[str, Any]) -> str:
    """JSON with two-space indents; whatever fits in a line (an innermost list) on one line."""

    def render(value: Any, indent: int) -> str:
        pad = "  " * (indent + 1)
        compact = json.dumps(value, ensure_ascii=False)
        if len(compact) + len(pad) <= 88:
            return compact
        if isinstance(value, dict):
            if not value:
                return "{}"
            items = [f"{pad}{json.dumps(k)}: {render(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
        if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
            items = [f"{pad}{render(v, indent + 1)}" for v in value]
            return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
        return json.dumps(value, ensure_ascii=False)

    return render(data, 0) + "\n"


def format_report(report: RecordReport, accept: bool) -> tuple[str, int]:
    """The summary a person reads after recording, and the exit status (1: review needed)."""
    lines = [f"mmepack: recorded {line}" for line in report.written]
    lines += [f"mmepack: unchanged {line}" for line in report.unchanged]
    lines += [f"mmepack: skipped {line}" for line in report.skipped]
    lines += [f"mmepack: {line}" for line in report.differing]
    if report.differing:
        lines.append(
            f"mmepack: {len(report.differing)} expected value(s) differ from the model's answer "
            "and were left as they are; review the differences above, then rerun with --accept "
            "to overwrite them"
        )
        return "\n".join(lines), 1
    return "\n".join(lines), 0
