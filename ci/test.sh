#!/usr/bin/env bash
# The test command the docs give: library unit tests plus every model's tests against a real
# local Triton server (GPU when there is one). Ends with a one-line total of the pytest counts.
# With MMEPACK_CHANGED_SINCE=<ref>, only the tests whose inputs changed since that ref, which
# include the tests of every model selected for packaging (ci/select.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/remote_cache.sh
source ci/select.sh
mmepack_select
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
status=0
if [[ "${MMEPACK_SCOPE}" == "all" ]]; then
  goal=(test ::)
else
  goal=("${MMEPACK_PANTS_SCOPE[@]}" test)
fi
./pants "${goal[@]}" 2>&1 | tee "${log}" || status=$?
# pytest prints e.g. "==== 10 passed, 1 failed in 3.2s ====" per test file; add them up.
awk '
  /^=+ .*(passed|failed|error).* in [0-9.]+s/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed,?$/) passed += $(i-1)
      if ($(i) ~ /^(failed|errors?),?$/) failed += $(i-1)
    }
  }
  END { printf "%d passed, %d failed\n", passed, failed }
' "${log}"
exit "${status}"
