"""What record-cases writes reads back as the same values, without a server.

The recorder chooses inline values or a `.npy` beside the case; both must load through the
case loader to exactly the arrays the model answered, or a freshly recorded case would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmepack.cases import load_cases
from mmepack.cases.load import Case
from mmepack.cases.record import INLINE_LIMIT, _source, dump_case
from tests.test_cases_load import MIXED_ENSEMBLE, MIXED_STEP


def mixed_model(root: Path) -> Path:
    (root / "mixed").mkdir(parents=True)
    (root / "mixed" / "config.pbtxt").write_text(MIXED_ENSEMBLE)
    (root / "mixed_step" / "1").mkdir(parents=True)
    (root / "mixed_step" / "config.pbtxt").write_text(MIXED_STEP)
    (root / "mixed_step" / "1" / "model.py").write_text("# not run by these tests\n")
    (root / "tests" / "cases").mkdir(parents=True)
    return root


def test_small_values_inline_large_and_binary_values_as_npy(tmp_path: Path) -> None:
    root = mixed_model(tmp_path / "mixed")
    path = root / "tests" / "cases" / "rec.json"
    case = Case(name="rec", path=path, description="", inputs={})
    score = np.array([[0.1, 1e-8, np.inf], [np.nan, -2.5, 3.0]], dtype=np.float32)
    labels = np.array([[b"\xff\xfe not text"], [b"ok"]], dtype=object)
    ids = np.arange(2 * 2, dtype=np.int32).reshape(2, 2)
    sources = {
        "SCORE": _source(case, "SCORE", score, is_bytes=False),
        "LABEL": _source(case, "LABEL", labels, is_bytes=True),
        "IDS": _source(case, "IDS", ids, is_bytes=False),
    }
    assert sources["SCORE"] == {"values": [[0.1, 1e-08, "inf"], ["nan", -2.5, 3.0]]}
    assert sources["LABEL"] == {"npy": "rec.LABEL.npy"}  # not UTF-8: kept as bytes
    assert sources["IDS"] == {"values": [[0, 1], [2, 3]]}
    path.write_text(
        dump_case(
            {
                "inputs": {"TEXT": {"values": [["a"], ["b"]]}, "COUNT": {"values": [[1], [2]]}},
                "expected": sources,
            }
        )
    )
    [loaded] = load_cases(root)
    np.testing.assert_array_equal(loaded.expected["SCORE"].array, score)
    assert loaded.expected["SCORE"].array.dtype == np.float32
    assert list(loaded.expected["LABEL"].array.flat) == [b"\xff\xfe not text", b"ok"]
    np.testing.assert_array_equal(loaded.expected["IDS"].array, ids)
    # Innermost lists stay on one line, so a reviewer reads a recorded value at a glance.
    assert '"SCORE": {"values": [[0.1, 1e-08, "inf"], ["nan", -2.5, 3.0]]}' in path.read_text()


def test_more_than_the_inline_limit_goes_to_npy(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    case = Case(name="big", path=path, description="", inputs={})
    big = np.linspace(0, 1, INLINE_LIMIT + 1, dtype=np.float32).reshape(1, -1)
    assert _source(case, "OUT", big, is_bytes=False) == {"npy": "big.OUT.npy"}
    np.testing.assert_array_equal(np.load(tmp_path / "big.OUT.npy"), big)


def test_dump_case_is_json_that_reads_back_unchanged() -> None:
    data = {"description": "é", "inputs": {"A": {"values": [[1, 2] * 40]}}, "expected": {}}
    text = dump_case(data)
    assert json.loads(text) == data and text.endswith("\n") and "é" in text
