"""`python -m mmepack` is the same as the `mmepack` command."""

import sys

from mmepack.cli import main

sys.exit(main())
