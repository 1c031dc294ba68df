"""One environment per artifact: where it goes, what the packager rewrites, and the tar.gz
writer that never compresses it twice (mmepack.artifact.env_layout, mmepack.artifact.gzip_tar).

The real server's side (both steps of the example run from one unpacked environment, found
through the rewritten paths) is proven by models/screen_detector/tests.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from mmepack.artifact.check import check_artifact
from mmepack.artifact.diff import artifact_digests
from mmepack.artifact.env_layout import EnvLayout, rewrite_env_path
from mmepack.artifact.gzip_member import EMPTY_FINAL_STORED, SpliceableGzipWriter
from mmepack.artifact.gzip_tar import GzipTarWriter, gzip_content_size
from mmepack.artifact.size_report import size_lines
from mmepack.artifact.writer import PART_ENVIRONMENT, PARTS, write_artifact
from mmepack.errors import MmepackError
from mmepack.model.config import parse_model_config
from mmepack.model.repository import read_model_directory, read_triton_model
from mmepack.validate import validate_model_directory
from tests.demo_models import ENSEMBLE_CONFIG, write_ensemble_model

ENV_VALUE = "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz"


def fake_env(path: Path, payload: int = 300_000, *, spliceable: bool = True) -> Path:
    """A small gzip tar shaped like a packed environment (incompressible payload), written as
    the environment build writes it (spliceable) or as plain gzip/conda-pack would."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (
            ("bin/activate", b"# activate\n"),
            ("lib/python3.11/os.py", b"x = 1\n" * 100),
            ("lib/python3.11/site-packages/blob.bin", os.urandom(payload)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if spliceable:
        with path.open("wb") as out, SpliceableGzipWriter(out, 4) as gz:
            gz.write(raw.getvalue())
    else:
        path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path


def three_step_model(root: Path) -> Path:
    """An ensemble of three Python steps (IN -> demo_double -> demo_second -> demo_third ->
    OUT), each with the EXECUTION_ENV_PATH users write."""
    model = write_ensemble_model(root / "demo", env=True)
    config = (model / "demo_double" / "config.pbtxt").read_text()
    for extra in ("demo_second", "demo_third"):
        (model / extra / "1").mkdir(parents=True)
        (model / extra / "config.pbtxt").write_text(config.replace("demo_double", extra))
        (model / extra / "1" / "model.py").write_text(
            (model / "demo_double" / "1" / "model.py").read_text()
        )
    chain = [("demo_double", "IN", "a"), ("demo_second", "a", "b"), ("demo_third", "b", "OUT")]
    steps = ", ".join(
        f'{{ model_name: "{step}" model_version: -1 input_map {{ key: "IN" value: "{src}" }} '
        f'output_map {{ key: "OUT" value: "{dst}" }} }}'
        for step, src, dst in chain
    )
    ensemble = ENSEMBLE_CONFIG.split("ensemble_scheduling")[0].format(name="demo", step="")
    (model / "demo" / "config.pbtxt").write_text(
        ensemble + f"ensemble_scheduling {{ step [ {steps} ] }}\n"
    )
    return model


def test_the_three_step_model_is_valid(tmp_path: Path) -> None:
    problems = validate_model_directory(three_step_model(tmp_path))
    assert [p for p in problems if p.severity == "error"] == []


def test_rewrite_changes_only_the_environment_path(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    step = read_triton_model(model_dir / "demo_double")
    assert step.env_path() == ENV_VALUE
    new_value = "$$TRITON_MODEL_DIRECTORY/../demo/python_env.tar"
    text = rewrite_env_path(step, new_value).decode()
    before, after = step.text.splitlines(), text.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(before) == len(after) and len(changed) == 1, changed
    parsed = parse_model_config(text, step.config_path)
    assert parsed.parameters["EXECUTION_ENV_PATH"].string_value == new_value


def test_rewrite_refuses_a_value_it_cannot_find_on_its_line(tmp_path: Path) -> None:
    model_dir = write_ensemble_model(tmp_path / "demo", env=True)
    config = model_dir / "demo_double" / "config.pbtxt"
    # Adjacent string literals are one protobuf string, but not one quoted text to replace.
    config.write_text(
        config.read_text().replace(
            f'"{ENV_VALUE}"', '"$$TRITON_MODEL_DIRECTORY/" "python_env.tar.gz"'
        )
    )
    step = read_triton_model(model_dir / "demo_double")
    assert step.env_path() == ENV_VALUE
    with pytest.raises(MmepackError, match=r"demo_double/config.pbtxt:\d+: EXECUTION_ENV_PATH"):
        rewrite_env_path(step, "$$TRITON_MODEL_DIRECTORY/../demo/python_env.tar")


def _package(model_dir: Path, env: Path, out: Path, layout: EnvLayout) -> Path:
    directory = read_model_directory(model_dir)
    return write_artifact(directory, "1", out, env, [], layout=layout).path


def test_shared_layout_ships_one_plain_tar_and_points_every_step_at_it(tmp_path: Path) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", EnvLayout.SHARED_TAR)
    with tarfile.open(artifact) as tar:
        envs = [n for n in tar.getnames() if "python_env" in n]
        assert envs == ["demo/python_env.tar"]
        shipped = tar.extractfile("demo/python_env.tar")
        assert shipped is not None and shipped.read() == gzip.decompress(env.read_bytes())
        unpacked = tmp_path / "unpacked"
        tar.extractall(unpacked, filter="data")
    for step in ("demo_double", "demo_second", "demo_third"):
        value = read_triton_model(unpacked / step).env_path()
        assert value == "$$TRITON_MODEL_DIRECTORY/../demo/python_env.tar", step
        # Resolved as Triton's Python backend resolves it: substitution, then realpath().
        resolved = os.path.realpath(
            value.replace("$$TRITON_MODEL_DIRECTORY", str(unpacked / step), 1)
        )
        assert resolved == str((unpacked / "demo" / "python_env.tar").resolve())
    # The sources are untouched: the rewrite happens in the artifact only.
    assert read_triton_model(model_dir / "demo_second").env_path() == ENV_VALUE


def test_per_step_layout_is_the_layout_before(tmp_path: Path) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", EnvLayout.PER_STEP)
    with tarfile.open(artifact) as tar:
        envs = sorted(n for n in tar.getnames() if "python_env" in n)
        assert envs == [
            f"{s}/python_env.tar.gz" for s in ("demo_double", "demo_second", "demo_third")
        ]
        for name in envs:
            member = tar.extractfile(name)
            assert member is not None and member.read() == env.read_bytes()
        config = tar.extractfile("demo_second/config.pbtxt")
        assert config is not None and ENV_VALUE in config.read().decode()


def stored_env(path: Path) -> Path:
    """A gzip environment whose bytes deflate could shrink a lot (written at level 0): a second
    compression would show in the artifact's size."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("bin/activate")
        info.size = 2_000_000
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    with path.open("wb") as out, SpliceableGzipWriter(out, 0) as gz:
        gz.write(raw.getvalue())
    return path


@pytest.mark.parametrize("layout", [EnvLayout.SHARED_TAR, EnvLayout.SHARED_ARCHIVE])
def test_the_environment_is_not_compressed_a_second_time(tmp_path: Path, layout: EnvLayout) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = stored_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", layout)
    assert artifact.stat().st_size >= env.stat().st_size
    if layout is EnvLayout.SHARED_TAR:
        # Spliced: the environment's deflate data (without its header, its empty final stored
        # block and trailer) appears in the artifact byte for byte.
        assert env.read_bytes()[10 : -len(EMPTY_FINAL_STORED) - 8] in artifact.read_bytes()
    # And the artifact is an ordinary tar.gz to other readers too: GNU tar lists it.
    listed = subprocess.run(
        ["tar", "-tzf", str(artifact)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(name.startswith("demo/python_env.tar") for name in listed)


def test_the_layout_before_compressed_the_environment_again(tmp_path: Path) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = stored_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", EnvLayout.PER_STEP)
    assert artifact.stat().st_size < env.stat().st_size / 10


@pytest.mark.parametrize("layout", list(EnvLayout))
def test_every_layout_is_byte_reproducible(tmp_path: Path, layout: EnvLayout) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = fake_env(tmp_path / "python_env.tar.gz")
    first = _package(model_dir, env, tmp_path / "a", layout).read_bytes()
    (model_dir / "demo_second" / "config.pbtxt").touch()
    assert _package(model_dir, env, tmp_path / "b", layout).read_bytes() == first


def test_an_environment_that_is_not_gzip_is_refused_for_the_plain_tar(tmp_path: Path) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = tmp_path / "python_env.tar.gz"
    env.write_bytes(b"not gzip")
    with pytest.raises(MmepackError, match=r"python_env.tar.gz: .*not a gzip file"):
        _package(model_dir, env, tmp_path / "dist", EnvLayout.SHARED_TAR)
    assert not (tmp_path / "dist" / "demo_1.tar.gz").exists()


def test_gzip_content_size_counts_every_member(tmp_path: Path) -> None:
    two = tmp_path / "two.gz"
    two.write_bytes(gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 234))
    assert gzip_content_size(two) == 1234


def test_writer_output_reads_back_with_tarfile(tmp_path: Path) -> None:
    env = fake_env(tmp_path / "env.tar.gz")
    out = tmp_path / "out.tar.gz"
    with out.open("wb") as raw:
        writer = GzipTarWriter(raw, 6)
        info = tarfile.TarInfo("a.txt")
        writer.add_bytes(info, b"hello", "code")
        writer.add_spliced(tarfile.TarInfo("env.tar"), env, "environment")
        writer.add_bytes(tarfile.TarInfo("z.txt"), b"after", "code")
        writer.close("code")
    with tarfile.open(out) as tar:
        assert tar.getnames() == ["a.txt", "env.tar", "z.txt"]
        z = tar.extractfile("z.txt")
        assert z is not None and z.read() == b"after"
    assert sum(writer.part_bytes.values()) == out.stat().st_size


def test_size_report_adds_up_and_flags_a_dominant_environment(tmp_path: Path) -> None:
    model_dir = three_step_model(tmp_path / "src")
    env = fake_env(tmp_path / "python_env.tar.gz", payload=1_000_000)
    directory = read_model_directory(model_dir)
    result = write_artifact(directory, "1", tmp_path / "dist", env, [])
    assert set(result.part_bytes) == set(PARTS)
    assert sum(result.part_bytes.values()) == result.path.stat().st_size
    assert result.part_bytes[PART_ENVIRONMENT] >= env.stat().st_size
    lines = size_lines(result)
    assert lines[0].startswith("mmepack: size of demo_1.tar.gz: ")
    assert "environment 1.0 MB" in lines[0] and "stubs " in lines[0]
    # The environment dominates, but the warning needs something to name (issue 27 item 7).
    assert len(lines) == 1
    flagged = size_lines(dataclasses.replace(result, unused_requirements=("requests",)))
    assert len(flagged) == 2 and flagged[1].startswith("mmepack: warning: demo_1.tar.gz: ")
    small = write_artifact(
        directory, "1", tmp_path / "small", fake_env(tmp_path / "tiny.tar.gz", payload=10), []
    )
    # Configs and code outweigh a 10-byte environment: no warning.
    assert len(size_lines(small)) == 1


def test_publish_check_and_member_diff_read_past_the_spliced_environment(tmp_path: Path) -> None:
    """The publish check and the member diff see every member after the spliced environment
    (they read with open_tar_stream, which also handles older multi-member artifacts)."""
    model_dir = three_step_model(tmp_path / "src")
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", EnvLayout.SHARED_TAR)
    with tarfile.open(artifact) as tar:
        everything = {n.rstrip("/") for n in tar.getnames()}
    checked = check_artifact(artifact)
    assert set(checked.members) == everything and "demo_third/config.pbtxt" in everything
    digests = artifact_digests(artifact)
    assert "demo_third/config.pbtxt" in digests
    assert "demo/python_env.tar!bin/activate" in digests


def test_a_one_model_artifact_keeps_its_environment_in_its_own_folder(tmp_path: Path) -> None:
    """No ensemble: the only Python model holds the environment, as the plain tar."""
    model_dir = write_ensemble_model(tmp_path / "src", env=True)
    for name in ("demo", "demo_double"):
        (model_dir / name).rename(model_dir / name.replace("demo", "old"))
    (model_dir / "old_double").rename(model_dir / "solo")
    (model_dir / "old").rename(tmp_path / "unused-ensemble")
    config = model_dir / "solo" / "config.pbtxt"
    config.write_text(config.read_text().replace("demo_double", "solo"))
    env = fake_env(tmp_path / "python_env.tar.gz")
    artifact = _package(model_dir, env, tmp_path / "dist", EnvLayout.SHARED_TAR)
    with tarfile.open(artifact) as tar:
        assert [n for n in tar.getnames() if "python_env" in n] == ["solo/python_env.tar"]
        shipped = tar.extractfile("solo/config.pbtxt")
        assert shipped is not None
        assert '"$$TRITON_MODEL_DIRECTORY/python_env.tar"' in shipped.read().decode()
