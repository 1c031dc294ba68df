"""Reports in the pytest summary which Triton and which device (GPU or CPU) ran the tests."""

from mmepack.testing.pytest_plugin import pytest_terminal_summary  # noqa: F401
