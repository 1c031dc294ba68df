"""Hostile artifact files for the publish and unpack tests, built in memory in seconds.

Each is what an attacker (or a broken tool) could hand to `mmepack publish`: hidden data after
the tar's end or the gzip stream's end, a gzip bomb, too many members, dangerous modes.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import Path

from mmepack.artifact.gzip_member import crc32_combine, gzip_header, gzip_trailer

MiB = 1024 * 1024


def tar_bytes(members: dict[str, bytes | None], *, modes: dict[str, int] | None = None) -> bytes:
    """An uncompressed tar (with its end-of-archive blocks) of files (bytes) and folders (None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mode = (modes or {}).get(name, 0o755 if data is None else 0o644)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def demo_members(model: str = "demo") -> dict[str, bytes | None]:
    return {
        model: None,
        f"{model}/config.pbtxt": f'name: "{model}"\nbackend: "python"\n'.encode(),
        f"{model}/1": None,
        f"{model}/1/model.py": b"# demo\n",
    }


def evil_tar() -> bytes:
    """What `tar -i` would unpack from hidden data: a path escaping two levels up and a link to
    /etc/shadow."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        escape = tarfile.TarInfo("../../tmp/hidden_escape")
        escape.size = 5
        tar.addfile(escape, io.BytesIO(b"owned"))
        link = tarfile.TarInfo("demo/shadow")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tar.addfile(link)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def good(path: Path) -> Path:
    return write(path, gzip.compress(tar_bytes(demo_members())))


def second_gzip_member(path: Path) -> Path:
    """A good artifact, then a second gzip member holding the evil members."""
    return write(path, gzip.compress(tar_bytes(demo_members())) + gzip.compress(evil_tar()))


def members_after_end_marker(path: Path) -> Path:
    """One gzip member: a good tar (end blocks included), then the evil members."""
    return write(path, gzip.compress(tar_bytes(demo_members()) + evil_tar()))


def damaged_header_then_members(path: Path) -> Path:
    """A block of garbage where a header should be, then the evil members: `tarfile` takes the
    garbage for the end of the archive and never sees what follows."""
    inner = tar_bytes(demo_members())
    body = inner[: -2 * tarfile.BLOCKSIZE].rstrip(b"\0")
    body += b"\0" * (-len(body) % tarfile.BLOCKSIZE)
    return write(path, gzip.compress(body + b"\x7f" * tarfile.BLOCKSIZE + evil_tar()))


def garbage_after_gzip(path: Path) -> Path:
    return write(path, gzip.compress(tar_bytes(demo_members())) + b"trailing garbage\n")


def _zeros_crc(length: int) -> int:
    """CRC-32 of `length` zero bytes (a power-of-two multiple of 1 MiB), by doubling."""
    crc, size = zlib.crc32(bytes(MiB)), MiB
    while size < length:
        crc, size = crc32_combine(crc, crc, size), size * 2
    assert size == length
    return crc


def gzip_bomb(path: Path, zeros: int = 2 * 1024 * MiB) -> Path:
    """A valid one-member artifact whose `demo/1/weights.bin` is `zeros` zero bytes (a power of
    two, at least 1 MiB): a file of about zeros/1000 bytes, written without inflating it."""
    head = tar_bytes(demo_members())[: -2 * tarfile.BLOCKSIZE]
    head = head[: len(head) - len(head) % tarfile.BLOCKSIZE]
    info = tarfile.TarInfo("demo/1/weights.bin")
    info.size = zeros
    info.mode = 0o644
    head = head.rstrip(b"\0")
    head += b"\0" * (-len(head) % tarfile.BLOCKSIZE)
    head += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    tail = b"\0" * (2 * tarfile.BLOCKSIZE)
    tail += b"\0" * (-(len(head) + zeros + len(tail)) % tarfile.RECORDSIZE)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = piece_maker.compress(bytes(MiB)) + piece_maker.flush(zlib.Z_FULL_FLUSH)
    last_maker = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = last_maker.compress(tail) + last_maker.flush(zlib.Z_FINISH)
    crc = crc32_combine(zlib.crc32(head), _zeros_crc(zeros), zeros)
    crc = crc32_combine(crc, zlib.crc32(tail), len(tail))
    total = len(head) + zeros + len(tail)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(gzip_header(9) + first)
        for _ in range(zeros // MiB):
            out.write(piece)
        out.write(last + gzip_trailer(crc, total))
    return path


def many_members(path: Path, count: int) -> Path:
    members = demo_members()
    for index in range(count):
        members[f"demo/1/f{index}"] = b""
    return write(path, gzip.compress(tar_bytes(members), compresslevel=1))


def with_mode(path: Path, name: str, mode: int) -> Path:
    members = demo_members()
    return write(path, gzip.compress(tar_bytes(members, modes={name: mode})))
