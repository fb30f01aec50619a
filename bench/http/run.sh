#!/usr/bin/env bash
# bench/http/run.sh [-m MODEL_DIR] [-n REQUESTS] [-c CONCURRENCY] [-t TEXTS_PER_REQUEST]
# Throughput and latency of POST /embed/text through medvlpd, and how requests merged into batches.
# Starts build/medvlpd on a free port, sends REQUESTS requests CONCURRENCY at a time (curl via
# xargs -P), prints requests/s, latency p50/p90/p99 (curl time_total) and the batch-size summary
# from /metrics. Default model: weights/biomedclip if fetched, else the tiny test fixture (which
# measures the server, not the model).
set -euo pipefail
cd "$(dirname "$0")/../.."
model=weights/biomedclip; [ -d "$model" ] || model=tests/fixtures/models/biomedclip-safetensors
n=200 c=8 t=1
while getopts m:n:c:t: opt; do
    case $opt in m) model=$OPTARG ;; n) n=$OPTARG ;; c) c=$OPTARG ;; t) t=$OPTARG ;; *) exit 2 ;; esac
done
tmp=$(mktemp -d)
build/medvlpd -m "$model" --listen 127.0.0.1:0 --log-format text 2>"$tmp/log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 600); do grep -q ': ready' "$tmp/log" && break; sleep 0.1; done
port=$(grep -o 'port [0-9]*' "$tmp/log" | awk '{print $2}')
url=http://127.0.0.1:$port
jq -n -c --argjson t "$t" '{texts: [range($t) | "Small left pleural effusion with adjacent atelectasis; no pneumothorax."]}' >"$tmp/body"
start=$(date +%s.%N)
seq "$n" | xargs -P "$c" -I{} curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
    -H 'Content-Type: application/json' --data-binary @"$tmp/body" "$url/embed/text" >"$tmp/times"
end=$(date +%s.%N)
ok=$(grep -c '^200 ' "$tmp/times" || true)
echo "model $model: $n requests x $t texts, concurrency $c: $ok ok"
awk -v s="$start" -v e="$end" -v n="$n" 'BEGIN {printf "throughput: %.1f requests/s\n", n / (e - s)}'
awk '{print $2}' "$tmp/times" | sort -g | awk '{a[NR] = $1} END {
    printf "latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n", a[int(NR*0.5)]*1e3, a[int(NR*0.9)]*1e3, a[int(NR*0.99)]*1e3}'
curl -s "$url/metrics" | awk '/^medvlp_batch_size_(sum|count)\{encoder="text"\}/ {v[$1] = $2}
    END {for (k in v) if (k ~ /count/) c = v[k]; else s = v[k]; printf "batches: %d, mean batch %.2f items\n", c, s / c}'
