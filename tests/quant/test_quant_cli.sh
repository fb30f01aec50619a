#!/usr/bin/env bash
# test_quant_cli.sh — `--quant` on every command that opens a model and on medvlpd (flag and
# MEDVLP_QUANT): int8 output is close to PyTorch's reference (cos >= 0.995, computed here with jq)
# but not equal to the fp32 output (the option took effect), fp16 closer (0.9999); `medvlp info` and GET /v1/models report
# it; index build + search run with it and rank like the int8 embeddings say; POST /embed/text
# returns what `medvlp embed-text --quant int8` prints; bad values exit 2 with a message.
set -uo pipefail
medvlp=$MEDVLP_BUILD_ROOT/medvlp
medvlpd=$MEDVLP_BUILD_ROOT/medvlpd
fx=$MEDVLP_FIXTURES/models
model=$fx/biomedclip-safetensors
tmp=$(mktemp -d)
source "$MEDVLP_SOURCE_ROOT/tests/http/medvlpd_test_util.sh"
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT

# COMMAND... exits 2 with a message naming the quant option on stderr
exits_2_naming_quant() {
    "$@" >/dev/null 2>"$tmp/bad_err" </dev/null
    [ $? = 2 ] && grep -qi quant "$tmp/bad_err"
}
# min cosine of the rows of two JSON arrays of arrays is at least $3
min_cos_at_least() {
    jq -n -e --slurpfile a "$1" --slurpfile b "$2" --argjson min "$3" '
        def dot(x; y): [range(x | length) as $i | x[$i] * y[$i]] | add;
        ($a[0] | length) == ($b[0] | length) and
        ([range($a[0] | length) as $r | $a[0][$r] as $x | $b[0][$r] as $y |
          dot($x; $y) / ((dot($x; $x) * dot($y; $y)) | sqrt)] | min) >= $min'
}
differs() { ! cmp -s "$1" "$2"; }

# embed-text: against PyTorch's fp32 reference, and not the fp32 output itself.
"$medvlp" embed-text -m "$model" --quant int8 <"$fx/expected/texts.txt" 2>/dev/null | jq -s -c . >"$tmp/int8.json"
"$medvlp" embed-text -m "$model" --quant none <"$fx/expected/texts.txt" 2>/dev/null | jq -s -c . >"$tmp/fp32.json"
jq -c .single.normalized "$fx/expected/biomedclip.json" >"$tmp/ref.json"
check "embed-text --quant int8: 21 rows" [ "$(jq length "$tmp/int8.json")" = 21 ]
check "embed-text --quant int8: cos >= 0.995 to PyTorch" min_cos_at_least "$tmp/int8.json" "$tmp/ref.json" 0.995
check "embed-text --quant int8 differs from --quant none" differs "$tmp/int8.json" "$tmp/fp32.json"
check "embed-text --quant none: cos >= 0.99999 to PyTorch" min_cos_at_least "$tmp/fp32.json" "$tmp/ref.json" 0.99999

# fp16 weights: closer still to PyTorch, yet not the fp32 output; refused by name on CPUs without AVX-512.
if "$medvlp" info --no-checksum --quant fp16 -m "$model" >"$tmp/info_fp16.json" 2>"$tmp/fp16_err"; then
    "$medvlp" embed-text -m "$model" --quant fp16 <"$fx/expected/texts.txt" 2>/dev/null | jq -s -c . >"$tmp/fp16.json"
    check "info --quant fp16" jq -e '.quant == "fp16"' "$tmp/info_fp16.json"
    check "embed-text --quant fp16: cos >= 0.9999 to PyTorch" min_cos_at_least "$tmp/fp16.json" "$tmp/ref.json" 0.9999
    check "embed-text --quant fp16 differs from --quant none" differs "$tmp/fp16.json" "$tmp/fp32.json"
else
    check "--quant fp16 refused, naming AVX-512" grep -q "AVX-512" "$tmp/fp16_err"
fi

# embed-image
images=("$fx"/images/*)
"$medvlp" embed-image -m "$model" --quant int8 "${images[@]}" 2>/dev/null | jq -s -c . >"$tmp/img_int8.json"
"$medvlp" embed-image -m "$model" "${images[@]}" 2>/dev/null | jq -s -c . >"$tmp/img_fp32.json"
check "embed-image --quant int8: ${#images[@]} rows" [ "$(jq length "$tmp/img_int8.json")" = "${#images[@]}" ]
check "embed-image --quant int8: cos >= 0.995 to fp32" min_cos_at_least "$tmp/img_int8.json" "$tmp/img_fp32.json" 0.995
check "embed-image --quant int8 differs from fp32" differs "$tmp/img_int8.json" "$tmp/img_fp32.json"

# info
check "info --quant int8" jq -e '.quant == "int8"' <("$medvlp" info --no-checksum --quant int8 -m "$model" 2>/dev/null)
check "info default: none" jq -e '.quant == "none"' <("$medvlp" info --no-checksum -m "$model" 2>/dev/null)

# index build + search with int8: the top hit of each image query is that image (its own caption
# side is empty, so search images with each image's own int8 embedding).
mkdir -p "$tmp/images"
cp "${images[@]}" "$tmp/images/"
"$medvlp" index build -m "$model" --quant int8 -o "$tmp/index" --images "$tmp/images" --quiet >"$tmp/build.json" 2>/dev/null
check "index build --quant int8" jq -e ".added == ${#images[@]}" "$tmp/build.json"
for i in "${!images[@]}"; do
    name=$(basename "${images[$i]}")
    "$medvlp" search -m "$model" --quant int8 -i "$tmp/index" --target images -k 1 \
        --embedding "$(jq -c ".[$i]" "$tmp/img_int8.json")" >"$tmp/hit.json" 2>/dev/null
    check "search --quant int8: $name finds itself" jq -e --arg n "$name" \
        '.results[0].score > 0.9999 and (.results[0].metadata | tostring | contains($n))' "$tmp/hit.json"
done
"$medvlp" search -m "$model" --quant int8 -i "$tmp/index" --text "chest x-ray" -k 2 >"$tmp/text_hit.json" 2>/dev/null
check "search --quant int8 --text" jq -e '.results | length == 2' "$tmp/text_hit.json"

# bad values
check "embed-text --quant int4" exits_2_naming_quant "$medvlp" embed-text -m "$model" --quant int4
check "embed-image --quant fp8" exits_2_naming_quant "$medvlp" embed-image -m "$model" --quant fp8 "${images[0]}"
check "info --quant INT8" exits_2_naming_quant "$medvlp" info -m "$model" --quant INT8
check "index build --quant ''" exits_2_naming_quant "$medvlp" index build -m "$model" --quant '' -o "$tmp/x" --images "$tmp/images"
check "search --quant 8" exits_2_naming_quant "$medvlp" search -m "$model" --quant 8 -i "$tmp/index" --text x
check "medvlpd --quant bogus" exits_2_naming_quant "$medvlpd" -m "$model" --quant bogus --listen 127.0.0.1:0
check "MEDVLP_QUANT=bogus medvlpd" exits_2_naming_quant env MEDVLP_QUANT=bogus "$medvlpd" -m "$model" --listen 127.0.0.1:0

# medvlpd from the environment: reports it, and answers what the CLI prints.
MEDVLP_QUANT=int8 require_medvlpd -m "$model" --max-wait-us 0
curl -s -m 20 "$url/v1/models" >"$tmp/models.json"
check "GET /v1/models: quant int8" jq -e '.data[0].info.quant == "int8"' "$tmp/models.json"
jq -R -s -c '{texts: split("\n")[:-1]}' "$fx/expected/texts.txt" >"$tmp/req.json"
curl -s -m 20 -H 'Content-Type: application/json' -d @"$tmp/req.json" "$url/embed/text" | jq -c .embeddings >"$tmp/http.json"
check "POST /embed/text == embed-text --quant int8" jq -n -e --slurpfile a "$tmp/http.json" --slurpfile b "$tmp/int8.json" '
    ($a[0] | length) == ($b[0] | length) and
    ([range($a[0] | length) as $i | range($a[0][$i] | length) as $d | (($a[0][$i][$d] - $b[0][$i][$d]) | fabs)] | max) < 1e-6'
kill -TERM "$pid"
wait "$pid"
check "medvlpd exits 0 on SIGTERM" [ $? = 0 ]
pid=

echo "quant_cli: $checks checks, $failures failed" >&2
[ "$failures" = 0 ]
