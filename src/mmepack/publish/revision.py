"""What is being built, as CI or git tells it: branch and commit.

CI systems check out a detached HEAD and name the branch and commit in their own variables, so
those come first and git is only asked when none is set.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


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
