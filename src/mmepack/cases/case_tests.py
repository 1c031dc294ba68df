"""The pytest tests of `mmepack test-cases`: one item per case file, then the capacity budgets.

pytest is given this file explicitly by `mmepack.cases.run`, whose plugin supplies the case
names and the served artifact; it is never collected on its own (its name does not start with
`test_`). Running cases as pytest items gives the usual per-case PASSED/FAILED listing and a
JUnit XML report without a reporter of our own.
"""

from __future__ import annotations

from typing import Any

import pytest


def test_case(case_name: str, case_session: Any) -> None:
    failure = case_session.check(case_name)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def test_capacity(case_session: Any, capacity_failures: Any) -> None:
    """Runs after every case (so the first answer is measured): the load's cost against the
    model's budgets (`mmepack.capacity.budget`)."""
    if case_session.error is not None:
        pytest.skip("the artifact was not served; the case items say why")
    failures = capacity_failures()
    if failures:
        pytest.fail("\n".join(f"capacity: {f}" for f in failures), pytrace=False)
