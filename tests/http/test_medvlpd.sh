#!/usr/bin/env bash
# test_medvlpd.sh — the real daemon over a tiny BiomedCLIP-layout model: /embed/text and
# /v1/embeddings must return what `medvlp embed-text` prints for the same lines (normalised and
# --raw), token counts must match `medvlp tokenize`, concurrent requests must merge into batches,
# a bad model must stop startup with exit 2, and SIGTERM must exit 0.
set -uo pipefail
medvlpd=$MEDVLP_BUILD_ROOT/medvlpd
medvlp=$MEDVLP_BUILD_ROOT/medvlp
model=$MEDVLP_FIXTURES/models/biomedclip-safetensors
tmp=$(mktemp -d)
source "$MEDVLP_SOURCE_ROOT/tests/http/medvlpd_test_util.sh"
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
# max |a - b| over two JSON arrays of arrays is below 1e-6
same_rows() {
    jq -n -e --slurpfile a "$1" --slurpfile b "$2" '
        ($a[0] | length) == ($b[0] | length) and
        ([range($a[0] | length) as $i | range($a[0][$i] | length) as $d |
          (($a[0][$i][$d] - $b[0][$i][$d]) | fabs)] | max) < 1e-6'
}

"$medvlpd" -m "$MEDVLP_FIXTURES/models/bad/missing-tensor" --listen 127.0.0.1:0 2>"$tmp/err"
check "bad model: exit 2" [ $? = 2 ]
check "bad model: message names the model" grep -q 'missing-tensor' "$tmp/err"
"$medvlpd" -m "$tmp/nowhere" --listen 127.0.0.1:0 2>"$tmp/err"
check "missing model dir: exit 2" [ $? = 2 ]

require_medvlpd -m "$model" --max-wait-us 300000 --max-batch 64 --max-pixels 4000
json=(-H 'Content-Type: application/json')

head -n 24 "$MEDVLP_FIXTURES/text/cli_corpus.txt" >"$tmp/lines"
jq -R -s -c 'split("\n")[:-1]' "$tmp/lines" >"$tmp/texts.json"
"$medvlp" embed-text -m "$model" <"$tmp/lines" 2>/dev/null | jq -s -c . >"$tmp/cli.json"
"$medvlp" embed-text -m "$model" --raw <"$tmp/lines" 2>/dev/null | jq -s -c . >"$tmp/cli_raw.json"
"$medvlp" tokenize -m "$model" <"$tmp/lines" 2>/dev/null | jq -s -c 'map(length)' >"$tmp/cli_tokens.json"
check "CLI produced 24 rows" [ "$(jq length "$tmp/cli.json")" = 24 ]

curl -s -m 20 "${json[@]}" -d "{\"texts\": $(cat "$tmp/texts.json")}" "$url/embed/text" >"$tmp/resp.json"
jq -c .embeddings "$tmp/resp.json" >"$tmp/http.json"
check "/embed/text == medvlp embed-text" same_rows "$tmp/http.json" "$tmp/cli.json"
# Token counts against `medvlp tokenize` on the first 18 lines only: for some non-Latin lines the
# model's text path (family cleaning first) and the bare tokenizer legitimately differ.
check "/embed/text tokens == medvlp tokenize lengths" \
    [ "$(jq -c '.tokens[:18]' "$tmp/resp.json")" = "$(jq -c '.[:18]' "$tmp/cli_tokens.json")" ]
check "/embed/text model and dim" jq -e --argjson d "$(jq '.[0] | length' "$tmp/cli.json")" \
    '.model == "biomedclip-safetensors" and .dim == $d' "$tmp/resp.json"

curl -s -m 20 "${json[@]}" -d "{\"texts\": $(cat "$tmp/texts.json"), \"normalize\": false}" "$url/embed/text" |
    jq -c .embeddings >"$tmp/http_raw.json"
check "/embed/text normalize:false == medvlp embed-text --raw" same_rows "$tmp/http_raw.json" "$tmp/cli_raw.json"

curl -s -m 20 "${json[@]}" -d "{\"input\": $(cat "$tmp/texts.json")}" "$url/v1/embeddings" >"$tmp/openai.json"
jq -c '[.data[].embedding]' "$tmp/openai.json" >"$tmp/openai_rows.json"
check "/v1/embeddings == medvlp embed-text" same_rows "$tmp/openai_rows.json" "$tmp/cli.json"
check "/v1/embeddings usage = sum of tokens" jq -e --argjson t "$(jq add <(jq .tokens "$tmp/resp.json"))" \
    '.usage.prompt_tokens == $t and .usage.total_tokens == $t' "$tmp/openai.json"

# concurrent single-text requests: each gets its own row, and the worker merges them
for i in $(seq 0 7); do
    jq -c --argjson i "$i" '{texts: [.[$i]]}' "$tmp/texts.json" >"$tmp/req$i"
done
clients=()
for i in $(seq 0 7); do
    curl -s -m 20 "${json[@]}" --data-binary @"$tmp/req$i" "$url/embed/text" -o "$tmp/c$i" &
    clients+=($!)
done
wait "${clients[@]}"
for i in $(seq 0 7); do
    jq -c .embeddings "$tmp/c$i" >"$tmp/c$i.rows"
    jq -c --argjson i "$i" '[.[$i]]' "$tmp/cli.json" >"$tmp/want$i"
    check "concurrent request $i == its CLI row" same_rows "$tmp/c$i.rows" "$tmp/want$i"
done
curl -s -m 5 "$url/metrics" >"$tmp/metrics"
batches=$(awk '/^medvlp_batch_size_count\{encoder="text"\}/ {print $2}' "$tmp/metrics")
singles=$(awk '/^medvlp_batch_size_bucket\{encoder="text",le="1"\}/ {print $2}' "$tmp/metrics")
check "a batch merged several requests (batches $batches, single-item $singles)" [ "$singles" -lt "$batches" ]

# images: multipart, base64 JSON and raw bodies against `medvlp embed-image` (same files, same order)
imgs=$MEDVLP_FIXTURES/models/images
files=("$imgs/lowcontrast_66x50.png" "$imgs/rgb_70x52.png" "$imgs/rgba_48x64.png")
"$medvlp" embed-image -m "$model" "${files[@]}" 2>/dev/null | jq -s -c . >"$tmp/cli_img.json"
"$medvlp" embed-image -m "$model" --raw "${files[@]}" 2>/dev/null | jq -s -c . >"$tmp/cli_img_raw.json"
check "CLI embedded 3 images" [ "$(jq length "$tmp/cli_img.json")" = 3 ]
curl -s -m 20 -F "a=@${files[0]};type=image/png" -F "b=@${files[1]};type=image/png" -F "c=@${files[2]};type=image/png" \
    "$url/embed/image" >"$tmp/img.json"
jq -c .embeddings "$tmp/img.json" >"$tmp/img_rows.json"
check "multipart /embed/image == medvlp embed-image" same_rows "$tmp/img_rows.json" "$tmp/cli_img.json"
jq -n -c --arg a "$(base64 -w0 "${files[0]}")" --arg b "$(base64 -w0 "${files[1]}")" --arg c "$(base64 -w0 "${files[2]}")" \
    '{images: [$a, $b, $c], normalize: false}' >"$tmp/img_req.json"
curl -s -m 20 "${json[@]}" --data-binary @"$tmp/img_req.json" "$url/embed/image" | jq -c .embeddings >"$tmp/img_raw_rows.json"
check "base64 /embed/image normalize:false == medvlp embed-image --raw" same_rows "$tmp/img_raw_rows.json" "$tmp/cli_img_raw.json"
curl -s -m 20 -H 'Content-Type: image/png' --data-binary @"${files[1]}" "$url/embed/image" | jq -c .embeddings >"$tmp/one.json"
jq -c '[.[1]]' "$tmp/cli_img.json" >"$tmp/want_one.json"
check "raw image/png body == its CLI row" same_rows "$tmp/one.json" "$tmp/want_one.json"
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary @"$imgs/gray_61x80.jpg" "$url/embed/image")
check "image over --max-pixels is 413 ($code)" [ "$code" = 413 ]
printf 'GIF89a\x01\x00\x01\x00\x00\x00\x00;' >"$tmp/x.gif"
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$tmp/x.gif" "$url/embed/image")
check "GIF is 415 ($code)" [ "$code" = 415 ]
head -c 40 "${files[1]}" >"$tmp/cut.png"
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$tmp/cut.png" "$url/embed/image")
check "truncated PNG is 400 ($code)" [ "$code" = 400 ]
# a bad image in one request does not fail a good one batched with it
curl -s -m 20 -o "$tmp/good.json" -H 'Content-Type: image/png' --data-binary @"${files[1]}" "$url/embed/image" &
good=$!
code=$(curl -s -m 20 -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$tmp/cut.png" "$url/embed/image")
wait "$good"
jq -c .embeddings "$tmp/good.json" >"$tmp/good_rows.json"
check "good image beside a bad one still right" same_rows "$tmp/good_rows.json" "$tmp/want_one.json"

check "/readyz 200" curl -sf -m 5 "$url/readyz"
curl -s -m 5 "$url/v1/models" >"$tmp/models.json"
check "/v1/models names the family" jq -e '.data[0].info.family == "biomedclip"' "$tmp/models.json"
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "${json[@]}" -d '{"texts":["x"],"truncate":false}' "$url/embed/text")
check "short text with truncate:false is fine" [ "$code" = 200 ]
long=$(printf 'word %.0s' $(seq 600))
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "${json[@]}" -d "{\"texts\":[\"$long\"],\"truncate\":false}" "$url/embed/text")
check "text over the context with truncate:false is 422 ($code)" [ "$code" = 422 ]
check "422 code text_too_long" jq -e '.error.code == "text_too_long"' "$tmp/body"
code=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "${json[@]}" -d '{"text":"x"}' "$url/search")
check "/search without an index is 503 index_not_loaded" jq -e '.error.code == "index_not_loaded"' "$tmp/body"

kill -TERM "$pid"
wait "$pid"
check "SIGTERM exits 0" [ $? = 0 ]
pid=

# ---- index: captions added over HTTP, searched, deleted, and still there after a restart ----
check "starts with a new index dir" start_medvlpd -m "$model" -i "$tmp/idx"
check "says it created the index" grep -q 'created an empty one' "$tmp/log"
jq -c '{items: [to_entries[] | {text: .value, metadata: {line: .key}}]}' "$tmp/texts.json" >"$tmp/add.json"
code=$(curl -s -m 20 -o "$tmp/added.json" -w '%{http_code}' "${json[@]}" --data-binary @"$tmp/add.json" "$url/index/captions")
check "POST /index/captions 200 ($code)" [ "$code" = 200 ]
check "24 ids" jq -e '(.ids | length) == 24' "$tmp/added.json"
# Exact ranking from the CLI's embeddings (Flat index = exact inner product on unit vectors).
query_line=5
jq -c --argjson i $query_line '{text: .[$i], target: "captions", k: 5}' "$tmp/texts.json" >"$tmp/query.json"
curl -s -m 20 "${json[@]}" --data-binary @"$tmp/query.json" "$url/search" >"$tmp/found.json"
want=$(jq -c --argjson i $query_line --slurpfile ids "$tmp/added.json" '
    . as $e | [range(length) as $j | {id: $ids[0].ids[$j], line: $j,
      score: ([range($e[$i] | length) as $d | $e[$i][$d] * $e[$j][$d]] | add)}]
    | sort_by(-.score) | .[:5]' "$tmp/cli.json")
check "search ranking equals exact cosine over CLI embeddings" jq -e --argjson want "$want" '
    .results as $got | ($got | length) == 5 and
    ([range(5)] | all(. as $r | $got[$r].id == $want[$r].id and $got[$r].metadata.line == $want[$r].line and
      (($got[$r].score - $want[$r].score) | fabs) < 1e-5))' "$tmp/found.json"
check "hits carry the caption" jq -e --slurpfile t "$tmp/texts.json" \
    ".results[0].metadata.caption == \$t[0][$query_line]" "$tmp/found.json"
jq -c --argjson i $query_line '{text: .[$i], target: "captions", k: 3, filter: {line: 7}}' "$tmp/texts.json" >"$tmp/query.json"
curl -s -m 20 "${json[@]}" --data-binary @"$tmp/query.json" "$url/search" >"$tmp/filtered.json"
check "filter keeps only line 7" jq -e '(.results | length) == 1 and .results[0].metadata.line == 7' "$tmp/filtered.json"
jq -n -c --arg img "$(base64 -w0 "${files[0]}")" '{image: $img, k: 3}' >"$tmp/iq.json"
curl -s -m 20 "${json[@]}" --data-binary @"$tmp/iq.json" "$url/search" >"$tmp/ifound.json"
want=$(jq -c --slurpfile img "$tmp/cli_img.json" --slurpfile ids "$tmp/added.json" '
    . as $e | $img[0][0] as $q | [range(length) as $j | {id: $ids[0].ids[$j],
      score: ([range($q | length) as $d | $q[$d] * $e[$j][$d]] | add)}] | sort_by(-.score) | .[:3]' "$tmp/cli.json")
check "image query finds captions in exact cosine order" jq -e --argjson want "$want" '
    .results as $got | .target == "captions" and ($got | length) == 3 and
    ([range(3)] | all(. as $r | $got[$r].id == $want[$r].id))' "$tmp/ifound.json"
del_id=$(jq '.ids[3]' "$tmp/added.json")
check "DELETE a caption" [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X DELETE "$url/index/captions/$del_id")" = 200 ]
check "DELETE it again is 404" [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X DELETE "$url/index/captions/$del_id")" = 404 ]
check "GET /index counts" bash -c "curl -s -m 5 '$url/index' | jq -e '.captions.count == 23 and .images.count == 0'"
kill -TERM "$pid"; wait "$pid"; check "index daemon SIGTERM exits 0" [ $? = 0 ]; pid=
check "restarts on the same index" start_medvlpd -m "$model" -i "$tmp/idx"
check "additions and the delete survived the restart" bash -c "curl -s -m 5 '$url/index' | jq -e '.captions.count == 23'"
curl -s -m 20 "${json[@]}" --data-binary @"$tmp/query.json" "$url/search" >"$tmp/filtered2.json"
check "same results after restart" [ "$(jq -c .results "$tmp/filtered2.json")" = "$(jq -c .results "$tmp/filtered.json")" ]
kill -TERM "$pid"; wait "$pid"; pid=
mkdir -p "$tmp/other"
cp -r "$tmp/idx/." "$tmp/other/"
jq '.model.family = "cxr-bert"' "$tmp/idx/manifest.json" >"$tmp/other/manifest.json"
timeout 20 "$medvlpd" -m "$model" -i "$tmp/other" --listen 127.0.0.1:0 2>"$tmp/err"
check "an index of another model refuses to start (exit 2)" [ $? = 2 ]
check "and says why" grep -q "$tmp/other" "$tmp/err"
echo "medvlpd: $checks checks, $failures failed"
[ "$failures" = 0 ]
