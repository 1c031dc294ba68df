"""`pants publish` names git's real branch, never Pants' `HEAD` revision identifier."""

from __future__ import annotations

from typing import Any

from pants.testutil.option_util import create_subsystem

from mmepack_pants.publish import MmepackPublish, publish_argv


def _options(**values: Any) -> MmepackPublish:
    defaults: dict[str, Any] = dict(
        staging_bucket=None,
        production_bucket=None,
        prefix=None,
        region=None,
        branch=None,
        dry_run=False,
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
