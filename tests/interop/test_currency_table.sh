#!/usr/bin/env bash
# host/services/currency_table.c is what scripts/gen-currencies makes from its pinned
# sources today: regenerate it and fail on any difference, so the table
# cannot drift from its sources (or be edited by hand) silently. Skips
# (exit 77) only when npm cannot install the pinned packages.
# Usage: test_currency_table.sh SOURCE_DIR
set -uo pipefail
SRC=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if ! command -v npm >/dev/null; then
  echo "SKIP: npm not installed (scripts/lib/common.sh ensure_packages installs it)"
  exit 77
fi
python3 "$SRC/scripts/gen-currencies" "$TMP/currency_table.c"
rc=$?
if [ $rc -eq 3 ]; then
  echo "SKIP: npm could not install the pinned currency sources (offline?)"
  exit 77
fi
[ $rc -eq 0 ] || { echo "FAIL: scripts/gen-currencies exited $rc"; exit 1; }
if ! diff -u "$SRC/host/services/currency_table.c" "$TMP/currency_table.c"; then
  echo "FAIL: host/services/currency_table.c differs from what scripts/gen-currencies makes: run it and commit the result"
  exit 1
fi
echo "ok: host/services/currency_table.c is what its pinned sources give"
