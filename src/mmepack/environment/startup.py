"""Bytecode for the standard-library modules a Python step imports while it starts.

Why: the standard library is copied into the environment without `__pycache__` (the seed
Python's own bytecode records its mtimes and paths, see determinism), so every stub on a cold
endpoint compiled `asyncio`, `json`, `typing`, `inspect` and the rest from source before it
could load `model.py`. Measured on the local endpoint (Triton 2.51, 2 cores): the example's two
auto-complete stubs took about 1.9 s while the instance stubs that came after them, finding the
bytecode the first ones had written, took 0.3 s. Shipping that bytecode moves the compile from
every cold load to the one environment build.

Only what a start imports is compiled, not the whole standard library: all of it would add
about 4 MB compressed to every artifact, what a stub imports adds a few hundred kB. The list
comes from running the environment's own Python: it imports what Triton's Python stub imports
before the model (`STUB_IMPORTS`, read from python_backend r24.10's stub and
`triton_python_backend_utils`, and checked against the bytecode a real 2.51 server wrote into an
environment without it) and every requirement, and reports which standard-library files that
loaded. A separate, fresh interpreter compiles them (checked-hash, prefix stripped, like
site-packages), so the bytes do not depend on the listing process's state.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mmepack.environment.determinism import compile_checked_hash, prefix_environment, prefix_python
from mmepack.errors import MmepackError

# What the stub itself imports before model.py (asyncio for async execute support, inspect to
# tell coroutines apart, json/struct/numpy through triton_python_backend_utils, importlib for
# loading model.py, traceback/logging for errors).
STUB_IMPORTS = (
    "asyncio",
    "importlib.util",
    "inspect",
    "json",
    "logging",
    "struct",
    "threading",
    "traceback",
    "typing",
)

# Runs under the environment's Python: import each module (a failure is the probe's business,
# not this one's), then print the standard-library sources now loaded, relative to the prefix.
_LIST = """
import importlib, json, os, sys, sysconfig
stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
prefix = os.path.realpath(sys.argv[1])
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except BaseException:
        pass
found = set()
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        continue
    path = os.path.realpath(path)
    if path.startswith(stdlib + os.sep) and os.sep + "site-packages" + os.sep not in path:
        found.add(os.path.relpath(path, prefix))
print(json.dumps(sorted(found)))
"""


def _environ(prefix: Path) -> dict[str, str]:
    env = prefix_environment()
    # The prefix's own libpython, as the stub gets it (Triton puts <env>/lib first).
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH", "")) if p
    )
    return env


def startup_sources(prefix: Path, modules: Sequence[str]) -> list[str]:
    """Standard-library sources (relative to `prefix`) loaded by importing `STUB_IMPORTS` and
    `modules` in the environment's own Python."""
    wanted = list(dict.fromkeys([*STUB_IMPORTS, *modules]))
    result = subprocess.run(
        [str(prefix_python(prefix)), "-I", "-B", "-c", _LIST, str(prefix), json.dumps(wanted)],
        capture_output=True,
        text=True,
        env=_environ(prefix),
        check=False,
        cwd=prefix,
    )
    if result.returncode != 0:
        raise MmepackError(
            f"{prefix}: listing the standard library a stub imports failed "
            f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    sources = json.loads(result.stdout.strip().splitlines()[-1])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise MmepackError(f"{prefix}: unexpected module listing {result.stdout[-500:]!r}")
    # Only the prefix's own copy: an interpreter whose standard library lives elsewhere (not a
    # whole prefix) must not get bytecode written into another installation.
    return [s for s in sources if not Path(s).is_absolute() and ".." not in Path(s).parts]


def compile_startup_bytecode(prefix: Path, modules: Sequence[str]) -> int:
    """Compile the standard-library modules a stub's start imports; return how many.

    Checked-hash pycs: an edited source is still recompiled, and the bytes do not depend on
    file times. `-s prefix` keeps the build path out of them (the importer sets `co_filename`
    to the real location when it loads them)."""
    sources = startup_sources(prefix, modules)
    if not sources:
        return 0
    listing = prefix / ".mmepack-startup-sources"
    listing.write_text("\n".join(str(prefix / s) for s in sources) + "\n", encoding="utf-8")
    try:
        result = compile_checked_hash(prefix, "-i", str(listing))
    finally:
        listing.unlink()
    if result.returncode != 0:
        failed = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise MmepackError(
            f"{prefix}: compiling the start-up bytecode failed (exit {result.returncode}):\n"
            + "\n".join(failed[-10:])
        )
    return len(sources)
