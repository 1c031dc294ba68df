"""Save-to-result time of `mmepack dev` on the example, side by side with `./pants test`.

One run, on this machine as it is (the load average is printed with the figures):

- dev loop: `python -m mmepack.dev` on a temporary copy of models/screen_detector (the real
  folder is never watched or edited), started once; then N saves of the postprocess step's
  model.py, one of its config.pbtxt, a blank line added to requirements.txt and a new
  requirement in it (the stale lock is reported by the static checks). Each time is from the write
  to the loop's printed verdict line (polling, static checks, staging, reload, every case),
  read from the loop's own output.
- Pants: `./pants test models/screen_detector:screen_detector` after the same one-line edit of
  the real postprocess model.py (restored afterwards, whatever happens), so Pants repackages
  and the case runner starts a fresh endpoint, as in a data scientist's loop today. A first,
  untimed run warms Pants (daemon, environment, packaging caches) so neither side is timed
  cold.

Run from the repository root:
`PYTHONPATH=src python benchmarks/dev_loop_bench.py [--edits N] [--pants-runs M]`
(the Python needs 3rdparty/python/requirements.txt, e.g. `./pants export` 's virtualenv).
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mmepack.model.repository import read_model_directory
from mmepack.model.weights import pull_weights, tracked_files, verify_weights

MODEL_DIR = Path("models/screen_detector")
STEP_CODE = "screen_detector_postprocess/1/model.py"
STEP_CONFIG = "screen_detector_postprocess/config.pbtxt"
PANTS_TARGET = "models/screen_detector:screen_detector"
# The loop's verdict lines: the cases' result, or the static checks' refusal.
VERDICT = ("mmepack dev: PASSED", "mmepack dev: FAILED")
START_TIMEOUT_S = 1800.0
CYCLE_TIMEOUT_S = 600.0


def _ensure_weights() -> None:
    """The copy needs model.onnx; put it in place the way `mmepack pull-weights` does."""
    name = read_model_directory(MODEL_DIR).name
    files = tracked_files(MODEL_DIR)
    if any(not f.path.exists() for f in files):
        pull_weights(name, Path.cwd(), files)
    verify_weights(name, files)


class DevProcess:
    """`python -m mmepack.dev` on a model copy, its output lines timestamped as they come."""

    def __init__(self, model: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(Path("src").resolve()), *sys.path[1:]])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmepack.dev", str(model)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), ""))

    def wait_for(self, prefixes: tuple[str, ...], timeout: float, echo: bool = False) -> float:
        """The time the first line starting with one of `prefixes` was printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                when, line = self.lines.get(timeout=1.0)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if echo:
                print(f"  | {line}", flush=True)
            if line.startswith(prefixes):
                if line.startswith(VERDICT[1]):
                    print(f"  (the loop reported a failure: {line[:100]})", flush=True)
                return when
            if not line and self.process.poll() is not None:
                break
        raise SystemExit(f"the dev loop printed no {prefixes[0]!r} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # Ctrl-C: the loop stops its server and cleans up
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=60)


def _append(path: Path, text: str) -> float:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return time.monotonic()


def dev_loop(edits: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "model.py": [],
        "config.pbtxt": [],
        "requirements.txt": [],
        "stale lock": [],
    }
    scratch = Path(tempfile.mkdtemp(prefix="mmepack-dev-bench-"))
    try:
        model = scratch / MODEL_DIR.name
        shutil.copytree(MODEL_DIR, model, ignore=shutil.ignore_patterns("__pycache__"))
        started = time.monotonic()
        dev = DevProcess(model)
        try:
            ready = dev.wait_for(("mmepack dev: watching",), START_TIMEOUT_S, echo=True)
            print(f"dev loop: started (build, start, load, first cases) in {ready - started:.1f} s")
            for i in range(edits):
                saved = _append(model / STEP_CODE, f"# benchmark edit {i}\n")
                times["model.py"].append(dev.wait_for(VERDICT, CYCLE_TIMEOUT_S) - saved)
                time.sleep(0.5)
            saved = _append(model / STEP_CONFIG, "# benchmark edit\n")
            times["config.pbtxt"].append(dev.wait_for(VERDICT, CYCLE_TIMEOUT_S) - saved)
            time.sleep(0.5)
            saved = _append(model / "requirements.txt", "\n")
            times["requirements.txt"].append(dev.wait_for(VERDICT, CYCLE_TIMEOUT_S) - saved)
            time.sleep(0.5)
            # A real change: the lock is stale, which the static checks report at once.
            requirements = model / "requirements.txt"
            original = requirements.read_text(encoding="utf-8")
            saved = _append(requirements, "six\n")
            times["stale lock"].append(dev.wait_for(VERDICT, CYCLE_TIMEOUT_S) - saved)
            time.sleep(0.5)
            requirements.write_text(original, encoding="utf-8")
            dev.wait_for(VERDICT, CYCLE_TIMEOUT_S)
        finally:
            dev.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return times


def pants_test(runs: int) -> list[float]:
    code = MODEL_DIR / STEP_CODE
    original = code.read_bytes()
    command = ["./pants", "test", PANTS_TARGET]
    print(f"pants: warm-up run of {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, capture_output=True)
    times = []
    try:
        for i in range(runs):
            code.write_bytes(original + f"# benchmark edit {i} {time.time()}\n".encode())
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True)
            times.append(time.monotonic() - started)
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:])
                raise SystemExit(f"{' '.join(command)} failed ({done.returncode})")
    finally:
        code.write_bytes(original)
    return times


def _row(name: str, values: list[float]) -> str:
    shown = ", ".join(f"{v:.2f}" for v in values)
    return f"{name:<42} median {statistics.median(values):6.2f} s   ({shown})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=10, help="model.py saves (default 10)")
    parser.add_argument("--pants-runs", type=int, default=3, help="timed ./pants test runs")
    args = parser.parse_args()
    _ensure_weights()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    dev = dev_loop(args.edits)
    pants = pants_test(args.pants_runs)
    print(f"load average after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print("save -> cases' result, models/screen_detector (median, then every run)")
    print(_row("mmepack dev: postprocess model.py", dev["model.py"]))
    print(_row("mmepack dev: postprocess config.pbtxt", dev["config.pbtxt"]))
    print(_row("mmepack dev: requirements.txt, blank line", dev["requirements.txt"]))
    print(_row("mmepack dev: requirements.txt, new pin", dev["stale lock"]))
    print(_row(f"./pants test {PANTS_TARGET}", pants))


if __name__ == "__main__":
    main()
