#!/usr/bin/env bash
# Sourced by ci/package.sh, ci/test.sh and ci/publish.sh: which models this run covers, and why.
#
#   MMEPACK_CHANGED_SINCE=<git ref>  only the models whose inputs changed since that ref:
#                                    Pants' --changed-since=<ref> --changed-dependents=transitive.
#                                    Every triton_model depends on the mmepack CLI, the plugin,
#                                    pants.toml and the lockfiles (//:toolchain), so a change to
#                                    any of those selects every model.
#   MMEPACK_FULL_RUN=1               every model, whatever the ref (a full run on demand).
# With no ref (as in .ci/run), a ref git cannot find (a new branch's all-zero "before" commit,
# a shallow clone), or MMEPACK_FULL_RUN=1, the run covers every model (`::`).
#
# mmepack_select sets:
#   MMEPACK_SCOPE         "changed" or "all"
#   MMEPACK_PANTS_SCOPE   Pants arguments for the whole scope: `::`, or the two --changed-* flags
#   MMEPACK_MODELS        the triton_model addresses chosen (an array; empty: no model changed)
# and prints one line per chosen model saying why it was chosen.

# The triton_model addresses `./pants <arguments>` lists (`list ::`, or the --changed-* flags
# then `list`), into MMEPACK_MODELS. A failed
# Pants run stops the script: an empty list must mean "no model changed", never "Pants failed".
_mmepack_list_models() {
  local listed
  if ! listed="$(./pants --filter-target-type=triton_model "$@")"; then
    echo "mmepack: error: ci: \`./pants $*\` failed; see its output above" >&2
    return 1
  fi
  MMEPACK_MODELS=()
  if [[ -n "${listed}" ]]; then
    mapfile -t MMEPACK_MODELS <<<"${listed}"
  fi
}

mmepack_select() {
  local base="${MMEPACK_CHANGED_SINCE:-}"
  MMEPACK_MODELS=()
  if [[ "${MMEPACK_FULL_RUN:-}" == "1" || "${MMEPACK_FULL_RUN:-}" == "true" ]]; then
    echo "mmepack: ci: full run (MMEPACK_FULL_RUN=${MMEPACK_FULL_RUN}): every model" >&2
    base=""
  elif [[ -z "${base}" ]]; then
    echo "mmepack: ci: full run: no MMEPACK_CHANGED_SINCE base ref given: every model" >&2
  elif [[ "${base}" =~ ^0+$ ]] || ! git rev-parse --verify --quiet "${base}^{commit}" >/dev/null; then
    echo "mmepack: ci: full run: base ref '${base}' is not a commit in this clone (new branch," \
      "or a shallow clone: fetch its history): every model" >&2
    base=""
  fi
  if [[ -z "${base}" ]]; then
    MMEPACK_SCOPE="all"
    MMEPACK_PANTS_SCOPE=(::)
    _mmepack_list_models list ::
    echo "mmepack: ci: ${#MMEPACK_MODELS[@]} model(s): ${MMEPACK_MODELS[*]}" >&2
    return 0
  fi
  MMEPACK_SCOPE="changed"
  MMEPACK_PANTS_SCOPE=("--changed-since=${base}" "--changed-dependents=transitive")
  _mmepack_list_models "${MMEPACK_PANTS_SCOPE[@]}" list
  # What Pants compared: committed and uncommitted changes since the base, and new files.
  local changed
  changed="$( (git diff --name-only "${base}" -- && git ls-files --others --exclude-standard) | sort -u)"
  echo "mmepack: ci: changed since ${base}: $(grep -c . <<<"${changed}" || true) file(s);" \
    "${#MMEPACK_MODELS[@]} model(s) selected" >&2
  local address dir own shared
  # (|| true: grep finds nothing under pipefail, which the ci/ scripts set.)
  shared="$( (grep -v '^models/' <<<"${changed}" || true) | head -n 5 | paste -sd ' ' -)"
  for address in "${MMEPACK_MODELS[@]}"; do
    dir="${address%%:*}"
    own="$( (grep "^${dir}/" <<<"${changed}" || true) | head -n 5 | paste -sd ' ' -)"
    if [[ -n "${own}" ]]; then
      echo "mmepack: ci: ${address}: its own files changed: ${own}" >&2
    else
      echo "mmepack: ci: ${address}: something it is built with changed: ${shared:-a dependency}" >&2
    fi
  done
}
