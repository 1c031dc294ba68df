"""`pants test` for `triton_model` targets: the model's JSON cases against its packaged artifact.

A data scientist adds case files beside the model and nothing else: `./pants test ::` finds
every `triton_model`, and for one with case files
1. `mmepack check-cases` checks them against the model's config, so a misspelt input name
   fails in seconds, before anything is packaged or served;
2. the package rule builds the artifact (answered from Pants' cache when unchanged);
3. `mmepack test-cases` serves it on the local multi-model endpoint and runs one pytest item
   per case, writing JUnit XML that `[test].report` collects and a record of the run with the
   artifact's sha256, which Pants writes under dist/test/ and a production publish requires,
   and measures what the model costs an endpoint (`<artifact>.capacity.json`, written there
   too), failing the run when it is over the target's `capacity_budget`.
A model without case files reports "no tests". All behaviour is the library's; this rule only
gathers files and runs the case runner PEX.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from pants.backend.python.subsystems.pytest import PyTest
from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.goals.test import TestExtraEnv, TestFieldSet, TestRequest, TestResult, TestSubsystem
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.engine.fs import GlobMatchErrorBehavior, PathGlobs
from pants.engine.process import ProcessCacheScope
from pants.engine.rules import collect_rules, rule
from pants.util.logging import LogLevel

from mmepack_contract import ARTIFACT_SUFFIX, CONFIG_FILE
from mmepack_pants import engine
from mmepack_pants.engine import TritonModelPackageFieldSet
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, process_env
from mmepack_pants.subsystem import ModelCasesSubsystem
from mmepack_pants.target_types import (
    DEFAULT_CASES_GLOB,
    TritonModelCapacityBudgetField,
    TritonModelCasesField,
    TritonModelOutputDirField,
    TritonModelPythonVersionField,
    TritonModelSourcesField,
    TritonModelTestTimeoutField,
)

# Without `[test].timeout_default` a case run still ends: a hung server must not hang CI.
DEFAULT_TIMEOUT_SECONDS = 1200


@dataclass(frozen=True)
class TritonModelTestFieldSet(TestFieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    cases: TritonModelCasesField
    timeout: TritonModelTestTimeoutField
    python_version: TritonModelPythonVersionField
    output_dir: TritonModelOutputDirField
    capacity_budget: TritonModelCapacityBudgetField


class ModelCasesRequest(TestRequest):
    tool_subsystem = ModelCasesSubsystem
    field_set_type = TritonModelTestFieldSet


def case_globs(model_dir: str, pattern: str) -> Tuple[str, ...]:
    """The glob of the case files in the build root."""
    return (os.path.join(model_dir, pattern),)


def data_globs(case_files: Tuple[str, ...]) -> Tuple[str, ...]:
    """Everything in the folders that hold case files: the `.npy`, `.npz` and raw files they
    name must sit there (the library refuses paths that leave a case file's folder)."""
    return tuple(sorted({f"{os.path.dirname(path)}/**" for path in case_files}))


# The library's name for a test run's record (mmepack.publish.tested.RECORD_SUFFIX); stated
# here because the plugin does not import the library.
TEST_RECORD_SUFFIX = ".tested.json"


def record_path_of(artifact: str) -> str:
    """Where `mmepack test-cases` writes the record of a run on `artifact`."""
    return artifact + TEST_RECORD_SUFFIX


# The library's suffix of a run's capacity record (mmepack.capacity.record.CAPACITY_SUFFIX);
# stated here because the plugin does not import the library.
CAPACITY_SUFFIX = ".capacity.json"


def budget_args(budget: Optional[Mapping[str, str]]) -> Tuple[str, ...]:
    """`--budget KEY=VALUE` for each key of the BUILD field; the library checks them."""
    return tuple(f"--budget={key}={value}" for key, value in sorted((budget or {}).items()))


def _timeout(field_set: TritonModelTestFieldSet, test: TestSubsystem) -> Optional[int]:
    if not test.timeouts:
        return None
    return field_set.timeout.calculate_from_global_options(test) or DEFAULT_TIMEOUT_SECONDS


@rule(desc="Run a Triton model's test cases", level=LogLevel.DEBUG)
async def run_model_cases(
    batch: ModelCasesRequest.Batch[TritonModelTestFieldSet, Any],
    test_subsystem: TestSubsystem,
    extra_env: TestExtraEnv,
    pytest: PyTest,
) -> TestResult:
    field_set = batch.single_element
    address = field_set.address
    model_dir = address.spec_path
    pattern = field_set.cases.value or DEFAULT_CASES_GLOB
    case_files = await engine.snapshot(
        PathGlobs(
            case_globs(model_dir, pattern),
            glob_match_error_behavior=GlobMatchErrorBehavior.ignore,
        ),
    )
    if not case_files.files:
        return TestResult.no_tests_found(address, test_subsystem.output)

    data, model_files, runner, _ = await engine.cases_inputs(
        PathGlobs(data_globs(case_files.files)), SourceFilesRequest([field_set.sources])
    )
    # The runner reads only the config files (for shapes and types), never the weights.
    configs = await engine.subset(
        model_files.snapshot.digest, PathGlobs([os.path.join(model_dir, "*", CONFIG_FILE)])
    )
    cases_input = await engine.merge([data.digest, configs])
    # The machine's variables reach the runner outside its cache key (passthrough.py).
    env = process_env(extra_env.env)
    check = await engine.run(
        VenvPexProcess(
            runner,
            argv=["check-cases", model_dir, f"--cases={pattern}"],
            description=f"Check the test cases of {address}",
            input_digest=cases_input,
            extra_env=env,
            append_only_caches=APPEND_ONLY_CACHES,
            level=LogLevel.DEBUG,
        ),
    )
    if check.exit_code != 0:
        return TestResult.from_fallible_process_result(check, address, test_subsystem.output)

    built = await engine.built_package(
        TritonModelPackageFieldSet(
            address=address,
            sources=field_set.sources,
            python_version=field_set.python_version,
            output_dir=field_set.output_dir,
        ),
    )
    artifacts = [
        a.relpath for a in built.artifacts if a.relpath and a.relpath.endswith(ARTIFACT_SUFFIX)
    ]
    if len(artifacts) != 1:
        raise ValueError(f"{address}: packaging gave {artifacts}, expected one {ARTIFACT_SUFFIX}")
    report = f"{address.path_safe_spec}.cases.xml"
    # `mmepack test-cases` records the run (passed or not) with the artifact's sha256 beside
    # it; as the test's extra output Pants writes it under dist/test/<target>/, from its cache
    # too, where a production publish looks for it.
    record = record_path_of(artifacts[0])
    capacity = artifacts[0] + CAPACITY_SUFFIX
    result = await engine.run(
        VenvPexProcess(
            runner,
            argv=[
                "test-cases",
                artifacts[0],
                model_dir,
                f"--cases={pattern}",
                f"--junit-xml={report}",
                *budget_args(field_set.capacity_budget.value),
            ],
            description=f"Run the test cases of {address} on the local endpoint",
            input_digest=await engine.merge([cases_input, built.digest]),
            output_files=(report, record, capacity),
            extra_env=env,
            append_only_caches=APPEND_ONLY_CACHES,
            timeout_seconds=_timeout(field_set, test_subsystem),
            # The slot number pytest test processes get (`[pytest].execution_slot_var`), so
            # a bound on concurrent test servers counts case runs too.
            execution_slot_variable=pytest.execution_slot_var,
            # `test --force` reruns the cases, as it reruns pytest targets.
            cache_scope=(
                ProcessCacheScope.PER_SESSION
                if test_subsystem.force
                else ProcessCacheScope.SUCCESSFUL
            ),
            level=LogLevel.DEBUG,
        ),
    )
    xml, records = await engine.subset_snapshots(
        result.output_digest, [PathGlobs([report]), PathGlobs([record, capacity])]
    )
    return TestResult.from_fallible_process_result(
        result,
        address,
        test_subsystem.output,
        xml_results=xml if xml.files else None,
        # Written under dist/test/, from the cache too, where `publish` and `mmepack capacity`
        # find them.
        extra_output=records if records.files else None,
        log_extra_output=True,
    )


def rules():
    return [*collect_rules(), *ModelCasesRequest.rules()]
