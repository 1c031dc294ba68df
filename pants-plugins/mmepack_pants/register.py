"""Entry point Pants loads for `backend_packages = ["mmepack_pants"]`."""

from mmepack_pants import package, tailor
from mmepack_pants.target_types import TritonModelTarget


def target_types():
    return [TritonModelTarget]


def rules():
    return [*package.rules(), *tailor.rules()]
