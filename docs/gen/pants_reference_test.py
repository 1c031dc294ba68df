"""docs/reference/pants.md is what docs/gen/pants_reference.py prints from the plugin.

A new target field, goal or option (or a changed default or help) without a regenerated page
fails here, with the command that regenerates it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from docs.gen import pants_reference

PAGE = Path("docs/reference/pants.md")


def test_committed_pants_page_is_what_the_plugin_says() -> None:
    committed = PAGE.read_text()
    generated = pants_reference.pants_page()
    if committed != generated:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"{PAGE} (committed)",
                f"{PAGE} (from the plugin)",
            )
        )
        raise AssertionError(
            f"{PAGE} is out of date with pants-plugins/mmepack_pants; regenerate it with\n"
            f"    {pants_reference.REGENERATE}\nand commit it. Difference:\n{diff}"
        )


def test_every_option_and_field_of_the_plugin_is_on_the_page() -> None:
    """Independent of the page's layout: each option's flag and each field's alias appear."""
    from pants.option.option_types import collect_options_info

    from mmepack_pants import register

    text = PAGE.read_text()
    for subsystem in pants_reference._subsystems():
        for info in collect_options_info(subsystem):
            flag = f"--{subsystem.options_scope}-{info.flag_names[0][2:]}"
            assert f"`{flag}`" in text, f"{PAGE}: no {flag}; regenerate it"
    for target in register.target_types():
        for field in target.core_fields:
            assert f"| `{field.alias}` |" in text, f"{PAGE}: no field {field.alias}; regenerate it"
