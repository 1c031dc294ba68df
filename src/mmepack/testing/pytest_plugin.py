"""pytest hooks for model tests; enable them with one line in the model's `tests/conftest.py`:

    from mmepack.testing.pytest_plugin import pytest_terminal_summary  # noqa: F401

The summary says which artifact each test server ran and whether it used a GPU or the CPU, so
a green run on a laptop is never mistaken for a GPU check. The same hook records the run for
each served artifact (`mmepack.publish.tested`): production publishing needs a passing run of
the exact bytes. Under Pants the record goes to the sandbox's `extra-output/` folder, which Pants
writes under dist/test/<target>/; elsewhere it is written beside the artifact.
"""

from __future__ import annotations

from pathlib import Path

from _pytest.terminal import TerminalReporter

from mmepack.publish.tested import RECORD_SUFFIX, write_test_record
from mmepack.testing import SERVED_ARTIFACTS, SERVED_REPORTS

# Pants' pytest runner captures what tests write here (pants.backend.python.goals.pytest_runner).
PANTS_EXTRA_OUTPUT = Path("extra-output")


def _record_runs(exitstatus: int, passed: list[str]) -> list[Path]:
    written = []
    for artifact in dict.fromkeys(SERVED_ARTIFACTS):
        if not artifact.is_file():
            continue
        destination = (
            PANTS_EXTRA_OUTPUT / (artifact.name + RECORD_SUFFIX)
            if PANTS_EXTRA_OUTPUT.is_dir()
            else None
        )
        try:
            record = write_test_record(
                artifact,
                passed=exitstatus == 0,
                cases=passed,
                exit_code=int(exitstatus),
                destination=destination,
            )
        except OSError:
            continue  # a read-only artifact folder: the run stands, unrecorded
        written.append(record)
    return written


def pytest_terminal_summary(terminalreporter: TerminalReporter, exitstatus: int) -> None:
    if SERVED_REPORTS:
        terminalreporter.section("mmepack")
        for line in SERVED_REPORTS:
            terminalreporter.write_line(f"mmepack: {line}")
    passed = [report.nodeid for report in terminalreporter.stats.get("passed", [])]
    for record in _record_runs(exitstatus, passed):
        outcome = "passed" if exitstatus == 0 else "failed"
        terminalreporter.write_line(f"mmepack: test record {record} ({outcome})")
