"""The generated reference pages (docs/reference/cli.md, defaults.md) match the code.

Each page is what `docs/gen/reference.py` prints; a flag, command or default added to the code
without a regenerated page fails here, with the command that regenerates it. A second check
reads the page independently of its layout (every flag of every command is on it), and a third
proves the generator itself notices a new flag.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

import pytest

from docs.gen import reference
from mmepack import cli

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "docs" / "reference"


def _diff(committed: str, generated: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            f"{name} (committed)",
            f"{name} (from the code)",
        )
    )


@pytest.mark.parametrize("page", reference.PAGES)
def test_committed_page_is_what_the_code_says(page: str) -> None:
    path = PAGES / f"{page}.md"
    committed = path.read_text()
    generated = reference.render(page)
    assert committed == generated, (
        f"docs/reference/{page}.md is out of date with the code; regenerate it with\n"
        f"    {reference.regenerate_command(page)}\nand commit it. Difference:\n"
        f"{_diff(committed, generated, f'docs/reference/{page}.md')}"
    )


def test_every_flag_of_every_command_is_on_the_cli_page() -> None:
    text = (PAGES / "cli.md").read_text()
    parser = cli.build_parser()
    for name, sub in reference._subcommands(parser).items():
        assert f"## mmepack {name}\n" in text, f"cli.md has no section for `mmepack {name}`"
        section = text.split(f"## mmepack {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section or f", {flag}" in section, (
                        f"cli.md, `mmepack {name}`: no {flag}; regenerate with "
                        f"{reference.regenerate_command('cli')}"
                    )


def test_a_new_flag_changes_the_generated_page(monkeypatch: pytest.MonkeyPatch) -> None:
    build = cli.build_parser

    def with_new_flag() -> argparse.ArgumentParser:
        parser = build()
        reference._subcommands(parser)["package"].add_argument(
            "--brand-new-flag", default="x", help="added after the page was written"
        )
        return parser

    monkeypatch.setattr(cli, "build_parser", with_new_flag)
    generated = reference.render("cli")
    assert "`--brand-new-flag BRAND_NEW_FLAG` | `x` | added after the page was written |" in (
        generated
    )
    assert generated != (PAGES / "cli.md").read_text()


def test_environment_values_stay_out_of_the_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults read from the environment (--staging-bucket) must not leak a machine's values."""
    monkeypatch.setenv("MMEPACK_STAGING_BUCKET", "someones-private-bucket")
    assert "someones-private-bucket" not in reference.render("cli")
    assert "someones-private-bucket" not in reference.render("defaults")


def test_every_pants_key_the_defaults_page_names_is_a_real_option() -> None:
    """The settings table names Pants options; pants.md (checked against the plugin by
    docs/gen/pants_reference_test.py) must list each one."""
    pants_page = (PAGES / "pants.md").read_text()
    for setting, _, _, where in reference.SETTINGS:
        for key in reference.pants_keys(where):
            if key.startswith("["):
                scope, option = key[1:].split("].")
                wanted = f"`--{scope}-{option.replace('_', '-')}`"
            else:
                wanted = f"| `{key}` |"
            assert wanted in pants_page, f"SETTINGS row {setting!r}: {key} is not in pants.md"
