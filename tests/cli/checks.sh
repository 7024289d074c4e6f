# checks.sh - what the CLI tests share. Source it (bash), with $PAGOFLEX set
# to the absolute path of the pagoflex under test:
#   check NAME COMMAND...    the command must succeed: prints "ok   NAME" or "FAIL NAME"
#   run EXPECTED_RC ARGS...  run pagoflex ARGS, its stdout and stderr in ./out and ./err;
#                            fails (printing its stderr) unless it exits EXPECTED_RC
#   checks_done [WHAT]       the summary: exit 1 if any check failed, else "all WHAT passed"
failures=0
pass() { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1"; failures=$((failures + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
run() {
    local want=$1; shift
    local rc=0
    "$PAGOFLEX" "$@" >out 2>err || rc=$?
    if [[ $rc -ne $want ]]; then
        printf 'pagoflex %s: exit %d, expected %d\nstderr: %s\n' "$*" "$rc" "$want" "$(cat err)"
        return 1
    fi
}
checks_done() {
    if [[ $failures -ne 0 ]]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    echo "all ${1:-checks} passed"
}
