"""Prints docs/reference/pants.md from the Pants plugin: its targets, fields, goals and options.

    ./pants run docs/gen/pants_reference.py > docs/reference/pants.md

It reads the plugin's own classes (the target types `register.py` gives Pants, every
`Subsystem` in `mmepack_pants`) through Pants' option and field declarations, so it runs on
Pants' Python with Pants importable: the `pants-plugins` resolve.
`docs/gen/pants_reference_test.py` fails when the committed page differs from what this prints.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from enum import Enum
from typing import Any, Iterator, List, Tuple, Type

from pants.engine.target import Field, Target
from pants.option.option_types import collect_options_info
from pants.option.subsystem import Subsystem

import mmepack_pants
from mmepack_pants import register

REGENERATE = "./pants run docs/gen/pants_reference.py > docs/reference/pants.md"


def md(text: str) -> str:
    """Markdown-safe table text; code spans (between backticks) are left as written."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):
        part = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = part.replace("*", "\\*").replace("|", "\\|")
    return "`".join(parts)


def code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _help(value: Any) -> str:
    return str(value() if callable(value) else value or "")


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return code(str(value.value))
    if isinstance(value, (list, tuple)):
        return code(repr([v.value if isinstance(v, Enum) else v for v in value]))
    if isinstance(value, str):
        return code(repr(value))
    return code(repr(value))


def _field_rows(target: Type[Target]) -> List[str]:
    rows = ["| Field | Default | Description |", "|---|---|---|"]
    fields: Tuple[Type[Field], ...] = target.core_fields
    for field in fields:
        default = "required" if field.required else _value(getattr(field, "default", None))
        rows.append(f"| `{field.alias}` | {default} | {md(_help(field.help))} |")
    return rows


def _subsystems() -> Iterator[Type[Subsystem]]:
    """Every Subsystem (goals included) that a module of the plugin defines, by scope."""
    found = {}
    for info in pkgutil.iter_modules(mmepack_pants.__path__):
        if info.name.endswith("_test"):
            continue
        module = importlib.import_module(f"mmepack_pants.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Subsystem) and obj.__module__ == module.__name__:
                found[obj.options_scope] = obj
    for scope in sorted(found):
        yield found[scope]


def _option_rows(subsystem: Type[Subsystem]) -> List[str]:
    scope = subsystem.options_scope
    rows = ["| Option | Default | Description |", "|---|---|---|"]
    for info in collect_options_info(subsystem):
        options = info.flag_options
        flag = info.flag_names[0]
        key = flag[2:].replace("-", "_")
        variable = f"PANTS_{scope}_{key}".upper().replace("-", "_")
        where = f"`{key}`<br>`--{scope}-{flag[2:]}`<br>`{variable}`"
        description = md(_help(options.get("help")))
        if options.get("advanced"):
            description += " (advanced)"
        option_type = options.get("type")
        if inspect.isclass(option_type) and issubclass(option_type, Enum):
            choices = ", ".join(code(str(member.value)) for member in option_type)
            description += f" One of: {choices}."
        rows.append(f"| {where} | {_value(options.get('default'))} | {description} |")
    return rows


def pants_page() -> str:
    lines = [
        "# Pants reference",
        "",
        "<!-- Generated from pants-plugins/mmepack_pants by docs/gen/pants_reference.py; do not "
        "edit by hand. Regenerate with",
        f"     {REGENERATE} -->",
        "",
        "What the `mmepack_pants` plugin adds to Pants: target types with their fields, goals and "
        "options. An option is set in `pants.toml` under its scope (`[mmepack]`), as a flag "
        "or as an environment variable. Options left unset fall back to the library's "
        "[defaults](defaults.md); the [CLI](cli.md) takes the same values as flags.",
        "",
        "## Target types",
    ]
    for target in register.target_types():
        lines += ["", f"### `{target.alias}`", "", md(_help(target.help)), "", *_field_rows(target)]
    lines += ["", "## Goals and options"]
    for subsystem in _subsystems():
        scope = subsystem.options_scope
        kind = "goal" if getattr(subsystem, "name", None) == scope and _is_goal(subsystem) else ""
        title = f"`{scope}` goal" if kind else f"`[{scope}]`"
        lines += ["", f"### {title}", "", md(_help(subsystem.help)), ""]
        if any(True for _ in collect_options_info(subsystem)):
            lines += _option_rows(subsystem)
        else:
            lines.append("No options of its own.")
    return "\n".join(lines) + "\n"


def _is_goal(subsystem: Type[Subsystem]) -> bool:
    from pants.engine.goal import GoalSubsystem

    return issubclass(subsystem, GoalSubsystem)


if __name__ == "__main__":
    sys.stdout.write(pants_page())
