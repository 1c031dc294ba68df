"""Cold environment build of the example model, from its lock and without it, in one run.

Both sides run mmepack's full build (install, slim, make reproducible, pack, prove under a real
Triton server) of models/screen_detector's environment, each with its own empty environment
cache, alternating, on the same machine in the same run:

- without lock: a copy of requirements.txt alone, so pip resolves `pillow==13.*` and `numpy<2`
  against the index at build time (what every build did before locks);
- with lock: requirements.txt plus the committed requirements.lock, installed with
  `--require-hashes --no-deps` (no resolution).

pip's download cache is warmed once first (a discarded build), so neither side is timed
downloading the same wheels; each side still queries the index as its pip would.

Run from the repository root, on a machine with pyenv's shared-library CPython 3.12:
    PYTHONPATH=src python benchmarks/lock_bench.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mmepack.environment.build import build_environment
from mmepack.environment.cache import EnvCache
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.files import file_hexdigest
from mmepack.names import LOCK_FILE, REQUIREMENTS_FILE

MODEL = Path(__file__).resolve().parents[1] / "models" / "screen_detector"


def _quiet(_: str) -> None:
    pass


def _model_copy(root: Path, locked: bool) -> Path:
    root.mkdir(parents=True)
    shutil.copy(MODEL / REQUIREMENTS_FILE, root / REQUIREMENTS_FILE)
    if locked:
        shutil.copy(MODEL / LOCK_FILE, root / LOCK_FILE)
    return root / REQUIREMENTS_FILE


def cold_build(work: Path, name: str, locked: bool, python: str) -> tuple[float, str]:
    requirements = _model_copy(work / name, locked)
    output = work / name / "python_env.tar.gz"
    started = time.monotonic()
    built = build_environment(
        EnvRequest(requirements, python, label="screen_detector"),
        output,
        options=EnvOptions(builder="portable"),
        cache=EnvCache(work / name / "env-cache"),
        log=_quiet,
    )
    seconds = time.monotonic() - started
    if built.cached:
        raise SystemExit(f"{name}: expected a cold build, got a cache hit")
    return seconds, file_hexdigest(output, "sha256")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12", help="the example model's python_version")
    parser.add_argument("--rounds", type=int, default=1, help="cold builds per side")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"without lock": [], "with lock": []}
    digests: dict[str, set[str]] = {"without lock": set(), "with lock": set()}
    with tempfile.TemporaryDirectory(prefix="mmepack-lock-bench-") as scratch:
        work = Path(scratch)
        print("warming pip's download cache ...", file=sys.stderr, flush=True)
        cold_build(work, "warmup", True, args.python)
        for round_ in range(args.rounds):
            for side, locked in (("without lock", False), ("with lock", True)):
                print(f"round {round_ + 1}: {side} ...", file=sys.stderr, flush=True)
                seconds, digest = cold_build(
                    work, f"{side.replace(' ', '-')}-{round_}", locked, args.python
                )
                times[side].append(seconds)
                digests[side].add(digest)
    print(f"Cold build of screen_detector's Python {args.python} environment, seconds")
    print(f"{'':<13} {'median':>7} {'runs':>30}  distinct sha256s")
    for side, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{side:<13} {statistics.median(values):7.1f} {runs:>30}  {len(digests[side])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
