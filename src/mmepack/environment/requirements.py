"""Read a model's requirements.txt the way the environment cache and the proof need it.

Two questions only: which text identifies the environment (so that cosmetic edits such as
comments, blank lines, case or order do not rebuild minutes of pip work), and which
distributions the model asked for by name (so the proof can import each of them).
"""

from __future__ import annotations

import re
from pathlib import Path

from mmepack.errors import MmepackError, model_prefix

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


def read_requirements(path: Path, label: str = "") -> str:
    """The file's text, or an error naming the model and saying what belongs there."""
    if not path.is_file():
        raise MmepackError(
            f"{model_prefix(label)}{path} is missing; list the Python steps' packages there "
            "(numpy is always added)"
        )
    return path.read_text(encoding="utf-8")
