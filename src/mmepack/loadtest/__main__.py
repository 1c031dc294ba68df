"""`python -m mmepack.loadtest ARTIFACT... --payload FILE --p99-ms N`, and from Pants:
`./pants run src/mmepack/loadtest/__main__.py -- dist/mme/screen_detector_1.tar.gz ...`.

A separate entry point, as for the endpoint: it starts a local endpoint whose ONNX steps run in
this interpreter, so it carries ONNX Runtime; the `mmepack` CLI PEX does not.
"""

from __future__ import annotations

import sys

from mmepack.loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main())
