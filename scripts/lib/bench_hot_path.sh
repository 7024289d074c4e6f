#!/usr/bin/env bash
# scripts/lib/bench_hot_path.sh - what PostgreSQL spends per payment and per
# webhook on the hot path's statements, and what each index and trigger of
# that path costs, measured with pgbench on a private cluster (issue 16).
#
# The statements are the group commit's multi-row ones, verbatim: the build's
# host/store/store_batch_multi.c is compiled into a small program that prints
# them, and pgbench runs them prepared (as the batch writer does: PREPARE
# once per connection, then EXECUTE) with $1 the JSON array of ROWS
# operations:
#   payment: the insert of ROWS payments (state created, reference "bench"),
#            their bank answer (transition to pending with a bank id) and the
#            orphan check of that answer: each statement its own commit;
#   webhook: ROWS signed-webhook applications by payment id (pending ->
#            succeeded), each with its event row, in one commit.
# No webhook endpoint exists (no outbox rows). Each JSON array is built by
# a SELECT ... \gset before its statement; that SELECT's own cost, measured
# in runs of the builders alone, is subtracted.
# Each variant runs on a fresh copy of one template database: the build's
# schema (pagoflex db migrate) with BACKGROUND settled payments (history and
# events included) and, for the webhook run, CLIENTS x TXNS x ROWS pending
# payments. A variant is the schema as it is ("base") or it with one thing
# dropped (see VARIANTS below), e.g.
#   scripts/lib/bench_hot_path.sh base before_v20 no_history_at no_trigger
# PostgreSQL CPU (all its processes, from /proc, scripts/lib/bench_tool.py)
# and WAL bytes per payment and per webhook are printed per variant, over
# ROUNDS interleaved rounds (CPU: median and least; WAL: median). WAL does
# not depend on the machine's load: it is the surer sign of written index
# entries on a shared machine. Autovacuum is off during runs (each copy is
# vacuumed and analyzed before it is measured), so its work does not land
# in a run. Every run's payments and webhooks are then counted in the
# database (pending with a bank id; succeeded with their amount received).
#
# HOTPATH_CLIENTS (8), HOTPATH_TXNS (transactions per client, 150),
# HOTPATH_ROWS (16), HOTPATH_BACKGROUND (100000), HOTPATH_ROUNDS (3).
# Uses the build as it is; loopback only.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$ROOT/scripts/lib/pg.sh"

CLIENTS=${HOTPATH_CLIENTS:-8}
TXNS=${HOTPATH_TXNS:-150}
ROWS=${HOTPATH_ROWS:-16}
BACKGROUND=${HOTPATH_BACKGROUND:-100000}
ROUNDS=${HOTPATH_ROUNDS:-3}
NAME=hotpath
TOOL="python3 $ROOT/scripts/lib/bench_tool.py"
bench_workdir "$NAME"

# What each variant drops, on its copy of the template.
declare -A VARIANTS=(
  [base]=""
  [no_payments_scheduled_due]="DROP INDEX payments_scheduled_due"
  [no_payments_unscheduled]="DROP INDEX payments_unscheduled"
  [no_payments_merchant_reference]="DROP INDEX payments_merchant_reference"
  [no_payments_merchant_created]="DROP INDEX payments_merchant_created"
  [no_payments_provider_ref]="DROP INDEX payments_connector_provider_ref"
  [no_trigger]="DROP TRIGGER payments_amounts ON payments"
  [no_history_at]="DROP INDEX payment_history_at"
  [no_history_payment]="DROP INDEX payment_history_payment"
  [no_history_pkey]="ALTER TABLE payment_history DROP CONSTRAINT payment_history_pkey"
  [no_events_received_at]="DROP INDEX webhook_events_received_at"
  [no_events_pkey]="ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_pkey CASCADE"
  # The partial indexes whose predicate no hot-path row meets, all at once.
  [no_idle_partials]="DROP INDEX payments_operation_unscheduled, payments_review, payments_hold_due,
    webhook_events_orphans, webhook_events_refund"
  # The schema before version 20 (the due index of version 5, the trigger
  # of version 8), for a before/after in one run.
  [before_v20]="CREATE INDEX payments_due ON payments (next_attempt_at)
    WHERE state IN ('created', 'processing', 'pending');
    DROP INDEX payments_scheduled_due;
    CREATE OR REPLACE TRIGGER payments_amounts BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_amounts()"
)
[ $# -gt 0 ] || set -- base
for v in "$@"; do [ -n "${VARIANTS[$v]+x}" ] || die "unknown variant $v (one of: ${!VARIANTS[*]})"; done

# The statements, from the build's source.
incs=$(find "$ROOT/host" "$ROOT/sdk/include" -type d -printf '-I%p ')
cat >"$DIR/dump_sql.c" <<'C'
#include "store_batch_multi.c"
#include <stdio.h>
int main(int argc, char **argv)
{
    const char *w = argc > 1 ? argv[1] : "";
    const char *sql = !strcmp(w, "insert")       ? sql_insert_multi
                      : !strcmp(w, "transition") ? sql_transition_multi
                      : !strcmp(w, "webhook")    ? sql_webhook_by_id_multi
                      : !strcmp(w, "orphans")    ? batch_sql_orphans_waiting_multi
                                                 : NULL;
    return sql ? puts(sql) < 0 : 1;
}
C
# shellcheck disable=SC2086
cc $incs $(pkg-config --cflags libpq) "$DIR/dump_sql.c" -o "$DIR/dump_sql" -ljansson ||
  die "cannot compile the statement dumper"
# prepare_once NAME KIND: PREPARE the statement on the client's first
# transaction; run NAME: EXECUTE it with the JSON array just built (simple
# query mode: the array holds no quote).
prepare_once() { printf '\\if :n = 1\nPREPARE %s AS %s;\n\\endif\n' "$1" "$("$DIR/dump_sql" "$2")"; }
execute() { printf "EXECUTE %s('%s');\n" "$1" ":js"; }

# The JSON arrays, built per transaction; ids carry the run's tag, the
# client and its transaction number.
ID="'pay_' || :tag || '_' || :client_id || '_' || :n || '_' || k"
KS="FROM generate_series(0, $((ROWS - 1))) k \\gset"
GEN_INSERT="SELECT json_agg(json_build_object('n', k, 'id', $ID, 'connector', 'BANCO_X', 'amount', '1050',
 'currency', 'ARS', 'reference', 'bench', 'description', NULL, 'capture', 'automatic', 'return_url', NULL,
 'pm_type', NULL, 'pm_token', NULL, 'merchant_id', 'mer_default', 'account', 'default', 'metadata', NULL))::text
 AS js $KS"
GEN_TRANSITION="SELECT json_agg(json_build_object('n', k, 'id', $ID, 'st', 'pending', 'allowed',
 '{created,processing}', 'ref', 'tx_' || $ID, 'code', NULL, 'message', NULL, 'source', 'bank_reply',
 'detail', NULL))::text AS js $KS"
GEN_ORPHANS="SELECT json_agg(json_build_object('n', k, 'id', $ID, 'ref', 'tx_' || $ID))::text AS js $KS"
GEN_WEBHOOK="SELECT json_agg(json_build_object('n', k, 'connector', 'BANCO_X', 'event_id', 'evt_' || $ID,
 'payment_id', $ID, 'tx_id', 'tx_' || $ID, 'st', 'succeeded',
 'body', '{\"event_id\":\"evt_' || $ID || '\",\"tx_id\":\"tx_' || $ID || '\",\"ref\":\"' || $ID
   || '\",\"status\":\"APPROVED\",\"amount\":1050,\"currency\":\"ARS\",\"occurred_at\":\"2026-11-27T12:00:00Z\"}',
 'allowed', '{created,processing,pending,requires_action}', 'code', NULL, 'message', NULL,
 'account', 'default'))::text AS js $KS"
{ echo '\set n :n + 1'; prepare_once hp_insert insert; prepare_once hp_transition transition
  prepare_once hp_orphans orphans
  echo "$GEN_INSERT"; execute hp_insert; echo "$GEN_TRANSITION"; execute hp_transition
  echo "$GEN_ORPHANS"; execute hp_orphans; } >"$DIR/payment.sql"
{ echo '\set n :n + 1'; echo "$GEN_INSERT"; echo "$GEN_TRANSITION"; echo "$GEN_ORPHANS"; } >"$DIR/payment_gen.sql"
{ echo '\set n :n + 1'; prepare_once hp_webhook webhook; echo "$GEN_WEBHOOK"; execute hp_webhook; } \
  >"$DIR/webhook.sql"
{ echo '\set n :n + 1'; echo "$GEN_WEBHOOK"; } >"$DIR/webhook_gen.sql"

export PAGOFLEX_PG_SETTINGS="shared_buffers = 1GB
wal_buffers = 16MB
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_timeout = 15min
autovacuum = off
synchronous_commit = on"
pg_private "$NAME"
PG_PID=$(head -1 "$PAGOFLEX_PG_DATA/postmaster.pid")
q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
db() { echo "${PAGOFLEX_PG/dbname=postgres/dbname=$1}"; }

say "template: schema of the build, $BACKGROUND settled payments"
q postgres "SET client_min_messages = warning" >/dev/null
psql -X -q -c "DROP DATABASE IF EXISTS pf_hp_run WITH (FORCE)" -c "DROP DATABASE IF EXISTS pf_hp_tmpl WITH (FORCE)" \
  -c "CREATE DATABASE pf_hp_tmpl" >/dev/null
"$BUILD/host/pagoflex" db migrate --database "$(db pf_hp_tmpl)" >/dev/null 2>&1 || die "pagoflex db migrate failed"
q pf_hp_tmpl "
INSERT INTO payments (id, connector, amount, currency, state, reference, merchant_id, connector_account,
                      provider_reference_id, created_at, updated_at)
SELECT 'pay_bg_' || g, 'BANCO_X', 1050, 'ARS', 'pending', 'bench', 'mer_default', 'default', 'tx_bg_' || g,
       now() - (g || ' s')::interval, now() - (g || ' s')::interval FROM generate_series(1, $BACKGROUND) g;
UPDATE payments SET state = 'succeeded' WHERE id LIKE 'pay_bg_%';
INSERT INTO payment_history (payment_id, from_state, to_state, source, at)
SELECT id, s.f, s.t, s.src, created_at FROM payments,
       (VALUES (NULL, 'created', 'api'), ('created', 'pending', 'bank_reply'), ('pending', 'succeeded', 'webhook'))
       AS s (f, t, src);
INSERT INTO webhook_events (connector, event_id, payment_id, state, tx_id, body, applied, connector_account,
                            received_at)
SELECT connector, 'evt_' || id, id, 'succeeded', provider_reference_id, '{}', true, connector_account, created_at
FROM payments;" >/dev/null

# prepare VARIANT TAG: a fresh copy of the template, with the variant's change,
# the webhook run's pending payments, vacuumed, analyzed, checkpointed.
prepare() {
  local v=$1 tag=$2
  psql -X -q -c "DROP DATABASE IF EXISTS pf_hp_run WITH (FORCE)" \
    -c "CREATE DATABASE pf_hp_run TEMPLATE pf_hp_tmpl STRATEGY FILE_COPY" >/dev/null
  [ -z "${VARIANTS[$v]}" ] || q pf_hp_run "${VARIANTS[$v]}" >/dev/null
  q pf_hp_run "
  INSERT INTO payments (id, connector, amount, currency, state, reference, merchant_id, connector_account,
                        provider_reference_id)
  SELECT 'pay_w$tag' || '_' || c || '_' || n || '_' || k, 'BANCO_X', 1050, 'ARS', 'pending', 'bench',
         'mer_default', 'default', 'tx_pay_w$tag' || '_' || c || '_' || n || '_' || k
  FROM generate_series(0, $((CLIENTS - 1))) c, generate_series(1, $TXNS) n, generate_series(0, $((ROWS - 1))) k" >/dev/null
  q pf_hp_run "VACUUM ANALYZE" >/dev/null
  q pf_hp_run "CHECKPOINT" >/dev/null
}

# run NAME SCRIPT TAG: pgbench of SCRIPT; prints "CPU_US WAL_BYTES": the CPU
# PostgreSQL used meanwhile ($DIR/cpu-NAME.json) and the WAL it wrote. The
# webhook run's tag is w<the pool's tag>: its ids are the pool's.
run() {
  local name=$1 script=$2 tag=$3 lsn cpu
  lsn=$(q postgres "SELECT pg_current_wal_insert_lsn()")
  $TOOL measure "$DIR/cpu-$name.json" postgres="$PG_PID" -- \
    pgbench -n -M simple -c "$CLIENTS" -j 2 -t "$TXNS" -D n=0 -D tag="'$tag'" -f "$script" "$(db pf_hp_run)" \
    >"$DIR/pgbench-$name.out" 2>&1 || { cat "$DIR/pgbench-$name.out" >&2; die "pgbench failed ($name)"; }
  cpu=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['postgres'])" "$DIR/cpu-$name.json")
  echo "$cpu $(q postgres "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn')::bigint")"
}

N=$((CLIENTS * TXNS * ROWS))
declare -A PAY WEB PAYWAL WEBWAL
for round in $(seq 1 "$ROUNDS"); do
  prepare base gen
  read -r gen_pay gen_pay_wal <<<"$(run gen-payment "$DIR/payment_gen.sql" g$round)"
  read -r gen_web gen_web_wal <<<"$(run gen-webhook "$DIR/webhook_gen.sql" g$round)"
  # Each round starts one variant further on, so that none is always first.
  order=("${@:$(( (round - 1) % $# + 1 ))}" "${@:1:$(( (round - 1) % $# ))}")
  for v in "${order[@]}"; do
    prepare "$v" "x$round"
    read -r web web_wal <<<"$(run "webhook-$v" "$DIR/webhook.sql" "wx$round")"
    read -r pay pay_wal <<<"$(run "payment-$v" "$DIR/payment.sql" "p$round")"
    # Every operation did its work: accounted for in the database.
    got=$(q pf_hp_run "SELECT count(*) FILTER (WHERE id LIKE 'pay_p${round}_%' AND state = 'pending'
                              AND provider_reference_id IS NOT NULL),
                              count(*) FILTER (WHERE id LIKE 'pay_wx${round}_%' AND state = 'succeeded'
                              AND (amount_received = amount OR '$v' = 'no_trigger'))
                       FROM payments")
    [ "$got" = "$N|$N" ] || die "$v: expected $N pending and $N succeeded payments, found $got (pending|succeeded)"
    PAY[$v]+="$(( (pay - gen_pay) / N )) "
    WEB[$v]+="$(( (web - gen_web) / N )) "
    PAYWAL[$v]+="$(( (pay_wal - gen_pay_wal) / N )) "
    WEBWAL[$v]+="$(( (web_wal - gen_web_wal) / N )) "
    say "round $round $v: per payment $(( (pay - gen_pay) / N )) us, $(( (pay_wal - gen_pay_wal) / N )) WAL bytes;" \
      "per webhook $(( (web - gen_web) / N )) us, $(( (web_wal - gen_web_wal) / N )) WAL bytes"
  done
done

# CPU: the median and the least of the rounds (the machine is shared: the
# least is the run others disturbed least); WAL: the median.
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
least() { tr ' ' '\n' | grep . | sort -n | head -1; }
echo "PostgreSQL per operation, $ROWS operations per statement, $CLIENTS clients, $ROUNDS rounds"
printf '%-34s %12s %10s %10s %12s %10s %10s\n' variant pay_cpu_med pay_cpu_min pay_wal web_cpu_med web_cpu_min web_wal
for v in "$@"; do
  printf '%-34s %12s %10s %10s %12s %10s %10s\n' "$v" "$(median <<<"${PAY[$v]}")" "$(least <<<"${PAY[$v]}")" \
    "$(median <<<"${PAYWAL[$v]}")" "$(median <<<"${WEB[$v]}")" "$(least <<<"${WEB[$v]}")" \
    "$(median <<<"${WEBWAL[$v]}")"
done
