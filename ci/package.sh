#!/usr/bin/env bash
# The main job: the SageMaker MME artifacts under dist/mme/ of the models this run covers:
# every model, or with MMEPACK_CHANGED_SINCE=<ref> only those whose inputs changed (ci/select.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/remote_cache.sh
source ci/select.sh
mmepack_select
if [[ "${MMEPACK_SCOPE}" == "all" ]]; then
  # `::` also builds the mmepack CLI PEX (dist/src.mmepack/cli.pex) and the three wheels
  # (dist/mmepack-<version>-py3-none-any.whl, dist/mmepack_pants-<version>-py3-none-any.whl,
  # dist/mmepack_contract-<version>-py3-none-any.whl).
  ./pants package ::
elif ((${#MMEPACK_MODELS[@]} == 0)); then
  echo "mmepack: ci: no model changed since ${MMEPACK_CHANGED_SINCE}: nothing to package" >&2
  exit 0
else
  ./pants package "${MMEPACK_MODELS[@]}"
fi
ls -l dist/mme/
