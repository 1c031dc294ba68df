from __future__ import annotations

import pytest

from mmepack.model.pbtxt import PbtxtSyntaxError, parse_pbtxt


def test_parses_nested_messages_lists_and_scalars() -> None:
    parsed = parse_pbtxt(
        """
        name: "m"  # a comment
        max_batch_size: 8
        input [ { name: "A" data_type: TYPE_FP32 dims: [ 3, -1 ] }, { name: 'B' } ]
        dynamic_batching { preferred_batch_size: 4 max_queue_delay_microseconds: 100 }
        parameters: { key: "K" value: { string_value: "a" "b" } }
        optimization < cuda { graphs: true } >
        threshold: -1.5e2
        """
    )
    assert parsed["name"] == ["m"]
    assert parsed["max_batch_size"] == [8]
    assert parsed["input"][0] == {"name": ["A"], "data_type": ["TYPE_FP32"], "dims": [3, -1]}
    assert parsed["input"][1] == {"name": ["B"]}
    assert parsed["dynamic_batching"] == [
        {"preferred_batch_size": [4], "max_queue_delay_microseconds": [100]}
    ]
    assert parsed["parameters"] == [{"key": ["K"], "value": [{"string_value": ["ab"]}]}]
    assert parsed["optimization"] == [{"cuda": [{"graphs": [True]}]}]
    assert parsed["threshold"] == [-150.0]


def test_repeated_fields_accumulate() -> None:
    parsed = parse_pbtxt('output_map { key: "a" value: "b" } output_map { key: "c" value: "d" }')
    assert [m["key"] for m in parsed["output_map"]] == [["a"], ["c"]]  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('name: "x"\ninput [ { name: }', 2, 17, "expected a value, found '}'"),
        ("name 'x'", 1, 6, "expected ':' or '{' after the field name, found \"'x'\""),
        ("a { b: 1", 1, 9, "expected '}' to close the message, found end of file"),
        ("dims: [1 2]", 1, 10, "expected ',' or ']' in list, found '2'"),
        ('name: "x\ny"', 1, 7, "unexpected character '\"'"),
        ("a: 1 @", 1, 6, "unexpected character '@'"),
        ('s: "\\q"', 1, 5, "unknown escape '\\q' in string"),
    ],
)
def test_syntax_errors_name_file_line_and_column(
    text: str, line: int, column: int, reason: str
) -> None:
    with pytest.raises(PbtxtSyntaxError) as caught:
        parse_pbtxt(text, "models/m/config.pbtxt")
    assert (caught.value.line, caught.value.column, caught.value.reason) == (line, column, reason)
    assert str(caught.value).startswith(f"models/m/config.pbtxt:{line}:{column}: ")
