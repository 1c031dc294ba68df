"""The newcomer's commands are stated once: the getting-started page's bash blocks.

tests/e2e_newcomer_clone.py runs those blocks as written in a clean clone (minutes, in CI). This
fast check keeps the README's "Five minutes to a first model" block equal to them (comments and
spacing aside), so the README cannot promise other commands than the ones CI runs, and that the
page still names the model the end-to-end test then inspects.
"""

from __future__ import annotations

import re
from pathlib import Path

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
