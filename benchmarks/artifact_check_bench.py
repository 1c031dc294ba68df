"""How long publish's artifact check takes on the hostile inputs of issue 25, item 10.

Issue 25 found a 4 MB gzip bomb (4 GiB of zeros) accepted after 67 s and 40,000 members checked
in 34 s (a list lookup per member). The check must refuse the bomb after a bounded read and
stay linear in the member count: this script builds, in memory and in seconds,

- the 4 GiB bomb (`tests/hostile_artifacts.gzip_bomb`), and
- artifacts of 10,000 and 40,000 empty members,

and prints the time `check_artifact` takes on each (best of 2) and what it answered.

Run from the repository root: `PYTHONPATH=src:. python benchmarks/artifact_check_bench.py`.
Point PYTHONPATH at an older `src/` for the baseline (the bomb then takes about a minute).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mmepack.artifact.check import check_artifact
from mmepack.errors import MmepackError
from tests import hostile_artifacts

RUNS = 2


def timed(path: Path) -> tuple[float, str]:
    best = float("inf")
    answer = ""
    for _ in range(RUNS):
        started = time.perf_counter()
        try:
            checked = check_artifact(path)
            answer = f"accepted, {len(checked.members)} members"
        except MmepackError as exc:
            answer = "refused: " + str(exc).split(": ", 1)[1][:60] + "..."
        best = min(best, time.perf_counter() - started)
    return best, answer


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {
            "gzip bomb, 4 GiB of zeros": hostile_artifacts.gzip_bomb(
                root / "bomb" / "demo_1.tar.gz", zeros=4096 * hostile_artifacts.MiB
            ),
            "10,000 members": hostile_artifacts.many_members(
                root / "m10" / "demo_1.tar.gz", 10_000
            ),
            "40,000 members": hostile_artifacts.many_members(
                root / "m40" / "demo_1.tar.gz", 40_000
            ),
        }
        print(f"{'artifact':28} {'file bytes':>11} {'check s':>8}  answer")
        for name, path in cases.items():
            seconds, answer = timed(path)
            print(f"{name:28} {path.stat().st_size:>11} {seconds:>8.2f}  {answer}")


if __name__ == "__main__":
    main()
