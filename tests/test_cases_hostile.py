"""Hostile case files (issue 25, items 13 and 14): `check-cases` refuses data-file links that leave
the case folder, and answers deep nesting and huge integers with one `mmepack: error:` line per
problem, naming the file and the field, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mmepack.cli import main
from tests.test_cases_load import mixed_dir, write_case  # noqa: F401 - fixture

SECRET = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _check(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["check-cases", str(model_dir)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_a_file_link_leaving_the_case_folder_is_refused(
    mixed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = tmp_path / "home" / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(SECRET)
    case = write_case(
        mixed_dir,
        "leak",
        {
            "inputs": {"TEXT": {"file": "text.txt"}, "COUNT": {"values": [1]}},
            "expected": {
                "SCORE": {"values": [0, 0, 0]},
                "LABEL": {"values": ["x"]},
                "IDS": {"values": [0, 0]},
            },
        },
    )
    os.symlink(credentials, case.parent / "text.txt")
    err = _check(mixed_dir, capsys)
    assert (
        f"mmepack: error: {case}: inputs.TEXT: file: {case.parent / 'text.txt'} is a link to "
        f"{credentials}, outside the case file's folder" in err
    )
    assert "wJalrXUtnFEMI" not in err


def test_an_npy_link_leaving_the_case_folder_is_refused_and_one_inside_is_fine(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere" / "in.npy"
    outside.parent.mkdir()
    np.save(outside, np.zeros((1, 2), np.float32))
    body = {"inputs": {"IN": {"npy": "in.npy"}}, "expected": {"OUT": {"values": [0, 0]}}}
    case = write_case(model_dir, "outside", body)
    os.symlink(outside, case.parent / "in.npy")
    err = _check(model_dir, capsys)
    assert f"{case}: inputs.IN: npy: {case.parent / 'in.npy'} is a link to {outside}" in err

    (case.parent / "in.npy").unlink()
    (case.parent / "data").mkdir()
    np.save(case.parent / "data" / "real.npy", np.zeros((1, 2), np.float32))
    os.symlink("data/real.npy", case.parent / "in.npy")  # a link inside the folder stays fine
    assert main(["check-cases", str(model_dir)]) == 0


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize(
    "values, field, message",
    [
        (_nested(200), "inputs.IN", "values: nested more than 32 levels deep"),
        (_nested(2000), "inputs.IN.values", "nested more than 64 levels deep"),
        ("1" * 5000, "inputs.IN", "values: an integer of 5000 digits is out of range"),
    ],
    ids=["200 deep", "2,000 deep", "5,000 digits"],
)
def test_deep_nesting_and_huge_integers_are_one_error_line(
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    values: str,
    field: str,
    message: str,
) -> None:
    text = '{"inputs": {"IN": {"values": %s}}, "expected": {"OUT": {"values": [0, 0]}}}' % values
    case = write_case(model_dir, "hostile", text)
    err = _check(model_dir, capsys)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mmepack: error: {case}")
    assert f": {field}: " in lines[0] and message in lines[0], lines[0]


def test_a_huge_integer_tolerance_is_one_error_line(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(
        {"inputs": {"IN": {"values": [1, 2]}}, "expected": {"OUT": {"values": [0, 0], "atol": 0}}}
    )
    case = write_case(model_dir, "huge_atol", text.replace('"atol": 0', '"atol": ' + "9" * 5000))
    err = _check(model_dir, capsys)
    assert err.startswith(f"mmepack: error: {case}: expected.OUT: atol: expected a number >= 0")
    assert len(err.splitlines()) == 1
