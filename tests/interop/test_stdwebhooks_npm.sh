#!/usr/bin/env bash
# Interoperability of the host's Standard Webhooks services with the
# official JavaScript library (npm `standardwebhooks`, pinned below): each
# side accepts what the other signs, and both refuse a tampered body,
# timestamp, id or secret. Skips (exit 77) only when npm cannot install the
# package (no npm, no network).
# Usage: test_stdwebhooks_npm.sh STDWH_TOOL
set -euo pipefail
TOOL=$1
PKG=standardwebhooks@1.0.0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "SKIP: node/npm not installed (scripts/lib/common.sh ensure_packages installs them)"
  exit 77
fi
if ! timeout 120 npm install --no-save --no-audit --no-fund --prefix "$TMP" "$PKG" \
    >"$TMP/npm.log" 2>&1; then
  echo "SKIP: npm could not install $PKG (offline?):"; tail -3 "$TMP/npm.log"
  exit 77
fi

SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
OTHER="whsec_$(head -c 32 /dev/urandom | base64)"
NOW=$(date +%s)
ID="msg_$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '{"type":"refund.succeeded","data":{"id":"re_1","amount":1050,"note":"caf\xc3\xa9 \\u00e9"}}' \
  >"$TMP/body"
printf 'x%s' "$(cat "$TMP/body")" >"$TMP/tampered"

cat >"$TMP/official.js" <<'JS'
// node official.js sign SECRET ID TS BODY_FILE | verify SECRET ID TS SIG BODY_FILE
const { Webhook } = require("standardwebhooks");
const fs = require("fs");
const [cmd, secret, id, ts] = process.argv.slice(2, 6);
const wh = new Webhook(secret);
if (cmd === "sign") {
  const body = fs.readFileSync(process.argv[6], "utf8");
  console.log(wh.sign(id, new Date(Number(ts) * 1000), body));
} else {
  const body = fs.readFileSync(process.argv[7], "utf8");
  try {
    wh.verify(body, { "webhook-id": id, "webhook-timestamp": ts,
                      "webhook-signature": process.argv[6] });
    console.log("valid");
  } catch (e) {
    console.log("refused: " + e.message);
    process.exit(1);
  }
}
JS
official() { NODE_PATH="$TMP/node_modules" node "$TMP/official.js" "$@"; }

fail=0
expect() { # expect WANT_EXIT DESCRIPTION CMD...
  local want=$1 what=$2; shift 2
  local got=0
  "$@" >"$TMP/out" 2>&1 || got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $what: exit $got, wanted $want: $(cat "$TMP/out")"; fail=1
  else
    echo "ok: $what"
  fi
}

SIG_OFFICIAL=$(official sign "$SECRET" "$ID" "$NOW" "$TMP/body")
SIG_OURS=$("$TOOL" sign "$SECRET" "$ID" "$NOW" "$TMP/body")
echo "signatures: official ${SIG_OFFICIAL:0:8}..., ours ${SIG_OURS:0:8}..."
[ "$SIG_OFFICIAL" = "$SIG_OURS" ] && echo "ok: identical signatures" ||
  { echo "FAIL: the two signatures differ"; fail=1; }

expect 0 "ours verifies the official signature" \
  "$TOOL" verify "$SECRET" "$ID" "$NOW" "$SIG_OFFICIAL" "$TMP/body" "$NOW"
expect 0 "the official library verifies ours" \
  official verify "$SECRET" "$ID" "$NOW" "$SIG_OURS" "$TMP/body"
for side in ours official; do
  if [ $side = ours ]; then
    run() { "$TOOL" verify "$1" "$2" "$3" "$4" "$5" "$NOW"; }
    SIG=$SIG_OFFICIAL
  else
    run() { official verify "$@"; }
    SIG=$SIG_OURS
  fi
  expect 1 "$side refuses a tampered body" run "$SECRET" "$ID" "$NOW" "$SIG" "$TMP/tampered"
  expect 1 "$side refuses a changed timestamp" run "$SECRET" "$ID" "$((NOW - 1))" "$SIG" "$TMP/body"
  expect 1 "$side refuses a changed id" run "$SECRET" "${ID}x" "$NOW" "$SIG" "$TMP/body"
  expect 1 "$side refuses another secret" run "$OTHER" "$ID" "$NOW" "$SIG" "$TMP/body"
done
exit $fail
