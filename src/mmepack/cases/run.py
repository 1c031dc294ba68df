"""`mmepack test-cases`: every case of a model against its packaged artifact, one test per case.

The cases are loaded and checked first, so a misspelt input fails in a second instead of after
a server start; then the artifact is loaded by its TargetModel on the local multi-model
endpoint (`mmepack.testing.serve_artifact`), the production route, and each case is one pytest
item, so a run lists every case and can write JUnit XML for CI and Pants.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmepack.artifact.freshness import require_fresh
from mmepack.capacity.budget import check_budgets, parse_budgets
from mmepack.capacity.measure import LoadMeasurement, describe, machine
from mmepack.capacity.record import write_capacity
from mmepack.cases import case_tests
from mmepack.cases.invoke import invoke, judge
from mmepack.cases.load import Case, load_cases
from mmepack.cases.signature import Signature, read_signature
from mmepack.errors import MmepackError
from mmepack.names import CASES_GLOB
from mmepack.publish.tested import write_test_record
from mmepack.testing import serve_artifact

_NO_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


class _Session:
    """The served artifact shared by every case of one run, or the reason it could not start."""

    def __init__(
        self, cases: list[Case], signature: Signature, served: Any, error: str | None
    ) -> None:
        self.cases = {case.name: case for case in cases}
        self.signature = signature
        self.served = served
        self.error = error

    def check(self, name: str) -> str | None:
        if self.error is not None:
            return self.error
        case = self.cases[name]
        started = time.monotonic()
        answer = invoke(self.served.client, self.served.model_name, case, self.signature)
        if self.served.capacity is not None:
            self.served.capacity.answered(time.monotonic() - started)
        failure = judge(case, answer, self.served.device)
        if failure is None:
            return None
        about = f" ({case.description})" if case.description else ""
        return f"{case.path}{about}:\n{failure}"


class _CasesPlugin:
    """Parametrizes case_tests.test_case, serves the artifact once per run and measures what
    its load costs (`mmepack.capacity`), which `test_capacity` holds to the budgets."""

    def __init__(
        self,
        artifact: Path,
        cases: list[Case],
        signature: Signature,
        startup_timeout: float,
        budgets: dict[str, float | None],
        capacity_loads: int = 1,
    ) -> None:
        self.artifact = artifact
        self.cases = cases
        self.signature = signature
        self.startup_timeout = startup_timeout
        self.budgets = budgets
        self.capacity_loads = capacity_loads
        self.device = ""
        self.capacity: LoadMeasurement | None = None
        self.server: dict[str, Any] = {}

    def budget_failures(self) -> list[str]:
        """The budgets the measured figures exceed (after every case: the first answer is in)."""
        if self.capacity is None:
            return []
        return check_budgets(self.capacity.figures(), self.budgets)

    @pytest.fixture(scope="session")
    def capacity_failures(self) -> Callable[[], list[str]]:
        return self.budget_failures

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case_name" in metafunc.fixturenames:
            names = [case.name for case in self.cases]
            metafunc.parametrize("case_name", names, ids=names)

    @pytest.fixture(scope="session")
    def case_session(self) -> Iterator[_Session]:
        try:
            with serve_artifact(
                self.artifact,
                startup_timeout=self.startup_timeout,
                capacity_loads=self.capacity_loads,
            ) as served:
                self.device = served.device
                self.capacity = served.capacity
                if served.endpoint is not None:
                    self.server = {
                        "release": f"Triton {served.endpoint.triton_version()}",
                        "device": served.device,
                        "namespacing": served.endpoint.namespacing,
                    }
                yield _Session(self.cases, self.signature, served, None)
                return
        except MmepackError as exc:
            error = f"{self.artifact}: could not serve the artifact: {exc}"
        yield _Session(self.cases, self.signature, None, error)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.device:
            terminalreporter.write_line(
                f"mmepack: {len(self.cases)} case(s) of model '{self.signature.model}' ran "
                f"against {self.artifact.name} on {self.device}"
            )
        if self.capacity is not None:
            terminalreporter.write_line(f"mmepack: capacity: {describe(self.capacity.figures())}")


def run_cases(
    artifact: Path,
    model_dir: Path,
    pattern: str = CASES_GLOB,
    *,
    junit_xml: Path | None = None,
    startup_timeout: float = 300.0,
    budgets: list[str] | None = None,
    capacity_loads: int = 1,
) -> int:
    """Run every case; the exit status is pytest's (0 all passed, 1 some failed). The result
    is recorded beside the artifact with its sha256 (`mmepack.publish.tested`).

    The load's capacity figures are written beside the artifact (`<artifact>.capacity.json`),
    and an item `test_capacity` fails when they exceed `budgets` (KEY=VALUE over the defaults
    of `mmepack.capacity.budget`)."""
    parsed_budgets = parse_budgets(budgets)
    if not 1 <= capacity_loads <= 10:
        raise MmepackError(f"--capacity-loads: expected 1 to 10 loads, got {capacity_loads}")
    cases = load_cases(model_dir, pattern)
    if not cases:
        print(f"mmepack: no case files match {model_dir}/{pattern}; nothing to test", flush=True)
        return 0
    signature = read_signature(model_dir)
    if not artifact.is_file():
        raise MmepackError(f"{artifact}: artifact not found; package {model_dir} first")
    require_fresh(artifact, model_dir)
    plugin = _CasesPlugin(
        artifact.resolve(), cases, signature, startup_timeout, parsed_budgets, capacity_loads
    )
    with tempfile.TemporaryDirectory(prefix="mmepack-cases-") as scratch:
        # The test module is copied under the model's name so the listing and the JUnit report
        # read `<model>_cases.py::test_case[<case>]`; an empty ini file and rootdir keep the
        # checkout's own pytest settings and conftest files out of this run.
        module = Path(scratch) / f"{signature.model}_cases.py"
        module.write_bytes(Path(case_tests.__file__).read_bytes())
        ini = Path(scratch) / "pytest.ini"
        ini.write_text("[pytest]\n")
        args = [
            str(module),
            "-v",
            # Cases print nothing; the server's own lines go straight through, and a caller's
            # capture (a pytest running this function) keeps working.
            "--capture=no",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ini),
            "--rootdir",
            scratch,
            "-o",
            f"junit_suite_name={signature.model}",
        ]
        if junit_xml is not None:
            junit_xml.parent.mkdir(parents=True, exist_ok=True)
            args.append(f"--junitxml={junit_xml.resolve()}")
        sys.stdout.flush()
        # Installed pytest plugins (hypothesis writes a cache folder) have no part in cases.
        # pytest names items relative to the working directory: run it from the scratch folder.
        previous, cwd = os.environ.get(_NO_AUTOLOAD), Path.cwd()
        os.environ[_NO_AUTOLOAD] = "1"
        os.chdir(scratch)
        # The module is imported under its file name; a previous run in this process (a test
        # of this runner) must not answer that import with its own copy from another folder.
        sys.modules.pop(module.stem, None)
        try:
            code = int(pytest.main(args, plugins=[plugin]))
        finally:
            sys.modules.pop(module.stem, None)
            os.chdir(cwd)
            if previous is None:
                os.environ.pop(_NO_AUTOLOAD, None)
            else:
                os.environ[_NO_AUTOLOAD] = previous
    # What production publishing checks: these exact bytes passed (or not) these cases.
    record = write_test_record(
        artifact, passed=code == 0, cases=[case.name for case in cases], exit_code=code
    )
    print(f"mmepack: test record {record} ({'passed' if code == 0 else 'failed'})", flush=True)
    if plugin.capacity is not None:
        path = write_capacity(
            artifact,
            plugin.capacity.figures(),
            server=plugin.server,
            machine=machine(),
            budgets=parsed_budgets,
            failures=plugin.budget_failures(),
        )
        print(f"mmepack: capacity record {path}", flush=True)
    return code
