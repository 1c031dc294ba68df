"""Field positions recorded by the one config reader, from protobuf's own parse.

Validation points every finding at a line; these tests pin the cases a search of the raw text
got wrong or could not express: comments and strings that look like fields, the i-th element of
a repeated field, an entry of a map by key or value, and a field nested inside another.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.model.config import (
    ConfigSchemaError,
    parse_model_config,
    parse_model_config_with_positions,
)

CONFIG = """# name: "commented_out"
name: "m"   # backend: "not this one"
platform: "ensemble"
max_batch_size: 4
input [
  { name: "A" data_type: TYPE_FP32 dims: [ 1 ] },
  {
    name: "B"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }
]
version_policy: { specific: { versions: [ 1,
  2 ] } }
parameters { key: "K" value: { string_value: "name: \\"x\\"" } }
ensemble_scheduling {
  step [
    {
      model_name: "first"
      input_map { key: "IN" value: "A" }
    },
    {
      model_name: "second"
      input_map { key: "IN" value: "B" }
      input_map {
        key: "OTHER"
        value: "A"
      }
    }
  ]
}
"""


def test_top_level_fields_skip_comments_and_strings() -> None:
    _, positions = parse_model_config_with_positions(CONFIG, Path("config.pbtxt"))
    assert positions.line("name") == 2
    assert positions.line("platform") == 3
    assert positions.line("backend") is None  # only in a comment
    assert positions.line("max_batch_size") == 4


def test_repeated_elements_and_list_values() -> None:
    _, positions = parse_model_config_with_positions(CONFIG, Path("config.pbtxt"))
    assert positions.child("input", 0).line("name") == 6
    assert positions.child("input", 1).line("name") == 8
    assert positions.child("input", 2).line("name") is None
    versions = positions.child("version_policy").child("specific")
    assert (versions.line("versions", 0), versions.line("versions", 1)) == (13, 14)


def test_map_entries_by_key_and_value() -> None:
    config, positions = parse_model_config_with_positions(CONFIG, Path("config.pbtxt"))
    assert config.parameters["K"].string_value == 'name: "x"'
    assert positions.entry("parameters", "key", "K").line("key") == 15
    second = positions.child("ensemble_scheduling").child("step", 1)
    assert second.line("model_name") == 23
    assert second.entry("input_map", "key", "OTHER").line("key") == 26
    assert second.entry("input_map", "value", "A").line("value") == 27
    assert second.entry("input_map", "key", "MISSING").line("key") is None


def test_recording_changes_nothing_about_the_parse() -> None:
    config, _ = parse_model_config_with_positions(CONFIG, Path("config.pbtxt"))
    assert config == parse_model_config(CONFIG, Path("config.pbtxt"))


@pytest.mark.parametrize(
    "text",
    ['name: "x"\n\ninput [ { dims: [ 1, ] } ]', "max_batch_sizes: 3", 'name: "a"\nname: "b"'],
)
def test_errors_are_the_same_with_and_without_positions(text: str) -> None:
    with pytest.raises(ConfigSchemaError) as plain:
        parse_model_config(text, Path("c.pbtxt"))
    with pytest.raises(ConfigSchemaError) as recorded:
        parse_model_config_with_positions(text, Path("c.pbtxt"))
    assert recorded.value.problem == plain.value.problem
    assert plain.value.problem.line is not None


@pytest.mark.parametrize(
    ("value", "column"),
    [
        ("a\\zb", 48),
        ("a\\\\\\qb", 50),
    ],  # \z; an escaped backslash, then \q (the 1-based column of the backslash)
)
def test_an_escape_triton_refuses_is_an_error_at_its_line(value: str, column: int) -> None:
    # Triton 2.51 refused such a file: "7:53: Invalid escape sequence in string literal." while
    # Python's protobuf only warned and kept the backslash.
    text = f'name: "m"\nparameters {{ key: "K" value: {{ string_value: "{value}" }} }}\n'
    with pytest.raises(ConfigSchemaError) as caught:
        parse_model_config(text, Path("m/config.pbtxt"))
    assert caught.value.problem.line == 2
    assert f"column {column}: invalid escape sequence" in str(caught.value)


def test_escapes_triton_accepts_still_parse() -> None:
    text = (
        'name: "m"\nparameters { key: "K" value: { string_value: "a\\\\z \\101 \\n \\"q\\"" } }\n'
    )
    config = parse_model_config(text, Path("m/config.pbtxt"))
    assert config.parameters["K"].string_value == 'a\\z A \n "q"'
