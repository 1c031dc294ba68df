#!/usr/bin/env bash
# The main job: every model's SageMaker MME artifact under dist/mme/.
set -euo pipefail
cd "$(dirname "$0")/.."
./pants package ::
ls -l dist/mme/
