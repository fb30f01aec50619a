#!/usr/bin/env bash
# test_portal_http.sh — the portal's files and the thumbnail endpoint of the real daemon (tiny
# BiomedCLIP model, an index in a scratch directory, an API key): GET / and its script and style are
# byte-identical to src/http/portal/ with their Content-Type, caching and Content-Security-Policy and
# need no key; a thumbnail is made when an image is added, stored in INDEX_DIR/thumbs/, served by id
# as a JPEG of the image's size, survives kill -9, and is 404 for unknown, caption and deleted ids,
# 405 for other methods and 401 without the key. An image of an index that records its source path
# (argument 1 makes one) is thumbnailed from that path. Usage: test_portal_http.sh MAKE_SOURCE_INDEX
set -uo pipefail
medvlpd=$MEDVLP_BUILD_ROOT/medvlpd
model=$MEDVLP_FIXTURES/models/biomedclip
portal=$MEDVLP_SOURCE_ROOT/src/http/portal
imgs=$MEDVLP_FIXTURES/models/images
tmp=$(mktemp -d)
source "$MEDVLP_SOURCE_ROOT/tests/http/medvlpd_test_util.sh"
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
echo "portal-test-key" >"$tmp/key"
start() { require_medvlpd -m "$model" -i "$tmp/index" --api-key-file "$tmp/key"; }
key=(-H 'Authorization: Bearer portal-test-key')
header() { grep -i "^$1:" "$tmp/headers" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
# GET url (with the key) into $tmp/body and headers into $tmp/headers; prints the status
get() { curl -s -m 10 "${key[@]}" -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$@"; }
# width x height of a baseline or progressive JPEG, from its SOF marker
jpeg_size() {
    python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:2] == b"\xff\xd8", "not a JPEG"
i = 2
while i < len(d):
    marker, length = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
    if marker in (0xC0, 0xC1, 0xC2):
        h, w = struct.unpack(">HH", d[i + 5:i + 9])
        print(f"{w}x{h}")
        break
    i += 2 + length' "$1"
}

start

# ---- the portal's files: public, exact, typed, cached only after revalidation, locked to 'self' ----
for file in index.html:/:text/html portal.js:/portal.js:text/javascript portal.css:/portal.css:text/css; do
    IFS=: read -r name path type <<<"$file"
    code=$(curl -s -m 10 -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$url$path")
    check "GET $path without the key is 200 ($code)" [ "$code" = 200 ]
    check "GET $path is src/http/portal/$name byte for byte" cmp "$tmp/body" "$portal/$name"
    check "GET $path Content-Type $type" [ "$(header Content-Type)" = "$type; charset=utf-8" ]
    check "GET $path Cache-Control no-cache" [ "$(header Cache-Control)" = "no-cache" ]
    csp=$(header Content-Security-Policy)
    check "GET $path CSP default-src 'none'" grep -q "default-src 'none'" <<<"$csp"
    check "GET $path CSP script-src 'self' only" grep -qE "script-src 'self';" <<<"$csp"
    check "GET $path CSP connect-src 'self'" grep -q "connect-src 'self'" <<<"$csp"
    check "GET $path nosniff" [ "$(header X-Content-Type-Options)" = nosniff ]
done
check "the page loads its script and style from this origin only" \
    bash -c "! grep -qiE '(src|href)=\"(https?:)?//' '$portal/index.html'"
code=$(curl -s -m 10 -I -o /dev/null -w '%{http_code}' "$url/")
check "HEAD / is 200 ($code)" [ "$code" = 200 ]
code=$(curl -s -m 10 -X POST -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$url/")
check "POST / is 405 ($code)" [ "$code" = 405 ]
check "POST / says Allow: GET" [ "$(header Allow)" = GET ]
check "POST / error is JSON" jq -e '.error.code == "method_not_allowed"' "$tmp/body"
code=$(curl -s -m 10 -o "$tmp/body" -w '%{http_code}' "$url/index.html")
check "GET /index.html is 404, only the routed names are served ($code)" [ "$code" = 404 ]

# ---- thumbnails: made at add time, by id only ----
jq -n -c --arg a "$(base64 -w0 "$imgs/rgb_70x52.png")" --arg b "$(base64 -w0 "$imgs/gray_61x80.jpg")" \
    '{items: [{image: $a, metadata: {caption: "rgb"}}, {image: $b, metadata: {caption: "gray"}}]}' >"$tmp/add.json"
curl -s -m 20 "${key[@]}" -H 'Content-Type: application/json' --data-binary @"$tmp/add.json" "$url/index/images" >"$tmp/ids.json"
rgb_id=$(jq '.ids[0]' "$tmp/ids.json")
gray_id=$(jq '.ids[1]' "$tmp/ids.json")
check "two images added ($(cat "$tmp/ids.json"))" jq -e '.ids | length == 2' "$tmp/ids.json"
curl -s -m 20 "${key[@]}" -H 'Content-Type: application/json' -d '{"items": [{"text": "a caption"}]}' \
    "$url/index/captions" >"$tmp/cap.json"
caption_id=$(jq '.ids[0]' "$tmp/cap.json")

code=$(get "$url/index/images/$rgb_id/thumbnail")
check "GET thumbnail is 200 ($code)" [ "$code" = 200 ]
check "thumbnail Content-Type image/jpeg" [ "$(header Content-Type)" = image/jpeg ]
check "thumbnail nosniff" [ "$(header X-Content-Type-Options)" = nosniff ]
check "thumbnail keeps a small image's size (70x52: $(jpeg_size "$tmp/body"))" [ "$(jpeg_size "$tmp/body")" = 70x52 ]
check "thumbnail is the file stored in INDEX_DIR/thumbs" cmp "$tmp/body" "$tmp/index/thumbs/$rgb_id.jpg"
cp "$tmp/body" "$tmp/rgb_thumb.jpg"
get "$url/index/images/$gray_id/thumbnail" >/dev/null
check "gray JPEG thumbnail 61x80 ($(jpeg_size "$tmp/body"))" [ "$(jpeg_size "$tmp/body")" = 61x80 ]
check "no temporary files left in thumbs/" [ "$(ls "$tmp/index/thumbs" | grep -vc '^[0-9]*\.jpg$')" = 0 ]

code=$(curl -s -m 10 -o "$tmp/body" -w '%{http_code}' "$url/index/images/$rgb_id/thumbnail")
check "thumbnail without the key is 401 ($code)" [ "$code" = 401 ]
code=$(get "$url/index/images/999999/thumbnail")
check "unknown id is 404 ($code)" [ "$code" = 404 ]
check "unknown id error is JSON not_found" jq -e '.error.code == "not_found" and .error.status == 404' "$tmp/body"
check "the 404 does not show the index directory" bash -c "! grep -q '$tmp' '$tmp/body'"
code=$(get "$url/index/images/$caption_id/thumbnail")
check "a caption's id is 404 ($code)" [ "$code" = 404 ]
for bad in "abc" "-1" "1x" "$rgb_id/thumbnail/x" "$rgb_id/thumb" "..%2Fmanifest.json" "12345678901234567890"; do
    code=$(get "$url/index/images/$bad/thumbnail")
    check "GET /index/images/$bad/thumbnail is 404 ($code)" [ "$code" = 404 ]
done
code=$(curl -s -m 10 "${key[@]}" -X POST -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$url/index/images/$rgb_id/thumbnail")
check "POST thumbnail is 405 ($code)" [ "$code" = 405 ]
check "POST thumbnail says Allow: GET" [ "$(header Allow)" = GET ]
code=$(curl -s -m 10 "${key[@]}" -X DELETE -o "$tmp/body" -w '%{http_code}' "$url/index/images/$rgb_id/thumbnail")
check "DELETE thumbnail is 405 ($code)" [ "$code" = 405 ]

# durable: kill -9 right after the acknowledged add, restart, same bytes
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
start
get "$url/index/images/$rgb_id/thumbnail" >/dev/null
check "thumbnail survives kill -9" cmp "$tmp/body" "$tmp/rgb_thumb.jpg"

# deleting the image removes its thumbnail
code=$(curl -s -m 10 "${key[@]}" -X DELETE -o /dev/null -w '%{http_code}' "$url/index/images/$rgb_id")
check "DELETE image is 200 ($code)" [ "$code" = 200 ]
code=$(get "$url/index/images/$rgb_id/thumbnail")
check "deleted image's thumbnail is 404 ($code)" [ "$code" = 404 ]
check "deleted image's thumbnail file is gone" [ ! -e "$tmp/index/thumbs/$rgb_id.jpg" ]
code=$(get "$url/index/images/$gray_id/thumbnail")
check "the other image's thumbnail is still 200 ($code)" [ "$code" = 200 ]

curl -s -m 5 -o /dev/null "$url/" # this daemon is the restarted one: count a page load
curl -s -m 5 "${key[@]}" "$url/metrics" >"$tmp/metrics"
check "/metrics counts the portal route" grep -q 'route="/"' "$tmp/metrics"
check "/metrics counts the thumbnail route" grep -q 'route="/index/images/{id}/thumbnail"' "$tmp/metrics"

kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
check "SIGTERM exits 0 ($rc)" [ "$rc" = 0 ]
# ---- an index recording source paths (as `medvlp index build` makes it): thumbnailed from the path ----
make_source_index=$1
cp "$imgs/rgb_70x52.png" "$tmp/scan.png"
cp "$imgs/gray_61x80.jpg" "$tmp/gone.jpg"
mapfile -t src_ids < <("$make_source_index" "$model" "$tmp/src_index" "$tmp/scan.png" "$tmp/gone.jpg")
check "source-path index made (${src_ids[*]})" [ "${#src_ids[@]}" = 2 ]
rm "$tmp/gone.jpg"
require_medvlpd -m "$model" -i "$tmp/src_index" --api-key-file "$tmp/key"
code=$(get "$url/index/images/${src_ids[0]}/thumbnail")
check "thumbnail made from the recorded source path is 200 ($code)" [ "$code" = 200 ]
check "it is the source image's size (70x52: $(jpeg_size "$tmp/body"))" [ "$(jpeg_size "$tmp/body")" = 70x52 ]
check "nothing is written for it" [ ! -e "$tmp/src_index/thumbs" ]
code=$(get "$url/index/images/${src_ids[1]}/thumbnail")
check "a source file that is gone is 404 ($code)" [ "$code" = 404 ]
check "the 404 names no server path" bash -c "! grep -q '$tmp' '$tmp/body'"
kill -TERM "$pid"; wait "$pid"; pid=

echo "portal http: $checks checks, $failures failed"
[ "$failures" = 0 ] || { echo "last daemon's log:" >&2; cat "$tmp/log" >&2; exit 1; }
