"""The newcomer's commands are stated once: the getting-started page's bash blocks.

tests/e2e_newcomer_clone.py runs those blocks as written in a clean clone (minutes, in CI). This
fast check keeps the README's "Five minutes to a first model" block equal to them (comments and
spacing aside), so the README cannot promise other commands than the ones CI runs, and that the
page still names the model the end-to-end test then inspects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import e2e_newcomer_clone as newcomer

REPO = Path(__file__).resolve().parents[1]
README_HEADING = "## Five minutes to a first model"


def _commands(text: str) -> list[str]:
    """Each command line without its comment and with single spaces."""
    commands = []
    for line in text.splitlines():
        command = re.sub(r"(^|\s)#.*$", "", line).strip()
        if command:
            commands.append(" ".join(command.split()))
    return commands


def test_the_page_has_the_newcomers_commands_and_names_a_model() -> None:
    blocks = newcomer.page_blocks(REPO / newcomer.PAGE)
    assert _commands("\n".join(blocks)), f"{newcomer.PAGE}: its bash blocks hold no command"
    assert newcomer.page_model(blocks)


def test_readme_block_is_the_pages_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert README_HEADING in readme, f"README.md: no {README_HEADING!r} section"
    section = readme.split(README_HEADING, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert found, f"README.md {README_HEADING!r}: no ```bash block"
    page = _commands("\n".join(newcomer.page_blocks(REPO / newcomer.PAGE)))
    assert _commands(found.group(1)) == page, (
        f"README.md's {README_HEADING!r} block differs from the bash blocks of "
        f"{newcomer.PAGE}, which CI runs: make them the same commands"
    )


def test_the_xtrace_timer_splits_top_level_commands() -> None:
    trace = (
        "+ 10.0 ./pants package x\n++ 10.5 nested\n+ 12.0 PEX_SCRIPT=dvc\n"
        "+ 12.0 python3.11 y\nnoise\n"
    )
    assert newcomer._timed_commands(trace, 15.0) == [
        ("./pants package x", 2.0),
        ("PEX_SCRIPT=dvc python3.11 y", 3.0),
    ]


def test_the_page_runs_with_the_shells_path_not_the_pyenv_shims() -> None:
    root = "/home/u/.pyenv"
    shell = "/home/u/.pyenv/shims:/home/u/.pyenv/bin:/usr/bin:/bin"
    shimmed = (
        "/home/u/.pyenv/versions/3.11.7/bin:/home/u/.pyenv/libexec:"
        "/home/u/.pyenv/plugins/python-build/bin:/home/u/.pyenv/plugins/pyenv-virtualenv/bin:"
        + shell
    )
    assert newcomer.shell_path(shimmed, root) == shell
    assert newcomer.shell_path(shimmed, root + "/") == shell
    # Only the leading run the shim adds: the user's own later entries stay.
    own = "/usr/bin:/home/u/.pyenv/versions/3.11.7/bin"
    assert newcomer.shell_path(own, root) == own
    assert newcomer.shell_path(shimmed, None) == shimmed


def test_empty_caches_include_the_pex_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MMEPACK_NEWCOMER_CACHE", str(cache))
    monkeypatch.setenv("PEX_ROOT", "/somewhere/warm")
    env = newcomer.newcomer_env(tmp_path)
    assert env["XDG_CACHE_HOME"] == str(cache.resolve())
    assert env["PEX_ROOT"] == str(cache.resolve() / "pex")
