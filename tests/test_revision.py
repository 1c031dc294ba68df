"""The branch comes from CI variables or git's real branch name; a detached head is an error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mmepack.errors import MmepackError
from mmepack.publish.revision import BRANCH_VARIABLES, branch_name


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in BRANCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_local_main_checkout_is_main(repo: Path) -> None:
    assert branch_name(cwd=repo) == "main"


def test_detached_head_without_ci_variable_says_how_to_name_it(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    with pytest.raises(MmepackError, match=r"HEAD is detached.*--branch=<name>"):
        branch_name(cwd=repo)


def test_not_a_checkout_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BRANCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(MmepackError, match="not a git checkout.*GITHUB_REF_NAME"):
        branch_name(cwd=tmp_path)


def test_ci_variable_and_override_win(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _git(repo, "checkout", "-q", "--detach")
    monkeypatch.setenv("CI_COMMIT_BRANCH", "main")
    assert branch_name(cwd=repo) == "main"
    assert branch_name("release", cwd=repo) == "release"


def test_publish_on_detached_head_exits_with_the_message(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmepack.cli import main

    _git(repo, "checkout", "-q", "--detach")
    monkeypatch.chdir(repo)
    code = main(["publish", "m_1.tar.gz", "--staging-bucket=s", "--production-bucket=p"])
    err = capsys.readouterr().err
    assert code != 0
    assert "mmepack: error: cannot tell which branch" in err
    assert "Traceback" not in err
