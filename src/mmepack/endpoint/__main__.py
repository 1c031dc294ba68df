"""`python -m mmepack.endpoint ARTIFACT...`, and from Pants:
`./pants run src/mmepack/endpoint/__main__.py -- dist/mme/*.tar.gz`.

A separate entry point so that only it, not the `mmepack` CLI PEX, carries ONNX Runtime (the
local stand-in for Triton's ONNX Runtime backend runs in this interpreter).
"""

from __future__ import annotations

import sys

from mmepack.endpoint.cli import main

if __name__ == "__main__":
    sys.exit(main())
