"""A build step under Pants gets the machine's variables (credentials, PATH, HOME) from the file
`$MMEPACK_PASSTHROUGH_FILE` names, not from its environment, which is in Pants' cache key; no
message about that file ever quotes what is in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmepack import passthrough
from mmepack.cli import main
from mmepack.environment.command import main as build_env_main
from mmepack.errors import MmepackError
from mmepack_contract.paths import passthrough_for

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


def test_a_step_reads_the_file_of_the_pants_process_among_its_parents(tmp_path: Path) -> None:
    # Two Pants runs at once on one machine write one file each, named by their process; a step
    # started under this test process must take this process's values, not the other run's.
    base = tmp_path / "env.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        Path(passthrough_for(str(base), other.pid)).write_text(json.dumps({"WHO": "other run"}))
        Path(passthrough_for(str(base), os.getpid())).write_text(json.dumps({"WHO": "this run"}))
        base.write_text(json.dumps({"WHO": "the shared file"}))
        # The step runs a shell in between, as Pants' PEX launcher does.
        script = (
            "import os; from mmepack import passthrough; passthrough.apply(); "
            "print(os.environ['WHO'])"
        )
        out = subprocess.run(
            ["sh", "-c", f'"{sys.executable}" -c "{script}"'],
            env={
                **os.environ,
                passthrough.VARIABLE: str(base),
                "PYTHONPATH": os.pathsep.join(sys.path),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        other.kill()
        other.wait()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "this run"


def test_without_a_parents_file_the_named_file_is_read(tmp_path: Path) -> None:
    base = tmp_path / "env.json"
    base.write_text(json.dumps({"WHO": "by hand"}))
    env = {passthrough.VARIABLE: str(base)}
    passthrough.apply(env)
    assert env == {"WHO": "by hand"}
