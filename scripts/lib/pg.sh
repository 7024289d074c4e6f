# A private PostgreSQL 15 cluster for development and tests. Source after common.sh.
#   pg_start <name>   starts (creating on first use) the cluster <name>, exports
#                     PGHOST PGPORT PGUSER PGDATABASE and PAGOFLEX_PG (a conninfo)
#   pg_stop <name>    stops it (fast shutdown)
# $PAGOFLEX_PG_SETTINGS, when set, is appended to the cluster's settings
# (postgresql.conf lines; scripts/bench gives its cluster production-like
# memory and WAL settings this way); a running cluster is then restarted if
# its settings changed.
# The cluster runs as the postgres user when we are root (initdb refuses root).
# Its data lives under var/pg-<name> when the postgres user can reach that
# folder, otherwise under a postgres-owned folder in /tmp recorded in var/.

pg_as() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Folder of cluster $1 (created, owned by the user that runs PostgreSQL).
pg_dir() {
  local name=$1 dir=$VAR/pg-$1 rec=$VAR/pg-$1.path
  mkdir -p "$VAR"
  if [ -f "$rec" ]; then cat "$rec"; return; fi
  if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$dir"; chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      rmdir "$dir" 2>/dev/null || true
      dir=$(mktemp -d "/tmp/pagoflex-pg-$name.XXXXXX"); chown postgres: "$dir"
      say "postgres cannot reach $VAR; using $dir"
    fi
  else
    mkdir -p "$dir"
  fi
  echo "$dir" >"$rec"
  echo "$dir"
}

pg_start() {
  local name=${1:-dev} dir
  dir=$(pg_dir "$name")
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "creating PostgreSQL cluster in $dir/data"
    pg_as "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-instructions >/dev/null
  fi
  grep -q "pagoflex.conf" "$dir/data/postgresql.conf" ||
    pg_as sh -c "echo \"include_if_exists = '$dir/pagoflex.conf'\" >>'$dir/data/postgresql.conf'"
  local port
  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); fi
  local running=0
  pg_as "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && running=1
  # A port left by an earlier run may be taken now: pick another.
  if [ $running = 0 ] && ! python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',$port))" 2>/dev/null; then
    port=$(free_port)
  fi
  pg_as sh -c "echo $port >'$dir/port'"
  # Settings live in a file the cluster includes, so a plain `pg_ctl start`
  # (as tests that restart PostgreSQL do) comes back the same way.
  pg_as sh -c "cat >'$dir/pagoflex.conf'" <<CONF
port = $port
unix_socket_directories = '$dir'
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = on
synchronous_commit = on
${PAGOFLEX_PG_SETTINGS:-}
CONF
  if [ $running = 1 ] && [ -n "${PAGOFLEX_PG_SETTINGS:-}" ] &&
    ! pg_as cmp -s "$dir/pagoflex.conf" "$dir/pagoflex.conf.running" 2>/dev/null; then
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    running=0
  fi
  pg_as cp "$dir/pagoflex.conf" "$dir/pagoflex.conf.running"
  if [ $running = 0 ]; then
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
  export PAGOFLEX_PG="host=$dir port=$port user=postgres dbname=postgres"
  export PAGOFLEX_PG_DATA=$dir/data
}

pg_stop() {
  local name=${1:-dev} rec=$VAR/pg-${1:-dev}.path dir
  [ -f "$rec" ] || return 0
  dir=$(cat "$rec")
  [ -f "$dir/data/PG_VERSION" ] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_private NAME: start cluster NAME for this script alone; it is stopped
# when the script exits.
pg_private() {
  pg_start "$1"
  # shellcheck disable=SC2064 # the name is fixed now
  trap "pg_stop '$1'" EXIT
}
