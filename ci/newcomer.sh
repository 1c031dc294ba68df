#!/usr/bin/env bash
# A newcomer's first model from a clean clone of this commit (tests/e2e_newcomer_clone.py): the
# bash blocks of docs/getting-started/first-model.md run as written and timed, then the CLI's
# artifact byte for byte against Pants', and no stale artifact left in dist/ by a failed package.
# Minutes; warm with the CI cache of ~/.cache/pants and ~/.cache/mmepack. Needs only python3.11
# (the CLI PEX's Python).
set -euo pipefail
cd "$(dirname "$0")/.."
# The publish phase runs a moto S3 server on loopback (the version 3rdparty/python's lock pins).
python3.11 -c 'import moto.server' 2>/dev/null || python3.11 -m pip install --quiet 'moto[server]==5.2.5'
python3.11 tests/e2e_newcomer_clone.py
