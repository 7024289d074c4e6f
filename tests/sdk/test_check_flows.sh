#!/usr/bin/env bash
# `pagoflex plugin check` on ABI 1.2 plugins: the Standard-Webhooks-style
# fixture passes (dummy and --credential values); the same source built to
# skip the HMAC comparison fails webhook_verify on a tampered, self-signed
# delivery; a credential value never appears in the output.
# usage: test_check_flows.sh <pagoflex> <fixture dir>
set -uo pipefail
PAGOFLEX=$1
FIX=$2
failures=0
SECRET='whsec_c2VjcmV0LWZvci10aGUtY2hlY2stdGVzdC0xMjM0NQ=='

fail() { echo "FAIL $*"; failures=$((failures + 1)); }

out=$("$PAGOFLEX" plugin check "$FIX/stdwh_pay.so" 2>&1); rc=$?
[ "$rc" -eq 0 ] || { fail "stdwh_pay (dummy credentials): exit $rc"; echo "$out"; }
for chk in flow_request flow_response webhook_verify webhook_parse webhook_sample; do
  grep -q "^PASS $chk: " <<<"$out" || { fail "stdwh_pay: no PASS $chk line"; echo "$out"; }
done

out=$("$PAGOFLEX" plugin check "$FIX/stdwh_pay.so" --credential "STDWH_SECRET=$SECRET" 2>&1); rc=$?
[ "$rc" -eq 0 ] || { fail "stdwh_pay --credential: exit $rc"; echo "$out"; }
grep -qF "$SECRET" <<<"$out" && fail "stdwh_pay: the checker printed a credential value"
grep -q '^note: no --credentials' <<<"$out" && fail "stdwh_pay: --credential ignored"

for creds in "" "--credential STDWH_SECRET=$SECRET"; do
  # shellcheck disable=SC2086
  out=$("$PAGOFLEX" plugin check "$FIX/stdwh_pay_skipcmp.so" $creds 2>&1); rc=$?
  [ "$rc" -eq 1 ] || { fail "stdwh_pay_skipcmp ${creds:+with --credential}: exit $rc, expected 1"; echo "$out"; }
  grep -q '^FAIL webhook_verify: .*accepted' <<<"$out" ||
    { fail "stdwh_pay_skipcmp: no 'FAIL webhook_verify: ... accepted' line"; echo "$out"; }
  grep -qF "$SECRET" <<<"$out" && fail "stdwh_pay_skipcmp: the checker printed a credential value"
done

# Bad --credential syntax is a usage error naming the option.
out=$("$PAGOFLEX" plugin check "$FIX/stdwh_pay.so" --credential NOEQUALS 2>&1); rc=$?
[ "$rc" -eq 2 ] || { fail "--credential NOEQUALS: exit $rc, expected 2 (usage)"; echo "$out"; }
grep -q -- '--credential' <<<"$out" || fail "--credential NOEQUALS: the error does not name the option"

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "plugin check tests every flow and catches a skipped HMAC compare"
