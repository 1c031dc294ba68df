"""`python -m mmepack.cases test-cases|record-cases|check-cases ...`, and from Pants:
`./pants run src/mmepack/cases/__main__.py -- record-cases dist/mme/<artifact> models/<model>`.

A separate entry point, like `mmepack.endpoint`'s, so that only it (and the Pants test rule's
PEX built from it), not the `mmepack` CLI PEX, carries the server packages.
"""

from __future__ import annotations

import sys

from mmepack.cases.command import main

if __name__ == "__main__":
    sys.exit(main())
