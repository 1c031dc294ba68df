"""The published JSON Schema names exactly the keys the loader accepts.

Editors complete case files from docs/case.schema.json while mmepack.cases.load decides what
is valid; a key added to one and not the other would let an editor suggest what the loader
refuses, or hide what it accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmepack.cases import load

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "case.schema.json"


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA.read_text())
    return data


def test_top_level_keys_match_the_loader() -> None:
    assert set(schema()["properties"]) == load.TOP_LEVEL_KEYS
    assert schema()["additionalProperties"] is False


def test_input_expected_and_tolerance_keys_match_the_loader() -> None:
    defs = schema()["$defs"]
    assert set(defs["input"]["properties"]) == load.INPUT_KEYS
    assert set(defs["expected"]["properties"]) == load.EXPECTED_KEYS
    assert set(defs["expected"]["properties"]["gpu"]["properties"]) == load.TOLERANCE_KEYS
    sources = {next(iter(option["required"])) for option in defs["source"]["oneOf"]}
    assert sources == load.SOURCE_KEYS
    error = schema()["properties"]["expected_error"]
    assert set(error["properties"]) == load.ERROR_KEYS
