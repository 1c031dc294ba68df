"""Which requirements no Python step imports: what the size warning can tell a user to drop.

A warning that the environment dominates the artifact is only worth printing when it names
something to do. For a model whose environment is numpy plus one small package that its steps
import, there is nothing to drop (Triton's own Python backend needs numpy), so no warning. A
requirement is named only when no step's code imports any module it installs and no package a
step does import depends on it: the steps' imports are read from their source (`ast`), the
modules and dependencies of each distribution from the built environment's own `.dist-info`
(so `pillow` is known as `PIL`, whatever the distribution's name looks like).
"""

from __future__ import annotations

import ast
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from mmepack.artifact.gzip_member import ContentStream
from mmepack.environment.probe import top_level_from_record
from mmepack.environment.requirements import canonical_name, read_requirements, requirement_names
from mmepack.model.repository import ModelDirectory

# Triton's python backend imports numpy itself (triton_python_backend_utils): never unused.
_ALWAYS_NEEDED = {"numpy"}
_DIST_INFO_RE = re.compile(
    r"(?:^|/)site-packages/(?P<dist>[^/]+)\.dist-info/(?P<file>top_level\.txt|RECORD|METADATA)$"
)
_ENV_PYTHON_RE = re.compile(r"^(?:\./)?lib/python(3\.\d+)/")
_REQUIRES_RE = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)", re.MULTILINE)


@dataclass
class Distribution:
    """What one installed distribution provides (top-level modules) and needs (dependencies)."""

    modules: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)


@dataclass
class EnvironmentContents:
    """What the packager needs from inside a packed environment, read in one pass: its Python
    (`3.X`, from its `lib/python3.X/` folder; None when it has none) and its distributions."""

    python: str | None = None
    distributions: dict[str, Distribution] = field(default_factory=dict)


def _scan(tar: tarfile.TarFile) -> EnvironmentContents:
    found = EnvironmentContents()
    records: dict[str, str] = {}
    for member in tar:
        if found.python is None:
            python = _ENV_PYTHON_RE.match(member.name)
            if python is not None:
                found.python = python.group(1)
        match = _DIST_INFO_RE.search(member.name)
        if match is None or not member.isfile():
            continue
        handle = tar.extractfile(member)
        if handle is None:
            continue
        text = handle.read().decode("utf-8", errors="replace")
        name = canonical_name(match.group("dist").split("-")[0])
        dist = found.distributions.setdefault(name, Distribution())
        if match.group("file") == "top_level.txt":
            dist.modules = [n.strip() for n in text.split() if n.strip()]
        elif match.group("file") == "RECORD":
            records[name] = text
        else:
            dist.requires = [canonical_name(r) for r in _REQUIRES_RE.findall(text)]
    for name, text in records.items():
        if not found.distributions[name].modules:
            found.distributions[name].modules = top_level_from_record(text)
    return found


def read_environment(content: ContentStream) -> EnvironmentContents | None:
    """`EnvironmentContents` of a packed environment's plain tar, read from the front once (as
    the artifact writer inflates it to splice it); None when it is no tar."""
    try:
        with tarfile.open(fileobj=cast(IO[bytes], content), mode="r|") as tar:
            return _scan(tar)
    except tarfile.TarError:
        return None


def environment_distributions(env_archive: Path) -> dict[str, Distribution]:
    """Read every `.dist-info` of a packed environment (a conda-pack tar or tar.gz), in one
    streaming pass: canonical distribution name -> its modules and dependencies."""
    with tarfile.open(env_archive, mode="r|*") as tar:
        return _scan(tar).distributions


def imported_modules(directory: ModelDirectory) -> set[str]:
    """Top-level modules the Python steps' code imports (every `.py` in their folders)."""
    modules: set[str] = set()
    for model in directory.models:
        if not model.is_python:
            continue
        for source in sorted(model.folder.rglob("*.py")):
            try:
                tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
            except (OSError, UnicodeDecodeError, SyntaxError):
                continue  # validation reports unreadable steps; no guess here
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def unused_requirements(
    directory: ModelDirectory, requirements: Path, dists: dict[str, Distribution]
) -> list[str]:
    """Requirements (by canonical name, in file order) that no step imports and that no
    imported distribution needs, directly or through others."""
    listed = requirement_names(read_requirements(requirements, directory.name))
    imported = imported_modules(directory)
    used = {
        name
        for name, dist in dists.items()
        if imported.intersection(dist.modules or [name.replace("-", "_")])
    }
    pending = list(used)
    while pending:
        for needed in dists.get(pending.pop(), Distribution()).requires:
            if needed not in used:
                used.add(needed)
                pending.append(needed)
    # A name the environment has no record of (a URL requirement, say) is left out: no claim
    # is made about what is not known.
    return [name for name in listed if name in dists and name not in used | _ALWAYS_NEEDED]
