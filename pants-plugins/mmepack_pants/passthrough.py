"""How the machine's variables (`[mmepack].env_passthrough`: credentials, proxies, pip's index,
PATH, HOME) reach mmepack's steps without entering anything Pants caches.

Pants 2.17.1 keys a process on its whole Command: argv, every environment variable, the input
digest, the output paths and the named-cache mapping (`make_execute_request` in
`process_execution/src/lib.rs`). With a remote cache configured, it also stores that Command in
the local store for every process, `PER_SESSION` ones included (`ensure_action_stored_locally`,
`remote_cache.rs`), and uploads it with each result it writes. A process's stdout and stderr
are stored as well. So a credential in any process's environment is in the keys (a rotated CI
token never hits) and in the stores; an uncached process is no hiding place either.

What a process does not carry is the contents of a named cache (`append_only_caches`): only the
mapping name -> sandbox path is in the key; the folder stays on this machine, outside the store
and the remote cache. So `write_passthrough`, the one rule here that reads the variables, writes
them with plain file I/O (never a process) to a 0600 file in the named cache `CACHE_NAME`, on
every run; each cached step gets the constant `process_env()` and `APPEND_ONLY_CACHES`, and
`mmepack.passthrough.apply` loads the file when the step starts. A step that Pants answers from
a cache never reads the file, so rotated, wrong or absent credentials change nothing cached;
one that runs uses the current run's values.

Rules that start such a step (or a rule that awaits one) await `PassthroughWritten` first.
One file per Pants process (`env-<pid>.json`, mmepack_contract.paths.passthrough_for): two
Pants runs at the same moment on one machine with different credentials (two CI jobs sharing a
home folder) each hand their own values to their own steps, which find the file of the Pants
process among their parents; files of Pants processes that have ended are removed.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Dict, Mapping, Optional

from pants.engine.internals.session import RunId
from pants.engine.rules import collect_rules, rule
from pants.option.global_options import NamedCachesDirOption
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from mmepack_contract import PASSTHROUGH_VARIABLE
from mmepack_contract.paths import passthrough_for
from mmepack_pants import engine
from mmepack_pants.engine import PassthroughRequest, PassthroughWritten
from mmepack_pants.subsystem import MmepackSubsystem

# Pants' named cache (a folder under `[GLOBAL].named_caches_dir`) and where sandboxes see it.
CACHE_NAME = "mmepack_passthrough"
SANDBOX_DIR = ".cache/mmepack-passthrough"
FILE_NAME = "env.json"
# The variable the library's steps read the file's path from.
VARIABLE = PASSTHROUGH_VARIABLE
APPEND_ONLY_CACHES: FrozenDict[str, str] = FrozenDict({CACHE_NAME: SANDBOX_DIR})


def process_env(constants: Mapping[str, str] = FrozenDict()) -> Dict[str, str]:
    """The environment of a step that needs the machine's variables: `constants` (fixed values
    the rule chooses) and the file's sandbox path, the same on every machine and run."""
    return {**constants, VARIABLE: f"{SANDBOX_DIR}/{FILE_NAME}"}


def passthrough_file(named_caches_dir: Path, pid: Optional[int] = None) -> Path:
    """The file this Pants process (or `pid`) writes for its steps."""
    base = named_caches_dir / CACHE_NAME / FILE_NAME
    return Path(passthrough_for(str(base), os.getpid() if pid is None else pid))


def _remove_ended(folder: Path) -> None:
    """Delete the files of Pants processes that have ended: they hold credentials no step will
    read again."""
    stem, suffix = os.path.splitext(FILE_NAME)
    for path in folder.glob(f"{stem}-*{suffix}"):
        pid = path.name[len(stem) + 1 : -len(suffix)]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                path.unlink()
            except OSError:
                pass
        except OSError:
            pass  # alive, another user's: not ours to judge


def write_passthrough_file(named_caches_dir: Path, values: Mapping[str, str]) -> Path:
    """Write `values` as JSON to the passthrough file, readable by this user only; replaced in
    one rename, so a step never reads half a file. Left alone when it already holds them."""
    path = passthrough_file(named_caches_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    _remove_ended(path.parent)
    text = json.dumps(dict(values), sort_keys=True)
    try:
        if path.read_text(encoding="utf-8") == text and (path.stat().st_mode & 0o077) == 0:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    temporary = path.parent / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(8)}"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        if temporary.exists():
            temporary.unlink()
        raise
    return path


@rule(desc="Hand the machine's variables to mmepack's steps", level=LogLevel.DEBUG)
async def write_passthrough(
    request: PassthroughRequest,
    run_id: RunId,
    subsystem: MmepackSubsystem,
    named_caches_dir: NamedCachesDirOption,
) -> PassthroughWritten:
    """Runs on every run (it depends on the run's id), so the file holds this run's values even
    when another checkout on the machine wrote its own since, or the file was deleted."""
    names = sorted({*subsystem.env_passthrough, *request.extra})
    env_vars = await engine.env_vars(names)
    write_passthrough_file(Path(named_caches_dir.val), env_vars)
    return PassthroughWritten(tuple(sorted(env_vars)))


def rules():
    return collect_rules()
