#!/usr/bin/env bash
# `pagoflex plugin check` must fail on each rejection fixture with the
# registry's reason (check name, field, expected, found), report the crash of
# crash_on_garbage with its case, and pass the good fixtures (so a checker
# that fails everything fails this test too).
# usage: test_check_rejects.sh <pagoflex> <fixture dir>
set -uo pipefail
PAGOFLEX=$1
FIX=$2
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_fail <fixture> <exact FAIL line prefix> [extra checker args...]
expect_fail() {
  local name=$1 want=$2
  shift 2
  local out rc
  out=$("$PAGOFLEX" plugin check "$FIX/$name.so" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "FAIL $name: exit $rc, expected 1"; echo "$out"; failures=$((failures + 1)); return
  fi
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: no line starting with: $want"; echo "$out"; failures=$((failures + 1)); return
  fi
  if [ "$(grep -c '^FAIL ' <<<"$out")" -ne 1 ]; then
    echo "FAIL $name: expected exactly one FAIL line"; echo "$out"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(grep '^FAIL ' <<<"$out" | cut -c1-110)"
}

expect_pass() {
  local name=$1 out
  shift
  if ! out=$("$PAGOFLEX" plugin check "$FIX/$name.so" "$@" 2>&1); then
    echo "FAIL $name: the checker refused a conforming plugin"; echo "$out"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: passes"
}

expect_fail no_entry 'FAIL load: field=entry_point expected=pagoflex_connector_v1 found=absent'
expect_fail undefined_symbol 'FAIL load: field=dlopen expected=a shared object whose symbols all resolve found='
expect_fail bad_magic 'FAIL abi: field=magic expected=0x50474658 found=0x58464750'
expect_fail abi_major2 'FAIL abi: field=abi_major expected=1 found=2'
expect_fail short_size 'FAIL abi: field=size expected=>='
expect_fail bad_signature 'FAIL abi: field=build_signature expected="pagoflex-abi=1,'
expect_fail null_entry 'FAIL descriptor: field=build_request expected=non-NULL found=NULL'
expect_fail init_fails 'FAIL init: field=init expected=PAGOFLEX_OK found=PAGOFLEX_ERR_INTERNAL (7)'
# Duplicates exist only relative to other plugins: check beside good_a.
mkdir -p "$tmp/with" && cp "$FIX/good_a.so" "$tmp/with/"
expect_fail dup_key 'FAIL descriptor: field=key expected=unique found="GOOD_A"' --with "$tmp/with"
expect_fail dup_path 'FAIL descriptor: field=webhook_path expected=unique found="gooda"' --with "$tmp/with"
expect_fail crash_on_garbage 'FAIL handle_response: crashed with signal 11 (Segmentation fault) on 200 non-JSON body'

expect_pass good_a
expect_pass good_b --with "$tmp/with"
expect_pass future_minor

# Given credentials: a file without the required name fails "credentials";
# a complete one passes (and is used to sign the tampered-webhook probes).
"$PAGOFLEX" secrets keygen --out "$tmp/master.key" >/dev/null
printf 'OTHER = "x";\n' | "$PAGOFLEX" secrets encrypt --plugin echo_pay --key-file "$tmp/master.key" \
  --out "$tmp/partial.cfg.enc" >/dev/null
printf 'ECHOPAY_SECRET = "s3cr3t";\n' | "$PAGOFLEX" secrets encrypt --plugin echo_pay \
  --key-file "$tmp/master.key" --out "$tmp/full.cfg.enc" >/dev/null
expect_fail echo_pay 'FAIL credentials: field=credentials expected=ECHOPAY_SECRET found=absent' \
  --credentials "$tmp/partial.cfg.enc" --key-file "$tmp/master.key"
expect_pass echo_pay --credentials "$tmp/full.cfg.enc" --key-file "$tmp/master.key"
if "$PAGOFLEX" plugin check "$FIX/echo_pay.so" --credentials "$tmp/full.cfg.enc" \
     --key-file "$tmp/master.key" 2>&1 | grep -q s3cr3t; then
  echo "FAIL echo_pay: the checker printed a credential value"; failures=$((failures + 1))
fi

# A reason names the user's files, never the checker's temporary copies.
out=$("$PAGOFLEX" plugin check "$FIX/undefined_symbol.so" 2>&1)
if grep -q 'pagoflex-check-' <<<"$out" || ! grep -qF "found=\"$FIX/undefined_symbol.so: undefined symbol" <<<"$out"; then
  echo "FAIL undefined_symbol: the dlopen reason does not name $FIX/undefined_symbol.so"; echo "$out"
  failures=$((failures + 1))
fi
out=$("$PAGOFLEX" plugin check "$FIX/echo_pay.so" --credentials "$tmp/partial.cfg.enc" --key-file "$tmp/master.key" 2>&1)
if grep -q 'pagoflex-check-' <<<"$out" || ! grep -qF "$tmp/partial.cfg.enc has no non-empty ECHOPAY_SECRET" <<<"$out"; then
  echo "FAIL echo_pay: the credentials reason does not name $tmp/partial.cfg.enc"; echo "$out"
  failures=$((failures + 1))
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"; exit 1
fi
echo "all rejection fixtures fail with the right reason"
