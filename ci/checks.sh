#!/usr/bin/env bash
# Quality gates: black and mypy (strict on src/) through Pants.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/remote_cache.sh
./pants lint check ::
