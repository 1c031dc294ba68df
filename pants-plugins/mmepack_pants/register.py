"""Entry point Pants loads for `backend_packages = ["mmepack_pants"]`."""

from mmepack_pants import (
    cases,
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
)
from mmepack_pants.target_types import TritonModelTarget


def target_types():
    return [TritonModelTarget]


def rules():
    return [
        *cases.rules(),
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
    ]
