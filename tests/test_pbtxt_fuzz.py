"""Property tests: no config text, however mangled, escapes as anything but a reported problem.

The one reader of `config.pbtxt` (Triton's schema in `mmepack.model.config`, with and without
recording field positions), the packager's `read_model_directory` and the whole
`validate_model_directory` are fed random text and mutations of realistic configs. A traceback instead of a positioned error would be a bug: users
see these messages, and CI relies on validation finishing for every model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmepack.errors import MmepackError
from mmepack.model.config import (
    ConfigSchemaError,
    parse_model_config,
    parse_model_config_with_positions,
)
from mmepack.model.repository import read_model_directory
from mmepack.validate import Problem, validate_model_directory
from tests.test_validate import ENSEMBLE, NET, POST, PRE, write_good

CONFIGS = {"demo": ENSEMBLE, "demo_pre": PRE, "demo_net": NET, "demo_post": POST}

# Pieces of protobuf text format and of Triton configs, so mutations reach deep into the parsers.
# fmt: off
TOKENS = [
    "{", "}", "[", "]", "<", ">", ":", ",", ";", '"', "'", "#", "\n", " ", "\\", "-", ".",
    "0", "-1", "1e9", "0x1F", "3.5f", "nan", "inf", "true", "t", "f", "name", "dims",
    "input", "output", "max_batch_size", "platform", "backend", "ensemble_scheduling", "step",
    "input_map", "output_map", "key", "value", "model_name", "model_version", "TYPE_FP32",
    "KIND_GPU", "instance_group", "version_policy", "specific", "versions", "parameters",
    "string_value", '"ensemble"', '"\\x"', '"\\u12"', "\u00e9", "\U0001f600", "\x00",
    "optional", "reshape", "shape", "dynamic_batching", "latest", "num_versions", "all",
]
# fmt: on


@st.composite
def mutated_config(draw: st.DrawFn) -> tuple[str, str]:
    """A baseline config with a few random insertions, deletions and duplications."""
    folder = draw(st.sampled_from(sorted(CONFIGS)))
    text = CONFIGS[folder]
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        if action == "insert":
            piece = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=5)))
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif action == "duplicate":
            text = text[:at] + text[at : at + draw(st.integers(1, 80))] + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + 1 :]
    return folder, text


token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join)
any_text = st.one_of(st.text(max_size=200), token_soup)


def _parse_both(text: str) -> None:
    """Both parses agree: the same error (or none), and positions only point at real lines."""
    try:
        plain = parse_model_config(text, Path("config.pbtxt"))
    except ConfigSchemaError as exc:
        assert exc.problem.field == "syntax"
        assert exc.problem.line is None or exc.problem.line >= 1
        with pytest.raises(ConfigSchemaError) as recorded:
            parse_model_config_with_positions(text, Path("config.pbtxt"))
        assert recorded.value.problem == exc.problem
        return
    config, positions = parse_model_config_with_positions(text, Path("config.pbtxt"))
    assert config == plain
    line_count = max(1, len(text.split("\n")))
    pending = [positions]
    while pending:
        record = pending.pop()
        assert all(1 <= line <= line_count for lines in record.lines.values() for line in lines)
        pending.extend(child for children in record.nested.values() for child in children)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_parsers_raise_only_our_errors_on_any_text(text: str) -> None:
    _parse_both(text)


@settings(max_examples=300, deadline=None)
@given(mutated_config())
def test_parsers_raise_only_our_errors_on_mutated_configs(mutated: tuple[str, str]) -> None:
    _parse_both(mutated[1])


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_good(tmp_path_factory.mktemp("fuzz") / "demo")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(mutated_config(), st.tuples(st.sampled_from(sorted(CONFIGS)), any_text)))
def test_validation_reports_problems_and_never_raises(
    good_dir: Path, mutated: tuple[str, str]
) -> None:
    folder, text = mutated
    config = good_dir / folder / "config.pbtxt"
    refusal = ""
    try:
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        problems = validate_model_directory(good_dir)
        # The packager reads the same text with the same reader: it accepts it or says why.
        try:
            read_model_directory(good_dir)
        except MmepackError as exc:
            refusal = str(exc)
            assert refusal
    finally:
        config.write_text(CONFIGS[folder])
    assert all(isinstance(p, Problem) for p in problems)
    assert all(p.severity in ("error", "warning") for p in problems)
    assert all(str(p) for p in problems)
    # Whatever the packager refuses, validation reports as an error too (one set of rules).
    if refusal:
        assert any(p.severity == "error" for p in problems), refusal


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_validation_of_non_utf8_config(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    root = tmp_path_factory.mktemp("binary") / "demo"
    write_good(root)
    (root / "demo_net" / "config.pbtxt").write_bytes(data)
    try:
        problems = validate_model_directory(root)
    finally:
        shutil.rmtree(root)
    assert all(isinstance(p, Problem) for p in problems)


def test_schema_parser_on_deep_nesting() -> None:
    with pytest.raises(ConfigSchemaError):
        parse_model_config("optimization {" * 2000, Path("config.pbtxt"))
    with pytest.raises(ConfigSchemaError):
        parse_model_config_with_positions("optimization {" * 2000, Path("config.pbtxt"))
