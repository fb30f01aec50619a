#!/usr/bin/env bash
# deploy/nginx.conf in front of two daemons on loopback (rendered by nginx_render.sh: only its
# `# site:` lines change). Checks TLS /healthz, the HTTP->HTTPS redirect, request ids (kept when
# well-formed, generated otherwise, seen by the replica), 413 at the proxy for bodies over 32 MiB,
# least_conn spreading load (each replica's /metrics), failover when one replica gets SIGTERM (it
# drains and exits 0), and the 503 + Retry-After answer when no replica is left.
# Replica 1 runs with W+X memory refused by the kernel (prctl PR_SET_MDWE), as systemd's
# MemoryDenyWriteExecute=yes would; deploy/healthcheck is probed against replica 2.
#
# Daemon: build/medvlpd with a model directory ($MEDVLP_DEPLOY_MODEL, the tiny biomedclip fixture or
# weights/biomedclip). While medvlpd cannot load a model yet, the real HTTP server with the
# transport-test backend (tests/http's medvlpd-testbackend) stands in; every check here is about
# the proxy and the server's transport, none about embedding values. Skips (77) without either.
set -uo pipefail
PATH=$PATH:/usr/sbin
for tool in nginx openssl curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
. "$(dirname "$0")/nginx_render.sh"
. "$(dirname "$0")/../kill_own.sh"
build=$MEDVLP_BUILD_ROOT
dir=$(mktemp -d)
pids=()
cleanup() {
  kill_own TERM "${pids[@]}"
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Model directories to try, in order: the first that this build can load serves the test.
models=()
for candidate in ${MEDVLP_DEPLOY_MODEL:-} "$MEDVLP_FIXTURES/models/biomedclip" \
    "$MEDVLP_FIXTURES/models/biomedclip-safetensors" "$MEDVLP_SOURCE_ROOT/weights/biomedclip"; do
  [ -d "$candidate" ] && models+=("$candidate")
done

# start_daemon NAME PORT [wrapper...]: one replica; its stderr (with the JSON access log) in DIR/NAME.log.
start_daemon() {
  local name=$1 port=$2; shift 2
  "$@" "${daemon[@]}" --listen "127.0.0.1:$port" --threads 1 --log-format json 2>"$dir/$name.log" &
  pids+=($!)
  eval "${name}_pid=$!"
}
wait_ready() { # PORT PID: 0 once /readyz is 200, 1 if the process died or 30 s passed
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# The kernel's MemoryDenyWriteExecute: PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), then exec.
mdwe=(/usr/bin/python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])')

read -r p1 p2 https_port http_port < <(free_ports 4)
kind=""
for model in "${models[@]}"; do
  [ -x "$build/medvlpd" ] || break
  daemon=("$build/medvlpd" -m "$model")
  start_daemon r1 "$p1" "${mdwe[@]}"; start_daemon r2 "$p2"
  if wait_ready "$p1" "$r1_pid" && wait_ready "$p2" "$r2_pid"; then
    kind="medvlpd -m $model"
    break
  fi
  echo "medvlpd cannot serve $model: $(tail -n 1 "$dir/r1.log")"
  kill "$r1_pid" "$r2_pid" 2>/dev/null; wait "$r1_pid" "$r2_pid" 2>/dev/null
  read -r p1 p2 < <(free_ports 2)
done
if [ -z "$kind" ] && [ -x "$build/tests/http/medvlpd-testbackend" ]; then
  daemon=("$build/tests/http/medvlpd-testbackend" -m test)
  start_daemon r1 "$p1" "${mdwe[@]}"; start_daemon r2 "$p2"
  wait_ready "$p1" "$r1_pid" && wait_ready "$p2" "$r2_pid" \
    || { echo "FAIL: medvlpd-testbackend did not become ready"; cat "$dir/r1.log" "$dir/r2.log"; exit 1; }
  kind="medvlpd-testbackend (real HTTP server, transport-test backend; medvlpd has no loadable model here)"
fi
[ -n "$kind" ] || { echo "SKIP: no daemon that can serve (build/medvlpd + a model dir, or medvlpd-testbackend)"; exit 77; }
echo "replicas: $kind on ports $p1 (under PR_SET_MDWE) and $p2"

# The writer upstream (/index) is replica 1: this test does not write an index.
render_nginx_conf "$dir" "$https_port" "$http_port" "127.0.0.1:$p1" "127.0.0.1:$p1" "127.0.0.1:$p2" \
  || { echo "FAIL: rendering deploy/nginx.conf"; exit 1; }
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" -g 'daemon off;' &
pids+=($!); nginx_pid=$!
for _ in $(seq 100); do
  curl -sk -o /dev/null "https://127.0.0.1:$https_port/healthz" && break
  kill -0 "$nginx_pid" 2>/dev/null || { echo "FAIL: nginx exited"; cat "$dir/logs/error.log"; exit 1; }
  sleep 0.1
done
base="https://127.0.0.1:$https_port"

# 1. TLS termination and the plain-HTTP redirect.
code=$(curl -sk -o /dev/null -w '%{http_code} %{ssl_verify_result}' "$base/healthz")
[ "${code%% *}" = 200 ] || fail "GET /healthz over TLS: $code"
redirect=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$http_port/healthz?x=1")
[[ $redirect == "308 https://127.0.0.1/healthz?x=1" ]] || fail "plain HTTP redirect: $redirect"

# 2. Request ids: a well-formed one is kept end to end, a missing or hostile one is replaced by
#    nginx's 32-hex id; the replica's access log must show the id nginx answered with.
header_id() { tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }'; }
replica_saw() { grep -q "\"request_id\":\"$1\"" "$dir/r1.log" "$dir/r2.log"; }
id=$(curl -sk -D - -o /dev/null -H 'X-Request-Id: deploy-test.42' "$base/healthz" | header_id)
[ "$id" = deploy-test.42 ] || fail "incoming X-Request-Id not kept: '$id'"
replica_saw deploy-test.42 || fail "replica did not log request id deploy-test.42"
id=$(curl -sk -D - -o /dev/null "$base/healthz" | header_id)
[[ $id =~ ^[0-9a-f]{32}$ ]] || fail "no generated X-Request-Id: '$id'"
replica_saw "$id" || fail "replica did not log the generated request id $id"
id=$(curl -sk -D - -o /dev/null -H 'X-Request-Id: "},"evil":"' "$base/healthz" | header_id)
[[ $id =~ ^[0-9a-f]{32}$ ]] || fail "malformed X-Request-Id passed through: '$id'"

# 3. Body limit: 32 MiB + 1 byte is refused by nginx (413) and never reaches a replica; 1 MiB does.
embed_image_count() { # total /embed/image requests the replicas have seen (any status)
  local total=0 port n
  for port in "$p1" "$p2"; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" \
      | awk '/^medvlp_http_requests_total\{route="\/embed\/image"/ { s += $2 } END { print s + 0 }')
    total=$((total + n))
  done
  echo "$total"
}
head -c $((32 * 1024 * 1024 + 1)) /dev/zero > "$dir/big.png"
head -c $((1024 * 1024)) /dev/zero > "$dir/small.png"
before=$(embed_image_count)
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$dir/big.png" "$base/embed/image")
[ "$code" = 413 ] || fail "32 MiB + 1 byte body: $code, want 413 from nginx"
[ "$(embed_image_count)" = "$before" ] || fail "the oversize body reached a replica"
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$dir/small.png" "$base/embed/image")
[ "$(embed_image_count)" = $((before + 1)) ] || fail "a 1 MiB body did not reach a replica (status $code)"

# 4. least_conn: 48 text embeddings, 8 at a time; each replica must answer at least a quarter.
embed_text_ok() { # PORT: /embed/text requests answered 200 by that replica
  curl -s "http://127.0.0.1:$1/metrics" \
    | awk '/^medvlp_http_requests_total\{route="\/embed\/text",status="200"\}/ { print $2 } END { }' | head -1
}
r1_before=$(embed_text_ok "$p1"); r2_before=$(embed_text_ok "$p2")
embed() { curl -sk -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
  -d '{"texts":["no acute cardiopulmonary process"]}' "$base/embed/text"; }
export -f embed; export base
codes=$(seq 48 | xargs -P 8 -I{} bash -c embed | sort | uniq -c | tr -s ' ')
[ "$codes" = " 48 200" ] || fail "48 embeddings through nginx: $codes"
r1=$(( $(embed_text_ok "$p1") - ${r1_before:-0} )); r2=$(( $(embed_text_ok "$p2") - ${r2_before:-0} ))
echo "least_conn: replica 1 answered $r1, replica 2 answered $r2 of 48"
[ $((r1 + r2)) = 48 ] && [ "$r1" -ge 12 ] && [ "$r2" -ge 12 ] || fail "load not spread: $r1 / $r2"

# 4b. least_conn, not round-robin: with replica 1 frozen (SIGSTOP) and one request stuck on it,
#     the next 10 requests must all go to replica 2 (fewest in flight) and complete at once;
#     round-robin would send every other one into the frozen replica.
kill -STOP "$r1_pid"
stuck=""
for _ in 1 2 3 4; do
  bash -c embed >/dev/null & attempt=$!
  sleep 0.3
  if kill -0 "$attempt" 2>/dev/null; then stuck=$attempt; break; fi
done
if [ -z "$stuck" ]; then
  fail "could not park a request on the frozen replica 1"
else
  codes=$(for _ in $(seq 10); do curl -sk -o /dev/null -w '%{http_code}\n' --max-time 3 \
    -H 'Content-Type: application/json' -d '{"texts":["x"]}' "$base/embed/text"; done | sort | uniq -c | tr -s ' ')
  [ "$codes" = " 10 200" ] || fail "with one request in flight on replica 1, 10 sequential requests: '$codes' (want all to replica 2)"
fi
kill -CONT "$r1_pid"
[ -z "$stuck" ] || wait "$stuck"

# 5. The image's health probe against a real replica.
MEDVLP_LISTEN="0.0.0.0:$p2" "$MEDVLP_SOURCE_ROOT/deploy/healthcheck" || fail "deploy/healthcheck rejected a live replica"

# 6. SIGTERM to replica 2: it drains and exits 0; every request still succeeds through replica 1.
kill -TERM "$r2_pid"; wait "$r2_pid"; status=$?
[ "$status" = 0 ] || fail "replica 2 exited $status after SIGTERM, want 0"
codes=$(seq 20 | xargs -P 4 -I{} bash -c embed | sort | uniq -c | tr -s ' ')
[ "$codes" = " 20 200" ] || fail "after SIGTERM to one replica: $codes, want 20 x 200"

# 7. No replica left: 503 with Retry-After and the API's error object, not nginx's HTML 502.
kill -TERM "$r1_pid"; wait "$r1_pid"
response=$(curl -sk -D "$dir/headers" -H 'Content-Type: application/json' -d '{"texts":["x"]}' "$base/embed/text")
grep -q '^HTTP/[0-9.]* 503' "$dir/headers" || fail "no replica: $(head -1 "$dir/headers")"
grep -qi '^Retry-After: 5' "$dir/headers" || fail "no replica: no Retry-After"
/usr/bin/python3 -c 'import json, sys; e = json.loads(sys.argv[1])["error"]; assert e["status"] == 503, e' \
  "$response" 2>/dev/null || fail "no replica: body is not the API error object: $response"

if [ "$failures" -ne 0 ]; then
  echo "--- nginx error log"; tail -20 "$dir/logs/error.log"
  exit 1
fi
echo "nginx in front of two replicas: all checks passed"
