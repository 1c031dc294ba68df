"""artifact.diff: which tar members differ, down to files inside a packed environment."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from mmepack.artifact.diff import artifact_digests, describe, describe_difference, diff_members


def _tar_gz(files: dict[str, bytes], mtime: int = 0, reverse: bool = False) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=mtime) as gz, tarfile.open(
        fileobj=gz, mode="w"
    ) as tar:
        for name in sorted(files, reverse=reverse):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def _artifact(
    path: Path, step_code: bytes, env_files: dict[str, bytes], env_mtime: int = 0
) -> Path:
    env = _tar_gz(env_files, mtime=env_mtime)
    path.write_bytes(
        _tar_gz(
            {
                "m/config.pbtxt": b'name: "m"',
                "m_step/1/model.py": step_code,
                "m_step/python_env.tar.gz": env,
            }
        )
    )
    return path


def test_changed_member_is_named(tmp_path: Path) -> None:
    env = {"lib/a.py": b"a", "bin/activate": b"x"}
    old = _artifact(tmp_path / "old.tar.gz", b"print(1)", env)
    new = _artifact(tmp_path / "new.tar.gz", b"print(2)", env)
    with old.open("rb") as published:
        text = describe_difference(published, new)
    assert text == "changed (1): m_step/1/model.py"


def test_file_inside_the_environment_is_named(tmp_path: Path) -> None:
    old = _artifact(tmp_path / "old.tar.gz", b"p", {"lib/a.py": b"a", "lib/b.py": b"b"})
    new = _artifact(tmp_path / "new.tar.gz", b"p", {"lib/a.py": b"A", "lib/c.py": b"c"})
    diff = diff_members(artifact_digests(old), artifact_digests(new))
    assert diff.changed == ("m_step/python_env.tar.gz", "m_step/python_env.tar.gz!lib/a.py")
    assert diff.only_published == ("m_step/python_env.tar.gz!lib/b.py",)
    assert diff.only_local == ("m_step/python_env.tar.gz!lib/c.py",)
    assert "reproducibility" not in describe(diff)


def test_same_files_packed_differently_is_called_a_reproducibility_problem(tmp_path: Path) -> None:
    env = {"lib/a.py": b"a"}
    old = _artifact(tmp_path / "old.tar.gz", b"p", env, env_mtime=0)
    new = _artifact(tmp_path / "new.tar.gz", b"p", env, env_mtime=1_700_000_000)
    diff = diff_members(artifact_digests(old), artifact_digests(new))
    assert diff.changed == ("m_step/python_env.tar.gz",)
    text = describe(diff)
    assert "m_step/python_env.tar.gz: same files inside, different archive bytes" in text
    assert "a reproducibility problem, not a change" in text


def test_only_tar_metadata_differs(tmp_path: Path) -> None:
    files = {"m/config.pbtxt": b"x", "m/1/model.py": b"y"}
    (tmp_path / "a.tar.gz").write_bytes(_tar_gz(files, mtime=0))
    (tmp_path / "b.tar.gz").write_bytes(_tar_gz(files, mtime=5, reverse=True))
    diff = diff_members(
        artifact_digests(tmp_path / "a.tar.gz"), artifact_digests(tmp_path / "b.tar.gz")
    )
    assert diff.empty
    assert "only the tar's own metadata" in describe(diff)


def test_long_lists_are_cut(tmp_path: Path) -> None:
    old = {f"m/{i}.txt": b"a" for i in range(20)}
    new = {f"m/{i}.txt": b"b" for i in range(20)}
    (tmp_path / "a.tar.gz").write_bytes(_tar_gz(old))
    (tmp_path / "b.tar.gz").write_bytes(_tar_gz(new))
    text = describe(
        diff_members(
            artifact_digests(tmp_path / "a.tar.gz"), artifact_digests(tmp_path / "b.tar.gz")
        ),
        limit=3,
    )
    assert text.startswith("changed (20): m/0.txt, m/1.txt, m/10.txt and 17 more")
