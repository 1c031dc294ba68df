"""The mmepack programs (the CLI, the environment builder and the case runner) as PEXes the
rules run.

By default all three are entry points of the `mmepack` tool (`[mmepack]`, a Python tool
installed from the lockfile in the plugin's wheel: tool_lock.py), so a consumer repository
needs no mmepack code, no resolve and no requirement target of its own, and its own default
resolve and interpreter constraints never decide what mmepack runs with. With
`[mmepack].from_sources` they are built from targets of this repository instead.
"""

from __future__ import annotations

import dataclasses

from pants.backend.python.target_types import EntryPoint, MainSpecification
from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.rules import collect_rules, rule
from pants.util.logging import LogLevel

from mmepack_pants import engine
from mmepack_pants.engine import (
    CasesRunnerRequest,
    EnvBuilderRequest,
    MmepackCliRequest,
    ProgramRequest,
)
from mmepack_pants.subsystem import MmepackSubsystem, ModelCasesSubsystem


def tool_pex_request(subsystem: MmepackSubsystem, main: MainSpecification, name: str) -> PexRequest:
    """The tool's PEX with `main`: installed from the tool's lockfile, asking pex for the tool's
    requirements only (`--lock` alone would install the whole lock, which also holds the
    library's test-only packages)."""
    request = subsystem.to_pex_request(main=main)
    # With `install_from_resolve` Pants already passes the `requirements` option (or installs
    # that whole resolve, its documented meaning).
    subset = () if subsystem.install_from_resolve else subsystem.all_requirements
    return dataclasses.replace(
        request,
        output_filename=f"{name}.pex",
        additional_args=(*request.additional_args, *subset),
        description=f"Installing the mmepack tool ({name})",
    )


async def _program(
    subsystem: MmepackSubsystem, address: str, option: str, module: str, function: str
) -> VenvPex:
    if subsystem.from_sources:
        return await engine.program(ProgramRequest(address, option, module, function))
    main: MainSpecification = EntryPoint(module, function)
    if module == "mmepack.cli":
        # The tool's own main: `[mmepack].console_script` / `entry_point` may change it.
        main = subsystem.main
    return await engine.venv_pex(tool_pex_request(subsystem, main, module))


@rule(desc="Build the mmepack command line", level=LogLevel.DEBUG)
async def build_mmepack_cli(_: MmepackCliRequest, subsystem: MmepackSubsystem) -> VenvPex:
    return await _program(subsystem, subsystem.cli, "[mmepack].cli", "mmepack.cli", "main")


@rule(desc="Build the mmepack environment builder", level=LogLevel.DEBUG)
async def build_env_builder(_: EnvBuilderRequest, subsystem: MmepackSubsystem) -> VenvPex:
    return await _program(
        subsystem,
        subsystem.env_builder,
        "[mmepack].env_builder",
        "mmepack.environment.command",
        "main",
    )


@rule(desc="Build the mmepack case runner", level=LogLevel.DEBUG)
async def build_cases_runner(
    _: CasesRunnerRequest, subsystem: MmepackSubsystem, cases: ModelCasesSubsystem
) -> VenvPex:
    return await _program(
        subsystem, cases.runner, "[model-cases].runner", "mmepack.cases.command", "main"
    )


@rule(level=LogLevel.DEBUG)
async def build_program(request: ProgramRequest) -> VenvPex:
    targets = await engine.targets(
        UnparsedAddressInputs(
            [request.address], owning_address=None, description_of_origin=request.option
        )
    )
    pex_request = await engine.pex_from_targets(
        PexFromTargetsRequest(
            [t.address for t in targets],
            output_filename=f"{request.module}.pex",
            internal_only=True,
            main=EntryPoint(request.module, request.function),
            description=request.module,
        )
    )
    return await engine.venv_pex(pex_request)


def rules():
    return collect_rules()
