# Starting the bank simulator (tests/banksim) from scripts/run and
# scripts/bench. Source it; needs BANKSIM (default $BUILD/tests/banksim/banksim).

# banksim_start API_KEY SECRET LOG [banksim options...]: start the
# simulator in the background, expecting API_KEY as Bearer key and signing
# its webhooks with SECRET, output appended to LOG. $! is its pid.
# The secrets go in its environment, which only its user (and root) can
# read, never on its command line, which every local user sees in ps.
banksim_start() {
  local key=$1 secret=$2 log=$3
  shift 3
  BANCOX_API_KEY=$key BANCOX_SECRET=$secret \
    "${BANKSIM:-$BUILD/tests/banksim/banksim}" "$@" >>"$log" 2>&1 &
}
