#!/usr/bin/env bash
# scripts/lib/bench_outbox.sh - what each piece of the notification outbox
# costs a state change, measured with pgbench on a private cluster.
#
# The schema is the build's (pagoflex db migrate) plus 100,000 payments of
# one merchant, kept as a template database. Every run gets a fresh copy
# of it, changes one thing (the VARIANTS below: put back a foreign key or
# index that migration 19 dropped, drop an index, generate ids or build
# the payload another way; "as version 18" puts back all migration 19
# dropped), subscribes one endpoint to every
# event (or none, for "no endpoint") and runs, for OUTBOX_BENCH_DURATION s
# (10) with OUTBOX_BENCH_CLIENTS (8) clients, transactions that each move
# 64 payments' states in one UPDATE (so 64 events and 64 deliveries).
# Prints transactions/s, state changes/s, PostgreSQL's CPU time per
# changed row (user + system of the postmaster and all its children, from
# /proc, around the run) and the WAL written per changed row (which,
# unlike the first three, other load on the machine does not change). OUTBOX_BENCH_ROUNDS (2) interleaves the set that
# many times; OUTBOX_BENCH_ONLY (a regex of variant names) picks some.
# Uses the build as it is; run from the repository (loopback only).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$ROOT/scripts/lib/pg.sh"

DUR=${OUTBOX_BENCH_DURATION:-10}
CLIENTS=${OUTBOX_BENCH_CLIENTS:-8}
ROUNDS=${OUTBOX_BENCH_ROUNDS:-2}
ONLY=${OUTBOX_BENCH_ONLY:-.}
NAME=outboxbench
bench_workdir "$NAME"
pg_private "$NAME"
admin() { psql -X -qAt -d postgres -c "SET client_min_messages = warning" -c "$1" >/dev/null; }
admin "DROP DATABASE IF EXISTS pf_outbox_run WITH (FORCE)"
admin "DROP DATABASE IF EXISTS pf_outbox_base WITH (FORCE)"
admin "CREATE DATABASE pf_outbox_base"
BASE="${PAGOFLEX_PG/dbname=postgres/dbname=pf_outbox_base}"
RUN="${PAGOFLEX_PG/dbname=postgres/dbname=pf_outbox_run}"
"$BUILD/host/pagoflex" db migrate --database "$BASE" >/dev/null 2>&1 || die "pagoflex db migrate failed"
psql -X -qAt -d "$BASE" -c "INSERT INTO payments (id, connector, amount, currency, state, merchant_id, connector_account)
   SELECT 'pay_' || g, 'BANCO_X', 1000, 'ARS', 'pending', 'mer_default', 'default'
   FROM generate_series(1, 100000) g" -c "VACUUM ANALYZE payments" >/dev/null
SCHEMA=$(psql -X -qAt -d "$BASE" -c "SELECT max(version) FROM schema_migrations")
[ "$SCHEMA" -ge 19 ] || die "schema version $SCHEMA: this measures against version 19 (build this branch)"

# The trigger functions changed by the sed expression $1 (applied to the
# text of both).
functions_as() {
  psql -X -qAt -d "$RUN" -c "SELECT pg_get_functiondef(p.oid) || ';' FROM pg_proc p
      WHERE p.proname IN ('notify_payments_changed', 'notify_refunds_changed')" | sed "$1"
}
UUID="replace(gen_random_uuid()::text, '-'::text, '')"

# name|SQL run on the fresh copy before the run (a ':' line: nothing).
FK_EVENT="ALTER TABLE notify_deliveries ADD CONSTRAINT notify_deliveries_event_id_fkey
  FOREIGN KEY (event_id) REFERENCES notify_events (id) ON DELETE CASCADE"
FK_ENDPOINT="ALTER TABLE notify_deliveries ADD CONSTRAINT notify_deliveries_endpoint_id_fkey
  FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE"
IDX_OBJECT="CREATE INDEX notify_events_object ON notify_events (object_id)"
VARIANTS=(
  "no endpoint|"
  "schema as built|"
  "as version 18 (keys, index back)|$FK_EVENT; $FK_ENDPOINT; $IDX_OBJECT"
  "+ FK event_id|$FK_EVENT"
  "+ FK endpoint_id|$FK_ENDPOINT"
  "+ idx events_object|$IDX_OBJECT"
  "- idx deliveries_event|DROP INDEX notify_deliveries_event"
  "- idx deliveries_endpoint|DROP INDEX notify_deliveries_endpoint"
  "- idx deliveries_endpoint_due|DROP INDEX notify_deliveries_endpoint_due"
  "- idx events_created|DROP INDEX notify_events_created"
  "ids: random() hex|@fn:s/$UUID/lpad(to_hex((random() * 4294967295)::bigint), 8, '0')/g"
  "ids: time-ordered|@fn:s/$UUID/lpad(to_hex((extract(epoch from clock_timestamp()) * 1000000)::bigint), 14, '0') || $UUID/g"
  "payload: no object|@fn:s/notify_\(payment\|refund\)_object(n)/'{}'::jsonb/g"
)

# cpu_ticks: clock ticks of user + system time of the cluster: the
# postmaster, the children it has reaped, and the live children.
cpu_ticks() {
  local pm
  pm=$(head -1 "$PAGOFLEX_PG_DATA/postmaster.pid")
  python3 - "$pm" <<'PY'
import os, sys
pm = sys.argv[1]
def fields(pid):
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()
f = fields(pm)
total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid == pm:
        continue
    try:
        g = fields(pid)
    except OSError:
        continue
    if g[1] == pm:
        total += int(g[11]) + int(g[12])
print(total)
PY
}

cat >"$DIR/multi64.sql" <<'SQL'
\set b random(0, 1561)
UPDATE payments SET state = CASE state WHEN 'pending' THEN 'processing' ELSE 'pending' END, updated_at = now()
  WHERE id = ANY (ARRAY(SELECT 'pay_' || g FROM generate_series(:b * 64 + 1, :b * 64 + 64) g));
SQL

HZ=$(getconf CLK_TCK)
run() {
  local name=$1 sql=$2 out tps t0 t1 events
  admin "DROP DATABASE IF EXISTS pf_outbox_run WITH (FORCE)"
  admin "CREATE DATABASE pf_outbox_run TEMPLATE pf_outbox_base"
  case "$sql" in
    @fn:*) functions_as "${sql#@fn:}" | psql -X -q -v ON_ERROR_STOP=1 -d "$RUN" >/dev/null ;;
    ?*) psql -X -q -v ON_ERROR_STOP=1 -d "$RUN" -c "$sql" >/dev/null ;;
  esac
  [ "$name" = "no endpoint" ] || psql -X -qAt -d "$RUN" -c "INSERT INTO webhook_endpoints
    (id, merchant_id, url, secret_enc) VALUES ('we_bench', 'mer_default', 'https://example.com/hook', 'sealed')" >/dev/null
  psql -X -qAt -d "$RUN" -c "CHECKPOINT" >/dev/null
  lsn0=$(psql -X -qAt -d "$RUN" -c "SELECT pg_current_wal_lsn()")
  t0=$(cpu_ticks)
  out=$(pgbench -n -c "$CLIENTS" -j 2 -T "$DUR" -f "$DIR/multi64.sql" "$RUN" 2>&1) ||
    { echo "$out" >&2; die "pgbench failed"; }
  t1=$(cpu_ticks)
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  changes=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | head -1)
  wal=$(psql -X -qAt -d "$RUN" -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
  events=$(psql -X -qAt -d "$RUN" -c "SELECT count(*) FROM notify_events")
  python3 - "$name" "$tps" "$t0" "$t1" "$HZ" "$changes" "$wal" "$events" <<'PY'
import sys
name, tps, t0, t1, hz, tx, wal, events = sys.argv[1:]
rows = int(tx) * 64
cpu_us = (int(t1) - int(t0)) / int(hz) * 1e6
print("| %s | %.1f | %.0f | %.1f | %.0f | %s |"
      % (name, float(tps), float(tps) * 64, cpu_us / rows, float(wal) / rows, events))
PY
}

echo "pgbench: UPDATE of 64 payments per transaction, $CLIENTS clients, $DUR s per run, schema version $SCHEMA, $(nproc) CPUs"
echo
echo "| variant (one endpoint unless said) | transactions/s | state changes/s | PostgreSQL CPU µs per change | WAL bytes per change | events written |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for _ in $(seq "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    name=${v%%|*}
    grep -Eq -- "$ONLY" <<<"$name" || continue
    run "$name" "${v#*|}"
  done
done
