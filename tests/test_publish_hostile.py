"""Publish refuses artifacts that hide data, explode, or carry dangerous modes (issue 25, items 9
and 10), against a real S3 endpoint on loopback (a moto server), and the shared unpack helper
refuses the same files without leaving anything behind."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmepack.artifact.check import check_artifact
from mmepack.artifact.limits import ArtifactLimits
from mmepack.artifact.unpack import unpack_artifact
from mmepack.cli import main
from mmepack.errors import Interrupted, MmepackError
from mmepack.publish.s3 import make_client
from mmepack.redact import redact
from tests import hostile_artifacts as hostile
from tests.test_publish import (  # noqa: F401 - fixtures
    THRESHOLD,
    _artifact,
    _keys,
    _publish,
    buckets,
    s3,
    s3_server,
)

HIDDEN: dict[str, tuple[Callable[[Path], Path], str]] = {
    "second gzip member": (
        hostile.second_gzip_member,
        "data follows the end of its gzip stream (a second gzip member)",
    ),
    "members after the end marker": (
        hostile.members_after_end_marker,
        "data follows the tar's end-of-archive marker",
    ),
    "damaged header, then members": (
        hostile.damaged_header_then_members,
        "damaged tar header at byte",
    ),
    "garbage after the gzip stream": (
        hostile.garbage_after_gzip,
        "data follows the end of its gzip stream (17 bytes that are not gzip)",
    ),
}


@pytest.mark.parametrize("case", sorted(HIDDEN))
def test_publish_refuses_data_hidden_after_the_tar_or_gzip_end(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, case: str
) -> None:
    _, production = buckets
    make, expected = HIDDEN[case]
    path = make(tmp_path / "demo_1.tar.gz")
    if case != "garbage after the gzip stream" and shutil.which("tar"):
        # What is at stake: GNU tar, told to read past zero blocks, finds the escaping members.
        listing = subprocess.run(["tar", "-tizf", str(path)], capture_output=True, text=True)
        assert "../../tmp/hidden_escape" in listing.stdout
        assert "demo/shadow" in listing.stdout
    with pytest.raises(MmepackError) as info:
        _publish(path, production, protect=True)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert _keys(s3, production) == []


def test_an_honest_artifact_is_still_published(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    _, production = buckets
    path = hostile.good(tmp_path / "demo_1.tar.gz")
    assert _publish(path, production, protect=True).status == "uploaded"
    assert _keys(s3, production) == ["mme/demo_1.tar.gz", "mme/demo_1.tar.gz.manifest.json"]


def test_publish_refuses_a_gzip_bomb_after_a_bounded_read(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    staging, _ = buckets
    path = hostile.gzip_bomb(tmp_path / "demo_1.tar.gz")  # ~2 MB on disk, 2 GiB of zeros inside
    assert path.stat().st_size < 4 * hostile.MiB
    limit = ArtifactLimits().unpacked_limit(path.stat().st_size)
    assert limit < 400 * hostile.MiB
    with pytest.raises(MmepackError) as info:
        _publish(path, staging)
    assert f"it unpacks to more than {limit} bytes" in str(info.value)
    assert "MMEPACK_MAX_UNPACKED_BYTES" in str(info.value)
    assert _keys(s3, staging) == []


def test_the_absolute_unpacked_limit_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile.gzip_bomb(tmp_path / "demo_1.tar.gz", zeros=64 * hostile.MiB)
    assert check_artifact(path).model == "demo"  # 64 MiB of zeros: within the default slack
    monkeypatch.setenv("MMEPACK_MAX_UNPACKED_BYTES", str(32 * hostile.MiB))
    with pytest.raises(MmepackError, match=f"unpacks to more than {32 * hostile.MiB} bytes"):
        check_artifact(path)
    monkeypatch.setenv("MMEPACK_MAX_UNPACKED_BYTES", "lots")
    argv = ["publish", str(path), "--branch", "x", "--staging-bucket", "b", "--commit", "c"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmepack: error: $MMEPACK_MAX_UNPACKED_BYTES is 'lots'")
    assert "Traceback" not in err


def test_publish_refuses_too_many_members(
    s3: Any,
    buckets: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging, _ = buckets
    path = hostile.many_members(tmp_path / "demo_1.tar.gz", 60)
    monkeypatch.setenv("MMEPACK_MAX_MEMBERS", "50")
    with pytest.raises(MmepackError, match="it holds more than 50 members"):
        _publish(path, staging)
    assert _keys(s3, staging) == []


def test_member_check_is_linear_in_the_member_count(
    s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """40,000 members took 34 s when each name was looked up in a list; a set makes it a few."""
    staging, _ = buckets
    path = hostile.many_members(tmp_path / "demo_1.tar.gz", 40_000)
    started = time.monotonic()
    checked = check_artifact(path)
    elapsed = time.monotonic() - started
    assert len(checked.members) == 40_004
    assert elapsed < 20, f"checking 40,000 members took {elapsed:.1f} s"
    assert _publish(path, staging).status == "uploaded"


@pytest.mark.parametrize(
    "name, mode, expected",
    [
        ("demo/1/model.py", 0o4777, "mode 4777 (setuid, setgid or sticky)"),
        ("demo/1/model.py", 0o2755, "mode 2755 (setuid, setgid or sticky)"),
        ("demo/1", 0o1777, "mode 1777 (setuid, setgid or sticky)"),
        ("demo/config.pbtxt", 0o666, "mode 0666, writable by every local user"),
        ("demo", 0o777, "mode 0777, writable by every local user"),
    ],
)
def test_publish_refuses_dangerous_modes(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, name: str, mode: int, expected: str
) -> None:
    staging, _ = buckets
    path = hostile.with_mode(tmp_path / "demo_1.tar.gz", name, mode)
    with pytest.raises(MmepackError) as info:
        _publish(path, staging)
    assert f"member {name!r} has {expected}" in str(info.value)
    assert _keys(s3, staging) == []


def test_unpack_writes_plain_files_and_folders(tmp_path: Path) -> None:
    path = hostile.good(tmp_path / "demo_1.tar.gz")
    folder = tmp_path / "out"
    unpack_artifact(path, folder)
    assert (folder / "demo" / "config.pbtxt").read_text().startswith('name: "demo"')
    assert stat.S_IMODE((folder / "demo" / "1" / "model.py").stat().st_mode) == 0o644
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "demo",
        "demo/1",
        "demo/1/model.py",
        "demo/config.pbtxt",
    ]


@pytest.mark.parametrize(
    "case", [*sorted(HIDDEN), "gzip bomb", "setuid", "too many members", "truncated"]
)
def test_unpack_refuses_what_publish_refuses_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    path = tmp_path / "demo_1.tar.gz"
    limits = ArtifactLimits()
    if case in HIDDEN:
        HIDDEN[case][0](path)
    elif case == "gzip bomb":
        hostile.gzip_bomb(path, zeros=256 * hostile.MiB)
        limits = ArtifactLimits(max_unpacked_bytes=64 * hostile.MiB)
    elif case == "setuid":
        hostile.with_mode(path, "demo/1/model.py", 0o4777)
    elif case == "too many members":
        hostile.many_members(path, 20)
        limits = ArtifactLimits(max_members=10)
    else:
        hostile.gzip_bomb(path, zeros=4 * hostile.MiB)
        path.write_bytes(path.read_bytes()[:-500])
    folder = tmp_path / "unpacked"
    with pytest.raises(MmepackError) as info:
        unpack_artifact(path, folder, limits)
    assert str(info.value).startswith(f"{path}: ")
    assert not folder.exists()
    assert not (tmp_path.parent / "tmp" / "hidden_escape").exists()


def _closed_port() -> int:
    closed = socket.create_server(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    return port


@pytest.mark.parametrize(
    "endpoint, secrets",
    [
        ("http://user:S3cret@Pass@127.0.0.1:{port}", ("S3cret", "Pass@", "user:")),
        ("user:hunter2@127.0.0.1:{port}", ("hunter2", "user:")),
        ("http://user:pa ss-word@127.0.0.1:{port}", ("pa ss", "ss-word", "user:")),
        ("user:pa ss-word@127.0.0.1:{port}", ("pa ss", "ss-word", "user:")),
    ],
)
def test_endpoint_credentials_are_masked_up_to_the_last_at(
    s3: Any,
    buckets: tuple[str, str],
    s3_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    secrets: tuple[str, ...],
) -> None:
    """Each endpoint once at a closed port (the "cannot reach" or "Invalid endpoint" message)
    and once at the real moto server (S3 answers; the missing bucket's message names it)."""
    moto_port = int(s3_server.rsplit(":", 1)[1])
    path = hostile.good(tmp_path / "demo_1.tar.gz")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for port, bucket in ((_closed_port(), buckets[0]), (moto_port, "no-such-bucket-25")):
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.format(port=port))
        argv = ["publish", str(path), "--branch", "x", "--staging-bucket", bucket]
        assert main([*argv, "--commit", "c"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("mmepack: error: ") and "Traceback" not in err
        assert "***@127.0.0.1" in err, err
        for secret in secrets:
            assert secret not in err, (secret, err)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("at http://user:S3cret@Pass@host:9 now", "at http://***@host:9 now"),
        ("Invalid endpoint: user:pass@host:9", "Invalid endpoint: ***@host:9"),
        ("see 'u:p@ss@h:9/x@y'", "see '***@h:9/x@y'"),
        ("at https://user:pa ss@host/key@1", "at https://***@host/key@1"),
        ("s3://bucket/key@1 and me@example.com", "s3://bucket/key@1 and me@example.com"),
    ],
)
def test_redact_masks_userinfo_with_or_without_scheme(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_redact_masks_the_userinfo_of_endpoint_and_proxy_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "me:top secret@host:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy user:proxy pass@proxy:3128")
    text = "x me:top secret@host:9 y; proxy user:proxy pass@proxy"
    assert redact(text) == "x ***@host:9 y; ***@proxy"


def test_ctrl_c_before_the_manifest_says_what_is_stored_and_publishing_again_repairs_it(
    s3: Any,
    buckets: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, production = buckets
    path = hostile.good(tmp_path / "demo_1.tar.gz")
    made = make_client

    def interrupting_client(region: str | None = None) -> Any:
        """The real client, with Ctrl-C arriving just before the manifest is sent."""
        client = made(region)

        def ctrl_c(params: dict[str, Any], **_: Any) -> None:
            if params.get("Key", "").endswith(".manifest.json"):
                raise KeyboardInterrupt

        client.meta.events.register("before-parameter-build.s3.PutObject", ctrl_c)
        return client

    argv = ["publish", str(path), "--branch", "main", "--production-bucket", production]
    # Production takes only tested bytes (or a loud override): this test is about Ctrl-C.
    argv += ["--prefix", "mme", "--commit", "c", "--untested=Ctrl-C test"]
    monkeypatch.setattr("mmepack.publish.s3.make_client", interrupting_client)
    assert main(argv) == 130
    err = capsys.readouterr().err
    url = f"s3://{production}/mme/demo_1.tar.gz"
    said = f"mmepack: interrupted: publishing demo_1.tar.gz to {url}: "
    assert any(line.startswith(said) for line in err.splitlines()), err
    assert f"{url} is in place but its manifest is not ({url}.manifest.json)" in err
    assert "publish again to write it" in err
    assert _keys(s3, production) == ["mme/demo_1.tar.gz"]

    monkeypatch.setattr("mmepack.publish.s3.make_client", made)
    assert main(argv) == 0
    assert f"{url} unchanged" in capsys.readouterr().out
    assert _keys(s3, production) == ["mme/demo_1.tar.gz", "mme/demo_1.tar.gz.manifest.json"]
    manifest = s3.get_object(Bucket=production, Key="mme/demo_1.tar.gz.manifest.json")
    stored = s3.head_object(Bucket=production, Key="mme/demo_1.tar.gz")
    assert manifest["Metadata"]["mmepack-sha256"] == stored["Metadata"]["mmepack-sha256"]


def test_ctrl_c_during_the_upload_says_nothing_changed(
    s3: Any, buckets: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, production = buckets
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    path = _artifact(tmp_path, b"v1")  # 11 MiB: a multipart upload of 3 parts
    sent = [0]

    def ctrl_c(amount: int) -> None:
        sent[0] += amount
        if sent[0] > THRESHOLD:  # after the first part
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        _publish(path, production, protect=True, callback=ctrl_c)
    assert str(info.value).endswith(f"s3://{production}/mme/demo_1.tar.gz was not changed.")
    assert _keys(s3, production) == []
    assert not s3.list_multipart_uploads(Bucket=production).get("Uploads")
    assert _publish(path, production, protect=True).status == "uploaded"
