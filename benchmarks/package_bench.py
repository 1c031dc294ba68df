"""Where `mmepack package` spends its seconds per model, before and after the shared
environment, and what the artifact's gzip level costs.

Packages the example (`models/screen_detector`, weights from the DVC cache, environment from
mmepack's cache: what every model of a 50-model CI run does after the first) with the layout
before (a copy of the environment per Python step, recompressed by the artifact's gzip) and the
new one (one plain tar, its cached deflate bytes spliced into the artifact's one gzip
member), at gzip levels 1, 6 (mmepack's) and 9, alternating, then profiles one package of
each layout by stage. Per-model work is the same for every model whose environment is cached,
so 50 models take 50 times the per-model figure.

Run from the repository root:
`PYTHONPATH=src:. python benchmarks/package_bench.py [--runs 3]`
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mmepack.artifact import writer
from mmepack.artifact.env_layout import EnvLayout
from mmepack.build import package_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "models" / "screen_detector"
LEVELS = (1, 6, 9)
LAYOUTS = (EnvLayout.PER_STEP, EnvLayout.default())
# Stages by the function that does them, for the profile.
STAGES = {
    "validate": "validate_model_directory",
    "weights (DVC cache, md5)": "verify_weights",
    "environment (cache hit)": "build_environment",
    "step bytecode": "step_bytecode",
    "env check (inflate once)": "inspect_gzip",
    "write + compress": "write_artifact",
}


def package(out: Path, layout: EnvLayout, level: int) -> tuple[float, int]:
    started = time.monotonic()
    result = package_model(
        EXAMPLE, out, pull=True, repo_root=REPO, python="3.12", layout=layout, compress_level=level
    )
    return time.monotonic() - started, result.path.stat().st_size


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    found: dict[str, float] = {}
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (_, _, function), (_, _, _, cumulative, _) in table.items():
        for stage, name in STAGES.items():
            if function == name:
                found[stage] = found.get(stage, 0.0) + cumulative
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: dict[tuple[EnvLayout, int], list[float]] = {}
    sizes: dict[tuple[EnvLayout, int], int] = {}
    profiles: dict[EnvLayout, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mmepack-package-bench-") as scratch:
        out = Path(scratch)
        package(out / "warm", EnvLayout.default(), 6)  # weights and environment into the caches
        for _ in range(args.runs):
            for layout in LAYOUTS:
                for level in LEVELS:
                    seconds, size = package(out / f"{layout.value}-{level}", layout, level)
                    times.setdefault((layout, level), []).append(seconds)
                    sizes[(layout, level)] = size
        for layout in LAYOUTS:
            profiler = cProfile.Profile()
            profiler.enable()
            package(out / f"profile-{layout.value}", layout, writer.COMPRESS_LEVEL)
            profiler.disable()
            profiles[layout] = stage_seconds(pstats.Stats(profiler))
    print(f"screen_detector, environment and weights cached; {args.runs} runs each, alternating")
    print(
        f"{'layout':<15}{'gzip level':>11}{'MB':>8}{'s/model median (min-max)':>28}{'50 models s':>13}"
    )
    for layout in LAYOUTS:
        for level in LEVELS:
            runs = times[(layout, level)]
            median = statistics.median(runs)
            print(
                f"{layout.value:<15}{level:>11}{sizes[(layout, level)] / 1e6:>8.1f}"
                f"{f'{median:.2f} ({min(runs):.2f}-{max(runs):.2f})':>28}{50 * median:>13.0f}"
            )
    print(f"\nwhere one package's seconds go (cProfile, gzip level {writer.COMPRESS_LEVEL})")
    print(f"{'stage':<28}" + "".join(f"{layout.value:>15}" for layout in LAYOUTS))
    for stage in STAGES:
        print(
            f"{stage:<28}"
            + "".join(f"{profiles[layout].get(stage, 0.0):>15.2f}" for layout in LAYOUTS)
        )


if __name__ == "__main__":
    main()
