"""The one pytest test of `mmepack test-cases`, parametrized with one item per case file.

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
