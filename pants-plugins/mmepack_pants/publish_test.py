"""`pants publish` names git's real branch, never Pants' `HEAD` revision identifier."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest  # pants: no-infer-dep
from pants.core.util_rules.system_binaries import GitBinary
from pants.testutil.option_util import create_subsystem
from pants.vcs.git import GitWorktree

from mmepack_pants.publish import (
    MmepackDryRunFailed,
    MmepackPublish,
    dry_run_packages,
    find_test_records,
    publish_argv,
    report_packages,
    worktree_dirty,
)


def _options(**values: Any) -> MmepackPublish:
    defaults: dict[str, Any] = dict(
        staging_bucket=None,
        production_bucket=None,
        prefix=None,
        region=None,
        branch=None,
        dry_run=False,
        untested=None,
        env_passthrough=[],
    )
    defaults.update(values)
    return create_subsystem(MmepackPublish, **defaults)


def test_local_main_checkout_passes_main() -> None:
    argv = publish_argv(["m_1.tar.gz"], "models", _options(), {}, "main", "abc123")
    assert "--branch=main" in argv
    assert "--branch=HEAD" not in argv
    assert "--commit=abc123" in argv


def test_detached_head_passes_no_branch_so_mmepack_refuses() -> None:
    argv = publish_argv(["m_1.tar.gz"], "models", _options(), {}, None, "abc123")
    assert not any(arg.startswith("--branch") for arg in argv)


def test_ci_variables_and_option_win_over_git() -> None:
    env = {"GITHUB_REF_NAME": "feature/x", "GITHUB_SHA": "ci-sha"}
    argv = publish_argv(["m_1.tar.gz"], "models", _options(), env, "main", "abc123")
    assert not any(arg.startswith(("--branch", "--commit")) for arg in argv)
    argv = publish_argv(["m_1.tar.gz"], "models", _options(branch="rel"), {}, "main", None)
    assert [arg for arg in argv if arg.startswith("--branch")] == ["--branch=rel"]


def test_dry_run_is_reported_as_skipped_not_published() -> None:
    # A PublishPackages with a process is reported by Pants as "published."; a dry run is not.
    said = "mmepack: dry run: would upload m_1.tar.gz to s3://b/m_1.tar.gz"
    packages = dry_run_packages(["m_1.tar.gz"], 0, said)
    assert packages.process is None
    assert packages.description is not None
    assert "dry run, nothing was uploaded" in packages.description
    assert said in packages.description


def test_failed_dry_run_fails_with_the_cli_message() -> None:
    with pytest.raises(MmepackDryRunFailed, match="cannot tell which branch"):
        dry_run_packages(["m_1.tar.gz"], 2, "mmepack: error: cannot tell which branch")


def test_worktree_state_reaches_the_manifest_unless_ci_checked_out_the_commit() -> None:
    # The upload's sandbox has no git, so without this the manifest's git_dirty is null.
    args = ["m_1.tar.gz"], "models", _options()
    assert "--git-dirty=true" in publish_argv(*args, {}, "main", "abc", git_dirty=True)
    assert "--git-dirty=false" in publish_argv(*args, {}, "main", "abc", git_dirty=False)
    unknown = publish_argv(*args, {}, "main", "abc", git_dirty=None)
    assert not any(arg.startswith("--git-dirty") for arg in unknown)
    ci = publish_argv(*args, {"GITHUB_SHA": "ci-sha"}, "main", "abc", git_dirty=True)
    assert not any(arg.startswith("--git-dirty") for arg in ci)


def test_worktree_dirty_reads_the_real_worktree(tmp_path: Path) -> None:
    git_path = shutil.which("git")
    assert git_path is not None, "git is needed to build and publish from a checkout"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    worktree = GitWorktree(GitBinary(git_path), worktree=tmp_path)
    assert worktree_dirty(worktree) is False
    (tmp_path / "new.txt").write_text("untracked")
    assert worktree_dirty(worktree) is True
    (tmp_path / "new.txt").unlink()
    (tmp_path / "a.txt").write_text("changed")
    assert worktree_dirty(worktree) is True
    broken = GitWorktree(GitBinary(git_path), worktree=tmp_path / "no-such")
    assert worktree_dirty(broken) is None


def _report(status: str) -> bytes:
    url = "s3://prod/mme/m_1.tar.gz"
    return json.dumps(
        {"results": [{"artifact": "mme/m_1.tar.gz", "status": status, "url": url}]}
    ).encode()


def test_unchanged_is_never_reported_as_published() -> None:
    [package] = report_packages(
        ["mme/m_1.tar.gz"],
        0,
        "mmepack: s3://prod/mme/m_1.tar.gz unchanged",
        _report("unchanged"),
        "/bin/bash",
    )
    # No process: Pants prints "skipped", with this description, instead of "published".
    assert package.process is None
    assert package.description is not None
    assert "unchanged" in package.description and "nothing was uploaded" in package.description


def test_uploaded_is_published_with_its_url() -> None:
    [package] = report_packages(
        ["mme/m_1.tar.gz"], 0, "mmepack: uploaded", _report("uploaded"), "/bin/bash"
    )
    assert package.process is not None
    assert package.description == "s3://prod/mme/m_1.tar.gz (uploaded)"
    assert package.process.process.argv[-1] == "0"


def test_refusal_is_a_failure_with_mmepack_message() -> None:
    [package] = report_packages(
        ["mme/m_1.tar.gz"],
        1,
        "mmepack: error: refusing to publish to production",
        None,
        "/bin/bash",
    )
    assert package.process is not None
    argv = package.process.process.argv
    assert argv[-1] == "1" and "refusing to publish to production" in argv[-2]


def test_production_publish_is_given_the_test_records_and_a_report(tmp_path: Path) -> None:
    argv = publish_argv(["mme/m_1.tar.gz"], "models", _options(untested="hotfix"), {}, "main", "c")
    assert "--untested=hotfix" in argv
    assert any(a.startswith("--test-records=") for a in argv)
    assert any(a.startswith("--report=") for a in argv)
    (tmp_path / "dist/test/models.m.m/mme").mkdir(parents=True)
    (tmp_path / "dist/test/models.m.m/mme/m_1.tar.gz.tested.json").write_text("{}")
    (tmp_path / "dist/mme").mkdir(parents=True)
    (tmp_path / "dist/mme/m_1.tar.gz.tested.json").write_text("{}")
    (tmp_path / "dist/mme/other_1.tar.gz.tested.json").write_text("{}")
    records = find_test_records(str(tmp_path), "dist", ["mme/m_1.tar.gz"])
    assert sorted(r.path for r in records) == [
        "__mmepack_test_records/0/m_1.tar.gz.tested.json",
        "__mmepack_test_records/1/m_1.tar.gz.tested.json",
    ]


def test_the_upload_is_given_the_capacity_records_of_its_artifacts(tmp_path: Path) -> None:
    argv = publish_argv(["mme/m_1.tar.gz"], "models", _options(), {}, "main", "c")
    assert any(a.startswith("--capacity-records=") for a in argv)
    (tmp_path / "dist/test/models.m.m/mme").mkdir(parents=True)
    (tmp_path / "dist/test/models.m.m/mme/m_1.tar.gz.tested.json").write_text("{}")
    (tmp_path / "dist/test/models.m.m/mme/m_1.tar.gz.capacity.json").write_text("{}")
    (tmp_path / "dist/test/models.o.o/mme").mkdir(parents=True)
    (tmp_path / "dist/test/models.o.o/mme/o_1.tar.gz.capacity.json").write_text("{}")
    records = find_test_records(str(tmp_path), "dist", ["mme/m_1.tar.gz"])
    assert sorted(r.path.split("/", 2)[2] for r in records) == [
        "m_1.tar.gz.capacity.json",
        "m_1.tar.gz.tested.json",
    ]
