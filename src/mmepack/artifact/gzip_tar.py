"""A reproducible tar.gz writer that never compresses already-compressed bytes again.

Why not `tarfile.open(mode="w:gz")`: that pushes every byte through one deflate stream, so a
packed Python environment (itself gzip) is compressed a second time for nothing, and a plain
environment tar would be compressed on every package run although the environment build already
compressed it once (and cached the result).

The gzip format allows several members one after the other; every reader (Python's `gzip` and
`tarfile`, GNU tar, libarchive) decompresses them as one stream. So this writer ends the current
gzip member where such a file starts and then either
- copies an existing gzip file's bytes verbatim (`add_spliced`): its decompressed bytes become
  the tar member's content, e.g. the environment's `python_env.tar.gz` appears in the artifact as
  an uncompressed `python_env.tar`, compressed exactly once, by the environment build;
- or writes the content as stored (level 0) deflate blocks (`add_file(..., store=True)`), for a
  member that is itself a gzip file.

Everything else is compressed at the writer's level. Headers come from `tarfile.TarInfo.tobuf`
(PAX format) and the end of the archive is written as `tarfile` writes it, so the output is an
ordinary tar.gz; its bytes depend only on the inputs, the level and zlib's version.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path
from typing import IO

from mmepack.errors import MmepackError
from mmepack.files import open_regular

_CHUNK = 1 << 20
_GZIP_WBITS = 31  # zlib writes a gzip header: no name, time 0
_ENCODING = "utf-8"
_GZIP_MAGIC = b"\x1f\x8b"


def gzip_content_size(path: Path) -> int:
    """Decompressed size of a (possibly multi-member) gzip file, read once as a stream.

    The ISIZE trailer is only the size modulo 4 GiB and of the last member, so it is not used.
    """
    total = 0
    try:
        with open_regular(path) as handle:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    break
                while chunk:
                    total += len(inflater.decompress(chunk))
                    if inflater.eof:
                        chunk = inflater.unused_data
                        inflater = zlib.decompressobj(_GZIP_WBITS)
                    else:
                        chunk = b""
            total += len(inflater.flush())
    except zlib.error as exc:
        raise MmepackError(
            f"{path}: the Python environment is not a gzip file ({exc}); give the "
            "python_env.tar.gz that `mmepack build-env` (or conda-pack) wrote"
        ) from None
    return total


class _Prefixed:
    """Give back bytes already read (to sniff the format) before the rest of a stream."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(size)
        if size < 0:
            data, self._prefix = self._prefix + self._stream.read(), b""
            return data
        data, self._prefix = self._prefix[:size], self._prefix[size:]
        if len(data) < size:
            data += self._stream.read(size - len(data))
        return data


def open_tar_stream(stream: IO[bytes]) -> tarfile.TarFile:
    """A tar or tar.gz read once from the front (an S3 body, say), every gzip member included.

    tarfile's own stream mode (`r|gz`, `r|*`) decompresses only the first gzip member, so it
    would stop early in an artifact this writer wrote; `gzip.GzipFile` reads them all.
    """
    head = stream.read(2)
    prefixed: IO[bytes] = _Prefixed(head, stream)  # type: ignore[assignment]
    if head == _GZIP_MAGIC:
        prefixed = gzip.GzipFile(fileobj=prefixed, mode="rb")  # type: ignore[assignment]
    return tarfile.open(fileobj=prefixed, mode="r|")


class GzipTarWriter:
    """Writes tar members into `raw` as a sequence of gzip members (see the module's doc).

    `part_bytes` adds up, per caller-given part name, the compressed bytes written while that
    part's members were written: a size-by-part report for free. Deflate keeps up to a few KB
    between calls, so a part's figure may be off by that much; the totals are exact.
    """

    def __init__(self, raw: IO[bytes], level: int) -> None:
        self._raw = raw
        self._level = level
        self._deflate: zlib._Compress | None = None
        self._current_level = level
        self._offset = 0  # uncompressed tar position, for block padding
        self.part_bytes: dict[str, int] = {}
        self.part_content: dict[str, int] = {}

    # -- low level -------------------------------------------------------------------------

    def _emit(self, data: bytes, part: str) -> None:
        if data:
            self._raw.write(data)
            self.part_bytes[part] = self.part_bytes.get(part, 0) + len(data)

    def _write(self, data: bytes, part: str, level: int | None = None) -> None:
        wanted = self._level if level is None else level
        if self._deflate is not None and wanted != self._current_level:
            self._end_member(part)
        if self._deflate is None:
            self._deflate = zlib.compressobj(wanted, zlib.DEFLATED, _GZIP_WBITS)
            self._current_level = wanted
        self._emit(self._deflate.compress(data), part)
        self._offset += len(data)

    def _end_member(self, part: str) -> None:
        if self._deflate is not None:
            self._emit(self._deflate.flush(), part)
            self._deflate = None

    def _pad(self, part: str) -> None:
        remainder = self._offset % tarfile.BLOCKSIZE
        if remainder:
            self._write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder), part)

    def _header(self, info: tarfile.TarInfo, part: str) -> None:
        self._write(info.tobuf(tarfile.PAX_FORMAT, _ENCODING, "surrogateescape"), part)

    # -- members ---------------------------------------------------------------------------

    def add_dir(self, info: tarfile.TarInfo, part: str) -> None:
        self._header(info, part)

    def add_bytes(self, info: tarfile.TarInfo, data: bytes, part: str) -> None:
        info.size = len(data)
        self._header(info, part)
        self._write(data, part)
        self.part_content[part] = self.part_content.get(part, 0) + len(data)
        self._pad(part)

    def add_file(
        self, info: tarfile.TarInfo, source: Path | IO[bytes], part: str, *, store: bool = False
    ) -> None:
        """A regular file; `store=True` writes its content uncompressed (it already is)."""
        self._header(info, part)
        level = 0 if store else None
        written = 0
        handle = open_regular(source) if isinstance(source, Path) else source
        try:
            while written < info.size:
                chunk = handle.read(min(_CHUNK, info.size - written))
                if not chunk:
                    raise OSError(f"{source} became shorter while it was packed")
                self._write(chunk, part, level)
                written += len(chunk)
        finally:
            if isinstance(source, Path):
                handle.close()
        self.part_content[part] = self.part_content.get(part, 0) + info.size
        self._pad(part)

    def add_spliced(self, info: tarfile.TarInfo, gzip_file: Path, part: str) -> None:
        """A member whose content is `gzip_file` decompressed, written as its gzip bytes.

        `info.size` must be `gzip_content_size(gzip_file)`.
        """
        self._header(info, part)
        self._end_member(part)
        with open_regular(gzip_file) as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                self._emit(chunk, part)
        self._offset += info.size
        self.part_content[part] = self.part_content.get(part, 0) + info.size
        self._pad(part)

    def close(self, part: str) -> None:
        """End of archive as tarfile writes it: two zero blocks, then zeros to a full record."""
        self._write(tarfile.NUL * (tarfile.BLOCKSIZE * 2), part)
        remainder = self._offset % tarfile.RECORDSIZE
        if remainder:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - remainder), part)
        self._end_member(part)
