"""Package time of the example model with a cold and a warm DVC weights cache, in one run.

    PYTHONPATH=src:. python benchmarks/weights_cache_bench.py [--repeat 3] [--weights-mb 0]

The example's weights are pushed to an S3 DVC remote (a moto server on loopback), then
`mmepack package models/screen_detector --pull` runs against that remote:

- cold: an empty DVC cache each time, which is what every package sandbox had before the shared
  cache (the baseline);
- warm: the shared cache after one pull, which is what every later build of any model tracking
  the same weights gets.

The Python environment comes from mmepack's environment cache in both (built once, untimed,
before the timed runs), so the difference is the weights. `--weights-mb N` replaces the
example's 4 KB classifier with N MB of random bytes (recorded with `dvc add`) to show how the
difference grows with real weights. The script prints seconds (median of --repeat runs) and the
object GET requests the S3 server answered for each kind of run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.moto_s3 import aws_env, create_bucket, start_moto, stop

REPO = Path(__file__).resolve().parents[1]
MODEL = "models/screen_detector"
WEIGHT = f"{MODEL}/screen_detector_classifier/1/model.onnx"
BUCKET = "mmepack-bench-weights"


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")


def _package(root: Path, env: dict[str, str], cache: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    weight = root / WEIGHT
    weight.unlink(missing_ok=True)
    started = time.perf_counter()
    _run(
        [
            sys.executable,
            "-m",
            "mmepack",
            "package",
            MODEL,
            "--pull",
            "--repo-root=.",
            f"--dvc-cache={cache}",
            f"--output-dir={out}",
            "--python=3.12",
        ],
        root,
        env,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--weights-mb", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mmepack-weights-bench-") as scratch:
        base = Path(scratch)
        moto = start_moto(base / "moto.log")
        try:
            env = aws_env(base, moto.url)
            env["PYTHONPATH"] = str(REPO / "src")
            create_bucket(moto.url, BUCKET)
            root = base / "repo"
            shutil.copytree(REPO / MODEL, root / MODEL, ignore=shutil.ignore_patterns("tests"))
            md5 = (root / f"{WEIGHT}.dvc").read_text().split("md5: ")[1].split()[0]
            shutil.copy(REPO / "dvc-remote/files/md5" / md5[:2] / md5[2:], root / WEIGHT)
            if args.weights_mb:
                (root / WEIGHT).write_bytes(os.urandom(args.weights_mb * 1024 * 1024))
            dvc = [sys.executable, "-m", "dvc", "-q"]
            _run([*dvc, "init", "--no-scm"], root, env)
            _run([*dvc, "remote", "add", "-d", "storage", f"s3://{BUCKET}/dvc"], root, env)
            _run([*dvc, "add", WEIGHT], root, env)
            _run([*dvc, "push"], root, env)
            shutil.rmtree(root / ".dvc" / "cache")
            size = (root / WEIGHT).stat().st_size

            # Untimed: make sure the environment cache holds this model's environment.
            _package(root, env, base / "warmup-cache", base / "out")

            cold: list[float] = []
            warm: list[float] = []
            gets_before = moto.object_gets(BUCKET)
            for index in range(args.repeat):
                cold.append(_package(root, env, base / f"cold-{index}", base / "out"))
            cold_gets = moto.object_gets(BUCKET) - gets_before
            shared = base / "shared-cache"
            _package(root, env, shared, base / "out")  # fills the shared cache
            gets_before = moto.object_gets(BUCKET)
            for _ in range(args.repeat):
                warm.append(_package(root, env, shared, base / "out"))
            warm_gets = moto.object_gets(BUCKET) - gets_before
        finally:
            stop(moto.process)

    print(f"mmepack package {MODEL} --pull, S3 DVC remote on loopback, weights {size} bytes")
    print(f"median of {args.repeat} runs; seconds; object GETs over all runs")
    print(f"{'weights cache':<14}{'seconds':>9}{'GETs':>6}")
    print(f"{'cold':<14}{statistics.median(cold):>9.2f}{cold_gets:>6}")
    print(f"{'warm':<14}{statistics.median(warm):>9.2f}{warm_gets:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
