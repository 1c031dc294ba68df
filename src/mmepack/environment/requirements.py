"""Read a model's requirements.txt the way the environment cache and the proof need it.

Two questions only: which text identifies the environment (so that cosmetic edits such as
comments, blank lines, case or order do not rebuild minutes of pip work, while any change to a
file pulled in with -r or -c does), and which distributions the model asked for by name, in the
file or any -r include (so the proof can import each of them).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError, model_prefix
from mmepack.files import read_text

_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_NUMPY = "numpy"


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: `Pillow`, `pillow` and `PILLOW` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> list[str]:
    """Lines with comments removed and backslash continuations joined, as pip reads them."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw if raw.lstrip().startswith("--hash") else re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = " ".join((pending + line).split())
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(" ".join(pending.split()))
    return lines


def _normalise_line(line: str) -> str:
    tokens = line.split()
    hashes = sorted(t for t in tokens if t.startswith("--hash="))
    spec = "".join(t for t in tokens if not t.startswith("--hash="))
    match = _NAME_RE.match(spec)
    if match is not None:
        spec = canonical_name(match.group(1)) + spec[match.end() :]
    return " ".join([spec, *hashes])


def normalised_requirements(text: str) -> str:
    """The text the cache key covers: options first in file order, then requirement lines
    normalised (canonical names, no spaces, pinned hashes kept and sorted) and sorted."""
    lines = _logical_lines(text)
    options = [line for line in lines if line.startswith("-")]
    requirements = sorted(_normalise_line(line) for line in lines if not line.startswith("-"))
    return "\n".join(options + requirements) + "\n"


def requirement_names(text: str) -> list[str]:
    """Canonical names of the distributions listed by name (URLs and paths are left out:
    their names are only known once pip has built them)."""
    names: list[str] = []
    for line in _logical_lines(text):
        if line.startswith(("-", ".", "/")) or "://" in line.split("@")[0]:
            continue
        match = _NAME_RE.match(line)
        if match:
            name = canonical_name(match.group(1))
            if name not in names:
                names.append(name)
    return names


def mentions_numpy(text: str) -> bool:
    return _NUMPY in requirement_names(text)


# The long options pip reads in a requirements file (pip's req_file.SUPPORTED_OPTIONS and the
# per-requirement ones): optparse accepts any unambiguous prefix of them (`--requir=x`), so an
# abbreviation counts as an include only when it names one option alone.
_LONG_OPTIONS = (
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "--constraint",
    "--requirement",
    "--editable",
    "--find-links",
    "--no-binary",
    "--only-binary",
    "--prefer-binary",
    "--require-hashes",
    "--pre",
    "--trusted-host",
    "--use-feature",
    "--global-option",
    "--config-settings",
    "--hash",
)
_INCLUDE_LONG = {"--requirement": "-r", "--constraint": "-c"}


@dataclass(frozen=True)
class Include:
    """A `-r`/`-c` line: which file it pulls in, and whether as constraints."""

    target: str
    constraint: bool


def include_of(line: str) -> Include | None:
    """The file a logical line includes, in every form pip's option parser accepts: `-r x`,
    `-rx`, `--requirement x`, `--requirement=x`, an unambiguous prefix (`--req=x`), quoted
    names, and the same for `-c`/`--constraint`; None for any other line."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if not tokens or not tokens[0].startswith("-"):
        return None
    first, rest = tokens[0], tokens[1:]
    if first.startswith("--"):
        name, equals, value = first.partition("=")
        matches = [o for o in _LONG_OPTIONS if o == name] or [
            o for o in _LONG_OPTIONS if o.startswith(name)
        ]
        if len(matches) != 1 or matches[0] not in _INCLUDE_LONG:
            return None
        short = _INCLUDE_LONG[matches[0]]
        target = value if equals else (rest[0] if rest else "")
    elif first[:2] in ("-r", "-c"):
        short = first[:2]
        target = first[2:] if len(first) > 2 else (rest[0] if rest else "")
    else:
        return None
    return Include(target, short == "-c") if target else None


def includes(text: str) -> list[tuple[int, Include]]:
    """(logical line number, include) for every include in a requirements file's text: the one parser both the environment cache key and the lock's staleness check use,
    so a form one follows the other cannot miss."""
    return [
        (number, found)
        for number, line in enumerate(_logical_lines(text), start=1)
        if (found := include_of(line)) is not None
    ]


# How a constraint file's lines appear in the expanded text: as option lines, so that the cache
# key covers them (options are kept) but no constraint is taken for a package to import.
CONSTRAINT_PREFIX = "--constraint-entry "
_MAX_INCLUDE_DEPTH = 20


def _read_one(path: Path, label: str, where: str) -> str:
    if not path.is_file():
        raise MmepackError(
            f"{model_prefix(label)}{where}{path} is missing; list the Python steps' packages "
            "there (numpy is added, within what the target Triton release supports)"
        )
    return read_text(path, "requirements file")


def _expand(path: Path, label: str, seen: set[Path], depth: int, where: str) -> list[str]:
    """Logical lines of `path` with every -r include inlined after its line and every -c
    include's lines inlined as CONSTRAINT_PREFIX options."""
    if depth > _MAX_INCLUDE_DEPTH:
        raise MmepackError(
            f"{model_prefix(label)}{path}: requirements files include each other more than "
            f"{_MAX_INCLUDE_DEPTH} levels deep; flatten them"
        )
    resolved = path.resolve()
    if resolved in seen:
        return []
    seen.add(resolved)
    lines: list[str] = []
    text = _read_one(path, label, where)
    found = dict(includes(text))
    for number, line in enumerate(_logical_lines(text), start=1):
        lines.append(line)
        include = found.get(number)
        if include is None:
            continue
        target = include.target
        if "://" in target:
            raise MmepackError(
                f"{model_prefix(label)}{path}:{number}: includes {target}, a URL; the "
                "environment cache cannot tell when it changes: copy it beside the file"
            )
        included = path.parent / target
        inner = _expand(included, label, seen, depth + 1, f"{path}:{number}: included file ")
        if include.constraint:
            lines.extend(CONSTRAINT_PREFIX + entry for entry in inner)
        else:
            lines.extend(inner)
    return lines


def read_requirements(path: Path, label: str = "") -> str:
    """The requirements as pip will see them: the file's lines with every -r/-c include's lines
    inlined, so the cache key covers every file pulled in and the proof imports every package
    listed in any of them. Missing or unreadable files are errors naming the model and file."""
    return "\n".join(_expand(path, label, set(), 0, "")) + "\n"


def with_requirements(text: str, extra: list[str]) -> str:
    """`text` plus the `extra` requirement lines it lacks: what is actually installed, so what
    the environment cache key must cover (an added constraint such as `numpy<2` changes the
    environment even though the model's file did not change)."""
    present = set(normalised_requirements(text).splitlines())
    added = [line for line in extra if _normalise_line(line) not in present]
    return text.rstrip("\n") + "\n" + "\n".join(added) + "\n" if added else text


def numpy_pin_conflict(text: str, requirement: str) -> str | None:
    """`numpy==X` when `text` pins numpy exactly (as a lock does) to a version `requirement`
    (`numpy<N`) excludes; None otherwise. Other specifiers are left to pip, which refuses a
    conflict with the added requirement itself."""
    bound = re.fullmatch(r"numpy<(\d+)", requirement.replace(" ", ""))
    if bound is None:
        return None
    for line in _logical_lines(text):
        match = re.match(r"numpy\s*==\s*(\d+)(\.[\w.]*)?", line, re.IGNORECASE)
        if match and int(match.group(1)) >= int(bound.group(1)):
            return f"numpy=={match.group(1)}{match.group(2) or ''}"
    return None
