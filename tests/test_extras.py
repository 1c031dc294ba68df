"""Commands that need the `serve` extra say so, in one line, before they do anything.

The module is hidden the way an installation without the extra lacks it (`sys.modules[name] =
None` makes its import fail); each command gets an artifact path that does not exist, so a check
that came after the command started would report that path instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from mmepack import cli
from mmepack.errors import MmepackError
from mmepack.extras import SERVE_MODULES, missing_for_serve
from mmepack.loadtest.cli import add_loadtest_arguments, run_loadtest

# sys.modules, typed so that None (hidden) is a value it may hold.
_MODULES = cast(dict[str, Any], sys.modules)
MISSING = "/nonexistent/screen_detector_1.tar.gz"

COMMANDS = [
    ["endpoint", MISSING],
    ["loadtest", MISSING, "--p99-ms", "100"],
    ["serve", MISSING],
    ["test-cases", MISSING, "models/none"],
    ["record-cases", MISSING, "models/none"],
    ["dev", "models/none"],
]


@pytest.mark.parametrize("module", sorted(SERVE_MODULES))
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_missing_extra_is_named_before_anything_runs(
    argv: list[str],
    module: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(_MODULES, module, None)
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"mmepack: error: `mmepack {argv[0]}` ")
    assert "the 'serve' extra" in lines[0]
    assert "pip install 'mmepack[serve]'" in lines[0]
    assert f"cannot import {module} (from {SERVE_MODULES[module]})" in lines[0]
    assert MISSING not in lines[0].split("from a checkout")[0]
    assert captured.out == ""
    # Nothing was made in the working directory either.
    assert list(tmp_path.iterdir()) == []


def test_loadtest_against_a_url_needs_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pytriton", "onnxruntime"):
        monkeypatch.setitem(_MODULES, module, None)
    assert missing_for_serve() == ["pytriton", "onnxruntime"]
    parser = argparse.ArgumentParser()
    add_loadtest_arguments(parser)
    args = parser.parse_args(["--endpoint-url", "http://127.0.0.1:9", "--p99-ms", "0"])
    # It gets past the extras check to its own option checks.
    with pytest.raises(MmepackError, match="--p99-ms: expected milliseconds above 0"):
        run_loadtest(args)


def test_a_plain_pex_names_the_serve_pex_beside_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # pex sets PEX to the file it runs from; the library then lives outside any site-packages.
    monkeypatch.setenv("PEX", str(tmp_path / "cli.pex"))
    monkeypatch.setitem(_MODULES, "onnxruntime", None)
    assert cli.main(["endpoint", MISSING]) == 1
    line = capsys.readouterr().err
    assert "pip install 'mmepack[serve]'" in line
    assert f"this PEX (cli.pex) leaves the extra out: run `{tmp_path / 'cli-serve.pex'}`" in line
    assert "./pants package src/mmepack:cli-serve" in line


def test_outside_a_pex_no_pex_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PEX", raising=False)
    monkeypatch.setitem(_MODULES, "onnxruntime", None)
    assert cli.main(["endpoint", MISSING]) == 1
    assert "cli-serve.pex" not in capsys.readouterr().err
