#!/usr/bin/env bash
# scripts/lib/bench_notify_triggers.sh - what the notification triggers cost a
# state UPDATE of payments, measured with pgbench on a private cluster.
#
# The schema is the build's (pagoflex db migrate), with 100,000 payments of
# one merchant. Four kinds of run, each with the triggers of version 12 (one
# per changed row, put back for the comparison) and of version 17 (one per
# statement, transition tables):
#   single:  one payment's state moved per transaction (pending <-> processing);
#   multi64: 64 payments' states moved by one UPDATE per transaction;
# each with no webhook endpoint and with one endpoint subscribed to every
# event (the outbox is emptied between runs). Prints transactions/s and
# state changes/s of each run.
#
# NOTIFY_BENCH_DURATION (10 s), NOTIFY_BENCH_CLIENTS (8), NOTIFY_BENCH_ROUNDS
# (1: how many times the whole set runs, interleaved) and NOTIFY_BENCH_SYNC
# (synchronous_commit of the runs, default on) change it.
# Uses the build as it is; run from the repository (loopback only).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$ROOT/scripts/lib/pg.sh"

DUR=${NOTIFY_BENCH_DURATION:-10}
CLIENTS=${NOTIFY_BENCH_CLIENTS:-8}
SYNC=${NOTIFY_BENCH_SYNC:-on}
ROUNDS=${NOTIFY_BENCH_ROUNDS:-1}
NAME=notifytrig
bench_workdir "$NAME"
pg_private "$NAME"
psql -X -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pf_notifytrig WITH (FORCE)" \
  -c "CREATE DATABASE pf_notifytrig" >/dev/null
DB="${PAGOFLEX_PG/dbname=postgres/dbname=pf_notifytrig}"
"$BUILD/host/pagoflex" db migrate --database "$DB" >/dev/null 2>&1 || die "pagoflex db migrate failed"
q() { psql -X -qAt -d "$DB" -c "$1"; }
q "INSERT INTO payments (id, connector, amount, currency, state, merchant_id, connector_account)
   SELECT 'pay_' || g, 'BANCO_X', 1000, 'ARS', 'pending', 'mer_default', 'default'
   FROM generate_series(1, 100000) g" >/dev/null
q "VACUUM ANALYZE payments" >/dev/null

# The triggers of version 12, as they were (their helpers labelled
# IMMUTABLE, as until version 17), for the "before" runs.
OLD_TRIGGERS=$(cat <<'SQL'
DROP TRIGGER notify_payment ON payments;
DROP TRIGGER notify_refund ON refunds;
ALTER FUNCTION notify_time(timestamptz) IMMUTABLE;
ALTER FUNCTION notify_error(text, text) IMMUTABLE;
CREATE OR REPLACE FUNCTION notify_emit(merchant text, event_type text, object_id text, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.merchant_id = merchant
                   AND (e.events IS NULL OR event_type = ANY (e.events))) THEN
        RETURN;
    END IF;
    event_id := 'evt_' || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO notify_events (id, merchant_id, type, object_id, payload)
    VALUES (event_id, merchant, event_type, object_id,
            json_build_object('type', event_type, 'timestamp', notify_time(clock_timestamp()),
                              'data', data)::text);
    INSERT INTO notify_deliveries (id, event_id, endpoint_id, next_attempt_at)
    SELECT 'dlv_' || replace(gen_random_uuid()::text, '-', ''), event_id, e.id, now()
    FROM webhook_endpoints e WHERE e.merchant_id = merchant
        AND (e.events IS NULL OR event_type = ANY (e.events));
END $$;
CREATE OR REPLACE FUNCTION notify_payment_changed_v12() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_emit(NEW.merchant_id, 'payment.' || NEW.state, NEW.id, notify_payment_object(NEW));
    RETURN NULL;
END $$;
CREATE TRIGGER notify_payment AFTER UPDATE ON payments FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION notify_payment_changed_v12();
SQL
)
# The triggers of this build, back again.
NEW_TRIGGERS=$(psql -X -qAt -d "$DB" -c "SELECT pg_get_triggerdef(oid) || ';' FROM pg_trigger
  WHERE tgname IN ('notify_payment', 'notify_refund') ORDER BY tgname")
q "SELECT tgtype & 1 FROM pg_trigger WHERE tgname = 'notify_payment'" | grep -qx 0 ||
  die "this build's notify_payment trigger is not per statement (migration 17 missing?)"

cat >"$DIR/single.sql" <<'SQL'
\set id random(1, 100000)
UPDATE payments SET state = CASE state WHEN 'pending' THEN 'processing' ELSE 'pending' END, updated_at = now()
  WHERE id = 'pay_' || :id;
SQL
# Blocks of 64 consecutive payments, so two clients on one block queue
# instead of deadlocking.
cat >"$DIR/multi64.sql" <<'SQL'
\set b random(0, 1561)
UPDATE payments SET state = CASE state WHEN 'pending' THEN 'processing' ELSE 'pending' END, updated_at = now()
  WHERE id = ANY (ARRAY(SELECT 'pay_' || g FROM generate_series(:b * 64 + 1, :b * 64 + 64) g));
SQL

# run TRIGGERS SCRIPT ENDPOINT: one pgbench run; prints a table row.
run() {
  local triggers=$1 script=$2 endpoint=$3 out tps rows=1
  q "TRUNCATE notify_deliveries, notify_events, webhook_endpoints CASCADE" >/dev/null
  [ "$endpoint" = yes ] && q "INSERT INTO webhook_endpoints (id, merchant_id, url, secret_enc)
    VALUES ('we_bench', 'mer_default', 'https://example.com/hook', 'sealed')" >/dev/null
  [ "$script" = multi64 ] && rows=64
  out=$(PGOPTIONS="-c synchronous_commit=$SYNC" pgbench -n -c "$CLIENTS" -j 2 -T "$DUR" -f "$DIR/$script.sql" "$DB" 2>&1) ||
    { echo "$out" >&2; die "pgbench failed"; }
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  local events
  events=$(q "SELECT count(*) FROM notify_events")
  printf '| %s | %s | %s | %.1f | %s | %s |\n' "$triggers" "$script" "$endpoint" "$tps" \
    "$(python3 -c "print(round($tps * $rows))")" "$events"
}

echo "pgbench: $CLIENTS clients, $DUR s per run, synchronous_commit = $SYNC, $(nproc) CPUs"
echo
echo "| triggers | run | endpoint | transactions/s | state changes/s | events written |"
echo "| --- | --- | --- | ---: | ---: | ---: |"
for _ in $(seq "$ROUNDS"); do
  for script in single multi64; do
    for endpoint in no yes; do
      psql -X -q -d "$DB" -c "$OLD_TRIGGERS" >/dev/null
      run "v12 (per row)" "$script" "$endpoint"
      q "DROP TRIGGER notify_payment ON payments; $NEW_TRIGGERS
         ALTER FUNCTION notify_time(timestamptz) STABLE; ALTER FUNCTION notify_error(text, text) STABLE;" >/dev/null
      run "v17 (per statement)" "$script" "$endpoint"
    done
  done
done
