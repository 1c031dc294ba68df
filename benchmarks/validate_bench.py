"""How long `validate_tree` takes on a repository of 50 realistic models, against two baselines.

Validation is meant to run on every commit and in editors, so it must stay close to the cost of
merely reading the files. This script builds 50 renamed copies of `models/screen_detector` (an
ensemble of two Python steps around an ONNX model, weights as `.dvc` files) in a temporary
folder, then prints the best of 5 runs of:

- reading every file of the tree (the floor any file-based check pays),
- parsing every `config.pbtxt` with Triton's schema (the floor of any schema-aware check),
- `validate_tree` (all rules).

Run from the repository root: `PYTHONPATH=src python benchmarks/validate_bench.py`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mmepack.model.config import read_model_config
from mmepack.validate import count_errors, validate_tree

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "models" / "screen_detector"
EXAMPLE_NAME = "screen_detector"
COPIES = 50
RUNS = 5

# What a model directory holds in git; the example's tests and weight scripts are not models,
# and model.onnx itself is git-ignored (only its .dvc file is committed).
_SKIPPED = ("tests", "weights", "BUILD", "__pycache__")


def make_repository(target: Path, copies: int = COPIES) -> Path:
    """`copies` renamed copies of the example, as `target/models/<name>NN/`."""
    sources = [
        p
        for p in sorted(EXAMPLE.rglob("*"))
        if p.is_file()
        and not any(part in _SKIPPED for part in p.relative_to(EXAMPLE).parts)
        and p.name != "model.onnx"
    ]
    models = target / "models"
    for index in range(copies):
        name = f"{EXAMPLE_NAME}{index:02d}"
        root = models / name
        for source in sources:
            rel = source.relative_to(EXAMPLE).as_posix().replace(EXAMPLE_NAME, name)
            destination = root / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                destination.write_text(source.read_text().replace(EXAMPLE_NAME, name))
            except UnicodeDecodeError:
                shutil.copyfile(source, destination)
    return models


def best_of(runs: int, action: Callable[[], object]) -> float:
    """The fastest of `runs` timings, in seconds: the least disturbed by the machine."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def read_all_files(root: Path) -> int:
    return sum(len(p.read_bytes()) for p in root.rglob("*") if p.is_file())


def parse_all_configs(root: Path) -> int:
    return sum(1 for p in root.rglob("config.pbtxt") if read_model_config(p) is not None)


def main() -> int:
    if not (EXAMPLE / EXAMPLE_NAME / "config.pbtxt").is_file():
        print(f"validate_bench: {EXAMPLE} is missing; run from a checkout", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="mmepack-bench-") as tmp:
        models = make_repository(Path(tmp))
        files = sum(1 for p in models.rglob("*") if p.is_file())
        configs = sum(1 for _ in models.rglob("config.pbtxt"))
        problems = validate_tree(models)
        if count_errors(problems):
            print("\n".join(str(p) for p in problems), file=sys.stderr)
            return 1

        read_s = best_of(RUNS, lambda: read_all_files(models))
        parse_s = best_of(RUNS, lambda: parse_all_configs(models))
        validate_s = best_of(RUNS, lambda: validate_tree(models))

    print(f"{COPIES} models, {configs} config.pbtxt, {files} files; best of {RUNS} runs")
    print(f"baseline: read every file           {read_s * 1e3:8.2f} ms")
    print(f"baseline: Triton-schema parse only  {parse_s * 1e3:8.2f} ms")
    print(
        f"validate_tree                       {validate_s * 1e3:8.2f} ms "
        f"({validate_s / COPIES * 1e3:.2f} ms per model, {validate_s / parse_s:.1f}x schema "
        f"parse, {validate_s / read_s:.1f}x reading)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
