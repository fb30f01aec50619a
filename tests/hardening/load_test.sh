#!/usr/bin/env bash
# load_test.sh [PART...] — load and fault tests of a release medvlpd on 127.0.0.1, each part with
# its own daemon (tiny BiomedCLIP model, fresh index) and bounded in time. Parts (default: all):
#   wrk        WRK_WARMUP (default 10) + WRK_SECONDS (default 60) of wrk at 64 connections mixing /embed/text,
#              /embed/image, /search and /healthz: no 5xx other than 503, and the daemon's RSS at the
#              end within 5% of its RSS after the warm-up
#   slowloris  100 clients trickling headers and 40 that stall mid-request, beside a normal client
#              whose every request must be answered; the stalled ones must be closed by --timeout
#   malformed  1,000 requests, malformed ones of 56 kinds interleaved with valid ones (faults.py)
#   kill9      kill -9 during HTTP index additions from 4 clients, restart, again, then every
#              acknowledged id must be searchable with its metadata
# Run standalone from the source root (uses build/ and tests/fixtures/) or from meson (env set).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export MEDVLP_BUILD_ROOT=${MEDVLP_BUILD_ROOT:-$here/../../build}
export MEDVLP_FIXTURES=${MEDVLP_FIXTURES:-$here/../fixtures}
source "$here/lib.sh"
tmp=$(mktemp -d)
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
faults=("python3" "$here/faults.py")
json=(-H 'Content-Type: application/json')

start() { # index_dir [medvlpd flags...]
    local index=$1; shift
    mkdir -p "$index"
    hd_start "$tmp/log" 120 "$medvlpd" -m "$model" -i "$index" --listen 127.0.0.1:0 --log-format text "$@"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

seed_index() { # a few captions and images so /search has something to find
    local b64; b64=$(base64 -w0 "$fixtures/models/images/rgb_70x52.png")
    req POST /index/captions "$tmp/seed.json" "${json[@]}" \
        -d '{"items":[{"text":"small pleural effusion","metadata":{"n":1}},{"text":"no acute process","metadata":{"n":2}},{"text":"cardiomegaly","metadata":{"n":3}}]}' >/dev/null
    req POST /index/images "$tmp/seed.json" "${json[@]}" -d "{\"items\":[{\"image\":\"$b64\",\"metadata\":{\"n\":4}}]}" >/dev/null
}

part_wrk() {
    command -v wrk >/dev/null || { echo "wrk not installed (scripts/setup)"; return 77; }
    local seconds=${WRK_SECONDS:-60} warmup=${WRK_WARMUP:-10}
    start "$tmp/wrk-index" || return 1
    seed_index
    local b64; b64=$(base64 -w0 "$fixtures/models/images/gray_61x80.jpg")
    cat >"$tmp/mix.lua" <<LUA
-- Round robin over the four routes; every thread counts statuses, done() adds them up.
local bodies = {
  {"POST", "/embed/text", '{"texts":["No acute cardiopulmonary process.","Small left pleural effusion."]}'},
  {"POST", "/embed/image", '{"images":["$b64"]}'},
  {"POST", "/search", '{"text":"pleural effusion","target":"captions","k":3}'},
  {"GET", "/healthz", nil},
}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n, ok, c4, c503, c5 = 0, 0, 0, 0, 0 end
function request()
  n = n + 1
  local b = bodies[n % #bodies + 1]
  return wrk.format(b[1], b[2], b[3] and {["Content-Type"] = "application/json"} or {}, b[3])
end
function response(status, headers, body)
  if status < 300 then ok = ok + 1 elseif status == 503 then c503 = c503 + 1
  elseif status >= 500 then c5 = c5 + 1 else c4 = c4 + 1 end
end
function done(summary, latency, requests)
  local t = {ok = 0, c4 = 0, c503 = 0, c5 = 0}
  for _, thread in ipairs(threads) do
    for k in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format("statuses: 2xx %d, 4xx %d, 503 %d, other 5xx %d\n", t.ok, t.c4, t.c503, t.c5))
  io.write(string.format("latency p50 %.1f ms, p99 %.1f ms\n", latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
LUA
    # One run of warm-up + measured seconds: RSS is sampled while the 64 connections are open (their
    # buffers are part of the steady state), first when the warm-up ends, last just before wrk stops.
    wrk -t2 -c64 -d"$((warmup + seconds))s" --timeout 10s -s "$tmp/mix.lua" "$url" >"$tmp/wrk.txt" 2>&1 &
    local wrk_pid=$! series="" t0=$SECONDS rss0="" rss1=""
    sleep "$warmup"
    rss0=$(rss_kb)
    while [ $((SECONDS - t0)) -lt $((warmup + seconds - 1)) ]; do series+=" $(rss_kb)"; sleep 1; done
    rss1=$(rss_kb)
    wait "$wrk_pid"
    cat "$tmp/wrk.txt"
    echo "wrk: RSS kB each second after the warm-up:$series"
    local statuses; statuses=$(grep '^statuses:' "$tmp/wrk.txt")
    check "wrk ran and counted statuses" [ -n "$statuses" ]
    check "wrk: no 5xx but 503 ($statuses)" grep -q 'other 5xx 0$' <<<"$statuses"
    check "wrk: no 4xx from valid requests ($statuses)" grep -q ' 4xx 0,' <<<"$statuses"
    check "wrk: no socket errors" bash -c "! grep -q 'Socket errors' '$tmp/wrk.txt'"
    echo "wrk: RSS after ${warmup}s warm-up ${rss0} kB, after ${seconds}s at 64 connections ${rss1} kB" \
         "(growth $(awk -v a="$rss0" -v b="$rss1" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')%)"
    check "wrk: RSS growth <= 5% (${rss0} -> ${rss1} kB)" [ $((rss1 * 100)) -le $((rss0 * 105)) ]
    hd_stop TERM
    check "wrk: SIGTERM exit 0" [ "$exit_status" = 0 ]
}

part_slowloris() {
    start "$tmp/sl-index" --timeout 2 || return 1
    "${faults[@]}" slowloris "$url" 2
    check "slowloris: normal clients served, stalled ones closed" [ $? = 0 ]
    hd_stop TERM
    check "slowloris: SIGTERM exit 0" [ "$exit_status" = 0 ]
}

part_malformed() {
    start "$tmp/mf-index" --max-body 64K || return 1
    seed_index
    "${faults[@]}" texts | "$medvlp" embed-text -m "$model" 2>/dev/null | jq -s -c . >"$tmp/cli.json"
    "${faults[@]}" malformed "$url" "$tmp/cli.json"
    check "malformed: every error right, every valid answer right" [ $? = 0 ]
    hd_stop TERM
    check "malformed: SIGTERM exit 0" [ "$exit_status" = 0 ]
}

part_kill9() {
    local index=$tmp/k9-index round
    : >"$tmp/acked"
    for round in 1 2; do
        start "$index" || return 1
        "${faults[@]}" add "$url" "$tmp/acked" &
        local adder=$! i
        # Kill once this round has some acknowledged additions, while the clients are still adding.
        for ((i = 0; i < 300 && $(wc -l <"$tmp/acked") < round * 150; i++)); do sleep 0.1; done
        check "kill9 round $round: clients still adding at the kill" kill -0 "$adder"
        hd_stop KILL
        wait "$adder"
        check "kill9 round $round: medvlpd died of SIGKILL" [ "$exit_status" = 137 ]
    done
    start "$index" || return 1
    "${faults[@]}" verify "$url" "$tmp/acked"
    check "kill9: acknowledged additions survive" [ $? = 0 ]
    hd_stop TERM
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(wrk slowloris malformed kill9)
skipped=0
for part in "${parts[@]}"; do
    echo "== $part"
    "part_$part"
    rc=$?
    [ "$rc" = 77 ] && skipped=1
    [ "$rc" != 0 ] && [ "$rc" != 77 ] && { failures=$((failures + 1)); echo "FAIL: $part did not run" >&2; }
    kill_own 9 "$pid"; [ -n "$pid" ] && { wait "$pid" 2>/dev/null; pid=; }
done
echo "load_test: $((checks - failures))/$checks checks passed"
[ "$failures" -eq 0 ] || exit 1
[ "$skipped" = 0 ] || exit 77
