"""Which optional extras of the `mmepack` distribution a command needs, checked before it starts.

`pip install mmepack` gives every command that needs no server. The commands that run a local
Triton server (endpoint, loadtest on artifacts, serve, test-cases, record-cases, dev) need the
`serve` extra: the server inside nvidia-pytriton, the HTTP client, and ONNX Runtime for the local
stand-in of Triton's ONNX backend. Without this check such a command starts, builds its endpoint
and only fails on the first ONNX request (HTTP 424, `No module named 'onnxruntime'`); with it,
it stops at once with one line that names the extra and how to install it.

The CLI PEX (`./pants package src/mmepack:cli`, dist/src.mmepack/cli.pex) leaves the extra out
to stay small and quick to build; its twin `cli-serve.pex` (src/mmepack:cli-serve) carries it.
Run from a PEX, the error names that twin too, since `pip install` cannot add to a PEX.

Only the distribution's metadata (src/mmepack/BUILD) and this table name the extra's packages;
tests/test_extras.py holds them together.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mmepack.errors import MmepackError

SERVE_EXTRA = "serve"
SERVE_PEX = "cli-serve.pex"
SERVE_PEX_TARGET = "src/mmepack:cli-serve"

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


def _running_pex() -> Path | None:
    """The PEX file this program runs from, or None for an installed or checkout `mmepack`.

    pex puts the file's path in `PEX`; a child process inherits it, so the library must also be
    outside any site-packages (a zipapp PEX unpacks its sources under the pex root instead).
    """
    pex = os.environ.get("PEX")
    if not pex or "site-packages" in Path(__file__).resolve().parts:
        return None
    return Path(pex)


def require_serve(command: str, checkout_form: str | None = None) -> None:
    """Stop before `mmepack <command>` does anything when the `serve` extra is not installed."""
    missing = missing_for_serve()
    if not missing:
        return
    names = ", ".join(f"{m} (from {SERVE_MODULES[m]})" for m in missing)
    pex = _running_pex()
    twin = (
        f"; this PEX ({pex.name}) leaves the extra out: run `{pex.with_name(SERVE_PEX)}` instead "
        f"(`./pants package {SERVE_PEX_TARGET}` writes dist/src.mmepack/{SERVE_PEX})"
        if pex is not None and pex.name != SERVE_PEX
        else ""
    )
    alternative = f"; from a checkout, `{checkout_form}` has them" if checkout_form else ""
    raise MmepackError(
        f"`mmepack {command}` runs a local Triton server and needs the '{SERVE_EXTRA}' extra, "
        f"which this installation lacks (cannot import {names}): install it with "
        f"`pip install 'mmepack[{SERVE_EXTRA}]'`{twin}{alternative}"
    )
