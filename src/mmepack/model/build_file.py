"""The settings a model's Pants BUILD file gives its `triton_model` target, for the CLI.

`mmepack package` and `./pants package` must build the same artifact from the same model, so
the CLI reads what Pants reads instead of applying its own default: the target's
`python_version`, else `[mmepack].python_version` in pants.toml, else the library default.
A BUILD file mmepack cannot read statically (a computed value, several `triton_model`
targets) is refused with the fix, never guessed around.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from mmepack.environment.request import DEFAULT_PYTHON
from mmepack.errors import MmepackError
from mmepack.names import BUILD_FILE, PANTS_CONFIG

TARGET_TYPE = "triton_model"
_FIELD = "python_version"


def _triton_model_calls(path: Path) -> list[ast.Call]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise MmepackError(f"{path}:{exc.lineno}: not valid BUILD syntax: {exc.msg}") from None
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == TARGET_TYPE
    ]


def build_file_python(model_dir: Path) -> str | None:
    """The `python_version` the model's BUILD file sets on its `triton_model`, or None."""
    path = model_dir / BUILD_FILE
    if not path.is_file():
        return None
    calls = _triton_model_calls(path)
    if len(calls) > 1:
        raise MmepackError(
            f"{path}:{calls[1].lineno}: {len(calls)} {TARGET_TYPE} targets; a model directory "
            "has one, so say which Python to build with: pass --python"
        )
    for call in calls:
        for keyword in call.keywords:
            if keyword.arg != _FIELD:
                continue
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            raise MmepackError(
                f"{path}:{value.lineno}: {TARGET_TYPE}.{_FIELD} is not a string literal, so "
                f'mmepack cannot read it without Pants; write it as {_FIELD}="3.X" or pass '
                "--python"
            )
    return None


def pants_toml_python(start: Path) -> str | None:
    """`[mmepack].python_version` of the nearest pants.toml at or above `start`, or None."""
    for folder in [start.resolve(), *start.resolve().parents]:
        config = folder / PANTS_CONFIG
        if config.is_file():
            try:
                data = tomllib.loads(config.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise MmepackError(f"{config}: not valid TOML: {exc}") from None
            value = data.get("mmepack", {}).get(_FIELD)
            return str(value) if value else None
    return None


def model_python(model_dir: Path, given: str | None) -> str:
    """The environment Python for `model_dir`, as Pants would choose it.

    `given` (the --python flag) must agree with a BUILD file that sets one: two definitions
    that differ would make the CLI and Pants build different artifacts of one version.
    """
    declared = build_file_python(model_dir)
    if given and declared and given != declared:
        raise MmepackError(
            f'{model_dir / BUILD_FILE}: {TARGET_TYPE} sets {_FIELD}="{declared}" but --python '
            f"is {given}; the CLI and Pants must build the same artifact, so change one of them"
        )
    return given or declared or pants_toml_python(model_dir) or DEFAULT_PYTHON
