"""Which members of two artifacts differ, so a refused publish says why its bytes changed.

A published version is never overwritten, and "different sha256" alone does not say whether the
model really changed (a new config, new weights) or the build was not reproducible (the same
files packed differently). Both tars are read as streams (the published one straight from S3),
each member reduced to a digest of its content and mode, and packed Python environments
(`*.tar.gz` and `*.tar` members) are opened the same way, so the answer names the files that
changed, down to a file inside `python_env.tar`.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mmepack.artifact.gzip_tar import open_tar_stream
from mmepack.names import ARTIFACT_SUFFIX

# The artifact's one shared environment is a plain tar (`python_env.tar`): opened the same way.
_PLAIN_TAR = ".tar"
# Separates an archive member from a member inside it: `step/python_env.tar.gz!lib/x.py`.
NESTED = "!"
_CHUNK = 1 << 20


def _content_digest(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _describe_entry(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "directory"
    if member.issym():
        return f"symlink -> {member.linkname}"
    if member.islnk():
        return f"hardlink -> {member.linkname}"
    return f"mode {member.mode & 0o7777:04o}"


def member_digests(stream: IO[bytes], *, nested: bool = True) -> dict[str, str]:
    """name -> "<sha256> <mode>" (or the kind of a non-file) for every member of a tar.gz read
    sequentially from `stream`; members of nested `*.tar.gz` files are listed as `outer!inner`,
    and the nested archive's own bytes are listed under its name as well."""
    found: dict[str, str] = {}
    with open_tar_stream(stream) as tar:
        for member in tar:
            kind = _describe_entry(member)
            if not member.isfile():
                found[member.name] = kind
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            if nested and member.name.endswith((ARTIFACT_SUFFIX, _PLAIN_TAR)):
                data = handle.read()
                found[member.name] = f"{hashlib.sha256(data).hexdigest()} {kind}"
                try:
                    inner = member_digests(io.BytesIO(data), nested=False)
                except tarfile.TarError:
                    continue
                for name, digest in inner.items():
                    found[f"{member.name}{NESTED}{name}"] = digest
            else:
                found[member.name] = f"{_content_digest(handle)} {kind}"
    return found


def artifact_digests(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        return member_digests(handle)


@dataclass(frozen=True)
class MemberDiff:
    changed: tuple[str, ...]
    only_published: tuple[str, ...]
    only_local: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.changed or self.only_published or self.only_local)


def diff_members(published: dict[str, str], local: dict[str, str]) -> MemberDiff:
    names = sorted(set(published) | set(local))
    return MemberDiff(
        changed=tuple(
            n for n in names if n in published and n in local and published[n] != local[n]
        ),
        only_published=tuple(n for n in names if n in published and n not in local),
        only_local=tuple(n for n in names if n in local and n not in published),
    )


def _outer_only(names: tuple[str, ...], diff: MemberDiff) -> list[str]:
    """Nested archives whose bytes differ though every file inside is the same."""
    nested_changes = {
        n.split(NESTED, 1)[0]
        for n in (*diff.changed, *diff.only_published, *diff.only_local)
        if NESTED in n
    }
    return [
        n
        for n in names
        if NESTED not in n and n.endswith(ARTIFACT_SUFFIX) and n not in nested_changes
    ]


def describe(diff: MemberDiff, limit: int = 12) -> str:
    """A few lines for a human: what changed, and whether it looks like a real change."""
    if diff.empty:
        return (
            "every member has the same content and mode in both tars, so only the tar's own "
            "metadata (member times, owners, order or compression) differs: a reproducibility "
            "problem of the build, not a change of the model"
        )
    lines = []
    repacked = _outer_only(diff.changed, diff)
    for label, names in (
        ("changed", diff.changed),
        ("only in the published object", diff.only_published),
        ("only in this artifact", diff.only_local),
    ):
        if names:
            shown = ", ".join(names[:limit]) + (
                f" and {len(names) - limit} more" if len(names) > limit else ""
            )
            lines.append(f"{label} ({len(names)}): {shown}")
    if repacked:
        lines.append(
            f"{', '.join(repacked)}: same files inside, different archive bytes (member times, "
            "owners, order or compression): a reproducibility problem, not a change"
        )
    return "\n".join(lines)


def describe_difference(published: IO[bytes], local: Path, limit: int = 12) -> str:
    """Compare the published artifact (a stream, e.g. an S3 body) with a local one."""
    return describe(diff_members(member_digests(published), artifact_digests(local)), limit)
