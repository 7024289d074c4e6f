# npm_pinned.sh - source it: npm_pinned DIR PKG@VERSION... installs the pinned
# packages into DIR (node_modules below it) unless DIR already holds exactly
# those, the way test_stdwebhooks_npm.sh does (npm install --no-save
# --prefix, npm's own cache), but kept in the build folder so a second run
# does not fetch again. Returns 77 (the tests' skip code) when node or npm
# is missing or npm cannot install (offline), saying why.
npm_pinned() {
  local dir=$1; shift
  local want="$*"
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "SKIP: node/npm not installed (scripts/lib/common.sh ensure_packages installs them)"
    return 77
  fi
  if [ -f "$dir/.pinned" ] && [ "$(cat "$dir/.pinned")" = "$want" ]; then
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  if ! timeout 300 npm install --no-save --no-audit --no-fund --prefix "$dir" "$@" >"$dir/npm.log" 2>&1; then
    echo "SKIP: npm could not install $want (offline?):"; tail -3 "$dir/npm.log"
    return 77
  fi
  printf '%s' "$want" >"$dir/.pinned"
}
