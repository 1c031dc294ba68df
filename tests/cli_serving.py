"""An installed `mmepack` command line (a wheel's console script, a PEX) serving and
load-testing the example, run as a user runs it: the endpoint as its own process until it
prints its URL, the load test with a bounded number of requests. Shared by the tests of each
way of installing it (test_install_wheel.py, test_cli_serve_pex.py), so both check the same."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "screen_detector"
PAYLOAD = REPO_ROOT / "models" / EXAMPLE / "tests" / "loadtest_payload.json"
COMMAND_SECONDS = 300
MAX_REQUESTS = 4


@contextmanager
def endpoint_process(
    command: Sequence[str], env: Mapping[str, str], err_path: Path, start_seconds: float
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`<command> endpoint ARTIFACT --port 0` (given whole as `command`) until it prints its
    runtime URL: (that URL, its process). Stopped with Ctrl-C at the end, killed if it hangs."""
    err = err_path.open("w+")
    owner = subprocess.Popen(
        list(command),
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=err,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_seconds
        url = None
        while url is None and time.monotonic() < deadline and owner.poll() is None:
            time.sleep(0.5)
            err.seek(0)
            found = re.search(r" at (http://127\.0\.0\.1:\d+)\n", err.read())
            url = found.group(1) if found else None
        err.seek(0)
        assert url, f"endpoint did not start: {err.read()[-4000:]}"
        yield url, owner
    finally:
        if owner.poll() is None:
            owner.send_signal(signal.SIGINT)
            try:
                owner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(owner.pid, signal.SIGKILL)
                owner.wait(timeout=30)
        err.close()


def loadtest(
    command: Sequence[str], env: Mapping[str, str], out: Path, *where: str
) -> dict[str, object]:
    """`<command> loadtest WHERE...` with the example's payload, at most MAX_REQUESTS per
    level; its summary.json."""
    done = subprocess.run(
        [*command, "loadtest", *where]
        + ["--payload", str(PAYLOAD), "--concurrency", "1", "--seconds", "2"]
        + ["--max-requests", str(MAX_REQUESTS), "--p99-ms", "60000", "--out", str(out)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary: dict[str, object] = json.loads((out / "summary.json").read_text())
    return summary


def all_answered(summary: dict[str, object]) -> int:
    """How many requests the report counts; each must have been answered (the ensemble's ONNX
    step ran in the stand-in, on the installed ONNX Runtime)."""
    cold = summary["cold_loads"]
    levels = summary["levels"]
    assert isinstance(cold, list) and isinstance(levels, list) and levels
    assert [c["outcome"] for c in cold] == ["ok"]
    for level in levels:
        assert 0 < level["requests"] <= MAX_REQUESTS
        assert level["errors"] == 0
    return len(cold) + sum(level["requests"] for level in levels)
