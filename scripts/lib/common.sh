# Shared helpers for scripts/run, scripts/test and scripts/bench. Source it.
# Sets ROOT (the checkout) and BUILD (its build folder).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${PAGOFLEX_BUILD_DIR:-$ROOT/build}
VAR=$ROOT/var
PG_BIN=/usr/lib/postgresql/15/bin

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# bench_workdir NAME: DIR=$VAR/NAME, made, for a measuring script that runs
# the build as it is (it dies unless the build has the pagoflex CLI).
bench_workdir() {
  [ -x "$BUILD/host/pagoflex" ] || die "$BUILD/host/pagoflex is missing: build the project"
  DIR=$VAR/$1
  mkdir -p "$DIR"
}

# Debian packages the project builds, runs and tests with.
PAGOFLEX_PACKAGES=(build-essential cmake pkg-config libcurl4-openssl-dev libjansson-dev
  libssl-dev libconfig-dev libpq-dev libmicrohttpd-dev libcmocka-dev postgresql
  postgresql-contrib curl python3 openssl procps valgrind nodejs
  libsystemd-dev systemd dpkg-dev file
  python3-yaml python3-jsonschema)
# python3-yaml and python3-jsonschema: the integration tests hold every
# exchange with a host to host/http/openapi.yaml (tests/integration/openapi_check.py).
# npm fetches the pinned sources of scripts/gen-currencies and the official
# client libraries the interop tests check against. Debian's nodejs lacks npm;
# NodeSource's nodejs has its own, which Debian's npm package conflicts with.
command -v npm >/dev/null 2>&1 || PAGOFLEX_PACKAGES+=(npm)

# Install whatever of "$@" (default: PAGOFLEX_PACKAGES) is missing.
ensure_packages() {
  local want=("$@") missing=()
  [ ${#want[@]} -gt 0 ] || want=("${PAGOFLEX_PACKAGES[@]}")
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing missing packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configure and build into $BUILD (extra cmake arguments may be given).
build_project() {
  say "building into $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=${PAGOFLEX_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null 2>"$BUILD.log" || { cat "$BUILD.log" >&2; die "build failed (log above)"; }
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
