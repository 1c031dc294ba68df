#!/usr/bin/env bash
# mmepack adopted by a repository of its own (tests/e2e_consumer_repo.py): the two wheels of this
# commit installed by a fresh git repository configured as docs/getting-started/install.md
# says, through tailor, fmt, lint, check, package, test and publish (staging, moto on
# loopback), then upgraded to a bumped version. Minutes; warm with the CI cache of
# ~/.cache/pants and ~/.cache/mmepack. Needs python3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
# The publish phase runs a moto S3 server on loopback (the version 3rdparty/python's lock pins).
python3.11 -c 'import moto.server' 2>/dev/null || python3.11 -m pip install --quiet 'moto[server]==5.2.5'
python3.11 -m tests.e2e_consumer_repo
