"""Where the library keeps what the plugin must point users at, found the same way on both sides.

Only the standard library, on Python 3.7 and up: the plugin runs this inside Pants.
"""

from __future__ import annotations

import os
from typing import Mapping

from mmepack_contract import ENV_CACHE_FOLDER, ENV_CACHE_VARIABLE


def env_cache_root(env: Mapping[str, str], home: str) -> str:
    """The environment builder's cache folder for the variables `env` and the home folder
    `home`: $MMEPACK_ENV_CACHE, else under $XDG_CACHE_HOME, else under `home`/.cache."""
    if env.get(ENV_CACHE_VARIABLE):
        return env[ENV_CACHE_VARIABLE]
    base = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, *ENV_CACHE_FOLDER.split("/"))


def passthrough_for(base: str, pid: int) -> str:
    """The passthrough file that the Pants process `pid` writes, beside `base` (the path
    $MMEPACK_PASSTHROUGH_FILE names, the same for every run so that it stays out of cache keys):
    `env.json` -> `env-<pid>.json`. One file per Pants process keeps two runs at once on one
    machine, with different credentials, from reading each other's; a step finds its own by
    walking up its parent processes to the Pants process that started it."""
    stem, suffix = os.path.splitext(base)
    return f"{stem}-{pid}{suffix}"
