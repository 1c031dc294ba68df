"""The build machine's variables (credentials, proxies, where a base Python is), handed to a
build step outside its cache key.

Pants puts every variable of a process's environment into that process's cache key, and with a
remote cache uploads the whole environment to the shared store. So the Pants plugin gives its
cached steps (packaging, the environment build) no variable from the user's environment: it
writes `[mmepack].env_passthrough`'s values to a private file in a Pants named cache, a folder
local to the machine whose contents are in no key and never uploaded, and names that file, by a
path that is the same on every machine, in `MMEPACK_PASSTHROUGH_FILE`. Each Pants process writes
its own file beside that path (`env-<its pid>.json`: two runs at once on one machine, say two CI
jobs of different credentials sharing a home folder, never read each other's), and `apply`
reads the one of the nearest Pants process among the step's parents when the step starts, so everything after (DVC, pip, the base Python's search) sees the variables as if
they had been passed directly. The key then holds only content, the same for any credentials,
user, HOME or checkout.

The file's values are secrets: no message here quotes them, only the file's path.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from mmepack.errors import MmepackError
from mmepack_contract import PASSTHROUGH_VARIABLE
from mmepack_contract.paths import passthrough_for

# Far more parents than a step has between it and Pants (a shell, a PEX launcher, Python).
_MAX_PARENTS = 32

# The variable the Pants plugin sets (the contract's name).
VARIABLE = PASSTHROUGH_VARIABLE


def read(path: Path) -> dict[str, str]:
    """The variables in the file at `path` (a JSON object of strings)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MmepackError(
            f"{path}: the file of machine variables (credentials, PATH, HOME) that ${VARIABLE} "
            "names does not exist; the Pants plugin writes it at the start of every run, so run "
            f"the step through `./pants`, or unset {VARIABLE} to run it by hand"
        ) from None
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        # Never quote the content: it holds credentials.
        raise MmepackError(
            f"{path}: expected a JSON object of variable names to string values (the file ${VARIABLE} "
            "names, which the Pants plugin writes); delete it and run `./pants` again"
        )
    return values


def _parent(pid: int) -> int | None:
    """`pid`'s parent process, or None when it is gone or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        # `pid (command) state ppid ...`: the command may hold spaces and parentheses.
        return int(stat[stat.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (macOS): ps says it
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
        return int(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _parents() -> Iterator[int]:
    pid: int | None = os.getppid()
    for _ in range(_MAX_PARENTS):
        if pid is None or pid <= 0:
            return
        yield pid
        pid = _parent(pid)


def find(base: Path) -> Path:
    """The file of the Pants process that started this step: `base`'s `-<pid>` sibling for the
    nearest parent that has one; else `base` itself (a file named by hand)."""
    for pid in _parents():
        candidate = Path(passthrough_for(str(base), pid))
        if candidate.is_file():
            return candidate
    return base


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the variables of the file `$MMEPACK_PASSTHROUGH_FILE` names, if it names one.

    Its values win over the process's own, as `env_passthrough` values did when the plugin put
    them in the process's environment. The variable itself is removed, so a child mmepack
    process does not read the file again from another folder.
    """
    env = os.environ if environ is None else environ
    name = env.pop(VARIABLE, "")
    if name:
        env.update(read(find(Path(name))))
