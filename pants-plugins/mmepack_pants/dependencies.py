"""Every `triton_model` depends on what builds it: the mmepack programs and the toolchain.

A model's artifact is made by the mmepack CLI and environment builder (library code under
`src/`), by this plugin, and under `pants.toml` and the lockfiles. None of that is imported by
a model's files, so without this rule a change there would leave the models out of
`--changed-since=<base> --changed-dependents=transitive`, and CI would skip the very rebuild the
change needs. The addresses come from options (`[mmepack].cli`, `[mmepack].env_builder` with
`[mmepack].from_sources`, and `[mmepack].toolchain`), so this is the one place that dependency is stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.engine.addresses import Addresses, UnparsedAddressInputs
from pants.engine.rules import collect_rules, rule
from pants.engine.target import FieldSet, InferDependenciesRequest, InferredDependencies
from pants.engine.unions import UnionRule

from mmepack_pants import engine
from mmepack_pants.engine import ToolchainRequest
from mmepack_pants.subsystem import MmepackSubsystem
from mmepack_pants.target_types import TritonModelDependenciesField, TritonModelSourcesField


def toolchain_specs(subsystem: MmepackSubsystem) -> Tuple[str, ...]:
    """The addresses every model's build depends on, as the options spell them. The installed
    tool is no target: its version is the plugin's, so a new one comes with a changed
    `[GLOBAL].plugins` line, which `toolchain` can name (the consumer's pants.toml)."""
    programs = (subsystem.cli, subsystem.env_builder) if subsystem.from_sources else ()
    return (*programs, *subsystem.toolchain)


@rule(desc="Resolve the mmepack toolchain targets")
async def toolchain_addresses(_: ToolchainRequest, subsystem: MmepackSubsystem) -> Addresses:
    return await engine.addresses(
        UnparsedAddressInputs(
            toolchain_specs(subsystem),
            owning_address=None,
            description_of_origin="[mmepack].cli, [mmepack].env_builder or [mmepack].toolchain",
        ),
    )


@dataclass(frozen=True)
class TritonModelToolchainFieldSet(FieldSet):
    required_fields = (TritonModelSourcesField, TritonModelDependenciesField)

    dependencies: TritonModelDependenciesField


class InferTritonModelToolchain(InferDependenciesRequest):
    infer_from = TritonModelToolchainFieldSet


@rule(desc="Infer a Triton model's toolchain dependencies")
async def infer_toolchain(_: InferTritonModelToolchain) -> InferredDependencies:
    return InferredDependencies(await engine.toolchain())


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferTritonModelToolchain),
    ]
