"""What measuring a model's capacity adds to its test: `mmepack test-cases`, on and off.

Side by side in one run, alternating so load on the machine hits both alike: the case run of a
demo model (an ensemble with one Python step, packaged on the fly), or of a given artifact and
model folder, with the capacity measurement as shipped, and with it switched off (the host-side
snapshots, the machine description and the record's sha256 replaced by nothing). Each run starts
its own server. Prints each run's wall time, the medians, the overhead as a share of the
test's time, and the time the measurement itself reports (`measure_overhead_s`: its snapshots
only, free of the server start's noise).

Run from the repository root:
`PYTHONPATH=src:. python benchmarks/capacity_overhead_bench.py [--runs N]
[--artifact dist/mme/x.tar.gz --model-dir models/x]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from mmepack.build import package_model
from mmepack.capacity.measure import LoadMeasurement
from mmepack.cases.run import run_cases

CASE = {"inputs": {"IN": {"values": [1.5, -2]}}, "expected": {"OUT": {"values": [3, -4]}}}


@contextlib.contextmanager
def measurement_off() -> Iterator[None]:
    def no_snapshot(_self: LoadMeasurement, _func: Any) -> None:
        return None

    with (
        mock.patch.object(LoadMeasurement, "_timed", no_snapshot),
        mock.patch("mmepack.cases.run.machine", lambda: {}),
        mock.patch("mmepack.cases.run.write_capacity", lambda *a, **k: Path("(off)")),
    ):
        yield


def _demo(root: Path) -> tuple[Path, Path]:
    from tests.demo_models import write_ensemble_model

    model_dir = write_ensemble_model(root / "bench", name="bench")
    (model_dir / "tests" / "cases").mkdir(parents=True)
    (model_dir / "tests" / "cases" / "one.json").write_text(json.dumps(CASE))
    return model_dir, package_model(model_dir, root / "dist").path


def _run(artifact: Path, model_dir: Path) -> float:
    started = time.monotonic()
    code = run_cases(artifact, model_dir, startup_timeout=300.0)
    if code != 0:
        raise SystemExit(f"the case run failed (exit {code}); fix the model first")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (1 to 10)")
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--model-dir", type=Path)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 10))
    with tempfile.TemporaryDirectory(prefix="capacity-bench-") as scratch:
        if args.artifact and args.model_dir:
            artifact, model_dir = args.artifact, args.model_dir
        else:
            model_dir, artifact = _demo(Path(scratch))
        on: list[float] = []
        off: list[float] = []
        reported: list[float] = []
        for _ in range(runs):
            with measurement_off():
                off.append(_run(artifact, model_dir))
            on.append(_run(artifact, model_dir))
            record = json.loads(artifact.with_name(artifact.name + ".capacity.json").read_text())
            reported.append(record["measure_overhead_s"])
    on_m, off_m = statistics.median(on), statistics.median(off)
    print(f"artifact: {artifact.name}; {runs} run(s) each, alternating")
    print("measurement off, s: " + ", ".join(f"{t:.2f}" for t in off))
    print("measurement on,  s: " + ", ".join(f"{t:.2f}" for t in on))
    print(
        f"median off {off_m:.2f} s, on {on_m:.2f} s: overhead {on_m - off_m:+.2f} s "
        f"({(on_m - off_m) / off_m * 100:+.1f}% of the test's time)"
    )
    print(
        "the measurement's own snapshots (measure_overhead_s), s: "
        + ", ".join(f"{t:.3f}" for t in reported)
        + f" (median {statistics.median(reported) / off_m * 100:.2f}% of the test's time)"
    )


if __name__ == "__main__":
    main()
