"""Entry point Pants loads for `backend_packages = ["mmepack_pants"]`."""

from mmepack_pants import (
    cases,
    check,
    cli,
    dependencies,
    dist_version,
    environment,
    lint,
    lock,
    package,
    passthrough,
    publish,
    tailor,
    tool_lock,
)
from mmepack_pants.subsystem import MmepackSubsystem
from mmepack_pants.target_types import TritonModelTarget
from mmepack_pants.tool_lock import MmepackToolLockTarget


def target_types():
    return [TritonModelTarget, MmepackToolLockTarget]


def rules():
    return [
        *cases.rules(),
        *check.rules(),
        *cli.rules(),
        *dependencies.rules(),
        *dist_version.rules(),
        *environment.rules(),
        *package.rules(),
        *passthrough.rules(),
        *lint.rules(),
        *lock.rules(),
        *publish.rules(),
        *tailor.rules(),
        *tool_lock.rules(),
        *MmepackSubsystem.rules(),
    ]
