#!/usr/bin/env bash
# The documentation site builds with no warning (`mkdocs build --strict`: broken links and
# anchors, pages missing from the nav, missing snippet files), from the locked `docs` resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/remote_cache.sh
./docs.sh build
