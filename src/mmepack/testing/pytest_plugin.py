"""pytest hooks for model tests; enable them with one line in the model's `tests/conftest.py`:

    from mmepack.testing.pytest_plugin import pytest_terminal_summary  # noqa: F401

The summary says which artifact each test server ran and whether it used a GPU or the CPU, so
a green run on a laptop is never mistaken for a GPU check.
"""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from mmepack.testing import SERVED_REPORTS


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if SERVED_REPORTS:
        terminalreporter.section("mmepack")
        for line in SERVED_REPORTS:
            terminalreporter.write_line(f"mmepack: {line}")
