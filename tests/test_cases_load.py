"""The case loader: arrays typed and shaped from the config, every mistake named before a server.

No server runs here: these tests prove the loader alone finds what a case file gets wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmepack.cases import CaseError, load_cases, read_signature

# An ensemble with a BYTES input, an INT64 input and outputs of three kinds, for the type rules.
MIXED_ENSEMBLE = """name: "mixed"
platform: "ensemble"
max_batch_size: 2
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },
        { name: "COUNT" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "SCORE" data_type: TYPE_FP32 dims: [ 3 ] },
         { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
         { name: "IDS" data_type: TYPE_INT32 dims: [ 2 ] } ]
ensemble_scheduling { step [ { model_name: "mixed_step" model_version: -1
  input_map { key: "TEXT" value: "TEXT" } input_map { key: "COUNT" value: "COUNT" }
  output_map { key: "SCORE" value: "SCORE" } output_map { key: "LABEL" value: "LABEL" }
  output_map { key: "IDS" value: "IDS" } } ] }
"""
MIXED_STEP = """name: "mixed_step"
backend: "python"
max_batch_size: 2
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },
        { name: "COUNT" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "SCORE" data_type: TYPE_FP32 dims: [ 3 ] },
         { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },
         { name: "IDS" data_type: TYPE_INT32 dims: [ 2 ] } ]
"""


def write_case(model_dir: Path, name: str, body: dict[str, Any] | str) -> Path:
    path = model_dir / "tests" / "cases" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    (root / "mixed").mkdir(parents=True)
    (root / "mixed" / "config.pbtxt").write_text(MIXED_ENSEMBLE)
    (root / "mixed_step" / "1").mkdir(parents=True)
    (root / "mixed_step" / "config.pbtxt").write_text(MIXED_STEP)
    (root / "mixed_step" / "1" / "model.py").write_text("# not run by these tests\n")
    return root


def problems_of(model_dir: Path) -> str:
    with pytest.raises(CaseError) as caught:
        load_cases(model_dir)
    return str(caught.value)


def test_no_case_files_is_no_cases(model_dir: Path) -> None:
    assert load_cases(model_dir) == []


def test_inline_values_take_dtype_and_batch_from_the_config(model_dir: Path) -> None:
    write_case(
        model_dir,
        "one",
        {"inputs": {"IN": {"values": [1, 2.5]}}, "expected": {"OUT": {"values": [2, 5]}}},
    )
    write_case(
        model_dir,
        "two",
        {
            "description": "a batch of two",
            "inputs": {"IN": {"values": [[1, 2], [3, 4]]}},
            "expected": {"OUT": {"values": [[2, 4], [6, 8]], "atol": 0.1, "gpu": {"rtol": 0.01}}},
        },
    )
    one, two = load_cases(model_dir)
    assert one.name == "one" and two.description == "a batch of two"
    assert one.inputs["IN"].dtype == np.float32 and one.inputs["IN"].shape == (1, 2)
    np.testing.assert_array_equal(one.inputs["IN"], [[1.0, 2.5]])
    assert two.inputs["IN"].shape == (2, 2)
    out = two.expected["OUT"]
    assert out.array.dtype == np.float32 and out.array.shape == (2, 2)
    cpu, gpu = out.tolerance("CPU"), out.tolerance("GPU (NVIDIA H100)")
    assert cpu is not None and (cpu.atol, cpu.rtol) == (0.1, 1e-5)
    assert gpu is not None and (gpu.atol, gpu.rtol) == (0.1, 0.01)
    assert one.expected["OUT"].cpu is not None and one.expected["OUT"].cpu.atol == 1e-5


def test_misspelt_input_names_the_file_the_input_and_the_fix(model_dir: Path) -> None:
    path = write_case(
        model_dir,
        "typo",
        {"inputs": {"INN": {"values": [1, 2]}}, "expected": {"OUT": {"values": [2, 4]}}},
    )
    message = problems_of(model_dir)
    assert f"{path}: inputs.INN: model 'demo' has no input 'INN' (did you mean 'IN'?)" in message
    assert "its inputs are IN" in message and "demo/demo/config.pbtxt" in message
    # The input it does need is reported missing in the same run, not in a second one.
    assert f"{path}: inputs.IN: missing" in message


def test_shape_and_dtype_mismatches_name_the_case_and_the_tensor(model_dir: Path) -> None:
    (model_dir / "tests" / "cases").mkdir(parents=True)
    np.save(model_dir / "tests" / "cases" / "ints.npy", np.array([[1, 2]], dtype=np.int64))
    write_case(
        model_dir,
        "shape",
        {"inputs": {"IN": {"values": [1, 2, 3]}}, "expected": {"OUT": {"values": [2, 4]}}},
    )
    write_case(
        model_dir,
        "dtype",
        {"inputs": {"IN": {"npy": "ints.npy"}}, "expected": {"OUT": {"values": [[2, 4]]}}},
    )
    write_case(
        model_dir,
        "batch",
        {"inputs": {"IN": {"values": [[1, 2]] * 5}}, "expected": {"OUT": {"values": [[2, 4]] * 5}}},
    )
    message = problems_of(model_dir)
    assert "shape.json: inputs.IN: shape [1, 3] does not fit TYPE_FP32 [batch, 2]" in message
    assert "dtype.json: inputs.IN: npy:" in message
    assert "holds int64, but IN is TYPE_FP32 (float32); save it with .astype(np.float32)" in message
    assert "batch.json: inputs.IN: batch size 5; the config allows 1 to 4" in message


def test_every_problem_of_every_file_is_reported_at_once(model_dir: Path) -> None:
    write_case(
        model_dir,
        "a",
        {
            "inputs": {"IN": {"values": [1, "x"]}},
            "expected": {"OTU": {"values": [1, 2]}},
            "expcted": {},
        },
    )
    write_case(model_dir, "b", '{"inputs": {')
    write_case(model_dir, "c", {"inputs": {"IN": {"values": [1, 2]}}})
    message = problems_of(model_dir)
    assert "a.json: inputs.IN: values: IN is TYPE_FP32; expected numbers" in message
    assert "a.json: expected.OTU: model 'demo' has no output 'OTU' (did you mean 'OUT'?)" in message
    assert "a.json: expcted: unknown key (did you mean 'expected'?)" in message
    assert "b.json:1: syntax: column 13:" in message
    assert "c.json: expected: nothing expected" in message and "record-cases" in message
    # The recorder accepts a case that states inputs only.
    (model_dir / "tests" / "cases" / "a.json").unlink()
    (model_dir / "tests" / "cases" / "b.json").unlink()
    [recordable] = load_cases(model_dir, require_expected=False)
    assert recordable.expected == {} and recordable.expected_error is None


def test_bytes_int_and_file_sources(mixed_dir: Path) -> None:
    cases = mixed_dir / "tests" / "cases"
    cases.mkdir(parents=True)
    (cases / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00raw")
    np.savez(
        cases / "arrays.npz", ids=np.array([[7, 8]], dtype=np.int32), labels=np.array([[b"screen"]])
    )
    write_case(
        mixed_dir,
        "ok",
        {
            "inputs": {"TEXT": {"file": "photo.png"}, "COUNT": {"values": [[1, 2, 3]]}},
            "expected": {
                "IDS": {"npz": "arrays.npz", "key": "ids"},
                "LABEL": {"npz": "arrays.npz", "key": "labels"},
                "SCORE": {"values": [0.5, "nan", "-inf"]},
            },
        },
    )
    [case] = load_cases(mixed_dir)
    assert case.inputs["TEXT"].dtype == object and case.inputs["TEXT"].shape == (1, 1)
    assert case.inputs["TEXT"][0, 0] == b"\x89PNG\r\n\x1a\n\x00raw"
    assert case.inputs["COUNT"].dtype == np.int64 and case.inputs["COUNT"].shape == (1, 3)
    assert case.expected["LABEL"].array[0, 0] == b"screen" and case.expected["LABEL"].cpu is None
    assert case.expected["IDS"].array.dtype == np.int32
    score = case.expected["SCORE"].array
    assert np.isnan(score[0, 1]) and score[0, 2] == -np.inf


def test_type_rules_for_bytes_and_integers(mixed_dir: Path) -> None:
    write_case(
        mixed_dir,
        "bad",
        {
            "inputs": {"TEXT": {"values": [[1]]}, "COUNT": {"values": [[1.5, 2**70]]}},
            "expected": {
                "IDS": {"values": [[1, 2]], "atol": 1},
                "LABEL": {"npz": "missing.npz", "key": "x"},
                "SCORE": {"values": [1, 2, 3], "npy": "x.npy"},
            },
        },
    )
    message = problems_of(mixed_dir)
    assert "inputs.TEXT: values: TEXT is BYTES; expected text elements, got 1" in message
    assert "inputs.COUNT: values: COUNT is TYPE_INT64; expected integers, got 1.5" in message
    assert "expected.IDS: atol/rtol/gpu apply to floating outputs; IDS is TYPE_INT32" in message
    assert "expected.LABEL: npz:" in message and "missing.npz not found" in message
    assert "expected.SCORE: state exactly one of values, npy, npz (with key) or file" in message


def test_inputs_of_different_batch_sizes_are_refused(mixed_dir: Path) -> None:
    write_case(
        mixed_dir,
        "batches",
        {
            "inputs": {"TEXT": {"values": [["a"], ["b"]]}, "COUNT": {"values": [[1]]}},
            "expected_error": {"contains": "x"},
        },
    )
    assert "inputs: inputs differ in batch size (TEXT: 2, COUNT: 1)" in problems_of(mixed_dir)


def test_expected_error_and_its_exclusions(model_dir: Path) -> None:
    write_case(
        model_dir,
        "err",
        {"inputs": {"IN": {"values": [1, 2]}}, "expected_error": {"contains": "boom"}},
    )
    [case] = load_cases(model_dir)
    assert case.expected_error == "boom" and case.expected == {}
    write_case(
        model_dir,
        "both",
        {
            "inputs": {"IN": {"values": [1, 2]}},
            "expected": {"OUT": {"values": [2, 4]}},
            "expected_error": {"contains": "boom"},
        },
    )
    assert "both.json: expected_error: a case expects either outputs or an error" in (
        problems_of(model_dir)
    )


def test_signature_reads_the_ensemble_config(mixed_dir: Path) -> None:
    signature = read_signature(mixed_dir)
    assert signature.model == "mixed" and signature.max_batch_size == 2
    assert list(signature.inputs) == ["TEXT", "COUNT"]
    assert signature.outputs["LABEL"].triton_datatype == "BYTES"
    assert signature.inputs["COUNT"].describe() == "TYPE_INT64 [batch, any]"


def test_data_files_stay_in_the_case_folder(model_dir: Path) -> None:
    """Pants carries only the case files' folders into its sandbox, so the loader refuses a
    path that leaves them, in every run, instead of failing only under Pants."""
    np.save(model_dir / "outside.npy", np.zeros((1, 2), np.float32))
    write_case(
        model_dir,
        "escape",
        {"inputs": {"IN": {"npy": "../../outside.npy"}}, "expected": {"OUT": {"values": [0, 0]}}},
    )
    assert "escape.json: inputs.IN: npy: '../../outside.npy' leaves the case file's folder" in (
        problems_of(model_dir)
    )
