"""Python backend environment builds: mmepack's builder against a plain build, side by side.

For each requirements set below this prints, for both pipelines in the same run and on the same
machine:

- cold: the first build (empty environment cache; pip's own download cache is warmed first, so
  neither side is timed downloading wheels);
- warm: the same requirements again, as a second model or a second `pants package` asks for;
- packed: the size of python_env.tar.gz, the bytes every artifact carries per Python step.

The baseline is what a team typically scripts: the same portable prefix, `pip install -r`, then
conda-pack; no cache, no slimming and no proof, so its warm build is a full rebuild.
mmepack's cold build includes slimming and the proof under a real Triton server.

Run from the repository root, on a machine with pyenv's shared-library CPythons:
    PYTHONPATH=src python benchmarks/env_build_bench.py [--python 3.11]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import conda_pack

from mmepack.environment.build import build_environment
from mmepack.environment.builders import PortableBuilder
from mmepack.environment.cache import EnvCache
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.environment.requirements import mentions_numpy

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_SETS = {
    "numpy only": "numpy<2\n",
    "screen_detector": (REPO_ROOT / "models" / "screen_detector" / "requirements.txt").read_text(),
}


def _quiet(_: str) -> None:
    pass


def baseline_build(requirements: Path, python: str, output: Path) -> None:
    """Prefix + pip install + conda-pack, nothing else."""
    text = requirements.read_text()
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        prefix = Path(scratch) / "env"
        extra = [] if mentions_numpy(text) else ["numpy"]
        PortableBuilder().populate(requirements, extra, python, prefix)
        output.unlink(missing_ok=True)
        # Plain conda-pack, every core, as a build without mmepack would pack it.
        conda_pack.pack(
            prefix=str(prefix),
            output=str(output),
            format="tar.gz",
            n_threads=os.cpu_count() or 1,
            compress_level=4,
            verbose=False,
        )


def mmepack_build(cache: EnvCache, requirements: Path, python: str, output: Path) -> bool:
    built = build_environment(
        EnvRequest(requirements, python),
        output,
        options=EnvOptions(builder="portable"),
        cache=cache,
        log=_quiet,
    )
    return built.cached


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.11")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmepack-env-bench-") as scratch:
        work = Path(scratch)
        cache = EnvCache(work / "cache")
        for name, text in REQUIREMENT_SETS.items():
            requirements = work / f"{name.replace(' ', '_')}.txt"
            requirements.write_text(text)
            print(f"[{name}] warming pip's download cache ...", file=sys.stderr, flush=True)
            baseline_build(requirements, args.python, work / "warmup.tar.gz")
            base_out, ours_out = work / "baseline.tar.gz", work / "mmepack.tar.gz"
            print(f"[{name}] timing ...", file=sys.stderr, flush=True)
            base_cold = timed(lambda: baseline_build(requirements, args.python, base_out))
            base_warm = timed(lambda: baseline_build(requirements, args.python, base_out))
            ours_cold = timed(lambda: mmepack_build(cache, requirements, args.python, ours_out))
            hit: list[bool] = []
            ours_warm = timed(
                lambda: hit.append(mmepack_build(cache, requirements, args.python, ours_out))
            )
            if hit != [True]:
                raise SystemExit(f"[{name}] the second mmepack build was not a cache hit")
            rows.append(
                (
                    name,
                    base_cold,
                    ours_cold,
                    base_warm,
                    ours_warm,
                    base_out.stat().st_size,
                    ours_out.stat().st_size,
                )
            )
            shutil.rmtree(work / "cache", ignore_errors=True)
            cache = EnvCache(work / "cache")
    print(f"Python {args.python} environments, portable builder; times in seconds, sizes in MB")
    header = (
        f"{'requirements':<16} {'cold base':>9} {'cold mme':>9} {'warm base':>9} "
        f"{'warm mme':>9} {'MB base':>8} {'MB mme':>7}"
    )
    print(header)
    for name, bc, oc, bw, ow, bs, os_ in rows:
        print(
            f"{name:<16} {bc:9.1f} {oc:9.1f} {bw:9.1f} {ow:9.2f} {bs / 1e6:8.1f} {os_ / 1e6:7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
