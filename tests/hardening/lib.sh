# lib.sh — shared by the hardening scripts (sourced): build paths, starting medvlpd on a free port of
# 127.0.0.1 and waiting for it, requests that capture the status, and pass/fail bookkeeping.
# The caller sets tmp (a scratch folder it removes) before calling hd_start.
source "$(dirname "${BASH_SOURCE[0]}")/../kill_own.sh"
medvlpd=${MEDVLP_BUILD_ROOT:?}/medvlpd
medvlp=$MEDVLP_BUILD_ROOT/medvlp
fixtures=${MEDVLP_FIXTURES:?}
model=$fixtures/models/biomedclip
pid=
port=
url=
failures=0
checks=0

check() { # what, command...: counts a check, reports it when the command fails
    local what=$1; shift
    checks=$((checks + 1))
    if ! "$@" >/dev/null 2>&1; then failures=$((failures + 1)); echo "FAIL: $what" >&2; fi
}

# hd_start LOG WAIT_S COMMAND... : runs COMMAND (medvlpd, possibly under a wrapper) in the
# background with stderr to LOG and waits up to WAIT_S seconds for "ready"; sets pid, port, url.
hd_start() {
    local log=$1 wait_s=$2; shift 2
    rm -f "$log" # a previous daemon's "ready" must not be read as this one's
    "$@" 2>"$log" &
    pid=$!
    local i
    for ((i = 0; i < wait_s * 10; i++)); do
        grep -q ': ready' "$log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port=$(grep -o 'port [0-9]*' "$log" | head -1 | awk '{print $2}')
    if [ -z "$port" ] || ! grep -q ': ready' "$log"; then
        echo "medvlpd did not become ready in ${wait_s}s:" >&2
        cat "$log" >&2
        return 1
    fi
    url=http://127.0.0.1:$port
}

# hd_stop SIGNAL: signals the daemon and sets exit_status once it is gone (not in a subshell:
# only this shell can wait for its child).
hd_stop() {
    kill -"$1" "$pid" 2>/dev/null
    wait "$pid"
    exit_status=$?
    pid=
}

# req METHOD PATH OUT [curl args...]: prints the HTTP status, the body goes to OUT.
req() {
    local method=$1 path=$2 out=$3; shift 3
    curl -s -m 60 -o "$out" -w '%{http_code}' -X "$method" "$@" "$url$path"
}

# is_error STATUS CODE FILE: FILE is {"error":{"status":STATUS,"code":CODE,...}}
is_error() {
    jq -e --argjson s "$1" --arg c "$2" '.error.status == $s and .error.code == $c and (.error.message | type) == "string"' "$3"
}
