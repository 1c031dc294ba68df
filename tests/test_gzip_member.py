"""Every artifact is ONE gzip member, and the environment's deflate bytes are still spliced in
(mmepack.artifact.gzip_member, mmepack.artifact.gzip_tar).

Why it matters: a reader that stops after the first gzip member (Python's own
`tarfile.open(mode="r|gz")` does, silently) would see only part of a multi-member artifact, and
nobody can say which unpacker SageMaker runs. The checks below read the artifact the way such
readers do, and parse the gzip framing itself.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from mmepack.artifact.env_layout import EnvLayout
from mmepack.artifact.gzip_member import (
    SYNC_MARKER,
    SpliceableGzipWriter,
    crc32_combine,
    inspect_gzip,
)
from mmepack.artifact.gzip_tar import GzipTarWriter
from mmepack.artifact.writer import write_artifact
from mmepack.environment.determinism import normalise_archive
from mmepack.model.repository import read_model_directory
from tests.test_env_layout import fake_env, three_step_model


def gzip_members(data: bytes) -> int:
    """How many gzip members `data` holds, each inflated and CRC-checked by zlib; fails on
    trailing bytes that are not a member."""
    count = 0
    while data:
        inflater = zlib.decompressobj(31)
        inflater.decompress(data)
        assert inflater.eof, "a gzip member is cut short"
        data = inflater.unused_data
        count += 1
    return count


def tar_bytes(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


# -- crc32_combine -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_size, second_size",
    [(0, 0), (0, 1), (1, 0), (0, 1000), (1000, 0), (1, 1), (7, 13), (4096, 65537)],
)
def test_crc32_combine_matches_zlib_on_the_concatenation(first_size: int, second_size: int) -> None:
    rng = random.Random(first_size * 100003 + second_size)
    first = rng.randbytes(first_size)
    second = rng.randbytes(second_size)
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_crc32_combine_over_large_lengths() -> None:
    """Long second parts (64 MiB: 27 squarings of the operator); zlib.crc32 of the
    concatenation, computed incrementally, is the reference."""
    first = b"mmepack"
    block = bytes(range(256)) * 4096  # 1 MiB
    for total in (5 * len(block) + 3, (1 << 26) + 4099):
        crc = zlib.crc32(first)
        second_crc = 0
        left = total
        while left:
            piece = block[: min(len(block), left)]
            crc = zlib.crc32(piece, crc)
            second_crc = zlib.crc32(piece, second_crc)
            left -= len(piece)
        assert crc32_combine(zlib.crc32(first), second_crc, total) == crc


def test_crc32_combine_refuses_a_negative_length() -> None:
    with pytest.raises(ValueError):
        crc32_combine(0, 0, -1)


# -- the environment's spliceable gzip -------------------------------------------------------


@pytest.mark.parametrize("level", [0, 1, 4, 9])
def test_spliceable_gzip_is_a_standard_gzip_and_is_recognised(tmp_path: Path, level: int) -> None:
    content = tar_bytes({"bin/activate": b"# activate\n", "blob": os.urandom(50_000) * 2})
    path = tmp_path / "env.tar.gz"
    with path.open("wb") as raw, SpliceableGzipWriter(raw, level) as gz:
        gz.write(content)
    data = path.read_bytes()
    assert gzip.decompress(data) == content
    assert gzip_members(data) == 1
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\0\0\0\0"  # no name, time 0
    facts = inspect_gzip(path)
    assert facts.content_size == len(content) and facts.crc == zlib.crc32(content)
    assert facts.splice is not None
    start, end = facts.splice
    assert start == 10 and data[end - len(SYNC_MARKER) : end] == SYNC_MARKER


def test_an_empty_spliceable_gzip_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "empty.gz"
    with path.open("wb") as raw, SpliceableGzipWriter(raw, 6):
        pass
    assert gzip.decompress(path.read_bytes()) == b""
    facts = inspect_gzip(path)
    assert (facts.content_size, facts.crc) == (0, 0) and facts.splice is not None


def test_other_gzip_files_are_not_spliced(tmp_path: Path) -> None:
    content = os.urandom(20_000)
    spliceable = io.BytesIO()
    with SpliceableGzipWriter(spliceable, 6) as gz:
        gz.write(content)
    cases = {
        "plain": gzip.compress(content, mtime=0),
        "named": _named_gzip(content),
        # A spliceable member followed by a second one: its tail pattern matches, but the
        # first member's final block comes before the end.
        "two members": spliceable.getvalue() + spliceable.getvalue(),
        # A trailer that does not match the content.
        "bad crc": spliceable.getvalue()[:-8] + struct.pack("<II", 1, len(content)),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        if name == "bad crc":
            with pytest.raises(Exception):
                inspect_gzip(path)
            continue
        facts = inspect_gzip(path)
        assert facts.splice is None, name
        assert facts.content_size == len(gzip.decompress(data)), name


def _named_gzip(content: bytes) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(filename="env.tar", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(content)
    return raw.getvalue()


def test_the_environment_build_writes_the_spliceable_shape(tmp_path: Path) -> None:
    source = tmp_path / "plain.tar"
    source.write_bytes(tar_bytes({"b": b"2" * 5000, "a": b"1" * 5000}))
    archive = tmp_path / "python_env.tar.gz"
    normalise_archive(source, archive)
    facts = inspect_gzip(archive)
    assert facts.splice is not None
    with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        assert [m.name for m in tar] == ["a", "b"]


# -- the artifact --------------------------------------------------------------------------


def _artifact(tmp_path: Path, env: Path, layout: EnvLayout, level: int = 6) -> Path:
    model_dir = three_step_model(tmp_path / "src")
    result = write_artifact(
        read_model_directory(model_dir),
        "1",
        tmp_path / f"dist-{layout.value}-{level}",
        env,
        [],
        layout=layout,
        compress_level=level,
    )
    return result.path


@pytest.mark.parametrize("layout", list(EnvLayout))
@pytest.mark.parametrize("level", [1, 6, 9])
def test_every_artifact_is_one_gzip_member_every_reader_reads_whole(
    tmp_path: Path, layout: EnvLayout, level: int
) -> None:
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _artifact(tmp_path, env, layout, level)
    data = artifact.read_bytes()
    assert gzip_members(data) == 1
    with tarfile.open(artifact, "r:gz") as tar:
        expected = tar.getnames()
    assert "demo_third/config.pbtxt" in expected and len(expected) > 10
    # Stream mode stops after the first member: with one member it sees everything.
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as stream:
        assert [m.name for m in stream] == expected
    listed = subprocess.run(
        ["tar", "-tzf", str(artifact)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [name.rstrip("/") for name in listed] == [name.rstrip("/") for name in expected]
    checked = subprocess.run(["gzip", "-t", str(artifact)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_spliced_environment_reads_back_whole(tmp_path: Path) -> None:
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _artifact(tmp_path, env, EnvLayout.SHARED_TAR)
    with tarfile.open(fileobj=io.BytesIO(artifact.read_bytes()), mode="r|gz") as stream:
        contents = {m.name: f.read() for m in stream if (f := stream.extractfile(m)) is not None}
    assert contents["demo/python_env.tar"] == gzip.decompress(env.read_bytes())
    # The deflate bytes were copied, not made again.
    facts = inspect_gzip(env)
    assert facts.splice is not None
    assert env.read_bytes()[facts.splice[0] : facts.splice[1]] in artifact.read_bytes()


def test_a_conda_pack_style_gzip_is_compressed_again_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spliceable").mkdir()
    (tmp_path / "plain").mkdir()
    spliced_env = fake_env(tmp_path / "spliceable" / "python_env.tar.gz")
    plain_env = tmp_path / "plain" / "python_env.tar.gz"
    content = gzip.decompress(spliced_env.read_bytes())
    plain_env.write_bytes(gzip.compress(content, compresslevel=9, mtime=0))
    assert inspect_gzip(plain_env).splice is None
    capsys.readouterr()
    fallback = _artifact(tmp_path / "a", plain_env, EnvLayout.SHARED_TAR)
    said = capsys.readouterr().err
    assert said.count("compressed again") == 1 and str(plain_env) in said
    spliced = _artifact(tmp_path / "b", spliced_env, EnvLayout.SHARED_TAR)
    assert "compressed again" not in capsys.readouterr().err
    assert gzip_members(fallback.read_bytes()) == 1
    # Different deflate bytes, the same tar inside.
    assert gzip.decompress(fallback.read_bytes()) == gzip.decompress(spliced.read_bytes())


def test_writer_part_bytes_add_up_to_the_file(tmp_path: Path) -> None:
    env = fake_env(tmp_path / "env.tar.gz")
    out = tmp_path / "out.tar.gz"
    with out.open("wb") as raw:
        writer = GzipTarWriter(raw, 6)
        writer.add_bytes(tarfile.TarInfo("a.txt"), b"hello", "code")
        info = tarfile.TarInfo("stored.gz")
        stored = gzip.compress(os.urandom(3000))
        info.size = len(stored)
        writer.add_file(info, io.BytesIO(stored), "weights", store=True)
        writer.add_spliced(tarfile.TarInfo("env.tar"), env, "environment")
        writer.add_bytes(tarfile.TarInfo("z.txt"), b"after", "code")
        writer.close("code")
    data = out.read_bytes()
    assert sum(writer.part_bytes.values()) == len(data)
    assert gzip_members(data) == 1
    crc, size = struct.unpack("<II", data[-8:])
    tar = gzip.decompress(data)
    assert (crc, size) == (zlib.crc32(tar), len(tar))
