"""Prints the generated reference pages of the library: the CLI and the defaults.

    ./pants run docs/gen/reference.py -- cli > docs/reference/cli.md
    ./pants run docs/gen/reference.py -- defaults > docs/reference/defaults.md

Both pages are rendered from the code itself (the argparse parsers of `mmepack`; the library's
`DEFAULT_*` constants, file names and `MMEPACK_*` variables), so they cannot say what the code
does not do. `tests/test_docs_reference.py` fails when a committed page differs from what this
prints, e.g. after a new flag, and names the command above. The Pants page needs Pants itself:
see `docs/gen/pants_reference.py`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mmepack
import mmepack_contract

PAGES = ("cli", "defaults")
# Only these variables may be seen while the parsers are built: defaults read from the
# environment (`--staging-bucket`: $MMEPACK_STAGING_BUCKET) must not leak one machine's values
# into the page.
_KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
_GENERATED_BY = "docs/gen/reference.py"


def regenerate_command(page: str) -> str:
    return f"./pants run {_GENERATED_BY} -- {page} > docs/reference/{page}.md"


def _header(title: str, page: str, source: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"<!-- Generated from {source} by {_GENERATED_BY}; do not edit by hand. Regenerate with",
        f"     {regenerate_command(page)} -->",
        "",
    ]


def md(text: str) -> str:
    """Markdown-safe text for a table cell: `<model>` would otherwise be swallowed as HTML.

    Code spans (between backticks) are left alone, since Markdown shows them literally.
    """
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        part = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = part.replace("*", "\\*").replace("|", "\\|")
    return "`".join(parts).replace("\n", " ")


def code(text: str) -> str:
    """A value as a code span (table-safe: a `|` inside one still splits a table row)."""
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


# --- the CLI ----------------------------------------------------------------------------------


@contextmanager
def _plain_environment() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({k: v for k, v in saved.items() if k in _KEPT_VARIABLES})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its actions in this one attribute
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _expanded_help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        text = text % {**params, "prog": prog}
    return text


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.option_strings:
        return action.dest.upper()
    return action.dest


def _argument_name(action: argparse.Action) -> str:
    if not action.option_strings:
        name = _metavar(action)
        return f"{name} ..." if action.nargs in ("+", "*") else name
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    return f"{flags} {_metavar(action)}"


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.default in (None, "", argparse.SUPPRESS):
        return ""
    if action.nargs == 0:
        return "on" if action.default is True else "off"
    if action.default is None or action.default == "":
        return ""
    return code(str(action.default))


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| Argument | Default | Description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        description = md(_expanded_help(action, parser.prog))
        if action.choices is not None:
            choices = ", ".join(code(str(c)) for c in action.choices)
            if description and description[-1] not in ".:;)":
                description += "."
            description = f"{description} One of: {choices}.".strip()
        rows.append(f"| {code(_argument_name(action))} | {_default(action)} | {description} |")
    return rows


def _synopsis(parser: argparse.ArgumentParser) -> str:
    words = [parser.prog]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        word = _argument_name(action).split(", ")[-1] if action.option_strings else None
        if word is None:
            word = _argument_name(action)
            words.append(word)
        elif action.required:
            words.append(word)
        else:
            words.append(f"[{word}]")
    return " ".join(words)


def cli_page() -> str:
    from mmepack.cli import build_parser

    with _plain_environment():
        parser = build_parser()
    commands = _subcommands(parser)
    helps = _subcommand_help(parser)
    lines = _header("Command line reference", "cli", "the argparse parsers of `mmepack`")
    lines += [
        f"{md(parser.description or '')} Every command prints `mmepack: error: ...` and exits 1 "
        "on a problem it can name.",
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    for name in commands:
        lines.append(f"| [`{name}`](#mmepack-{name}) | {md(helps.get(name, ''))} |")
    lines += ["", "Options of `mmepack` itself:", "", *_argument_rows(parser)]
    for name, sub in commands.items():
        lines += [
            "",
            f"## mmepack {name}",
            "",
            md(helps.get(name, "")),
            "",
            "```text",
            _synopsis(sub),
            "```",
            "",
        ]
        if sub.description:
            lines += [md(sub.description), ""]
        lines += _argument_rows(sub)
    return "\n".join(lines) + "\n"


# --- the library's defaults -------------------------------------------------------------------


def _constants(path: Path, names: re.Pattern[str], *, grouped: bool) -> Iterator[tuple[str, str]]:
    """(name, the comment right above it) for each module-level constant whose name matches.

    `grouped`: a comment also covers the assignments below it until a blank line, as
    `mmepack.names` writes `BUILD_FILE` and `PANTS_CONFIG` under one comment.
    """
    source = path.read_text()
    lines = source.splitlines()
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if not (isinstance(target, ast.Name) and names.fullmatch(target.id)):
                continue
            comment: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].strip():
                stripped = lines[row].strip()
                if stripped.startswith("#"):
                    comment.insert(0, stripped.lstrip("#").strip())
                elif comment or not grouped:
                    break
                row -= 1
            yield target.id, " ".join(comment)


def _value(value: Any) -> str:
    if isinstance(value, Path):
        return code(str(value))
    return code(repr(value))


def _modules() -> list[tuple[str, Path]]:
    """The library's modules and its contract with the plugin's (which names some variables)."""
    found = []
    for package in (mmepack, mmepack_contract):
        assert package.__file__ is not None
        root = Path(package.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root.parent).with_suffix("")
            module = ".".join(relative.parts)
            found.append((module.removesuffix(".__init__"), path))
    return found


# A variable is read where the code passes its name to os.environ/os.getenv, or names it in a
# module-level `*_VARIABLE` constant (the library's way of spelling a variable once).
_READ = re.compile(r"(?:environ\.get\(|getenv\(|environ\[)\s*f?[\"'](MMEPACK_[A-Z0-9_]+)")
_VARIABLE_CONSTANT = re.compile(r"[A-Z0-9_]+_VARIABLE")


# The settings a reader looks up by name: (setting, the command whose flag sets it, the flag,
# where Pants takes it). The default is read from that flag (its value, else its help's
# "default ..." words); tests/test_docs_reference.py checks each Pants key against pants.md.
SETTINGS = (
    ("environment Python", "build-env", "--python", "[mmepack].python_version|python_version"),
    ("environment builder", "build-env", "--builder", "[mmepack].builder"),
    ("target Triton server", "build-env", "--triton-version", "[triton-server].version"),
    ("that server's stub Python", "build-env", "--stub-python", "[triton-server].stub_python"),
    ("environment cache", "build-env", "--cache-dir", ""),
    ("shared DVC weights cache", "pull-weights", "--dvc-cache", ""),
    ("glibc of the target hosts", "lock", "--glibc", ""),
    ("local endpoint port", "endpoint", "--port", ""),
    ("S3 key prefix", "publish", "--prefix", "[mmepack-publish].prefix"),
    ("staging bucket", "publish", "--staging-bucket", "[mmepack-publish].staging_bucket"),
    ("production bucket", "publish", "--production-bucket", "[mmepack-publish].production_bucket"),
    ("git commit in the manifest", "publish", "--commit", ""),
)
_HELP_DEFAULT = re.compile(r"\(?default:? ([^)]*)\)?")


def pants_keys(where: str) -> list[str]:
    """`[scope].option` keys and `triton_model` fields (bare names) of a SETTINGS row."""
    return [key for key in where.split("|") if key]


def _settings_rows() -> list[str]:
    from mmepack.cli import build_parser

    with _plain_environment():
        commands = _subcommands(build_parser())
    rows = [
        "| Setting | Command line | `pants.toml` / BUILD | Default |",
        "|---|---|---|---|",
    ]
    for setting, command, flag, where in SETTINGS:
        action = next((a for a in commands[command]._actions if flag in a.option_strings), None)
        if action is None:
            raise SystemExit(
                f"reference: error: docs/gen/reference.py SETTINGS: `mmepack {command}` has no "
                f"{flag}; update the row for {setting!r}"
            )
        if action.default not in (None, ""):
            default = code(str(action.default))
        else:
            found = _HELP_DEFAULT.search(action.help or "")
            default = md(found.group(1)) if found else ""
        keys = [
            f"`{key}`" if key.startswith("[") else f"`triton_model({key}=...)`"
            for key in pants_keys(where)
        ]
        pants = ", ".join(keys) or "(none)"
        rows.append(f"| {setting} | `{command} {flag}` | {pants} | {default} |")
    return rows


def defaults_page() -> str:
    lines = _header(
        "Defaults",
        "defaults",
        "the library's `DEFAULT_*` constants, `mmepack.names` and its `MMEPACK_*` variables",
    )
    lines += [
        "Every default has one owner, the library: the CLI's flags and the Pants options fall "
        "back to these values when unset, and the Pants options pass a value to `mmepack` only "
        "when you set one, so a hand-run `mmepack` and `./pants` agree ([CLI](cli.md), "
        "[Pants](pants.md)).",
        "",
        "## Settings",
        "",
        *_settings_rows(),
        "",
        "## Default values",
        "",
        "Each `DEFAULT_*` constant of the library, with the comment the code gives it.",
        "",
        "| Name | Value | Module | Why |",
        "|---|---|---|---|",
    ]
    variables: dict[str, set[str]] = {}
    why: dict[str, str] = {}
    for module, path in _modules():
        source = path.read_text()
        for variable in _READ.findall(source):
            variables.setdefault(variable, set()).add(module)
        if "_VARIABLE" in source:
            loaded = importlib.import_module(module)
            for name, comment in _constants(path, _VARIABLE_CONSTANT, grouped=False):
                variable = getattr(loaded, name)
                if isinstance(variable, str) and variable.startswith("MMEPACK_"):
                    variables.setdefault(variable, set()).add(module)
                    why[variable] = " ".join(filter(None, (why.get(variable), comment)))
        if "DEFAULT_" not in source:
            continue
        loaded = importlib.import_module(module)
        for name, comment in _constants(path, re.compile(r"DEFAULT_[A-Z0-9_]+"), grouped=False):
            value = _value(getattr(loaded, name))
            lines.append(f"| `{name}` | {value} | `{module}` | {md(comment)} |")
    lines += [
        "",
        "## File names",
        "",
        "What a model directory holds, what the build writes and what Triton looks for, from "
        "`mmepack_contract` (what the Pants plugin needs as well: names, patterns, variables "
        "and report schemas, with the contract's version) and `mmepack.names` (the rest); each "
        "is spelled in one place.",
        "",
        "| Name | Value | Why |",
        "|---|---|---|",
    ]
    for source in ("mmepack_contract", "mmepack.names"):
        names = importlib.import_module(source)
        assert names.__file__ is not None
        for name, comment in _constants(
            Path(names.__file__), re.compile(r"[A-Z][A-Z0-9_]+"), grouped=True
        ):
            lines.append(f"| `{name}` | {_value(getattr(names, name))} | {md(comment)} |")
    lines += [
        "",
        "## Environment variables",
        "",
        "The `MMEPACK_*` variables the library reads (a name ending in `_` is a prefix, e.g. "
        "`MMEPACK_PYTHON_3_11`), with the comment of the constant that names it, if any.",
        "",
        "| Variable | Read in | Why |",
        "|---|---|---|",
    ]
    for variable in sorted(variables):
        modules = ", ".join(f"`{m}`" for m in sorted(variables[variable]))
        lines.append(f"| `{variable}` | {modules} | {md(why.get(variable, ''))} |")
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    if page == "cli":
        return cli_page()
    if page == "defaults":
        return defaults_page()
    raise SystemExit(f"reference: error: unknown page {page!r}; expected one of {PAGES}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a generated reference page.")
    parser.add_argument("page", choices=PAGES)
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
