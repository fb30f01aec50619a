#!/usr/bin/env bash
# test_server.sh BINARY — end-to-end checks of the HTTP server through medvlpd-testbackend:
# every error status with its JSON body, streaming body limit, keep-alive, API key, metrics,
# dynamic batching, queue-full 503, not-ready 503, SIGTERM drain, flags and environment.
# Embedding values are recomputed here from the input bytes (see test_backend.c for the formulas).
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
pids=()
failures=0
checks=0

source "$MEDVLP_SOURCE_ROOT/tests/kill_own.sh"
cleanup() {
    kill_own 9 "${pids[@]}"
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { checks=$((checks + 1)); }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $*" >&2; }
# jq 1.6 exits 0 for `jq -e FILTER FILE` when FILE is empty: an empty answer must fail its check.
jq() { if [ "${1:-}" = -e ] && [ -f "${!#}" ] && [ ! -s "${!#}" ]; then return 1; fi; command jq "$@"; }
check() { # description, command...
    local what=$1; shift
    if "$@" >/dev/null; then ok; else bad "$what"; fi
}

# start NAME [args...]: runs the server on a free port (port 0, read back from its log); sets $url, $pid.
start() {
    local name=$1; shift
    "$bin" -m test --listen 127.0.0.1:0 "$@" 2>"$tmp/$name.log" &
    pid=$!
    pids+=("$pid")
    local port=""
    for _ in $(seq 100); do
        port=$(grep -o 'port [0-9]*' "$tmp/$name.log" 2>/dev/null | awk '{print $2}')
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "server $name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
    url=http://127.0.0.1:$port
    for _ in $(seq 100); do
        curl -sf -m 2 "$url/healthz" >/dev/null && return 0
        sleep 0.05
    done
    echo "server $name never answered /healthz" >&2
    exit 1
}

# req METHOD PATH [curl args...]: body to $tmp/body, headers to $tmp/headers, prints the status.
req() {
    local method=$1 path=$2; shift 2
    curl -s -m 10 -X "$method" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$@" "$url$path"
}

# expect_error STATUS CODE METHOD PATH [curl args...]: status and the JSON error body agree.
expect_error() {
    local status=$1 code=$2 method=$3 path=$4; shift 4
    local got
    got=$(req "$method" "$path" "$@")
    if [ "$got" = "$status" ] && jq -e --argjson s "$status" --arg c "$code" \
        '.error.status == $s and .error.code == $c and (.error.message | length > 0)' "$tmp/body" >/dev/null; then
        ok
    else
        bad "$method $path $*: want $status $code, got $got $(head -c 300 "$tmp/body")"
    fi
}

header() { grep -i "^$1:" "$tmp/headers" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

json=(-H 'Content-Type: application/json')

# Independent expectation for the test backend's text embedding: [bytes, words, byte sum, 1].
text_vector() {
    local t=$1
    local bytes words sum
    bytes=$(printf '%s' "$t" | wc -c)
    words=$(printf '%s' "$t" | wc -w)
    sum=$(printf '%s' "$t" | od -An -tu1 -v | tr -s ' \n' '\n' | awk 'NF {s += $1} END {print s + 0}')
    echo "[$bytes,$words,$sum,1]"
}

# near A B: two JSON arrays of numbers agree to 1e-5 relative.
near() {
    jq -n -e --argjson a "$1" --argjson b "$2" \
        '($a | length) == ($b | length) and
         ([range($a | length)] | all(. as $i | (($a[$i] - $b[$i]) | fabs) <= 1e-5 * (1 + ($b[$i] | fabs))))' \
        >/dev/null
}

# ---- startup and flags ----
check "--help exits 0" "$bin" --help >/dev/null
"$bin" --no-such-flag 2>"$tmp/err"; check "unknown flag exits 2" [ $? = 2 ]
"$bin" -m test --max-body lots 2>"$tmp/err"; check "bad --max-body exits 2" [ $? = 2 ]
check "bad --max-body message names the flag" grep -q -- '--max-body' "$tmp/err"
"$bin" -m /no/such/model --listen 127.0.0.1:0 2>"$tmp/err"; check "bad model exits 2" [ $? = 2 ]
check "bad model message names it" grep -q '/no/such/model' "$tmp/err"
"$bin" 2>"$tmp/err"; check "missing -m exits 2" [ $? = 2 ]
: >"$tmp/empty.key"
"$bin" -m test --api-key-file "$tmp/empty.key" 2>"$tmp/err"; check "empty API key file exits 2" [ $? = 2 ]
MEDVLP_LOG_FORMAT=xml "$bin" -m test 2>"$tmp/err"; check "bad MEDVLP_LOG_FORMAT exits 2" [ $? = 2 ]

# ---- main server: routes, errors, values ----
start main --max-body 4096 --max-batch-texts 4 --max-pixels 64
check "healthz" [ "$(req GET /healthz)" = 200 ]
check "readyz" [ "$(req GET /readyz)" = 200 ]
expect_error 404 not_found GET /nope
expect_error 404 not_found DELETE /index/images/abc
expect_error 405 method_not_allowed GET /embed/text
check "405 has Allow: POST" [ "$(header Allow)" = POST ]
expect_error 405 method_not_allowed PUT /healthz
check "405 on /healthz allows GET" [ "$(header Allow)" = GET ]

texts=("a b" "hello world foo" "")
status=$(req POST /embed/text "${json[@]}" -d '{"texts":["a b","hello world foo",""],"normalize":false}')
check "embed/text 200" [ "$status" = 200 ]
for i in 0 1 2; do
    want=$(text_vector "${texts[$i]}")
    got=$(jq -c ".embeddings[$i]" "$tmp/body")
    check "text $i raw embedding $got == $want" near "$got" "$want"
done
check "tokens = words + 2" [ "$(jq -c .tokens "$tmp/body")" = "[4,5,2]" ]
check "model and dim" jq -e '.model == "transport-test" and .dim == 4 and .truncated == [false,false,false]' "$tmp/body"
check "X-Request-Id generated" [ -n "$(header X-Request-Id)" ]

status=$(req POST /embed/text "${json[@]}" -H 'X-Request-Id: trace-42' -d '{"texts":"hello world foo"}')
want=$(text_vector "hello world foo" | jq -c '. as $v | ($v | map(. * .) | add | sqrt) as $n | $v | map(. / $n)')
check "single string, normalised by default" near "$(jq -c '.embeddings[0]' "$tmp/body")" "$want"
check "X-Request-Id echoed" [ "$(header X-Request-Id)" = trace-42 ]

long="w1 w2 w3 w4 w5 w6 w7 w8 w9"
status=$(req POST /embed/text "${json[@]}" -d "{\"texts\":[\"$long\"]}")
check "long text truncated to the context" jq -e '.tokens == [8] and .truncated == [true]' "$tmp/body"
expect_error 422 text_too_long POST /embed/text "${json[@]}" -d "{\"texts\":[\"ok\",\"$long\"],\"truncate\":false}"

expect_error 400 invalid_json POST /embed/text "${json[@]}" -d '{"texts": ["a"'
expect_error 400 invalid_json POST /embed/text "${json[@]}" -d '{"texts":["a"],"texts":["b"]}'
expect_error 400 invalid_json POST /embed/text "${json[@]}" --data-binary $'{"texts":["\xff"]}'
expect_error 415 unsupported_media_type POST /embed/text -H 'Content-Type: text/plain' -d '{"texts":["a"]}'
expect_error 415 unsupported_media_type POST /embed/text -d '{"texts":["a"]}'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '[1,2]'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '{}'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '{"texts":[]}'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '{"texts":5}'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '{"texts":["a",3]}'
expect_error 422 invalid_request POST /embed/text "${json[@]}" -d '{"texts":["a"],"normalize":"yes"}'
expect_error 422 too_many_inputs POST /embed/text "${json[@]}" -d '{"texts":["a","b","c","d","e"]}'

# OpenAI-compatible
status=$(req POST /v1/embeddings "${json[@]}" -d '{"input":["a b","hello world foo"],"model":"x"}')
check "v1/embeddings 200" [ "$status" = 200 ]
check "v1/embeddings shape" jq -e '.object == "list" and (.data | length) == 2 and .data[1].index == 1 and
    .data[0].object == "embedding" and .model == "transport-test" and .usage.prompt_tokens == 9 and
    .usage.total_tokens == 9' "$tmp/body"
want=$(text_vector "a b" | jq -c '. as $v | ($v | map(. * .) | add | sqrt) as $n | $v | map(. / $n)')
check "v1/embeddings normalised values" near "$(jq -c '.data[0].embedding' "$tmp/body")" "$want"
check "v1/embeddings single string" [ "$(req POST /v1/embeddings "${json[@]}" -d '{"input":"x"}')" = 200 ]
expect_error 422 invalid_request POST /v1/embeddings "${json[@]}" -d '{"input":[[1,2,3]]}'
expect_error 422 invalid_request POST /v1/embeddings "${json[@]}" -d '{"input":"a","encoding_format":"base64"}'
check "v1/models" [ "$(req GET /v1/models)" = 200 ]
check "v1/models body" jq -e '.data[0].id == "transport-test" and .data[0].dim == 4' "$tmp/body"

# images: the backend's vector is [bytes, first byte, last byte, 1]
printf '\x89PNG\r\n\x1a\nIMAGEDATA\x07' >"$tmp/a.png"
printf '\xff\xd8\xff\xe0JFIF\x00\x09' >"$tmp/b.jpg"
printf 'GIF89a....' >"$tmp/c.gif"
head -c 100 /dev/zero | tr '\0' 'x' | sed 's/^..../\x89PNG/' >"$tmp/big.png"
raw_png='[18,137,7,1]'
raw_jpg='[10,255,9,1]'
b64a=$(base64 -w0 "$tmp/a.png"); b64b=$(base64 -w0 "$tmp/b.jpg"); b64c=$(base64 -w0 "$tmp/c.gif")
status=$(req POST /embed/image "${json[@]}" -d "{\"images\":[\"$b64a\",\"data:image/jpeg;base64,$b64b\"],\"normalize\":false}")
check "embed/image json 200" [ "$status" = 200 ]
check "image 0 values" near "$(jq -c '.embeddings[0]' "$tmp/body")" "$raw_png"
check "image 1 values (data URL)" near "$(jq -c '.embeddings[1]' "$tmp/body")" "$raw_jpg"
status=$(req POST /embed/image -F "x=@$tmp/b.jpg;type=image/jpeg" -F "note=hi" -F "y=@$tmp/a.png;type=image/png")
check "multipart 200 ($status)" [ "$status" = 200 ]
want=$(echo "$raw_jpg" | jq -c '. as $v | ($v | map(. * .) | add | sqrt) as $n | $v | map(. / $n)')
check "multipart: file parts in order, text part skipped" jq -e '(.embeddings | length) == 2' "$tmp/body"
check "multipart values" near "$(jq -c '.embeddings[0]' "$tmp/body")" "$want"
status=$(req POST /embed/image -H 'Content-Type: image/png' --data-binary @"$tmp/a.png")
want=$(echo "$raw_png" | jq -c '. as $v | ($v | map(. * .) | add | sqrt) as $n | $v | map(. / $n)')
check "raw png body" near "$(jq -c '.embeddings[0]' "$tmp/body")" "$want"
expect_error 400 invalid_base64 POST /embed/image "${json[@]}" -d '{"images":["Zm9v!"]}'
expect_error 400 invalid_base64 POST /embed/image "${json[@]}" -d '{"images":["Zg="]}'
expect_error 400 invalid_input POST /embed/image "${json[@]}" -d '{"images":["Zm9vYmFy"]}'
expect_error 415 unsupported_media_type POST /embed/image "${json[@]}" -d "{\"images\":[\"$b64c\"]}"
expect_error 415 unsupported_media_type POST /embed/image -H 'Content-Type: image/gif' --data-binary @"$tmp/c.gif"
expect_error 413 too_large POST /embed/image -H 'Content-Type: image/png' --data-binary @"$tmp/big.png"
expect_error 422 invalid_request POST /embed/image "${json[@]}" -d '{"images":[]}'
expect_error 422 invalid_request POST /embed/image "${json[@]}" -d '{"images":[7]}'
expect_error 400 invalid_multipart POST /embed/image -H 'Content-Type: multipart/form-data; boundary=zz' -d 'junk'
expect_error 422 invalid_request POST /embed/image -F 'note=only text'

# index routes without -i
expect_error 503 index_not_loaded GET /index
expect_error 503 index_not_loaded DELETE /index/images/3
expect_error 503 index_not_loaded POST /index/captions "${json[@]}" -d '{"items":[{"text":"a"}]}'
expect_error 503 index_not_loaded POST /index/images "${json[@]}" -d "{\"items\":[{\"image\":\"$b64a\"}]}"
# /search: the contract is checked before anything else
expect_error 503 index_not_loaded POST /search "${json[@]}" -d '{"text":"effusion","k":5}'
expect_error 503 index_not_loaded POST /search "${json[@]}" -d '{"embedding":[1,0,0,0],"target":"captions","filter":{"view":"PA"}}'
expect_error 503 index_not_loaded POST /search "${json[@]}" -d "{\"image\":\"$b64a\",\"k\":1000}"
expect_error 503 index_not_loaded 'POST' '/search?k=3&target=captions' -H 'Content-Type: image/png' --data-binary @"$tmp/a.png"
expect_error 422 invalid_request POST /search "${json[@]}" -d '{}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","embedding":[1,0,0,0],"target":"images"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","k":0}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","k":1001}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","k":"5"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","target":"videos"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":7}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"embedding":[1,0,0,0]}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"embedding":[1,0,0],"target":"images"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"embedding":[1,"x",0,0],"target":"images"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","filter":{"k":[1]}}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","filter":"view=PA"}'
expect_error 422 invalid_request POST /search "${json[@]}" -d '{"text":"a","filter":{"view":"PA","n":2}}'
expect_error 400 invalid_base64 POST /search "${json[@]}" -d '{"image":"@@@@"}'
expect_error 422 invalid_request POST '/search?k=0' -H 'Content-Type: image/png' --data-binary @"$tmp/a.png"
expect_error 422 invalid_request 'POST' '/search?k=2x' -H 'Content-Type: image/png' --data-binary @"$tmp/a.png"
expect_error 422 invalid_request 'POST' '/search?target=all' -H 'Content-Type: image/png' --data-binary @"$tmp/a.png"
expect_error 415 unsupported_media_type POST /search -H 'Content-Type: text/plain' -d 'effusion'

# body limit (4096): announced too big, streamed too big, and a long chunked stream
big=$tmp/big.json
head -c 5000 /dev/zero | tr '\0' ' ' >"$big"
expect_error 413 body_too_large POST /embed/text "${json[@]}" --data-binary @"$big"
expect_error 413 body_too_large POST /embed/text "${json[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$big"
head -c 20000000 /dev/zero >"$tmp/huge"
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST "${json[@]}" -H 'Transfer-Encoding: chunked' \
    --data-binary @"$tmp/huge" "$url/embed/text")
# MHD cannot answer in the middle of a body: the rest is dropped unread and, past a bound, the
# connection is cut (curl then reports 000 or the 100 Continue it saw).
check "20 MB chunked body refused (413 or cut off), got $code" grep -qx '413\|000\|100' <<<"$code"
check "healthy after the flood" [ "$(req GET /healthz)" = 200 ]

# keep-alive: two requests, one connection
n=$(curl -s -m 5 -o /dev/null -o /dev/null -w '%{num_connects}\n' "$url/healthz" "$url/readyz" | paste -sd' ')
check "keep-alive reuses the connection (connects: $n)" [ "$n" = "1 0" ]

# metrics
curl -s -m 5 "$url/metrics" >"$tmp/metrics"
check "metrics: 200s on /embed/text counted" grep -q 'medvlp_http_requests_total{route="/embed/text",status="200"} [1-9]' "$tmp/metrics"
check "metrics: 413 counted" grep -q 'medvlp_http_requests_total{route="/embed/text",status="413"} 3' "$tmp/metrics"
check "metrics: 404 counted" grep -q 'medvlp_http_requests_total{route="unmatched",status="404"} 2' "$tmp/metrics"
check "metrics: latency histogram" grep -q 'medvlp_http_request_duration_seconds_count{route="/embed/text"}' "$tmp/metrics"
check "metrics: queue depth" grep -q 'medvlp_queue_depth{encoder="text"} 0' "$tmp/metrics"
check "metrics: build info" grep -q 'medvlp_build_info{version=' "$tmp/metrics"
peak=$(awk '/^medvlp_request_body_peak_bytes/ {print $2}' "$tmp/metrics")
check "never buffered more than --max-body (peak $peak)" [ "$peak" -le 4096 ]

# access log: JSON lines carrying the request id
check "access log line for trace-42" grep -q '"request_id":"trace-42"' "$tmp/main.log"
check "access log lines are JSON" bash -c "grep '^{' '$tmp/main.log' | jq -e -s 'length > 10' >/dev/null"
kill -TERM "$pid"; wait "$pid"; check "SIGTERM exit 0" [ $? = 0 ]

# ---- index and search over the test backend's exact in-memory index ----
"$bin" -m test -i /no/such/index --listen 127.0.0.1:0 2>"$tmp/err"; check "bad index exits 2" [ $? = 2 ]
check "bad index message names it" grep -q '/no/such/index' "$tmp/err"
start index -i mem
status=$(req POST /index/captions "${json[@]}" -d '{"items":[{"text":"a b","metadata":{"view":"PA"}},
    {"text":"hello world foo","metadata":{"view":"AP"}},{"text":"xyz q","metadata":{"view":"PA","n":2}}]}')
check "add captions 200 ($status)" [ "$status" = 200 ]
check "caption ids" jq -e '.ids == [0,1,2] and .target == "captions"' "$tmp/body"
status=$(req POST /index/images "${json[@]}" -d "{\"items\":[{\"image\":\"$b64a\",\"metadata\":{\"file\":\"a.png\"}},{\"image\":\"$b64b\"}]}")
check "add images 200 ($status)" [ "$status" = 200 ]
check "image ids" jq -e '.ids == [0,1]' "$tmp/body"
check "GET /index" [ "$(req GET /index)" = 200 ]
check "GET /index counts" jq -e '.images.count == 2 and .captions.count == 3 and .dim == 4' "$tmp/body"

# expected ranking, computed here: cosine of normalised vectors, best first, ties by id
cap_rows=$(jq -n -c --argjson a "$(text_vector "a b")" --argjson b "$(text_vector "hello world foo")" \
    --argjson c "$(text_vector "xyz q")" '[{id:0,v:$a,m:{view:"PA"}},{id:1,v:$b,m:{view:"AP"}},{id:2,v:$c,m:{view:"PA",n:2}}]')
img_rows=$(jq -n -c --argjson a "$raw_png" --argjson b "$raw_jpg" '[{id:0,v:$a,m:{file:"a.png"}},{id:1,v:$b,m:{}}]')
rank() { # rows query k [filter] -> [{id,score,metadata}]
    jq -n -c --argjson rows "$1" --argjson q "$2" --argjson k "$3" --argjson f "${4:-{\}}" '
        def norm: (map(. * .) | add | sqrt) as $n | map(. / $n);
        ($q | norm) as $qn
        | [$rows[] | select(.m as $m | $f | to_entries | all($m[.key] == .value))
           | {id, score: ([.v | norm | to_entries[] | .value * $qn[.key]] | add), metadata: .m}]
        | sort_by(-.score, .id) | .[:$k]'
}
same_results() { # response-file expected
    jq -e --argjson want "$2" '.results as $got | ($got | length) == ($want | length) and
        ([range($want | length)] | all(. as $i | $got[$i].id == $want[$i].id and
         $got[$i].metadata == $want[$i].metadata and
         (($got[$i].score - $want[$i].score) | fabs) < 1e-5))' "$1"
}
status=$(req POST /search "${json[@]}" -d '{"text":"hello there","k":2,"target":"captions"}')
check "text search 200 ($status)" [ "$status" = 200 ]
check "text search ranking" same_results "$tmp/body" "$(rank "$cap_rows" "$(text_vector "hello there")" 2)"
check "text search echoes target and k, took_ms" jq -e '.target == "captions" and .k == 2 and .took_ms >= 0' "$tmp/body"
req POST /search "${json[@]}" -d '{"text":"hello there","target":"captions","filter":{"view":"PA"}}' >/dev/null
check "filtered search" same_results "$tmp/body" "$(rank "$cap_rows" "$(text_vector "hello there")" 10 '{"view":"PA"}')"
req POST /search "${json[@]}" -d '{"text":"q","filter":{"file":"a.png"}}' >/dev/null
check "text search defaults to images" same_results "$tmp/body" "$(rank "$img_rows" "$(text_vector q)" 10 '{"file":"a.png"}')"
req POST /search "${json[@]}" -d "{\"image\":\"$b64b\",\"k\":3}" >/dev/null
check "image search defaults to captions" same_results "$tmp/body" "$(rank "$cap_rows" "$raw_jpg" 3)"
req POST /search "${json[@]}" -d '{"embedding":[3,0.5,-2,1],"target":"images","k":1}' >/dev/null
check "embedding search" same_results "$tmp/body" "$(rank "$img_rows" '[3,0.5,-2,1]' 1)"
req POST '/search?k=2&target=images' -H 'Content-Type: image/png' --data-binary @"$tmp/a.png" >/dev/null
check "raw image search with ?k=&target=" same_results "$tmp/body" "$(rank "$img_rows" "$raw_png" 2)"
expect_error 415 unsupported_media_type POST /search "${json[@]}" -d "{\"image\":\"$b64c\"}"

check "delete caption 1" [ "$(req DELETE /index/captions/1)" = 200 ]
check "delete answer" jq -e '.deleted == true and .id == 1 and .target == "captions"' "$tmp/body"
expect_error 404 not_found DELETE /index/captions/1
expect_error 404 not_found DELETE /index/images/99
req POST /search "${json[@]}" -d '{"text":"hello world foo","target":"captions"}' >/dev/null
check "deleted caption is gone from results" jq -e '[.results[].id] | index(1) == null and length == 2' "$tmp/body"
curl -s -m 5 -o "$tmp/metrics" "$url/metrics"
check "metrics: index sizes" grep -q 'medvlp_index_vectors{target="captions"} 2' "$tmp/metrics"
expect_error 422 invalid_request POST /index/captions "${json[@]}" -d '{"items":[]}'
expect_error 422 invalid_request POST /index/captions "${json[@]}" -d '{"items":[{"metadata":{}}]}'
expect_error 422 invalid_request POST /index/captions "${json[@]}" -d '{"items":[{"text":5}]}'
expect_error 422 invalid_request POST /index/captions "${json[@]}" -d '{"items":[{"image":"Zm9v"}]}'
expect_error 422 invalid_request POST /index/images "${json[@]}" -d '{"items":[{"text":"a"}]}'
expect_error 422 invalid_request POST /index/captions "${json[@]}" -d '{"items":[{"text":"a","metadata":[1]}]}'
expect_error 400 invalid_base64 POST /index/images "${json[@]}" -d '{"items":[{"image":"Zm9v="}]}'
expect_error 415 unsupported_media_type POST /index/images "${json[@]}" -d "{\"items\":[{\"image\":\"$b64c\"}]}"
check "a refused add stored nothing" [ "$(req GET /index)" = 200 ]
check "counts unchanged" jq -e '.images.count == 2 and .captions.count == 2' "$tmp/body"
kill -TERM "$pid"; wait "$pid"; check "index server SIGTERM exit 0" [ $? = 0 ]

# ---- API key, from the environment; text log format ----
printf 'sekrit-key\n' >"$tmp/key"
MEDVLP_API_KEY_FILE=$tmp/key start auth --log-format text
expect_error 401 unauthorized POST /embed/text "${json[@]}" -d '{"texts":["a"]}'
check "401 has WWW-Authenticate" [ "$(header WWW-Authenticate)" = Bearer ]
expect_error 401 unauthorized POST /embed/text "${json[@]}" -H 'Authorization: Bearer sekrit-kez' -d '{"texts":["a"]}'
expect_error 401 unauthorized POST /embed/text "${json[@]}" -H 'Authorization: Bearer sekrit-key2' -d '{"texts":["a"]}'
expect_error 401 unauthorized GET /metrics
check "right key accepted" [ "$(req POST /embed/text "${json[@]}" -H 'Authorization: Bearer sekrit-key' -d '{"texts":["a"]}')" = 200 ]
check "healthz exempt" [ "$(req GET /healthz)" = 200 ]
check "readyz exempt" [ "$(req GET /readyz)" = 200 ]
check "text access log" grep -q ' POST /embed/text 200 ' "$tmp/auth.log"
kill -TERM "$pid"; wait "$pid"

# ---- idle connections are closed after --timeout ----
start idle --timeout 1
exec 3<>"/dev/tcp/127.0.0.1/${url##*:}"
sleep 2
if read -r -t 3 -u 3 _; then closed=no; else closed=$([ $? -gt 128 ] && echo no || echo yes); fi
exec 3<&-
check "idle connection closed by --timeout 1" [ "$closed" = yes ]
check "still serving" [ "$(req GET /healthz)" = 200 ]
kill -TERM "$pid"; wait "$pid"

# ---- not ready while loading ----
MEDVLP_TEST_LOAD_MS=4000 start loading
expect_error 503 not_ready GET /readyz
check "not-ready has Retry-After" [ -n "$(header Retry-After)" ]
expect_error 503 not_ready POST /embed/text "${json[@]}" -d '{"texts":["a"]}'
curl -s -m 5 -o "$tmp/metrics" "$url/metrics"
check "metrics before ready" grep -q '^medvlp_ready 0' "$tmp/metrics"
kill -TERM "$pid"; wait "$pid"; check "SIGTERM while loading exits 0" [ $? = 0 ]

# ---- batching: concurrent requests merge into one backend call ----
MEDVLP_TEST_DELAY_MS=300 start batch --max-wait-us 200000 --max-batch 32
clients=()
for i in 1 2 3 4 5 6; do
    curl -s -m 10 -o "$tmp/batch$i" "${json[@]}" -d "{\"texts\":[\"t$i $i\"],\"normalize\":false}" "$url/embed/text" &
    clients+=($!)
done
wait "${clients[@]}"
for i in 1 2 3 4 5 6; do
    check "batched request $i got its own row" near "$(jq -c '.embeddings[0]' "$tmp/batch$i")" "$(text_vector "t$i $i")"
done
curl -s -m 5 "$url/metrics" >"$tmp/metrics"
batches=$(awk -F' ' '/^medvlp_batch_size_count\{encoder="text"\}/ {print $2}' "$tmp/metrics")
items=$(awk -F' ' '/^medvlp_batch_size_sum\{encoder="text"\}/ {print $2}' "$tmp/metrics")
singles=$(awk -F' ' '/^medvlp_batch_size_bucket\{encoder="text",le="1"\}/ {print $2}' "$tmp/metrics")
check "6 items in fewer than 6 batches (batches $batches, items $items)" [ "$items" = 6 -a "$batches" -lt 6 ]
check "some batch held more than one request" [ "$singles" -lt "$batches" ]

# ---- SIGTERM drains a request in flight ----
curl -s -m 10 -o "$tmp/inflight" -w '%{http_code}' "${json[@]}" -d '{"texts":["drain me"],"normalize":false}' \
    "$url/embed/text" >"$tmp/inflight.code" &
client=$!
sleep 0.1
kill -TERM "$pid"
wait "$pid"; check "SIGTERM with a request in flight exits 0" [ $? = 0 ]
wait "$client"
check "in-flight request answered 200" [ "$(cat "$tmp/inflight.code")" = 200 ]
check "in-flight request value" near "$(jq -c '.embeddings[0]' "$tmp/inflight")" "$(text_vector "drain me")"

# ---- queue full -> 503 + Retry-After ----
MEDVLP_TEST_DELAY_MS=500 start queue --max-queue 1 --max-batch 1 --max-wait-us 0
clients=()
for i in 1 2 3 4; do
    curl -s -m 10 -D "$tmp/qh$i" -o "$tmp/q$i" -w '%{http_code}' "${json[@]}" -d '{"texts":["q"]}' "$url/embed/text" \
        >"$tmp/q$i.code" &
    clients+=($!)
    sleep 0.05
done
wait "${clients[@]}"
codes=$(cat "$tmp"/q?.code | sort | paste -sd' ')
check "queue full answers 503 ($codes)" grep -q 503 <<<"$codes"
check "and serves the others ($codes)" grep -q 200 <<<"$codes"
for i in 1 2 3 4; do
    if [ "$(cat "$tmp/q$i.code")" = 503 ]; then
        check "503 body says overloaded" jq -e '.error.code == "overloaded" and .error.status == 503' "$tmp/q$i"
        check "503 has Retry-After" grep -qi '^Retry-After:' "$tmp/qh$i"
    fi
done
kill -TERM "$pid"; wait "$pid"

echo "http_server: $checks checks, $failures failed"
[ "$failures" = 0 ]
