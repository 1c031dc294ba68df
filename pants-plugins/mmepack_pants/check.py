"""`pants check` for `triton_model` targets: `mmepack check-cases`, the model's test cases
checked against its configs (input and output names, data types, shapes) without a server.

That is the static half of `test`, the closest thing a model has to type checking, and it gives
`check` something to run in a repository whose only checker is mmepack: Pants 2.17 fails
`check` outright when no backend provides one (a repository without the mypy backend).
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.goals.check import CheckRequest, CheckResult, CheckResults
from pants.engine.fs import GlobMatchErrorBehavior, PathGlobs
from pants.engine.rules import collect_rules, rule
from pants.engine.target import FieldSet
from pants.engine.unions import UnionRule
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

from mmepack_contract import CONFIG_FILE
from mmepack_pants import engine
from mmepack_pants.cases import case_globs, data_globs
from mmepack_pants.target_types import (
    DEFAULT_CASES_GLOB,
    TritonModelCasesField,
    TritonModelSourcesField,
)


class MmepackCheckCases(Subsystem):
    options_scope = "mmepack-check-cases"
    name = "mmepack-check-cases"
    help = "Test cases checked against their model's configs (`mmepack check-cases`) by `check`."

    skip = SkipOption("check")


@dataclass(frozen=True)
class TritonModelCheckFieldSet(FieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    cases: TritonModelCasesField


class MmepackCheckCasesRequest(CheckRequest):
    field_set_type = TritonModelCheckFieldSet
    tool_name = MmepackCheckCases.options_scope


@rule(desc="Check Triton models' test cases", level=LogLevel.DEBUG)
async def check_model_cases(
    request: MmepackCheckCasesRequest, subsystem: MmepackCheckCases
) -> CheckResults:
    if subsystem.skip:
        return CheckResults([], checker_name=request.tool_name)
    patterns = [fs.cases.value or DEFAULT_CASES_GLOB for fs in request.field_sets]
    all_cases = await engine.snapshots_each(
        PathGlobs(
            case_globs(fs.address.spec_path, pattern),
            glob_match_error_behavior=GlobMatchErrorBehavior.ignore,
        )
        for fs, pattern in zip(request.field_sets, patterns)
    )
    checked = [
        (fs, pattern, cases)
        for fs, pattern, cases in zip(request.field_sets, patterns, all_cases)
        if cases.files
    ]
    if not checked:
        return CheckResults([], checker_name=request.tool_name)
    cli = await engine.mmepack_cli()
    # The cases' folders (data files they name) and the configs; never the weights.
    inputs = await engine.snapshots_each(
        PathGlobs([*data_globs(cases.files), f"{fs.address.spec_path}/*/{CONFIG_FILE}"])
        for fs, _, cases in checked
    )
    results = await engine.run_each(
        VenvPexProcess(
            cli,
            argv=["check-cases", fs.address.spec_path, f"--cases={pattern}"],
            description=f"Check the test cases of {fs.address}",
            input_digest=snapshot.digest,
            level=LogLevel.DEBUG,
        )
        for (fs, pattern, _), snapshot in zip(checked, inputs)
    )
    return CheckResults(
        [
            CheckResult.from_fallible_process_result(result, partition_description=str(fs.address))
            for (fs, _, _), result in zip(checked, results)
        ],
        checker_name=request.tool_name,
    )


def rules():
    return [*collect_rules(), UnionRule(CheckRequest, MmepackCheckCasesRequest)]
