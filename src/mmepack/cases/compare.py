"""Compare a model's answer with a case's expected output, and say how they differ.

A failing case must tell a data scientist what to do next without a debugger: whether the shape
or data type is wrong (a config or export problem), or by how much and where the numbers drift
(a tolerance or a real regression). So each report gives the largest absolute and relative
errors with their index and the first values side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmepack.cases.load import ExpectedOutput, Tolerance

# How many elements a report lists side by side.
SHOWN = 6


def _index(flat: int, shape: tuple[int, ...]) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, shape)] if shape else []


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        shown = repr(value if len(value) <= 40 else value[:40] + b"...")
        return shown + (f" ({len(value)} bytes)" if len(value) > 40 else "")
    if isinstance(value, (np.floating, float)):
        return f"{float(value):.9g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _side_by_side(
    actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], wrong: np.ndarray[Any, Any]
) -> list[str]:
    """The first elements, marking the ones that differ."""
    lines = ["  first values (index: actual | expected):"]
    count = min(SHOWN, actual.size)
    for flat in range(count):
        mark = "  <- differs" if wrong.flat[flat] else ""
        lines.append(
            f"    {_index(flat, actual.shape)}: {_show(actual.flat[flat])} | "
            f"{_show(expected.flat[flat])}{mark}"
        )
    if actual.size > count:
        lines.append(f"    ... {actual.size - count} more")
    return lines


def compare_output(
    expected: ExpectedOutput, actual: np.ndarray[Any, Any] | None, device: str
) -> str | None:
    """None if `actual` matches, else a report of the difference (several lines)."""
    name = expected.name
    want = expected.array
    if actual is None:
        return f"{name}: the model returned no such output"
    if actual.dtype != want.dtype and not (actual.dtype.kind in "OS" and want.dtype.kind == "O"):
        return f"{name}: data type {actual.dtype}, expected {want.dtype}"
    if actual.shape != want.shape:
        return f"{name}: shape {list(actual.shape)}, expected {list(want.shape)}"
    tolerance = expected.tolerance(device)
    if tolerance is None:
        return _compare_exact(name, actual, want)
    return _compare_close(name, actual, want, tolerance, device)


def _compare_exact(
    name: str, actual: np.ndarray[Any, Any], want: np.ndarray[Any, Any]
) -> str | None:
    if want.dtype.kind == "O":
        actual = actual.astype(object)
        wrong = np.array(
            [bytes(a) != bytes(e) for a, e in zip(actual.flat, want.flat)], dtype=bool
        ).reshape(want.shape)
    else:
        wrong = actual != want
    count = int(np.count_nonzero(wrong))
    if not count:
        return None
    first = int(np.flatnonzero(wrong)[0])
    lines = [
        f"{name}: {count} of {want.size} elements differ (exact comparison for {want.dtype})",
        f"  first difference at {_index(first, want.shape)}: actual "
        f"{_show(actual.flat[first])}, expected {_show(want.flat[first])}",
    ]
    return "\n".join(lines + _side_by_side(actual, want, wrong))


def _compare_close(
    name: str,
    actual: np.ndarray[Any, Any],
    want: np.ndarray[Any, Any],
    tolerance: Tolerance,
    device: str,
) -> str | None:
    close = np.isclose(actual, want, atol=tolerance.atol, rtol=tolerance.rtol, equal_nan=True)
    wrong = ~close
    count = int(np.count_nonzero(wrong))
    if not count:
        return None
    a64, e64 = actual.astype(np.float64), want.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        absolute = np.abs(a64 - e64)
        relative = np.where(e64 != 0, absolute / np.abs(e64), np.where(absolute > 0, np.inf, 0.0))
    # A NaN on one side only is a difference of unknown size: rank it first.
    nan_mismatch = np.isnan(a64) != np.isnan(e64)
    absolute = np.where(nan_mismatch, np.inf, np.nan_to_num(absolute, nan=0.0, posinf=np.inf))
    relative = np.where(nan_mismatch, np.inf, np.nan_to_num(relative, nan=0.0, posinf=np.inf))
    worst_abs = int(np.argmax(absolute))
    worst_rel = int(np.argmax(relative))
    where = "GPU" if device.upper().startswith("GPU") else "CPU"
    lines = [
        f"{name}: {count} of {want.size} elements differ beyond atol={tolerance.atol:g}, "
        f"rtol={tolerance.rtol:g} ({where} tolerances)",
        f"  largest absolute error {absolute.flat[worst_abs]:.3g} at "
        f"{_index(worst_abs, want.shape)}: actual {_show(actual.flat[worst_abs])}, "
        f"expected {_show(want.flat[worst_abs])}",
        f"  largest relative error {relative.flat[worst_rel]:.3g} at "
        f"{_index(worst_rel, want.shape)}: actual {_show(actual.flat[worst_rel])}, "
        f"expected {_show(want.flat[worst_rel])}",
    ]
    return "\n".join(lines + _side_by_side(actual, want, wrong))
