"""Read an artifact's tar.gz once from the front, bounded, and prove nothing hides in or after it.

Why this strictness: what tar and gzip tools do with an archive's edges differs, and a published
production object is permanent. GNU `tar -i` reads past the end-of-archive blocks and into a
second gzip member, so members hidden there (`../../tmp/x`, a link to /etc/shadow) escape every
check that stops at the first end marker; Python's `tarfile` silently ends an archive at a
damaged header; `tar -tzf` fails on bytes after the gzip stream. So an artifact is accepted only
when every reader sees the same thing:

- exactly one gzip member and nothing after it (mmepack's writer makes one: see
  mmepack.artifact.gzip_member);
- one tar whose end-of-archive marker is followed by nothing but zero bytes, and no damaged
  header anywhere;
- safe members only (`member_problem`), each name once;
- at most `ArtifactLimits.max_members` members and `unpacked_limit` unpacked bytes
  (mmepack.artifact.limits), counted as the gzip is inflated, so a gzip bomb is refused after
  reading its first few hundred MB instead of after inflating all of it; each check of a member
  is a set lookup, so the whole read is linear in the number of members.

`iter_members` yields each member while the tar is positioned on it (read it with
`tar.extractfile(member)`); the edge checks run when the iteration ends. Every problem is an
`ArtifactProblem` whose message names no file: callers prefix their own.
"""

from __future__ import annotations

import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Protocol, Self

from mmepack.artifact.limits import ArtifactLimits

_CHUNK = 1 << 20
_INPUT = 64 << 10
_GZIP_WBITS = 31  # zlib reads and checks one gzip header and trailer
_GZIP_MAGIC = b"\x1f\x8b"
# Modes an unpacked file must never carry: set-user/group-id and sticky bits, and write access
# for every local user.
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_WORLD_WRITABLE = stat.S_IWOTH


class Readable(Protocol):
    """What the reader needs of its input: a file opened for reading, or a wrapper of one."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArtifactProblem(Exception):
    """Why a stream is not an acceptable artifact tar.gz (the message names no file)."""


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member is unsafe to unpack on an MME host, or None when it is fine."""
    name = member.name
    path = PurePosixPath(name)
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return f"member {name!r} does not have a plain relative name"
    if any(part in ("..", "") for part in name.rstrip("/").split("/")) or path.is_absolute():
        return f"member {name!r} leaves the artifact's folder"
    if not (member.isreg() or member.isdir()):
        kind = (
            "a link"
            if member.issym() or member.islnk()
            else "a device or FIFO" if member.isdev() else "not a regular file"
        )
        return f"member {name!r} is {kind}; an artifact holds only regular files and folders"
    if member.mode & _SPECIAL_BITS:
        return (
            f"member {name!r} has mode {member.mode:04o} (setuid, setgid or sticky); an "
            "artifact's files need none of these: package it again with mmepack"
        )
    if member.mode & _WORLD_WRITABLE:
        return (
            f"member {name!r} has mode {member.mode:04o}, writable by every local user; "
            "package it again with mmepack (it writes 0644 files and 0755 folders)"
        )
    return None


class _OneGzipMember:
    """A readable file of the content of exactly one gzip member of `raw`, bounded in size.

    zlib is fed at most _INPUT bytes at a time and asked for at most _CHUNK bytes back
    (`max_length`), so memory stays at about one chunk whatever the expansion, and the input
    zlib has not used yet (copied on every call) stays small; past `limit` unpacked bytes it
    raises.
    """

    def __init__(self, raw: Readable, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._input = b""  # raw bytes read but not yet given to zlib
        self._pending = b""  # input zlib has not consumed yet
        self._starved = True  # zlib gave all it could from its input: feed it more
        self._started = False
        self._out = bytearray()
        self.unpacked = 0
        self.ended = False  # the member's trailer was read and checked

    def _feed(self) -> bytes:
        if not self._input:
            self._input = self._raw.read(_CHUNK)
            if not self._started:
                self._started = True
                if self._input[:2] != _GZIP_MAGIC:
                    raise ArtifactProblem("not a gzip file")
            if not self._input:
                raise ArtifactProblem(
                    "not a complete gzip tar: the gzip stream stops before its end (truncated)"
                )
        data, self._input = self._input[:_INPUT], self._input[_INPUT:]
        return data

    def _inflate_more(self) -> None:
        data = self._feed() if self._starved and not self._pending else self._pending
        try:
            piece = self._inflater.decompress(data, _CHUNK)
        except zlib.error as exc:
            raise ArtifactProblem(f"not a complete gzip tar: the gzip data is damaged ({exc})")
        self._pending = self._inflater.unconsumed_tail
        self._starved = len(piece) < _CHUNK
        self._out += piece
        self.unpacked += len(piece)
        if self._inflater.eof:
            self.ended = True
        if self.unpacked > self._limit:
            raise ArtifactProblem(
                f"it unpacks to more than {self._limit} bytes (a gzip bomb, or a model too "
                "big for the limits: see MMEPACK_MAX_UNPACKED_BYTES and "
                "MMEPACK_MAX_EXPANSION_RATIO)"
            )

    def read(self, size: int = -1) -> bytes:
        wanted = _CHUNK if size is None or size < 0 else size
        while len(self._out) < wanted and not self.ended:
            self._inflate_more()
        data = bytes(self._out[:wanted])
        del self._out[:wanted]
        return data

    def check_nothing_after(self) -> None:
        """Refuse any byte after the one gzip member (a second member, or garbage)."""
        extra = self._inflater.unused_data + self._pending + self._input
        if not extra:
            extra = self._raw.read(_CHUNK)
        if extra:
            what = (
                "a second gzip member"
                if extra[:2] == _GZIP_MAGIC
                else f"{len(extra)}{'+' if len(extra) >= _CHUNK else ''} bytes that are not gzip"
            )
            raise ArtifactProblem(
                f"data follows the end of its gzip stream ({what}); some unpackers read it and "
                "some fail on it, so an artifact must be exactly one gzip stream"
            )


class _EndAwareInfo(tarfile.TarInfo):
    """A TarInfo whose reading refuses a damaged or missing header instead of letting `tarfile`
    take it for the end of the archive; only a zero block (the real end marker) ends it."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            # tarfile's subclasses of HeaderError are private: tell them apart by name.
            kind = type(exc).__name__
            if kind == "EOFHeaderError":  # a zero block: the real end marker
                raise
            if kind == "TruncatedHeaderError":
                raise ArtifactProblem(
                    "not a complete gzip tar: the tar stops inside a header (truncated)"
                ) from None
            if kind == "EmptyHeaderError":
                raise ArtifactProblem(
                    "not a complete gzip tar: the tar has no end-of-archive marker (zero blocks)"
                ) from None
            raise ArtifactProblem(
                f"not a complete gzip tar: damaged tar header at byte {tarfile_.offset} ({exc})"
            ) from None


def iter_members(
    raw: Readable, limits: ArtifactLimits, compressed_size: int | None
) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Each safe member of the tar.gz read from `raw` (see the module's doc), then the checks
    of what follows the tar's end and the gzip stream's end."""
    gunzip = _OneGzipMember(raw, limits.unpacked_limit(compressed_size))
    seen: set[str] = set()
    try:
        tar = tarfile.open(
            fileobj=gunzip, mode="r|", tarinfo=_EndAwareInfo  # type: ignore[call-overload]
        )
        with tar:
            for member in tar:
                if len(seen) >= limits.max_members:
                    raise ArtifactProblem(
                        f"it holds more than {limits.max_members} members; an mmepack artifact "
                        "holds a few dozen (raise MMEPACK_MAX_MEMBERS if this one is right)"
                    )
                problem = member_problem(member)
                if problem is not None:
                    raise ArtifactProblem(problem)
                name = member.name.rstrip("/")
                if name in seen:
                    raise ArtifactProblem(f"member {name!r} appears twice")
                seen.add(name)
                yield tar, member
            _check_zero_tail(tar)
        gunzip.check_nothing_after()
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArtifactProblem(
            f"not a complete gzip tar ({type(exc).__name__}: {exc}); it may be truncated or "
            "damaged"
        ) from None


def _check_zero_tail(tar: tarfile.TarFile) -> None:
    """After the end-of-archive block only zero bytes may follow, to the gzip member's end."""
    stream = tar.fileobj
    assert stream is not None
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        if chunk.count(0) != len(chunk):
            raise ArtifactProblem(
                f"data follows the tar's end-of-archive marker (at byte {tar.offset}); "
                "`tar -i` would unpack it although every check stops at the marker, so "
                "only zero padding may follow it"
            )
