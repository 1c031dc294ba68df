"""The version of this repository's own distributions, `mmepack`, `mmepack-pants` and
`mmepack-contract` (what the first two share, which both require at this version).

All three wheels carry one version, and its only source is `__version__` in
`src/mmepack/__init__.py` (the library owns it; `mmepack --version` prints it). The BUILD files'
`python_artifact(...)` give no `version`, so it cannot drift between the wheels, their
`mmepack-contract==<version>` requirements and the CLI. A consumer repository's own distributions are left
alone: the hook applies only to targets that provide one of these two names.

The plugin's wheel pins the Pants it was built and tested with (`pantsbuild.pants==<the
running Pants>`): `pants_requirements()` only allows a release series, and a plugin's rules are
written against one Pants API. Its BUILD target excludes that looser requirement (`!!`).
"""

from __future__ import annotations

import ast

from pants.backend.python.util_rules.package_dists import SetupKwargs, SetupKwargsRequest
from pants.engine.fs import GlobMatchErrorBehavior, PathGlobs
from pants.engine.rules import collect_rules, rule
from pants.engine.target import Target
from pants.engine.unions import UnionRule
from pants.version import PANTS_SEMVER

from mmepack_pants import engine
from mmepack_pants.tool_lock import PLUGIN_DISTRIBUTION

VERSION_FILE = "src/mmepack/__init__.py"
DISTRIBUTIONS = ("mmepack", "mmepack-pants", "mmepack-contract")


def read_version(source: str, path: str = VERSION_FILE) -> str:
    """The string assigned to `__version__` in `source` (read, never imported: Pants runs 3.9)."""
    for node in ast.parse(source, filename=path).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise ValueError(
        f'{path}: expected a line `__version__ = "X.Y.Z"`, the single source of the version of '
        f"the {', '.join(DISTRIBUTIONS)} distributions; add it back"
    )


class MmepackSetupKwargsRequest(SetupKwargsRequest):
    @classmethod
    def is_applicable(cls, target: Target) -> bool:
        from pants.backend.python.target_types import PythonProvidesField

        return target[PythonProvidesField].value.kwargs.get("name") in DISTRIBUTIONS


@rule
async def mmepack_setup_kwargs(request: MmepackSetupKwargsRequest) -> SetupKwargs:
    kwargs = request.explicit_kwargs
    if "version" in kwargs:
        raise ValueError(
            f"{request.target.address}: python_artifact(version=...) is set; remove it, the "
            f"version comes from {VERSION_FILE} alone"
        )
    contents = await engine.contents_of(
        PathGlobs(
            [VERSION_FILE],
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=f"the version of {request.target.address}",
        ),
    )
    if not contents:
        raise ValueError(f"{VERSION_FILE} is missing; it holds the distributions' version")
    kwargs["version"] = read_version(contents[0].content.decode("utf-8"))
    if kwargs["name"] != PLUGIN_DISTRIBUTION:
        return SetupKwargs(kwargs, address=request.target.address)
    # Added to the requirements Pants finds, not instead of them. No `mmepack==<version>`: the
    # plugin is installed into Pants' own interpreter (3.7-3.9), where the library (3.11) cannot
    # be; the plugin runs the library as a tool in its own environment instead.
    kwargs["install_requires"] = [f"pantsbuild.pants=={PANTS_SEMVER}"]
    return SetupKwargs(kwargs, address=request.target.address, _allow_banned_keys=True)


def rules():
    return [*collect_rules(), UnionRule(SetupKwargsRequest, MmepackSetupKwargsRequest)]
