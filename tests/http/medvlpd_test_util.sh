# medvlpd_test_util.sh — sourced by the shell tests that run a real medvlpd: the check counter and
# starting the daemon on an ephemeral loopback port. The sourcing script sets medvlpd and tmp.
source "$(dirname "${BASH_SOURCE[0]}")/../kill_own.sh"
failures=0
checks=0
pid=

# jq 1.6 exits 0 for `jq -e FILTER FILE` when FILE is empty: an empty answer must fail its check.
jq() { if [ "${1:-}" = -e ] && [ -f "${!#}" ] && [ ! -s "${!#}" ]; then return 1; fi; command jq "$@"; }

# check WHAT COMMAND...: counts a check, and a failure (named on stderr) when COMMAND fails.
check() {
    local what=$1; shift
    checks=$((checks + 1))
    if ! "$@" >/dev/null; then failures=$((failures + 1)); echo "FAIL: $what" >&2; fi
}

# start_medvlpd ARGS...: runs "$medvlpd" ARGS on 127.0.0.1:0 (log in $tmp/log, a fresh one), waits until
# it says it is ready or dies, and sets pid, port and url. Fails when it did not become ready.
start_medvlpd() {
    # A restart reuses the log: until the new daemon's redirection truncates it, the previous daemon's
    # "ready" and port would be read as this one's (both flaky http_portal failures of 2026-11-23).
    rm -f "$tmp/log"
    "$medvlpd" "$@" --listen 127.0.0.1:0 2>"$tmp/log" &
    pid=$!
    for _ in $(seq 600); do   # up to 30 s: a loaded CI machine, the sanitizer build
        grep -q ': ready' "$tmp/log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    port=$(grep -o 'port [0-9]*' "$tmp/log" | awk '{print $2}')
    url=http://127.0.0.1:$port
    [ -n "$port" ] && grep -q ': ready' "$tmp/log"
}

# start_medvlpd, or the end of the test with the daemon's log.
require_medvlpd() {
    start_medvlpd "$@" || { echo "medvlpd did not become ready" >&2; cat "$tmp/log" >&2; exit 1; }
}
