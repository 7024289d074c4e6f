#!/usr/bin/env bash
# CLI tests for `pagoflex secrets ...`. Usage: test_cli_secrets.sh PATH/TO/pagoflex
set -euo pipefail

PAGOFLEX=${1:?usage: $0 PATH/TO/pagoflex}
PAGOFLEX=$(cd "$(dirname "$PAGOFLEX")" && pwd)/$(basename "$PAGOFLEX")
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"
unset PAGOFLEX_MASTER_KEY PAGOFLEX_MASTER_KEY_FILE

SECRET='sk_live_cli_7f3a9c'
SECRET2='whsec_cli_2b8d41'
WORK=$(mktemp -d /tmp/test_cli_secrets.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# flip_bit FILE OFFSET: invert the low bit of one byte, so the file always changes
# (writing a fixed byte leaves it unchanged when that byte was already there).
flip_bit() {
    python3 -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[o] ^= 1; open(p, "wb").write(b)' "$1" "$2"
}
no_secret_in() { ! grep -q -e "$SECRET" -e "$SECRET2" "$@"; }
mode_of() { stat -c %a "$1"; }

# --- keygen -----------------------------------------------------------------
check "keygen --out writes a new key file" run 0 secrets keygen --out master.key
check "key file has mode 600" test "$(mode_of master.key)" = 600
check "key file is 64 hex digits and a newline" \
    bash -c '[[ $(wc -c <master.key) -eq 65 ]] && grep -Eqx "[0-9a-f]{64}" master.key'
KEY=$(cat master.key)
check "keygen refuses to overwrite" run 1 secrets keygen --out master.key
check "refusal says how to proceed" grep -q -- "--force" err
check "refused keygen left the key alone" test "$(cat master.key)" = "$KEY"
check "keygen to stdout prints 64 hex digits" run 0 secrets keygen
check "stdout key is well formed" grep -Eqx '[0-9a-f]{64}' out
cp out other.key && chmod 600 other.key
check "keygen --force replaces the key" run 0 secrets keygen --out forced.key
check "forced key file exists" test -s forced.key
check "keygen --force over an existing file" run 0 secrets keygen --out forced.key --force
check "replaced key file has mode 600" test "$(mode_of forced.key)" = 600

# --- encrypt / decrypt round trip -------------------------------------------
printf 'BANCOX_API_KEY = "%s";\n# comment\nBANCOX_SECRET = "%s";\n' "$SECRET" "$SECRET2" >plain.cfg
check "encrypt --in --out" run 0 secrets encrypt --plugin banco_x --key-file master.key \
    --in plain.cfg --out banco_x.cfg.enc
check "encrypted file has mode 600" test "$(mode_of banco_x.cfg.enc)" = 600
check "encrypted file starts with the magic" bash -c '[[ $(head -c 8 banco_x.cfg.enc) == PGFXCRED ]]'
check "encrypted file does not contain the secrets" no_secret_in banco_x.cfg.enc
check "no temp file left behind" bash -c '! ls -A | grep -q "\.tmp\."'
check "decrypt prints the plaintext" run 0 secrets decrypt --plugin banco_x --key-file master.key \
    banco_x.cfg.enc
check "round trip is exact" cmp -s out plain.cfg
check "decrypt writes nothing on stderr when piped" test ! -s err

check "encrypt from stdin to the default NAME.cfg.enc" \
    bash -c "\"$PAGOFLEX\" secrets encrypt --plugin banco_y --key-file master.key <plain.cfg 2>/dev/null"
check "default output name" test -f banco_y.cfg.enc
check "stdin round trip" bash -c "\"$PAGOFLEX\" secrets decrypt --plugin banco_y -k master.key \
    banco_y.cfg.enc | cmp -s - plain.cfg"

# --- key from the environment -----------------------------------------------
check "PAGOFLEX_MASTER_KEY_FILE replaces --key-file" \
    env PAGOFLEX_MASTER_KEY_FILE=master.key bash -c "$(declare -f run); PAGOFLEX='$PAGOFLEX' \
    run 0 secrets decrypt --plugin banco_x banco_x.cfg.enc && cmp -s out plain.cfg"
check "PAGOFLEX_MASTER_KEY replaces --key-file" \
    env PAGOFLEX_MASTER_KEY="$KEY" bash -c "$(declare -f run); PAGOFLEX='$PAGOFLEX' \
    run 0 secrets decrypt --plugin banco_x banco_x.cfg.enc && cmp -s out plain.cfg"
check "--key-file wins over PAGOFLEX_MASTER_KEY" \
    env PAGOFLEX_MASTER_KEY="$(cat other.key)" bash -c "$(declare -f run); PAGOFLEX='$PAGOFLEX' \
    run 0 secrets decrypt --plugin banco_x --key-file master.key banco_x.cfg.enc"
check "PAGOFLEX_MASTER_KEY wins over PAGOFLEX_MASTER_KEY_FILE" \
    env PAGOFLEX_MASTER_KEY="$(cat other.key)" PAGOFLEX_MASTER_KEY_FILE=master.key \
    bash -c "$(declare -f run); PAGOFLEX='$PAGOFLEX' \
    run 1 secrets decrypt --plugin banco_x banco_x.cfg.enc && grep -q 'another master key' err"
check "no key at all is an error" run 1 secrets decrypt --plugin banco_x banco_x.cfg.enc
check "no-key message names the options" grep -q -- "--key-file" err

# --- refusals ----------------------------------------------------------------
check "decrypt with another key fails with exit 1" run 1 secrets decrypt --plugin banco_x \
    --key-file other.key banco_x.cfg.enc
check "wrong-key message says so" grep -q "another master key" err
check "wrong-key message starts with pagoflex:" grep -q "^pagoflex: " err
check "wrong-key run shows no secret" no_secret_in out err
check "wrong-key run prints nothing on stdout" test ! -s out
check "wrong-key run shows no key" bash -c "! grep -q -e '$KEY' -e '$(cat other.key)' err"

check "decrypt for another plugin fails" run 1 secrets decrypt --plugin banco_y \
    --key-file master.key banco_x.cfg.enc
check "another-plugin message" grep -q "authentication failed" err
check "another-plugin run shows no secret" no_secret_in out err

cp banco_x.cfg.enc tampered.cfg.enc
flip_bit tampered.cfg.enc 40
check "tampered file is refused" run 1 secrets decrypt --plugin banco_x --key-file master.key \
    tampered.cfg.enc
check "tampered run shows no secret" no_secret_in out err

cp master.key open.key && chmod 644 open.key
check "key file readable by others is refused" run 1 secrets decrypt --plugin banco_x \
    --key-file open.key banco_x.cfg.enc
check "mode message says how to fix it" grep -q "chmod 600 open.key" err
check "mode message shows no key" bash -c "! grep -q '$KEY' err"

printf 'BANCOX_API_KEY = "%s"\nBANCOX_SECRET = ;\n' "$SECRET" >bad_syntax.cfg
check "encrypt refuses invalid libconfig" run 1 secrets encrypt --plugin banco_z \
    --key-file master.key --in bad_syntax.cfg --out bad.cfg.enc
check "syntax message gives the line" grep -q "line 2" err
check "syntax refusal writes no file" test ! -e bad.cfg.enc
check "syntax refusal shows no secret" no_secret_in err

printf 'BANCOX_API_KEY = "%s";\nBANCOX_PIN = 424242;\n' "$SECRET" >non_string.cfg
check "encrypt refuses a non-string setting" run 1 secrets encrypt --plugin banco_z \
    --key-file master.key --in non_string.cfg --out bad.cfg.enc
check "non-string message names the setting" grep -q "BANCOX_PIN" err
check "non-string message hides the value" bash -c '! grep -q 424242 err'
check "non-string refusal writes no file" test ! -e bad.cfg.enc

# --- usage -------------------------------------------------------------------
check "--help exits 0" run 0 --help
check "--help lists secrets encrypt" grep -q "secrets encrypt" out
check "secrets --help exits 0" run 0 secrets --help
check "command --help exits 0" run 0 secrets encrypt --help
check "missing --plugin is a usage error" run 2 secrets encrypt --key-file master.key --in plain.cfg
check "unknown option is a usage error" run 2 secrets decrypt --bogus x
check "unknown command is a usage error" run 2 secrets frobnicate
check "no arguments is a usage error" run 2
check "plugin name with a slash is refused" run 2 secrets encrypt --plugin ../x \
    --key-file master.key --in plain.cfg

# --- connector accounts (--account) --------------------------------------------
check "encrypt --account writes PLUGIN/ACCOUNT.cfg.enc" run 0 secrets encrypt --plugin banco_x \
    --account acme --key-file master.key --in plain.cfg
check "the account folder is 0700" test "$(mode_of banco_x)" = 700
check "the account file is 0600" test "$(mode_of banco_x/acme.cfg.enc)" = 600
check "decrypt --account reads it" run 0 secrets decrypt --plugin banco_x --account acme \
    --key-file master.key banco_x/acme.cfg.enc
check "... and prints the plaintext" cmp -s out plain.cfg
check "an account's file does not decrypt for the plugin's default account" run 1 secrets decrypt \
    --plugin banco_x --key-file master.key banco_x/acme.cfg.enc
check "nor for another account" run 1 secrets decrypt --plugin banco_x --account other \
    --key-file master.key banco_x/acme.cfg.enc
check "... and the refusal shows no secret" no_secret_in out err
check "an invalid account name is a usage error" run 2 secrets encrypt --plugin banco_x \
    --account "../x" --key-file master.key --in plain.cfg
"$PAGOFLEX" secrets keygen --out rotated.key 2>/dev/null
mkdir -p rot && cp banco_x.cfg.enc rot/ && mkdir -p rot/banco_x && cp banco_x/acme.cfg.enc rot/banco_x/
check "rotate re-encrypts the account folders too" run 0 secrets rotate --old-key-file master.key \
    --new-key-file rotated.key rot
check "... the account file decrypts under the new key" run 0 secrets decrypt --plugin banco_x \
    --account acme --key-file rotated.key rot/banco_x/acme.cfg.enc

checks_done
