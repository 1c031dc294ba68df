"""A bound on how many model-test servers run at once on this machine.

Each model test starts a Triton server and a Python-backend stub per step, and Pants runs test
files in parallel up to its own process limit, which counts cores, not what a server holds.
With dozens of models, `./pants test ::` would start dozens of servers at once and push the
machine into swap or its OOM killer. Every server start therefore takes one of N slots first:
N lock files in a folder shared by all test processes of this user (Pants sandboxes included,
since it is outside them), held with `flock` for the server's lifetime. The kernel drops a lock
when its process dies, so a killed test never leaks a slot.

One setting: `MMEPACK_TEST_SERVERS` (a positive integer). Unset, it is what the machine holds:
one server per core, at most one per `GIB_PER_SERVER` GiB of available memory, at least one.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmepack.errors import MmepackError

SERVERS_VARIABLE = "MMEPACK_TEST_SERVERS"
SLOTS_DIR_VARIABLE = "MMEPACK_TEST_SLOTS_DIR"
# The example's server with its two Python stubs and unpacked environments used about 1 GiB;
# twice that leaves room for the test process itself and the page cache.
GIB_PER_SERVER = 2.0
_POLL_S = 0.2


def _available_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_default() -> int:
    """Servers this machine holds at once: one per core, bounded by available memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cores or 1
    memory = _available_gib()
    if memory is not None:
        limit = min(limit, int(memory // GIB_PER_SERVER))
    return max(1, limit)


def server_limit() -> int:
    """`MMEPACK_TEST_SERVERS`, or the machine's default when unset."""
    raw = os.environ.get(SERVERS_VARIABLE, "").strip()
    if not raw:
        return machine_default()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise MmepackError(
            f"{SERVERS_VARIABLE}={raw!r}: expected a positive whole number of test servers "
            f"allowed at once; unset it for this machine's default ({machine_default()})"
        )
    return value


def slots_dir() -> Path:
    """The folder all test processes share: `MMEPACK_TEST_SLOTS_DIR`, else a per-user folder in
    the system temp directory."""
    configured = os.environ.get(SLOTS_DIR_VARIABLE)
    if configured:
        return Path(configured)
    # Not under mmepack's scratch root, whose stale content each run may remove.
    return Path(tempfile.gettempdir()) / f"mmepack-test-servers-{os.getuid()}"


@contextmanager
def server_slot(
    label: str, *, limit: int | None = None, folder: Path | None = None, timeout: float = 1800.0
) -> Iterator[int]:
    """Hold one of `limit` slots while the block runs; yields the slot number.

    Waits (polling, up to `timeout` seconds) while every slot is taken, and says so once on
    stderr, so a slow test run explains itself."""
    count = server_limit() if limit is None else limit
    root = slots_dir() if folder is None else folder
    root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    said = False
    while True:
        for slot in range(count):
            handle = open(root / f"slot-{slot}.lock", "a+b")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield slot
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if time.monotonic() >= deadline:
            raise MmepackError(
                f"{label}: all {count} test-server slots in {root} stayed busy for {timeout:.0f} s; "
                f"raise {SERVERS_VARIABLE} if this machine holds more servers, or look for "
                "stuck test processes"
            )
        if not said:
            print(
                f"mmepack: {label}: waiting for one of {count} test-server slots "
                f"({SERVERS_VARIABLE})",
                file=sys.stderr,
                flush=True,
            )
            said = True
        time.sleep(_POLL_S)
