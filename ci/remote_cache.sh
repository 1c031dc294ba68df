#!/usr/bin/env bash
# Sourced by the ci/ scripts: Pants' remote cache, from one variable.
#
#   MMEPACK_REMOTE_CACHE=grpc[s]://host:port   any Remote Execution API cache (BuildGrid,
#                                              bazel-remote, BuildBuddy, ...): read and write
#   MMEPACK_REMOTE_CACHE_WRITE=false           read only (e.g. for untrusted branches)
#   MMEPACK_REMOTE_CACHE_INSTANCE=<name>       the server's instance name (default: none)
#   MMEPACK_REMOTE_CACHE_HEADERS='{"Authorization": "Bearer <token>"}'   credentials, sent
#                                              with every request (a CI secret)
# Unset MMEPACK_REMOTE_CACHE: nothing changes. Pants' own PANTS_REMOTE_* variables set by the
# caller win over these.
mmepack_remote_cache() {
  [[ -n "${MMEPACK_REMOTE_CACHE:-}" ]] || return 0
  export PANTS_REMOTE_STORE_ADDRESS="${PANTS_REMOTE_STORE_ADDRESS:-${MMEPACK_REMOTE_CACHE}}"
  export PANTS_REMOTE_CACHE_READ="${PANTS_REMOTE_CACHE_READ:-true}"
  export PANTS_REMOTE_CACHE_WRITE="${PANTS_REMOTE_CACHE_WRITE:-${MMEPACK_REMOTE_CACHE_WRITE:-true}}"
  # Fetch a cached result's outputs only when something needs them: a hit on the package step
  # then downloads the artifact, not the CLI PEX and wheels it was built with.
  export PANTS_REMOTE_CACHE_EAGER_FETCH="${PANTS_REMOTE_CACHE_EAGER_FETCH:-false}"
  export PANTS_REMOTE_INSTANCE_NAME="${PANTS_REMOTE_INSTANCE_NAME-${MMEPACK_REMOTE_CACHE_INSTANCE:-}}"
  if [[ -n "${MMEPACK_REMOTE_CACHE_HEADERS:-}" ]]; then
    export PANTS_REMOTE_STORE_HEADERS="${PANTS_REMOTE_STORE_HEADERS:-${MMEPACK_REMOTE_CACHE_HEADERS}}"
  fi
  echo "mmepack: ci: remote cache ${PANTS_REMOTE_STORE_ADDRESS} (read: ${PANTS_REMOTE_CACHE_READ}," \
    "write: ${PANTS_REMOTE_CACHE_WRITE})" >&2
}
mmepack_remote_cache
