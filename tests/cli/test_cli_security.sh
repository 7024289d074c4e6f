#!/usr/bin/env bash
# CLI tests for `pagoflex secrets edit | rotate | check` and tampering, and
# for how scripts/run hands the bank simulator its secrets.
# Usage: test_cli_security.sh PATH/TO/pagoflex PLUGIN.so SECRETS_FILE [PATH/TO/banksim]
set -euo pipefail

PAGOFLEX=${1:?usage: $0 PATH/TO/pagoflex PLUGIN.so SECRETS_FILE [PATH/TO/banksim]}
PLUGIN_SO=${2:?}
SECRETS_FILE=${3:?}
BANKSIM_BIN=${4:-}
SCRIPTS_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib" && pwd)
PAGOFLEX=$(cd "$(dirname "$PAGOFLEX")" && pwd)/$(basename "$PAGOFLEX")
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"
PLUGIN_SO=$(cd "$(dirname "$PLUGIN_SO")" && pwd)/$(basename "$PLUGIN_SO")
mkdir -p "$(dirname "$SECRETS_FILE")"
SECRETS_FILE=$(cd "$(dirname "$SECRETS_FILE")" && pwd)/$(basename "$SECRETS_FILE")
unset PAGOFLEX_MASTER_KEY PAGOFLEX_MASTER_KEY_FILE VISUAL

SECRET="sk_live_edit_$(openssl rand -hex 8)"
SECRET2="whsec_edit_$(openssl rand -hex 8)"
printf '%s\n%s\n' "$SECRET" "$SECRET2" >>"$SECRETS_FILE"
WORK=$(mktemp -d /tmp/test_cli_security.XXXXXX)
# A private tmpfs folder standing in for $XDG_RUNTIME_DIR: it must stay empty.
export XDG_RUNTIME_DIR=$(mktemp -d /dev/shm/test_cli_security.XXXXXX)
trap 'rm -rf "$WORK" "$XDG_RUNTIME_DIR"' EXIT
cd "$WORK"

tmp_empty() { [[ -z $(ls -A "$XDG_RUNTIME_DIR") ]]; }
no_secret_in() { ! grep -q -e "$SECRET" -e "$SECRET2" "$@"; }

"$PAGOFLEX" secrets keygen --out a.key 2>/dev/null
"$PAGOFLEX" secrets keygen --out b.key 2>/dev/null
cat a.key b.key >>"$SECRETS_FILE"
mkdir creds plugins
printf 'BANCOX_API_KEY = "%s";\nBANCOX_SECRET = "%s";\n' "$SECRET" "$SECRET2" |
    "$PAGOFLEX" secrets encrypt --plugin banco_x --key-file a.key --out creds/banco_x.cfg.enc 2>/dev/null
cp creds/banco_x.cfg.enc pristine.enc

# flip_bit FILE OFFSET: invert the low bit of one byte, so the file always changes
# (writing a fixed byte leaves it unchanged when that byte was already there).
flip_bit() {
    python3 -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[o] ^= 1; open(p, "wb").write(b)' "$1" "$2"
}

# --- tampering and wrong keys -------------------------------------------------
cp pristine.enc t.enc
flip_bit t.enc 40
check "a flipped ciphertext byte is refused" run 1 secrets decrypt --plugin banco_x --key-file a.key t.enc
check "...as tampered" grep -q "authentication failed" err
cp pristine.enc t.enc
flip_bit t.enc 20
check "an edited header (nonce) is refused" run 1 secrets decrypt --plugin banco_x --key-file a.key t.enc
head -c 30 pristine.enc >t.enc
check "a truncated file is refused" run 1 secrets decrypt --plugin banco_x --key-file a.key t.enc
check "a wrong key is refused" run 1 secrets decrypt --plugin banco_x --key-file b.key pristine.enc
check "...naming the key ids" grep -q "encrypted under another master key" err
check "another plugin's name is refused" run 1 secrets decrypt --plugin other --key-file a.key pristine.enc
check "no secret in any error" no_secret_in err out

# --- edit ---------------------------------------------------------------------
cat >add.sh <<'ED'
#!/bin/sh
printf 'BANCOX_TIMEOUT_MS = "2500";\n' >>"$1"
cp "$1" "$1~"   # like an editor's backup file
ED
cat >bad.sh <<'ED'
#!/bin/sh
printf 'BROKEN = 12;\n' >>"$1"
ED
cat >slow.sh <<'ED'
#!/bin/sh
sleep 20
ED
chmod +x add.sh bad.sh slow.sh
check "edit with a modifying editor" env EDITOR="$PWD/add.sh" "$PAGOFLEX" secrets edit --plugin banco_x \
    --key-file a.key creds/banco_x.cfg.enc
check "...left no plaintext (nor backup) behind" tmp_empty
check "...changed the file" bash -c "'$PAGOFLEX' secrets decrypt --plugin banco_x --key-file a.key \
    creds/banco_x.cfg.enc | grep -q BANCOX_TIMEOUT_MS"
cp creds/banco_x.cfg.enc before.enc
export EDITOR=false
check "edit with EDITOR=false fails" run 1 secrets edit --plugin banco_x --key-file a.key creds/banco_x.cfg.enc
check "...left no plaintext behind" tmp_empty
check "...left the file unchanged" cmp -s before.enc creds/banco_x.cfg.enc
check "EDITOR=false run: no secret in its messages" no_secret_in err out
check "edit producing invalid text fails" env EDITOR="$PWD/bad.sh" bash -c \
    "! '$PAGOFLEX' secrets edit --plugin banco_x --key-file a.key creds/banco_x.cfg.enc 2>/dev/null"
check "...left no plaintext behind" tmp_empty
check "...left the file unchanged" cmp -s before.enc creds/banco_x.cfg.enc
EDITOR="$PWD/slow.sh" "$PAGOFLEX" secrets edit --plugin banco_x --key-file a.key creds/banco_x.cfg.enc \
    2>/dev/null &
pid=$!
for _ in $(seq 50); do [[ -n $(ls -A "$XDG_RUNTIME_DIR") ]] && break; sleep 0.1; done
check "while editing, the plaintext is in the private tmpfs folder" test -n "$(ls -A "$XDG_RUNTIME_DIR")"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
check "SIGTERM stops edit with the signal's status" test "$rc" -eq 143
check "...and leaves no plaintext behind" tmp_empty
check "...and the file unchanged" cmp -s before.enc creds/banco_x.cfg.enc
unset EDITOR

# --- rotate -------------------------------------------------------------------
check "rotate a -> b" run 0 secrets rotate --old-key-file a.key --new-key-file b.key creds
check "the new key reads it" run 0 secrets decrypt --plugin banco_x --key-file b.key creds/banco_x.cfg.enc
check "the old key alone no longer reads it" run 1 secrets decrypt --plugin banco_x --key-file a.key \
    creds/banco_x.cfg.enc
check "rotate again is a no-op" run 0 secrets rotate --old-key-file a.key --new-key-file b.key creds
"$PAGOFLEX" secrets keygen --out c.key 2>/dev/null
cat c.key >>"$SECRETS_FILE"
check "rotate with a wrong old key fails" run 1 secrets rotate --old-key-file a.key --new-key-file c.key creds
check "...and says which file" grep -q "creds/banco_x.cfg.enc" err
check "rotated file has mode 600" test "$(stat -c %a creds/banco_x.cfg.enc)" = 600

# --- check --------------------------------------------------------------------
cp "$PLUGIN_SO" plugins/
check "check passes with the right key" run 0 secrets check --credentials-dir creds --plugin-dir plugins \
    --key-file b.key
check "...listing the required names" grep -q "BANCOX_SECRET" out
check "...and no value" no_secret_in out err
check "check fails with only the old key" run 1 secrets check --credentials-dir creds --plugin-dir plugins \
    --key-file a.key
check "check passes with old key + new key as previous" run 0 secrets check --credentials-dir creds \
    --plugin-dir plugins --key-file a.key --previous-key-file b.key
printf 'BANCOX_API_KEY = "%s";\n' "$SECRET" |
    "$PAGOFLEX" secrets encrypt --plugin banco_x --key-file b.key --out creds/banco_x.cfg.enc 2>/dev/null
check "check fails when a required name is missing" run 1 secrets check --credentials-dir creds \
    --plugin-dir plugins --key-file b.key
check "...naming it" grep -q "BANCOX_SECRET" err
check "...and no value" no_secret_in out err
chmod 777 plugins
check "check fails on a world-writable plugin directory" run 1 secrets check --credentials-dir creds \
    --plugin-dir plugins --key-file b.key
check "...saying how to fix it" grep -q "chmod go-w" out

# --- the simulator's secrets, started as scripts/run and scripts/bench start it ---
if [[ -n $BANKSIM_BIN ]]; then
    SIM_KEY="sk_dev_sim_$(openssl rand -hex 8)"
    SIM_SECRET="whsec_dev_sim_$(openssl rand -hex 8)"
    printf '%s\n%s\n' "$SIM_KEY" "$SIM_SECRET" >>"$SECRETS_FILE"
    BANKSIM=$BANKSIM_BIN
    source "$SCRIPTS_LIB/banksim.sh"
    banksim_start "$SIM_KEY" "$SIM_SECRET" sim.log --port 0 --port-file sim.port --quiet
    sim_pid=$!
    for _ in $(seq 50); do [[ -s sim.port ]] && break; sleep 0.1; done
    sim_url="http://127.0.0.1:$(cat sim.port)"
    check "the simulator's command line holds neither secret" \
        bash -c "! tr '\\0' ' ' </proc/$sim_pid/cmdline | grep -q -e '$SIM_KEY' -e '$SIM_SECRET'"
    status_with() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$sim_url/pay/bx_none"; }
    check "...and it takes the key it was given" test "$(status_with "$SIM_KEY")" = 404
    check "...and no other" test "$(status_with "sk_wrong")" = 401
    kill -TERM "$sim_pid"
    wait "$sim_pid" || true
    check "the simulator refuses a secret on its command line" \
        bash -c "timeout 5 '$BANKSIM_BIN' --port 0 --api-key '$SIM_KEY' --quiet 2>sim.err; test \$? -eq 2"
    check "...saying how to pass it" grep -q "BANCOX_API_KEY" sim.err
    check "...without showing it" no_secret_in sim.log sim.err
fi

checks_done
