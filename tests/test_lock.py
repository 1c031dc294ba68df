"""requirements.lock: its digest of the requirements, parsing, and what validate and the build
say when it no longer matches (no network: the resolver itself runs in test_reproducible)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmepack.cli import main
from mmepack.environment.lock import (
    Pin,
    install_source,
    lock_path,
    read_lock,
    render_lock,
    requirements_digest,
    target_platforms,
)
from mmepack.errors import MmepackError
from mmepack.validate.lock import check_lock

NUMPY = "675d61ffbfa78604709862923189bad94014bef562cc35cf61d3a07bba02a7ed"
PILLOW = "42d63be3af4f9b951b199b0a9d23365d37ab14687e6d77b74940432c8515c4ca"


def _write_lock(model: Path, python: str = "3.12") -> Path:
    digest = requirements_digest(model / "requirements.txt")
    pins = [Pin("pillow", "13.0.0", PILLOW), Pin("numpy", "1.26.4", NUMPY)]
    text = render_lock("m", python, "manylinux_2_35_x86_64", digest, "pip 23.2.1", pins)
    path = lock_path(model / "requirements.txt")
    path.write_text(text)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "requirements.txt").write_text("pillow==13.*\n-r extra.txt\n")
    (folder / "extra.txt").write_text("numpy<2\n")
    return folder


def test_digest_ignores_cosmetics_but_follows_includes(model: Path) -> None:
    before = requirements_digest(model / "requirements.txt")
    (model / "requirements.txt").write_text(
        "# the steps need Pillow\n-r extra.txt\n\nPillow == 13.*\n"
    )
    assert requirements_digest(model / "requirements.txt") == before
    (model / "extra.txt").write_text("numpy<1.27\n")
    assert requirements_digest(model / "requirements.txt") != before


def test_missing_include_names_both_files(model: Path) -> None:
    (model / "extra.txt").unlink()
    with pytest.raises(
        MmepackError, match=r"extra.txt is missing; it is included from .*requirements.txt"
    ):
        requirements_digest(model / "requirements.txt")


def test_render_and_read_round_trip(model: Path) -> None:
    lock = read_lock(_write_lock(model))
    assert lock.python == "3.12" and lock.platform == "manylinux_2_35_x86_64"
    assert [(p.name, p.version) for p in lock.pins] == [("numpy", "1.26.4"), ("pillow", "13.0.0")]
    assert lock.pins[0].sha256 == NUMPY
    # The hash covers the pins only: a comment added to the file leaves it (and the cache key).
    with_comment = lock.text.replace("# Every", "# (a note)\n# Every")
    lock.path.write_text(with_comment)
    assert read_lock(lock.path).sha256 == lock.sha256


def test_hand_edited_lock_is_refused_with_the_fix(model: Path) -> None:
    path = _write_lock(model)
    path.write_text(path.read_text() + "requests==2.32.0\n")
    with pytest.raises(MmepackError) as caught:
        read_lock(path)
    assert f"{path}:" in str(caught.value) and "mmepack lock" in str(caught.value)


def test_validate_fails_when_requirements_changed_after_lock(model: Path) -> None:
    path = _write_lock(model)
    assert check_lock(model) == []
    (model / "requirements.txt").write_text("pillow==13.*\nrequests\n-r extra.txt\n")
    problems = check_lock(model)
    assert len(problems) == 1 and problems[0].severity == "error"
    assert problems[0].file == path and problems[0].line == 6
    assert f"mmepack lock {model} --python 3.12" in problems[0].message
    assert "model 'm'" in problems[0].message


def test_validate_warns_when_there_is_no_lock(model: Path) -> None:
    problems = check_lock(model)
    assert [p.severity for p in problems] == ["warning"]
    assert "requirements.lock" in problems[0].message and "mmepack lock" in problems[0].message


def test_cli_validate_exit_status_follows_the_lock(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model / "m").mkdir()
    (model / "m" / "config.pbtxt").write_text('name: "m"\nbackend: "python"\n')
    (model / "m" / "1").mkdir()
    (model / "m" / "1" / "model.py").write_text("")
    (model / "model_version.txt").write_text("1\n")
    _write_lock(model)
    (model / "extra.txt").write_text("numpy<1.27\n")
    assert main(["validate", str(model)]) == 1
    assert "requirements-sha256" in capsys.readouterr().out


def test_build_refuses_stale_lock_and_other_python(model: Path) -> None:
    _write_lock(model, python="3.11")
    with pytest.raises(
        MmepackError, match=r"made for Python 3.11 but the environment is Python 3.12"
    ):
        install_source(model / "requirements.txt", "3.12", "m")
    source = install_source(model / "requirements.txt", "3.11", "m")
    assert source.locked and source.path.name == "requirements.lock" and source.lock_sha256
    (model / "requirements.txt").write_text("pillow==12.*\n-r extra.txt\n")
    with pytest.raises(
        MmepackError, match=r"changed after requirements.lock was made; run `mmepack lock"
    ):
        install_source(model / "requirements.txt", "3.11", "m")


def test_without_lock_the_build_warns_and_resolves(model: Path) -> None:
    said: list[str] = []
    source = install_source(model / "requirements.txt", "3.12", "m", said.append)
    assert not source.locked and source.path.name == "requirements.txt"
    assert "warning: no requirements.lock" in said[0]


def test_target_platforms_spell_out_older_manylinux() -> None:
    tags = target_platforms("2.35")
    assert tags[0] == "manylinux_2_35_x86_64"
    assert "manylinux_2_28_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_36_x86_64" not in tags


@pytest.mark.parametrize(
    "include",
    [
        "-rextra.txt",
        "-cextra.txt",
        "--requirement=extra.txt",
        "--constraint=extra.txt",
        "--requirement extra.txt",
        "-c extra.txt",
        "--requirem=extra.txt",
        "--constr extra.txt",
        "-r 'extra.txt'",
    ],
)
def test_staleness_follows_every_include_form_pip_accepts(model: Path, include: str) -> None:
    # Issue 27 item 12: `-rextra.txt` and `-cextra.txt` were not followed, so an edit to the
    # included file left validate at 0 problems.
    (model / "requirements.txt").write_text(f"pillow==13.*\n{include}\n")
    _write_lock(model)
    assert check_lock(model) == []
    (model / "extra.txt").write_text("numpy<1.27\n")
    problems = check_lock(model)
    assert [p.field for p in problems] == ["requirements-sha256"], include
    assert "changed after requirements.lock was made" in problems[0].message


def test_ambiguous_or_other_options_are_not_includes(model: Path) -> None:
    # `--re` could be --requirement or --require-hashes: pip refuses it, so it pulls nothing in.
    (model / "requirements.txt").write_text("pillow==13.*\n--re=extra.txt\n--pre\n")
    before = requirements_digest(model / "requirements.txt")
    (model / "extra.txt").write_text("numpy<1.27\n")
    assert requirements_digest(model / "requirements.txt") == before


def test_validate_refuses_a_lock_with_a_numpy_the_target_server_refuses(model: Path) -> None:
    # Issue 27 item 11: such a lock passed validate with 0 problems, then package refused it.
    digest = requirements_digest(model / "requirements.txt")
    pins = [Pin("pillow", "13.0.0", PILLOW), Pin("numpy", "2.1.3", NUMPY)]
    text = render_lock("m", "3.12", "manylinux_2_35_x86_64", digest, "pip 23.2.1", pins)
    path = lock_path(model / "requirements.txt")
    path.write_text(text)
    problems = check_lock(model)
    assert len(problems) == 1 and problems[0].severity == "error"
    assert problems[0].field == "numpy" and problems[0].line == 8
    assert "pins numpy==2.1.3, but Triton 2.51.0 needs numpy<2" in problems[0].message
    assert f"mmepack lock {model} --python 3.12" in problems[0].message


def test_lock_resolves_with_the_target_servers_numpy_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What pip is asked for: the requirements plus the target's numpy requirement (the
    resolution itself, from the index, is exercised by test_lock_cli_pins_numpy_below_2)."""
    import subprocess

    from mmepack.environment import lock as lock_module

    model = tmp_path / "m"
    model.mkdir()
    (model / "requirements.txt").write_text("regex\n")
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        report = next(a.split("=", 1)[1] for a in argv if a.startswith("--report="))
        numpy = {
            "metadata": {"name": "numpy", "version": "1.26.4"},
            "download_info": {"url": "x", "archive_info": {"hashes": {"sha256": NUMPY}}},
        }
        Path(report).write_text(json.dumps({"pip_version": "23.2.1", "install": [numpy]}))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(lock_module, "_pip_for", lambda python: (["pip"], "3.12.1"))
    lock = lock_module.lock_model(model, "3.12")
    assert seen[0][-1] == "numpy<2" and str(model / "requirements.txt") in seen[0]
    assert "# target: Triton 2.51.0, numpy<2" in lock.text
