#!/usr/bin/env bash
# valgrind_daemon.sh — a whole medvlpd lifecycle under valgrind memcheck: start with the tiny
# BiomedCLIP model and a new index, mixed requests (text and image embeddings in every body format,
# index additions, searches, a delete, stats, metrics, and the error paths), SIGTERM. Passes only
# when every request got its expected status, the daemon exited 0 (valgrind's --error-exitcode
# turns any memory error or definite/indirect leak into 99) and the summary shows 0 errors.
# Release tree only: valgrind cannot run ASan binaries.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
tmp=$(mktemp -d)
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
command -v valgrind >/dev/null || { echo "valgrind not installed (scripts/setup)"; exit 77; }

mkdir "$tmp/index"
# medvlpd re-executes /proc/self/exe once to pick OpenBLAS kernels and OpenMP's wait policy; under
# valgrind that is valgrind's own binary, so the choice is made here and the re-exec skipped.
# Kernels follow the CPU valgrind emulates (no AVX-512).
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive MEDVLP_RUNTIME_SET=1
hd_start "$tmp/log" 300 valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    --log-file="$tmp/valgrind.log" \
    "$medvlpd" -m "$model" -i "$tmp/index" --listen 127.0.0.1:0 --threads 2 --max-wait-us 0 --max-body 1M \
    --log-format text || exit 1

png=$fixtures/models/images/rgb_70x52.png
jpg=$fixtures/models/images/gray_61x80.jpg
b64png=$(base64 -w0 "$png")
b64jpg=$(base64 -w0 "$jpg")
json=(-H 'Content-Type: application/json')
o=$tmp/out.json

check "embed text" [ "$(req POST /embed/text "$o" "${json[@]}" -d '{"texts":["no effusion","cardiomegaly"]}')" = 200 ]
check "embed text: 2 rows" jq -e '.embeddings | length == 2' "$o"
check "openai embeddings" [ "$(req POST /v1/embeddings "$o" "${json[@]}" -d '{"input":"clear lungs"}')" = 200 ]
check "embed image json" [ "$(req POST /embed/image "$o" "${json[@]}" -d "{\"images\":[\"$b64png\",\"data:image/jpeg;base64,$b64jpg\"]}")" = 200 ]
check "embed image multipart" [ "$(req POST /embed/image "$o" -F "file=@$png;type=image/png")" = 200 ]
check "embed image raw" [ "$(req POST /embed/image "$o" -H 'Content-Type: image/jpeg' --data-binary "@$jpg")" = 200 ]
check "index images" [ "$(req POST /index/images "$o" "${json[@]}" -d "{\"items\":[{\"image\":\"$b64png\",\"metadata\":{\"study\":\"a\"}},{\"image\":\"$b64jpg\"}]}")" = 200 ]
check "index images: ids 0 and 1" jq -e '.ids == [0, 1]' "$o"
check "index captions" [ "$(req POST /index/captions "$o" "${json[@]}" -d '{"items":[{"text":"small effusion","metadata":{"site":"x"}},{"text":"normal chest"}]}')" = 200 ]
check "search text" [ "$(req POST /search "$o" "${json[@]}" -d '{"text":"effusion","k":5}')" = 200 ]
check "search text: both images" jq -e '.results | length == 2' "$o"
check "search image raw" [ "$(req POST '/search?k=1&target=captions' "$o" -H 'Content-Type: image/png' --data-binary "@$png")" = 200 ]
check "search filter" [ "$(req POST /search "$o" "${json[@]}" -d '{"text":"x","target":"captions","filter":{"site":"x"}}')" = 200 ]
check "search filter: one hit" jq -e '.results | length == 1' "$o"
check "delete image 1" [ "$(req DELETE /index/images/1 "$o")" = 200 ]
check "delete image 1 again: 404" [ "$(req DELETE /index/images/1 "$o")" = 404 ]
check "index stats" [ "$(req GET /index "$o")" = 200 ]
check "metrics" [ "$(req GET /metrics "$o")" = 200 ]
check "models" [ "$(req GET /v1/models "$o")" = 200 ]
check "bad json: 400" [ "$(req POST /embed/text "$o" "${json[@]}" -d '{"texts": [')" = 400 ]
check "bad json: error body" is_error 400 invalid_json "$o"
check "bad base64: 400" [ "$(req POST /embed/image "$o" "${json[@]}" -d '{"images":["abc"]}')" = 400 ]
check "corrupt png: 400" [ "$(req POST /embed/image "$o" -H 'Content-Type: image/png' --data-binary "@$fixtures/vision/bad_truncated.png")" = 400 ]
check "gif: 415" [ "$(req POST /embed/image "$o" -H 'Content-Type: image/png' --data-binary "@$fixtures/vision/bad_format.gif")" = 415 ]
check "invalid utf-8 text: 400" [ "$(req POST /embed/text "$o" "${json[@]}" --data-binary $'{"texts":["\xff\xfe"]}')" = 400 ]
check "oversize body: 413" [ "$(head -c 2000000 /dev/zero | req POST /embed/text "$o" "${json[@]}" --data-binary @-)" = 413 ]
check "unknown route: 404" [ "$(req GET /nowhere "$o")" = 404 ]
check "wrong method: 405" [ "$(req GET /embed/text "$o")" = 405 ]

hd_stop TERM
check "SIGTERM: exit 0 under valgrind (got $exit_status)" [ "$exit_status" = 0 ]
check "valgrind: 0 errors" grep -q 'ERROR SUMMARY: 0 errors' "$tmp/valgrind.log"
check "valgrind: nothing definitely lost" grep -qE 'definitely lost: 0 bytes|All heap blocks were freed' "$tmp/valgrind.log"
check "valgrind: nothing indirectly lost" grep -qE 'indirectly lost: 0 bytes|All heap blocks were freed' "$tmp/valgrind.log"
grep -E 'ERROR SUMMARY|lost:|reachable:|suppressed:' "$tmp/valgrind.log"
if [ "$failures" -ne 0 ]; then
    echo "--- valgrind log" >&2; head -c 20000 "$tmp/valgrind.log" >&2
    echo "--- daemon log" >&2; tail -20 "$tmp/log" >&2
fi
echo "valgrind_daemon: $((checks - failures))/$checks checks passed"
[ "$failures" -eq 0 ]
