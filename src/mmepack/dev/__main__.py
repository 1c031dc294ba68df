"""`python -m mmepack.dev MODEL_DIR`, and from Pants:
`./pants run src/mmepack/dev/__main__.py -- models/<name>`.

A separate entry point so that only it, not the `mmepack` CLI PEX, carries the server packages
and ONNX Runtime (the local stand-in for Triton's ONNX Runtime backend runs in this
interpreter).
"""

from __future__ import annotations

import sys

from mmepack.cli import main

if __name__ == "__main__":
    sys.exit(main(["dev", *sys.argv[1:]]))
