#!/usr/bin/env bash
# The TypeScript client's checks against a running server:
#   MOOKTI_URL=http://127.0.0.1:8000 MOOKTI_SERVICE_KEY=... clients/typescript/run-tests.sh
# 1. npm ci from the committed package-lock.json (uses the npm cache first: works offline once cached)
# 2. drift check: the committed src/schema.d.ts equals what the live /api/schema/ generates
#    (MOOKTI_SCHEMA_DRIFT_CHECK=0 skips it while the schema is being changed)
# 3. tsc --strict --noEmit
# 4. node --test: every adapter function against the server, responses checked against the schema
#    (mismatches are listed; MOOKTI_SCHEMA_STRICT=1 makes them fail)
set -euo pipefail
cd "$(dirname "$0")"

: "${MOOKTI_URL:?set MOOKTI_URL to a running Mookti server, e.g. http://127.0.0.1:8000}"
: "${MOOKTI_SERVICE_KEY:?set MOOKTI_SERVICE_KEY to the service key of that server}"
export MOOKTI_URL MOOKTI_SERVICE_KEY

echo "== npm ci"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error

if [ "${MOOKTI_SCHEMA_DRIFT_CHECK:-1}" != "0" ]; then
  echo "== generated types match the live schema"
  node scripts/generate.mjs --check
else
  echo "== drift check of src/schema.d.ts skipped (MOOKTI_SCHEMA_DRIFT_CHECK=0)"
fi

echo "== tsc --strict --noEmit"
npx --no-install tsc --strict --noEmit -p .

echo "== tests against $MOOKTI_URL"
npm test --silent
