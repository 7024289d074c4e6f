#!/usr/bin/env bash
# CLI tests for `pagoflex merchant create | list | disable` and `pagoflex
# apikey create --merchant` (issue 13), on a private database of the cluster
# named by $PAGOFLEX_PG (skipped, exit 77, without it).
# Usage: test_cli_merchant.sh PATH/TO/pagoflex
set -euo pipefail

PAGOFLEX=${1:?usage: $0 PATH/TO/pagoflex}
PAGOFLEX=$(cd "$(dirname "$PAGOFLEX")" && pwd)/$(basename "$PAGOFLEX")
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"
if [[ -z ${PAGOFLEX_PG:-} ]]; then
    echo "PAGOFLEX_PG is not set: skipped"
    exit 77
fi
DB=pf_cli_merchant_$$
WORK=$(mktemp -d /tmp/test_cli_merchant.XXXXXX)
sql() { psql -X -qAt -v ON_ERROR_STOP=1 -d "${PAGOFLEX_PG/dbname=postgres/dbname=$DB}" -c "$1"; }
psql -X -q -d "$PAGOFLEX_PG" -c "CREATE DATABASE $DB"
trap 'cd /; rm -rf "$WORK"; psql -X -q -d "$PAGOFLEX_PG" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
export PAGOFLEX_DATABASE=${PAGOFLEX_PG/dbname=postgres/dbname=$DB}
cd "$WORK"

json() { python3 -c "import json, sys; d = json.load(open('out')); print($1)"; }

# --- create -------------------------------------------------------------------
check "merchant create prints the id and the key, one per line" run 0 merchant create "Shop One"
check "  two lines" test "$(wc -l <out)" -eq 2
ID1=$(sed -n 1p out)
KEY1=$(sed -n 2p out)
check "  the id is mer_ and 26 of [0-9a-z]" grep -Eq '^mer_[0-9a-z]{26}$' <<<"$ID1"
check "  the key is an API key" grep -Eq '^pfk_[a-z0-9]{12}_[0-9a-f]{64}$' <<<"$KEY1"
check "  the key is not on stderr" bash -c "! grep -qF '$KEY1' err"
check "  stderr names the merchant" grep -qF "$ID1" err
check "  the key is stored for the merchant, hashed only" \
    test "$(sql "SELECT count(*) FROM api_keys WHERE merchant_id = '$ID1' AND prefix = '${KEY1:0:16}'
                 AND hash = sha256('$KEY1'::bytea)")" = 1

check "merchant create --json" run 0 merchant create "Shop Two" --json
ID2=$(json 'd["merchant"]["id"]')
check "  {merchant: {id, name, created_at, disabled_at}, api_key}" \
    test "$(json 'sorted(d) == ["api_key", "merchant"] and sorted(d["merchant"]) == ["created_at", "disabled_at", "id", "name"] and d["merchant"]["name"] == "Shop Two" and d["merchant"]["disabled_at"] is None and d["api_key"].startswith("pfk_")')" = True
check "  a new id" test "$ID2" != "$ID1"

check "a name is required" run 2 merchant create
check "an empty name is refused" run 2 merchant create ""
check "a name with a control character is refused" run 2 merchant create $'bad\tname'
check "a name over 100 bytes is refused" run 2 merchant create "$(printf 'x%.0s' {1..101})"
check "  and nothing was stored" test "$(sql "SELECT count(*) FROM merchants")" = 3

# --- list -----------------------------------------------------------------------
check "merchant list" run 0 merchant list
check "  names every merchant" bash -c "grep -q '^mer_default ' out && grep -qF '$ID1' out && grep -qF 'Shop Two' out"
check "merchant list --json" run 0 merchant list --json
check "  oldest first, mer_default first" \
    test "$(json '",".join(m["id"] for m in d["merchants"])')" = "mer_default,$ID1,$ID2"

# --- API keys ----------------------------------------------------------------------
check "apikey create --merchant" run 0 apikey create --merchant "$ID1" --name second
KEY3=$(cat out)
check "  stored for that merchant" test "$(sql "SELECT merchant_id FROM api_keys WHERE prefix = '${KEY3:0:16}'")" = "$ID1"
check "apikey create without --merchant: mer_default, as before" run 0 apikey create --name legacy
KEY4=$(cat out)
check "  stored for mer_default" test "$(sql "SELECT merchant_id FROM api_keys WHERE prefix = '${KEY4:0:16}'")" = mer_default
check "apikey create for an unknown merchant is refused" run 1 apikey create --merchant mer_nope --name x
check "  naming it" grep -q "mer_nope" err
check "  and nothing was stored" test "$(sql "SELECT count(*) FROM api_keys")" = 4
check "apikey list" run 0 apikey list
check "  shows each key's merchant" bash -c "grep -F '${KEY3:0:16}' out | grep -qF '$ID1' && grep -F '${KEY4:0:16}' out | grep -q mer_default"
check "  never a key" bash -c "! grep -qF -e '$KEY1' -e '$KEY3' out"

# --- disable ------------------------------------------------------------------------
check "merchant disable" run 0 merchant disable "$ID2"
check "  says when" grep -q "disabled merchant $ID2 at " err
check "  stored" test "$(sql "SELECT disabled_at IS NOT NULL FROM merchants WHERE id = '$ID2'")" = t
check "  listed with its time" bash -c "'$PAGOFLEX' merchant list --json | grep -q '\"id\":\"$ID2\",\"name\":\"Shop Two\",\"created_at\":\"[^\"]*\",\"disabled_at\":\"20'"
check "disabling twice is not an error" run 0 merchant disable "$ID2"
check "  and says so" grep -q "already disabled" err
check "no new key for a disabled merchant" run 1 apikey create --merchant "$ID2" --name late
check "an unknown merchant cannot be disabled" run 1 merchant disable mer_nope
check "mer_default cannot be disabled" run 1 merchant disable mer_default
check "  saying why" grep -q "api_key_sha256" err
check "  and it is not" test "$(sql "SELECT disabled_at IS NULL FROM merchants WHERE id = 'mer_default'")" = t
check "disable needs one id" run 2 merchant disable
check "--json is not an option of disable" run 2 merchant disable "$ID1" --json

checks_done "merchant CLI checks"
