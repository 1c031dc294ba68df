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
