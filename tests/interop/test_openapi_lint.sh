#!/usr/bin/env bash
# The API reference, host/http/openapi.yaml, passes Redocly's linter
# (npm @redocly/cli, pinned below) with the recommended-strict rules
# (host/http/redocly.yaml; the exceptions kept on purpose are in
# host/http/.redocly.lint-ignore.yaml). Skips (77) only when npm cannot
# install it. Usage: test_openapi_lint.sh SOURCE_DIR NPM_DIR
set -euo pipefail
SRC=$1
NPM_DIR=$2
PKG=@redocly/cli@2.77.0
source "$SRC/tests/interop/npm_pinned.sh"
rc=0
npm_pinned "$NPM_DIR/redocly" "$PKG" || rc=$?
[ $rc -eq 0 ] || exit $rc
cd "$SRC/host/http"
# REDOCLY_TELEMETRY=off: no call home from a test.
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  "$NPM_DIR/redocly/node_modules/.bin/redocly" lint --config redocly.yaml --format stylish openapi.yaml 2>&1 |
  grep -v '[╔╚║]'
exit "${PIPESTATUS[0]}"
