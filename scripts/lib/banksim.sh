# Starting the bank simulator (tests/banksim) from scripts/run and
# scripts/bench. Source it; needs BANKSIM (default $BUILD/tests/banksim/banksim).

# banksim_start API_KEY SECRET LOG [banksim options...]: start the
# simulator in the background, expecting API_KEY as Bearer key and signing
# its webhooks with SECRET, output appended to LOG. $! is its pid.
banksim_start() {
  local key=$1 secret=$2 log=$3
  shift 3
  "${BANKSIM:-$BUILD/tests/banksim/banksim}" --api-key "$key" --secret "$secret" "$@" >>"$log" 2>&1 &
}
