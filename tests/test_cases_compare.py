"""The difference report of a failing case: what a data scientist reads instead of a debugger."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmepack.cases.compare import compare_output
from mmepack.cases.load import ExpectedOutput, Tolerance

LOOSE = Tolerance(atol=1e-3, rtol=0.0)


def expected(values: Any, dtype: Any = np.float32, gpu: Tolerance | None = None) -> ExpectedOutput:
    array = np.array(values, dtype=dtype)
    exact = np.dtype(dtype).kind not in "f"
    return ExpectedOutput("OUT", array, None if exact else LOOSE, None if exact else gpu or LOOSE)


def test_match_within_tolerance_and_nan_on_both_sides() -> None:
    want = expected([[1.0, np.nan]])
    assert compare_output(want, np.array([[1.0005, np.nan]], dtype=np.float32), "CPU") is None


def test_shape_and_dtype_mismatch_are_named_before_values() -> None:
    want = expected([[1.0, 2.0]])
    assert compare_output(want, np.zeros((1, 3), np.float32), "CPU") == (
        "OUT: shape [1, 3], expected [1, 2]"
    )
    assert compare_output(want, np.zeros((1, 2), np.float64), "CPU") == (
        "OUT: data type float64, expected float32"
    )
    assert compare_output(want, None, "CPU") == "OUT: the model returned no such output"


def test_largest_errors_with_index_and_first_values() -> None:
    want = expected([[1.0, 100.0, 0.0, 5.0]])
    report = compare_output(want, np.array([[1.0, 101.0, 0.5, 5.0]], np.float32), "CPU")
    assert report is not None
    lines = report.splitlines()
    assert lines[0] == "OUT: 2 of 4 elements differ beyond atol=0.001, rtol=0 (CPU tolerances)"
    assert lines[1] == "  largest absolute error 1 at [0, 1]: actual 101, expected 100"
    assert lines[2] == "  largest relative error inf at [0, 2]: actual 0.5, expected 0"
    assert "    [0, 1]: 101 | 100  <- differs" in lines and "    [0, 3]: 5 | 5" in lines


def test_gpu_tolerance_applies_on_a_gpu_server() -> None:
    want = expected([1.0], gpu=Tolerance(atol=0.1, rtol=0.0))
    actual = np.array([1.05], np.float32)
    assert compare_output(want, actual, "GPU (NVIDIA H100)") is None
    report = compare_output(want, actual, "CPU")
    assert report is not None and "(CPU tolerances)" in report


def test_exact_outputs_bytes_and_integers() -> None:
    labels = np.array([[b"screen"], [b"document"]], dtype=object)
    want = ExpectedOutput("LABEL", labels)
    assert compare_output(want, labels.copy(), "CPU") is None
    report = compare_output(want, np.array([[b"screen"], [b"screen"]], dtype=object), "CPU")
    assert report is not None
    assert report.splitlines()[:2] == [
        "LABEL: 1 of 2 elements differ (exact comparison for object)",
        "  first difference at [1, 0]: actual b'screen', expected b'document'",
    ]
    ints = ExpectedOutput("IDS", np.array([1, 2, 3], np.int32))
    report = compare_output(ints, np.array([1, 2, 4], np.int32), "CPU")
    assert report is not None and "first difference at [2]: actual 4, expected 3" in report
