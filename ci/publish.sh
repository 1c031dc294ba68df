#!/usr/bin/env bash
# Publish every model's artifact: branch main to the production bucket, any other branch to
# staging (see README "Publishing to S3"). Buckets come from the CI's variables; the key prefix is
# mmepack's own default, MMEPACK_S3_PREFIX (passed through to `mmepack publish`), else none.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MMEPACK_STAGING_BUCKET:?set MMEPACK_STAGING_BUCKET}"
: "${MMEPACK_PRODUCTION_BUCKET:?set MMEPACK_PRODUCTION_BUCKET}"
./pants publish \
  --mmepack-publish-staging-bucket="${MMEPACK_STAGING_BUCKET}" \
  --mmepack-publish-production-bucket="${MMEPACK_PRODUCTION_BUCKET}" \
  ${MMEPACK_PUBLISH_DRY_RUN:+--mmepack-publish-dry-run} \
  ::
