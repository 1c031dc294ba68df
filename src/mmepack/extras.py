"""Which optional extras of the `mmepack` distribution a command needs, checked before it starts.

`pip install mmepack` gives every command that needs no server. The commands that run a local
Triton server (endpoint, loadtest on artifacts, serve, test-cases, record-cases, dev) need the
`serve` extra: the server inside nvidia-pytriton, the HTTP client, and ONNX Runtime for the local
stand-in of Triton's ONNX backend. Without this check such a command starts, builds its endpoint
and only fails on the first ONNX request (HTTP 424, `No module named 'onnxruntime'`); with it,
it stops at once with one line that names the extra and how to install it.

Only the distribution's metadata (src/mmepack/BUILD) and this table name the extra's packages;
tests/test_extras.py holds them together.
"""

from __future__ import annotations

import importlib.util

from mmepack.errors import MmepackError

SERVE_EXTRA = "serve"

# Module checked -> the requirement of the `serve` extra that provides it.
SERVE_MODULES: dict[str, str] = {
    "pytriton": "nvidia-pytriton",
    "tritonclient.http": "tritonclient[http]",
    "onnxruntime": "onnxruntime-gpu",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # A missing parent package (tritonclient for tritonclient.http), or a module that a
        # test or an embedding program has hidden (sys.modules[name] = None).
        return False


def missing_for_serve() -> list[str]:
    """The `serve` extra's modules this Python cannot import, in the table's order."""
    return [module for module in SERVE_MODULES if not _importable(module)]


def require_serve(command: str, checkout_form: str | None = None) -> None:
    """Stop before `mmepack <command>` does anything when the `serve` extra is not installed."""
    missing = missing_for_serve()
    if not missing:
        return
    names = ", ".join(f"{m} (from {SERVE_MODULES[m]})" for m in missing)
    alternative = f"; from a checkout, `{checkout_form}` has them" if checkout_form else ""
    raise MmepackError(
        f"`mmepack {command}` runs a local Triton server and needs the '{SERVE_EXTRA}' extra, "
        f"which this installation lacks (cannot import {names}): install it with "
        f"`pip install 'mmepack[{SERVE_EXTRA}]'`{alternative}"
    )
