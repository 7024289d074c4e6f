#!/usr/bin/env bash
# `pagoflex webhook verify` replays a captured delivery offline. The
# delivery is signed here with openssl (as the bank would, independently of
# the plugin): valid + events with exit 0; a changed body, a changed
# signature or a clock past the 300 s tolerance: INVALID with exit 1; a 1.0
# plugin (echo_pay) through its old entry points. Secrets never printed.
# usage: test_webhook_verify.sh <pagoflex> <fixture dir>
set -uo pipefail
PAGOFLEX=$1
FIX=$2
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

SECRET='replay-test-secret-0123456789'
TS=1767225600
ID=evt_replay_1
printf '%s' '{"type":"refund.succeeded","data":{"payment_id":"pay_1","refund_id":"re_1","refund_tx_id":"bxr_9","amount":500}}' >"$tmp/body"
SIG="v1,$( { printf '%s.%s.' "$ID" "$TS"; cat "$tmp/body"; } | openssl dgst -sha256 -hmac "$SECRET" -binary | base64)"

# run <expected exit> <now> <body file> [signature]
run() {
  local want=$1 now=$2 body=$3 sig=${4:-$SIG}
  out=$("$PAGOFLEX" webhook verify --plugin "$FIX/stdwh_pay.so" --credential "STDWH_SECRET=$SECRET" \
    --now "$now" --header "webhook-id: $ID" --header "webhook-timestamp: $TS" \
    --header "webhook-signature: $sig" --header 'Content-Type: application/json' \
    --body-file "$body" 2>&1)
  rc=$?
  [ "$rc" -eq "$want" ] || { fail "exit $rc, expected $want"; echo "$out"; }
  grep -qF "$SECRET" <<<"$out" && fail "the secret was printed"
}

run 0 $((TS + 10)) "$tmp/body"
grep -qx 'signature: valid' <<<"$out" || { fail "valid delivery: no 'signature: valid'"; echo "$out"; }
grep -q '^event 1: id=evt_replay_1 kind=refund type=refund.succeeded payment_id=pay_1 .*refund_id=re_1 refund_tx_id=bxr_9 state=SUCCEEDED amount=500' <<<"$out" ||
  { fail "valid delivery: the event is not printed"; echo "$out"; }

sed 's/500/900/' "$tmp/body" >"$tmp/tampered"
run 1 $((TS + 10)) "$tmp/tampered"
grep -qx 'signature: INVALID (status 3 PAGOFLEX_ERR_SIGNATURE)' <<<"$out" || { fail "tampered body: not INVALID"; echo "$out"; }
grep -q '^event ' <<<"$out" && fail "tampered body: events printed"

run 1 $((TS + 10)) "$tmp/body" "${SIG%?}A"
grep -q '^signature: INVALID' <<<"$out" || { fail "changed signature: not INVALID"; echo "$out"; }

run 1 $((TS + 301)) "$tmp/body"
grep -q '^signature: INVALID' <<<"$out" || { fail "--now past the tolerance: not INVALID"; echo "$out"; }
run 0 $((TS - 299)) "$tmp/body"

# A 1.0/1.1 plugin: echo_pay's X-Echo-Signature = hex HMAC of the body.
printf '%s' '{"event":"ev_9","payment":"pay_9","result":"paid"}' >"$tmp/echo"
HEX=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$tmp/echo" | cut -d' ' -f1)
out=$("$PAGOFLEX" webhook verify --plugin "$FIX/echo_pay.so" --credential "ECHOPAY_SECRET=$SECRET" \
  --header "X-Echo-Signature: $HEX" --body-file "$tmp/echo" 2>&1); rc=$?
[ "$rc" -eq 0 ] || { fail "echo_pay: exit $rc"; echo "$out"; }
grep -q '^event 1: id=ev_9 kind=payment .*payment_id=pay_9 .*state=SUCCEEDED' <<<"$out" || { fail "echo_pay: no event"; echo "$out"; }

out=$("$PAGOFLEX" webhook verify --plugin "$FIX/stdwh_pay.so" --header 'no colon' --body-file "$tmp/body" 2>&1); rc=$?
[ "$rc" -eq 2 ] || { fail "--header without a colon: exit $rc, expected 2"; echo "$out"; }

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "webhook verify: valid, tampered, stale and 1.0 deliveries"
