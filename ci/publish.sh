#!/usr/bin/env bash
# Publish the artifacts of the models this run covers (ci/select.sh: every model, or with
# MMEPACK_CHANGED_SINCE=<ref> only those whose inputs changed; a push that changes no model
# publishes nothing): branch main to the production bucket, any other branch to staging (see
# docs/guides/publishing.md). Buckets come from the CI's variables; the key prefix is mmepack's
# own default, MMEPACK_S3_PREFIX (passed through to `mmepack publish`), else none.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/remote_cache.sh
: "${MMEPACK_STAGING_BUCKET:?set MMEPACK_STAGING_BUCKET}"
: "${MMEPACK_PRODUCTION_BUCKET:?set MMEPACK_PRODUCTION_BUCKET}"
source ci/select.sh
mmepack_select
if ((${#MMEPACK_MODELS[@]} == 0)); then
  echo "mmepack: ci: no model changed since ${MMEPACK_CHANGED_SINCE:-?}: nothing to publish" >&2
  exit 0
fi
./pants publish \
  --mmepack-publish-staging-bucket="${MMEPACK_STAGING_BUCKET}" \
  --mmepack-publish-production-bucket="${MMEPACK_PRODUCTION_BUCKET}" \
  ${MMEPACK_PUBLISH_DRY_RUN:+--mmepack-publish-dry-run} \
  "${MMEPACK_MODELS[@]}"
