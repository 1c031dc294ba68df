"""The mmepack command line as a PEX that the plugin's rules run in their sandboxes."""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.target_types import EntryPoint
from pants.backend.python.util_rules.pex import PexRequest, VenvPex
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Targets
from pants.util.logging import LogLevel

from mmepack_pants.subsystem import MmepackSubsystem


@dataclass(frozen=True)
class MmepackCliRequest:
    """The one mmepack CLI every rule shares, built from `[mmepack].cli`."""


@rule(desc="Build the mmepack command line", level=LogLevel.DEBUG)
async def build_mmepack_cli(_: MmepackCliRequest, subsystem: MmepackSubsystem) -> VenvPex:
    targets = await Get(
        Targets,
        UnparsedAddressInputs(
            [subsystem.cli], owning_address=None, description_of_origin="[mmepack].cli"
        ),
    )
    pex_request = await Get(
        PexRequest,
        PexFromTargetsRequest(
            [t.address for t in targets],
            output_filename="mmepack.pex",
            internal_only=True,
            main=EntryPoint("mmepack.cli", "main"),
            description="mmepack command line",
        ),
    )
    return await Get(VenvPex, PexRequest, pex_request)


def rules():
    return collect_rules()
