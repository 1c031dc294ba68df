"""A reproducible tar.gz writer that never compresses already-compressed bytes again.

Why not `tarfile.open(mode="w:gz")`: that pushes every byte through one deflate stream, so a
packed Python environment (itself gzip) is compressed a second time for nothing, and a plain
environment tar would be compressed on every package run although the environment build already
compressed it once (and cached the result).

The output is always ONE gzip member (see `mmepack.artifact.gzip_member`): the header, raw
deflate data made of pieces joined on full-flush boundaries, and one trailer with the CRC-32 and
size of the whole tar. A new piece starts where the level changes or where an existing gzip
file's deflate data is spliced in:
- `add_spliced` copies the environment build's deflate bytes (when the file has the shape
  `SpliceableGzipWriter` writes): its decompressed bytes become the tar member's content, e.g.
  the environment's `python_env.tar.gz` appears in the artifact as an uncompressed
  `python_env.tar`, compressed exactly once, by the environment build. Any other gzip (an older
  cache entry, conda-pack's own output) is decompressed and compressed again at the writer's
  level: correct, slower, and said once on stderr;
- `add_file(..., store=True)` writes the content as stored (level 0) deflate blocks, for a
  member that is itself a gzip file.

Everything else is compressed at the writer's level. Headers come from `tarfile.TarInfo.tobuf`
(PAX format) and the end of the archive is written as `tarfile` writes it, so the output is an
ordinary tar.gz; its bytes depend only on the inputs, the level and zlib's version.
"""

from __future__ import annotations

import gzip
import sys
import tarfile
import zlib
from pathlib import Path
from typing import IO, Protocol

from mmepack.artifact.gzip_member import (
    GzipFacts,
    crc32_combine,
    gzip_header,
    gzip_trailer,
    inspect_gzip,
    iter_gzip_content,
)
from mmepack.files import open_regular

_CHUNK = 1 << 20
_RAW_WBITS = -15  # raw deflate: header and trailer are written here
_ENCODING = "utf-8"
_GZIP_MAGIC = b"\x1f\x8b"


def gzip_content_size(path: Path) -> int:
    """Decompressed size of a (possibly multi-member) gzip file."""
    return inspect_gzip(path).content_size


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

    tarfile's own stream mode (`r|gz`, `r|*`) decompresses only the first gzip member. This
    writer's artifacts have one, but artifacts written before it (and other tools' archives)
    may have several; `gzip.GzipFile` reads them all.
    """
    head = stream.read(2)
    prefixed: IO[bytes] = _Prefixed(head, stream)  # type: ignore[assignment]
    if head == _GZIP_MAGIC:
        prefixed = gzip.GzipFile(fileobj=prefixed, mode="rb")  # type: ignore[assignment]
    return tarfile.open(fileobj=prefixed, mode="r|")


class BinarySink(Protocol):
    """Where a `GzipTarWriter` writes: a binary file, or a wrapper that also hashes."""

    def write(self, data: bytes, /) -> int: ...


class GzipTarWriter:
    """Writes tar members into `raw` as one gzip member (see the module's doc).

    `part_bytes` adds up, per caller-given part name, the compressed bytes written while that
    part's members were written: a size-by-part report for free. Deflate keeps up to a few KB
    between calls, so a part's figure may be off by that much; the totals are exact.
    """

    def __init__(self, raw: BinarySink, level: int) -> None:
        self._raw = raw
        self._level = level
        self._deflate: zlib._Compress | None = None
        self._current_level = level
        self._started = False
        self._crc = 0  # CRC-32 of the whole uncompressed tar so far
        self._offset = 0  # uncompressed tar position: block padding and the trailer's size
        self._recompress_noted = False
        self.part_bytes: dict[str, int] = {}
        self.part_content: dict[str, int] = {}

    # -- low level -------------------------------------------------------------------------

    def _emit(self, data: bytes, part: str) -> None:
        if not self._started:
            self._started = True
            self._emit(gzip_header(self._level), part)
        if data:
            self._raw.write(data)
            self.part_bytes[part] = self.part_bytes.get(part, 0) + len(data)

    def _write(self, data: bytes, part: str, level: int | None = None) -> None:
        wanted = self._level if level is None else level
        if self._deflate is not None and wanted != self._current_level:
            self._end_piece(part)
        if self._deflate is None:
            self._deflate = zlib.compressobj(wanted, zlib.DEFLATED, _RAW_WBITS)
            self._current_level = wanted
        self._emit(self._deflate.compress(data), part)
        self._crc = zlib.crc32(data, self._crc)
        self._offset += len(data)

    def _end_piece(self, part: str) -> None:
        """End the current deflate piece on a byte boundary, not final, with no history."""
        if self._deflate is not None:
            self._emit(self._deflate.flush(zlib.Z_FULL_FLUSH), part)
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

    def add_spliced(
        self, info: tarfile.TarInfo, gzip_file: Path, part: str, facts: GzipFacts | None = None
    ) -> None:
        """A member whose content is `gzip_file` decompressed, its deflate bytes copied when
        the file allows (`facts.splice`), else compressed again at the writer's level.

        `facts` is `inspect_gzip(gzip_file)` when the caller already has it; `info.size` is set
        from it.
        """
        facts = facts or inspect_gzip(gzip_file)
        info.size = facts.content_size
        self._header(info, part)
        if facts.splice is None:
            self._recompress(gzip_file, part)
        else:
            self._end_piece(part)
            start, end = facts.splice
            with open_regular(gzip_file) as handle:
                handle.seek(start)
                left = end - start
                while left:
                    chunk = handle.read(min(_CHUNK, left))
                    if not chunk:
                        raise OSError(f"{gzip_file} became shorter while it was packed")
                    self._emit(chunk, part)
                    left -= len(chunk)
            self._crc = crc32_combine(self._crc, facts.crc, facts.content_size)
            self._offset += facts.content_size
        self.part_content[part] = self.part_content.get(part, 0) + facts.content_size
        self._pad(part)

    def _recompress(self, gzip_file: Path, part: str) -> None:
        if not self._recompress_noted:
            self._recompress_noted = True
            print(
                f"mmepack: {gzip_file} was not written by this mmepack's environment build "
                "(an older cache entry or another packer), so its content is compressed again "
                "at the artifact's level: correct, but slower than copying it",
                file=sys.stderr,
            )
        for chunk in iter_gzip_content(gzip_file):
            self._write(chunk, part)

    def close(self, part: str) -> None:
        """End of archive as tarfile writes it (two zero blocks, then zeros to a full record),
        the final deflate block and the one trailer."""
        self._write(tarfile.NUL * (tarfile.BLOCKSIZE * 2), part)
        remainder = self._offset % tarfile.RECORDSIZE
        if remainder:
            self._write(tarfile.NUL * (tarfile.RECORDSIZE - remainder), part)
        assert self._deflate is not None  # the zero blocks above started a piece
        self._emit(self._deflate.flush(zlib.Z_FINISH), part)
        self._deflate = None
        self._emit(gzip_trailer(self._crc, self._offset), part)
