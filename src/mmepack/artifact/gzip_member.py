"""One gzip member built from separately compressed pieces (RFC 1951/1952), and the CRC maths.

Why: an artifact used to be several gzip members one after the other (a new one wherever the
level changed or the environment's gzip was spliced in). The format allows that, but a reader
that stops after the first member (Python's `tarfile.open(mode="r|gz")` does, silently) would
see a fraction of the artifact, and nothing public says which unpacker SageMaker runs. So every
artifact is one ordinary member: a 10-byte header written here, raw deflate data, and a trailer
with the CRC-32 and size of everything.

Deflate lets independently compressed pieces follow each other inside one stream when each
piece but the last ends with a full flush (`Z_FULL_FLUSH`): that ends the piece on a byte
boundary with an empty stored block (the bytes 00 00 ff ff), sets no "final block" bit and
leaves nothing for later data to refer back to. A new compressor, at any level, then continues.

The environment build writes `python_env.tar.gz` in that shape too (`SpliceableGzipWriter`):
its deflate data ends with a full flush, then an empty final block, then the trailer.
It is still a standard gzip for every other reader, and the artifact writer can copy its deflate
bytes (without the final block) into an artifact instead of compressing 150 MB again;
`inspect_gzip` decides whether a given file has that shape. The CRC of a concatenation comes
from the two CRCs and the second length (`crc32_combine`), so a spliced piece is never reread
for its checksum.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

from mmepack.errors import MmepackError
from mmepack.files import open_regular

_CHUNK = 1 << 20
_RAW_WBITS = -15  # raw deflate: the header and trailer are ours
_GZIP_WBITS = 31  # zlib reads (and checks) a gzip header and trailer
_HEADER_SIZE = 10
_TRAILER_SIZE = 8
# ID1 ID2 CM=deflate FLG=0: no name, comment or extra field, so the header is exactly 10 bytes.
_HEADER_START = b"\x1f\x8b\x08\x00"
# zlib's code for Unix, what the artifacts always carried (zlib wrote the header before).
_OS_UNIX = 3
# A full flush's empty stored block, then the empty final block zlib's Z_FINISH adds: with
# fixed codes (03 00), or stored (01 00 00 ff ff) when compressing at level 0.
SYNC_MARKER = b"\x00\x00\xff\xff"
EMPTY_FINAL_FIXED = b"\x03\x00"
EMPTY_FINAL_STORED = b"\x01\x00\x00\xff\xff"
_FINAL_BLOCKS = (EMPTY_FINAL_FIXED, EMPTY_FINAL_STORED)
_CRC_POLYNOMIAL = 0xEDB88320  # CRC-32 (reflected), as gzip and zlib use


def gzip_header(level: int) -> bytes:
    """The header zlib would write for `level`: time 0, no name, XFL hinting the level."""
    extra_flags = 2 if level == 9 else 4 if level < 2 else 0
    return _HEADER_START + struct.pack("<IBB", 0, extra_flags, _OS_UNIX)


def gzip_trailer(crc: int, size: int) -> bytes:
    """CRC-32 and size modulo 2**32 of all uncompressed bytes (RFC 1952 CRC32, ISIZE)."""
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _gf2_apply(matrix: list[int], vector: int) -> int:
    """Multiply a 32x32 GF(2) matrix (one column per bit, as ints) by a 32-bit vector."""
    result = 0
    column = 0
    while vector:
        if vector & 1:
            result ^= matrix[column]
        vector >>= 1
        column += 1
    return result


def _gf2_square(matrix: list[int]) -> list[int]:
    """The matrix applied twice: the operator for twice as many zero bits."""
    return [_gf2_apply(matrix, column) for column in matrix]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from crc32(A), crc32(B) and len(B), without A's or B's bytes.

    The CRC register is linear over GF(2): crc(A+B) equals crc(B) xor (crc(A) advanced over
    len(B) zero bytes). Advancing over one zero bit is a 32x32 matrix; squaring it repeatedly
    gives the operators for 2**k zero bytes, and the bits of `length2` pick which to apply, so
    the cost grows with log2(length2) (zlib's method).
    """
    if length2 < 0:
        raise ValueError("length2 must not be negative")
    crc1 &= 0xFFFFFFFF
    # One zero bit: shift right, and feed the polynomial back in when the low bit fell out.
    one_bit = [_CRC_POLYNOMIAL] + [1 << row for row in range(31)]
    operator = _gf2_square(_gf2_square(_gf2_square(one_bit)))  # one zero byte
    while length2:
        if length2 & 1:
            crc1 = _gf2_apply(operator, crc1)
        length2 >>= 1
        if length2:
            operator = _gf2_square(operator)
    return (crc1 ^ crc2) & 0xFFFFFFFF


class SpliceableGzipWriter:
    """A write-only file object producing one gzip member whose deflate data can be spliced.

    `tarfile` writes into it; on `close` the deflate stream ends with a full flush, then an
    empty final block and the trailer. The header and output depend only on the bytes written
    and the level (and zlib's version), as before.
    """

    def __init__(self, raw: IO[bytes], level: int) -> None:
        self._raw = raw
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, _RAW_WBITS)
        self._crc = 0
        self._size = 0
        self._closed = False
        self._raw.write(gzip_header(level))

    def write(self, data: bytes) -> int:
        self._raw.write(self._deflate.compress(data))
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        """Uncompressed bytes written so far (tarfile asks where the archive starts)."""
        return self._size

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._raw.write(self._deflate.flush(zlib.Z_FULL_FLUSH))
        self._raw.write(self._deflate.flush(zlib.Z_FINISH))
        self._raw.write(gzip_trailer(self._crc, self._size))

    def __enter__(self) -> SpliceableGzipWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GzipFacts:
    """What the artifact writer needs of a gzip file: its content's size and CRC-32, and, when
    its deflate data can be copied as is, where those bytes lie (`splice` = (start, end))."""

    content_size: int
    crc: int
    splice: tuple[int, int] | None


def _not_gzip(path: Path, exc: Exception) -> MmepackError:
    return MmepackError(
        f"{path}: the Python environment is not a gzip file ({exc}); give the "
        "python_env.tar.gz that `mmepack build-env` (or conda-pack) wrote"
    )


class ContentStream(Protocol):
    """The content of a gzip file, read from the front once (what `read_content` is given)."""

    def read(self, size: int = -1, /) -> bytes: ...


class _NotSpliceable(Exception):
    """The deflate data is not in `SpliceableGzipWriter`'s shape."""


class _DeflateReader:
    """The content of a raw deflate range as a read-only file, inflated on demand; its CRC-32
    and size are counted as it goes, so whoever reads it (or `drain`) pays for one inflate."""

    def __init__(self, handle: IO[bytes], left: int) -> None:
        self._handle = handle
        self._left = left
        self.inflater = zlib.decompressobj(_RAW_WBITS)
        self._out = b""
        self._pos = 0
        self.crc = 0
        self.size = 0

    def _more(self) -> bool:
        """Inflate the next piece into the buffer; False at the end of the range."""
        while self._left:
            chunk = self._handle.read(min(_CHUNK, self._left))
            if not chunk:
                raise _NotSpliceable
            self._left -= len(chunk)
            out = self.inflater.decompress(chunk)
            if self.inflater.eof:
                raise _NotSpliceable  # a final block before the end: not ours
            if out:
                self.crc, self.size = zlib.crc32(out, self.crc), self.size + len(out)
                self._out, self._pos = out, 0
                return True
        return False

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if self._pos >= len(self._out) and not self._more():
                break
            end = len(self._out) if wanted is None else min(len(self._out), self._pos + wanted)
            parts.append(self._out[self._pos : end])
            if wanted is not None:
                wanted -= end - self._pos
            self._pos = end
        return b"".join(parts)

    def drain(self) -> None:
        self._out, self._pos = b"", 0
        while self._more():
            pass


_Content = TypeVar("_Content")


def _splice_facts(
    path: Path, file_size: int, read_content: Callable[[ContentStream], _Content] | None = None
) -> tuple[GzipFacts, _Content | None] | None:
    """Facts of a file in `SpliceableGzipWriter`'s shape, or None when it is not in it; with
    what `read_content` made of the content as it was inflated.

    The byte patterns are checked first (no header fields, the sync marker and the empty final
    block before the trailer); then the deflate data up to the final block is inflated once: it
    must give every content byte, stop exactly on a block boundary (both an empty fixed-code
    and an empty stored final block end it there with nothing more) and match the trailer.
    """
    if file_size < _HEADER_SIZE + len(SYNC_MARKER) + len(EMPTY_FINAL_FIXED) + _TRAILER_SIZE:
        return None
    tail_size = min(
        len(SYNC_MARKER) + len(EMPTY_FINAL_STORED) + _TRAILER_SIZE, file_size - _HEADER_SIZE
    )
    with open_regular(path) as handle:
        header = handle.read(_HEADER_SIZE)
        handle.seek(file_size - tail_size)
        tail = handle.read(tail_size)
        if header[:4] != _HEADER_START:
            return None
        final = next(
            (f for f in _FINAL_BLOCKS if tail[:-_TRAILER_SIZE].endswith(SYNC_MARKER + f)), None
        )
        if final is None:
            return None
        trailer_crc, trailer_size = struct.unpack("<II", tail[-_TRAILER_SIZE:])
        end = file_size - len(final) - _TRAILER_SIZE
        handle.seek(_HEADER_SIZE)
        reader = _DeflateReader(handle, end - _HEADER_SIZE)
        try:
            made = None if read_content is None else read_content(reader)
            reader.drain()
            for ending in _FINAL_BLOCKS:
                probe = reader.inflater.copy()
                if probe.decompress(ending) or not probe.eof or probe.unused_data:
                    return None
        except (zlib.error, _NotSpliceable):
            return None
    if reader.crc != trailer_crc or reader.size & 0xFFFFFFFF != trailer_size:
        return None
    return GzipFacts(reader.size, reader.crc, (_HEADER_SIZE, end)), made


def iter_gzip_content(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a (possibly multi-member) gzip file, in chunks."""
    try:
        with open_regular(path) as handle:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    break
                while chunk:
                    out = inflater.decompress(chunk)
                    if out:
                        yield out
                    if inflater.eof:
                        chunk = inflater.unused_data
                        inflater = zlib.decompressobj(_GZIP_WBITS)
                    else:
                        chunk = b""
            out = inflater.flush()
            if out:
                yield out
    except zlib.error as exc:
        raise _not_gzip(path, exc) from None


def inspect_gzip(path: Path) -> GzipFacts:
    """Size, CRC and splice range of a gzip file, read once when it is spliceable (twice when
    not: the second pass, over any gzip, multi-member included, only measures it).

    The ISIZE trailer is only the size modulo 4 GiB (and of the last member), so the size is
    always counted.
    """
    facts, _ = inspect_gzip_reading(path, None)
    return facts


def inspect_gzip_reading(
    path: Path, read_content: Callable[[ContentStream], _Content] | None
) -> tuple[GzipFacts, _Content | None]:
    """`inspect_gzip`, handing the content to `read_content` as it is inflated for the check,
    so a caller that needs something inside (the environment's Python and distributions) has
    it without decompressing the file again. Its result is None for a file not in the splice
    shape: that caller reads such a file itself. `read_content` must not raise for content it
    does not understand (it returns what it makes of it); what it leaves unread is inflated
    after it returns.
    """
    try:
        file_size = path.stat().st_size
    except OSError as exc:
        raise _not_gzip(path, exc) from None
    found = _splice_facts(path, file_size, read_content)
    if found is not None:
        return found
    crc = size = 0
    for out in iter_gzip_content(path):
        crc, size = zlib.crc32(out, crc), size + len(out)
    return GzipFacts(size, crc, None), None
