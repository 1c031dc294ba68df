"""How validation time grows with the number of ensemble steps, against the schema parse alone.

Issue 13 found a 1,000-step ensemble raising RecursionError and a 5,000-step one taking 34 s
(quadratic line lookups). Validation must stay linear: this script writes chains of N steps
(each step runs the same Python model, step i feeds step i+1) and prints, for each N, the best
of 3 runs of

- parsing the ensemble's config.pbtxt with Triton's schema (the floor any check pays), and
- `validate_model_directory` (all rules, including the cycle search),

with the ratio between them. A linear validator keeps that ratio flat as N grows.

Run from the repository root: `PYTHONPATH=src python benchmarks/ensemble_steps_bench.py [N ...]`
(step counts; default 250 1000 5000). Point PYTHONPATH at an older `src/` for the baseline.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mmepack.model.config import parse_model_config
from mmepack.validate import count_errors, validate_model_directory

SIZES = tuple(int(n) for n in sys.argv[1:]) or (250, 1000, 5000)
RUNS = 3

STEP_CONFIG = """name: "chain_step"
backend: "python"
max_batch_size: 4
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""


def write_chain(root: Path, steps: int) -> Path:
    """A model directory whose ensemble `chain` runs `chain_step` `steps` times in a row."""
    (root / "chain").mkdir(parents=True)
    (root / "chain_step" / "1").mkdir(parents=True)
    (root / "chain_step" / "config.pbtxt").write_text(STEP_CONFIG)
    (root / "chain_step" / "1" / "model.py").write_text("class TritonPythonModel:\n    pass\n")
    (root / "model_version.txt").write_text("1\n")
    lines = []
    for index in range(steps):
        source = "IN" if index == 0 else f"T{index}"
        target = "OUT" if index == steps - 1 else f"T{index + 1}"
        lines.append(
            f'  step {{ model_name: "chain_step" model_version: -1 '
            f'input_map {{ key: "IN" value: "{source}" }} '
            f'output_map {{ key: "OUT" value: "{target}" }} }}'
        )
    (root / "chain" / "config.pbtxt").write_text(
        'name: "chain"\nplatform: "ensemble"\nmax_batch_size: 4\n'
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        "ensemble_scheduling {\n" + "\n".join(lines) + "\n}\n"
    )
    return root


def best(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    sys.setrecursionlimit(1000)  # the default: validation must not depend on raising it
    print(f"{'steps':>6} {'schema parse':>13} {'validate':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        for steps in SIZES:
            root = write_chain(Path(scratch) / f"chain{steps}", steps)
            config = root / "chain" / "config.pbtxt"
            text = config.read_text()
            problems = validate_model_directory(root)
            if count_errors(problems):
                print("\n".join(map(str, problems)))
                return 1
            parse = best(lambda: parse_model_config(text, config))
            validate = best(lambda: validate_model_directory(root))
            print(f"{steps:>6} {parse:>12.2f}s {validate:>9.2f}s {validate / parse:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
