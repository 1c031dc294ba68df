#!/usr/bin/env bash
# The test command the README gives: library unit tests plus every model's tests against a real
# local Triton server (GPU when there is one). Ends with a one-line total of the pytest counts.
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
status=0
./pants test :: 2>&1 | tee "${log}" || status=$?
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
