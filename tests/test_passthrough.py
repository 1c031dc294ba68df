"""A build step under Pants gets the machine's variables (credentials, PATH, HOME) from the file
`$MMEPACK_PASSTHROUGH_FILE` names, not from its environment, which is in Pants' cache key; no
message about that file ever quotes what is in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmepack import passthrough
from mmepack.cli import main
from mmepack.environment.command import main as build_env_main
from mmepack.errors import MmepackError

SECRET = "passthroughSecretValue-0123456789"


def test_the_files_variables_win_and_the_pointer_is_removed(tmp_path: Path) -> None:
    file = tmp_path / "env.json"
    file.write_text(json.dumps({"AWS_SECRET_ACCESS_KEY": SECRET, "PIP_CONFIG_FILE": "/p"}))
    env = {passthrough.VARIABLE: str(file), "PIP_CONFIG_FILE": "", "KEEP": "1"}
    passthrough.apply(env)
    assert env == {"AWS_SECRET_ACCESS_KEY": SECRET, "PIP_CONFIG_FILE": "/p", "KEEP": "1"}


def test_without_the_variable_nothing_changes() -> None:
    env = {"KEEP": "1"}
    passthrough.apply(env)
    assert env == {"KEEP": "1"}


def test_a_missing_file_says_how_to_run_the_step(tmp_path: Path) -> None:
    with pytest.raises(MmepackError) as caught:
        passthrough.apply({passthrough.VARIABLE: str(tmp_path / "gone.json")})
    assert str(tmp_path / "gone.json") in str(caught.value)
    assert "./pants" in str(caught.value) and passthrough.VARIABLE in str(caught.value)


@pytest.mark.parametrize(
    "content", [f'["{SECRET}"]', f'{{"A": ["{SECRET}"]}}', f"not json {SECRET}"]
)
def test_a_malformed_file_is_named_never_quoted(tmp_path: Path, content: str) -> None:
    file = tmp_path / "env.json"
    file.write_text(content)
    with pytest.raises(MmepackError) as caught:
        passthrough.apply({passthrough.VARIABLE: str(file)})
    assert str(file) in str(caught.value) and "JSON object" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("entry", [main, build_env_main])
def test_both_entry_points_apply_it_and_report_one_error(
    entry: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(passthrough.VARIABLE, str(tmp_path / "gone.json"))
    args = (
        ["validate", str(tmp_path)]
        if entry is main
        else ["--requirements=r.txt", "--output=e.tar.gz"]
    )
    assert entry(args) == 1  # type: ignore[operator]
    err = capsys.readouterr().err
    assert err.count("mmepack: error: ") == 1 and "gone.json" in err
