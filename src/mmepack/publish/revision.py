"""What is being built, as CI or git tells it: branch and commit.

CI systems check out a detached HEAD and name the branch and commit in their own variables, so
those come first and git is only asked when none is set. The branch picks the bucket (`main` is
production), so an unknown branch is an error rather than a guess: guessing "staging" is how a
local `main` checkout once published to the wrong bucket.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mmepack.errors import MmepackError

# BRANCH_VARIABLES: the CI variables naming the branch being built, re-exported for callers.
from mmepack_contract import BRANCH_VARIABLES as BRANCH_VARIABLES


def from_ci_or_git(
    variables: Sequence[str], git_args: Sequence[str], cwd: Path | None = None
) -> str | None:
    """The first non-empty variable, else git's output for `git_args`; None when neither."""
    for variable in variables:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    try:
        result = subprocess.run(
            ["git", *git_args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    output = result.stdout.strip()
    return output if result.returncode == 0 and output else None


def branch_name(override: str | None = None, cwd: Path | None = None) -> str:
    """The branch being built: `override`, then the CI variables, then git's branch name.

    `git rev-parse --abbrev-ref HEAD` prints the literal `HEAD` on a detached head; that is no
    branch, so it is refused with the ways to name one instead of being passed on.
    """
    if override and override.strip():
        return override.strip()
    branch = from_ci_or_git(BRANCH_VARIABLES, ["rev-parse", "--abbrev-ref", "HEAD"], cwd=cwd)
    if branch and branch != "HEAD":
        return branch
    where = "git's HEAD is detached" if branch == "HEAD" else "this is not a git checkout"
    raise MmepackError(
        f"cannot tell which branch is being published: {where} and none of "
        f"{', '.join('$' + v for v in BRANCH_VARIABLES)} is set; name it with "
        "`mmepack publish --branch=<name>` (under Pants: "
        "`./pants publish --mmepack-publish-branch=<name>`) or set one of those variables"
    )
