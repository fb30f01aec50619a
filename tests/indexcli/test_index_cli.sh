#!/usr/bin/env bash
# test_index_cli.sh — `medvlp index build` and `medvlp search` end to end on a tiny BiomedCLIP-layout
# model. Rankings are checked against brute-force cosine search computed here (jq) from the vectors
# `medvlp embed-image` / `embed-text` print; bad files must be skipped and counted; an interrupted
# build (--limit, and kill -9 while blocked on a FIFO) must resume to the same index without
# duplicates; `medvlp search` must print what POST /search of medvlpd answers on the same index;
# bad usage must exit 2 with a message.
set -uo pipefail
medvlp=$MEDVLP_BUILD_ROOT/medvlp
medvlpd=$MEDVLP_BUILD_ROOT/medvlpd
model=$MEDVLP_FIXTURES/models/biomedclip-safetensors
tmp=$(mktemp -d)
pid=
failures=0
checks=0
source "$MEDVLP_SOURCE_ROOT/tests/kill_own.sh"
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
check() {
    local what=$1; shift
    checks=$((checks + 1))
    if ! "$@" >/dev/null; then failures=$((failures + 1)); echo "FAIL: $what" >&2; fi
}
# exits 2 and says why on stderr
usage_error() {
    local what=$1; shift
    "$@" >/dev/null 2>"$tmp/usage_err"
    local rc=$?
    checks=$((checks + 1))
    if [ "$rc" != 2 ] || ! grep -q 'medvlp' "$tmp/usage_err"; then
        failures=$((failures + 1)); echo "FAIL: $what: exit $rc, stderr: $(head -c 300 "$tmp/usage_err")" >&2
    fi
}

# brute-force ranking: $1 JSON Lines of normalised vectors (one per source), $2 the sources (one a
# line, same order), $3 the query vector (JSON array) -> [{source, score}] best first
brute_force() {
    jq -n -c --slurpfile v "$1" --rawfile s "$2" --slurpfile q "$3" '
        ($s | split("\n")[:-1]) as $src | $q[0] as $q |
        [range($v | length) as $i | {source: $src[$i],
            score: ([range($q | length) as $d | $v[$i][$d] * $q[$d]] | add)}] | sort_by(-.score)'
}
# medvlp search results == brute force: same sources in the same order, scores within 1e-5
same_ranking() { # search output, brute force
    jq -n -e --slurpfile a "$1" --slurpfile b "$2" '
        ($a[0].results | length) == ($b[0] | length) and
        ([$a[0].results[].metadata.source] == [$b[0][].source]) and
        ([range($b[0] | length) as $i | (($a[0].results[$i].score - $b[0][$i].score) | fabs)] | max) < 1e-5'
}
not() { ! "$@"; }
search() { "$medvlp" search -m "$model" "$@" 2>>"$tmp/search_err"; }

# ---- an image folder: good images in subfolders, bad ones among them ----
mkdir -p "$tmp/imgs/a/b" "$tmp/imgs/c"
cp "$MEDVLP_FIXTURES"/models/images/* "$tmp/imgs/a/"
for f in 1_120x80 L2_90x70 L4_90x70 LA_160x120 L_200x150 P4_70x110; do cp "$MEDVLP_FIXTURES/vision/$f.png" "$tmp/imgs/a/b/"; done
for f in P_130x90 RGBA_150x220; do cp "$MEDVLP_FIXTURES/vision/$f.png" "$tmp/imgs/c/"; done
cp "$MEDVLP_FIXTURES/vision/bad_truncated.jpg" "$MEDVLP_FIXTURES/vision/bad_crc.png" "$tmp/imgs/c/"
cp "$MEDVLP_FIXTURES/vision/bad_garbage.bin" "$tmp/imgs/c/garbage.png"
: >"$tmp/imgs/c/empty.jpg"
cp "$MEDVLP_FIXTURES/vision/bad.txt" "$tmp/imgs/c/notes.txt" # not an image name: not listed
find "$tmp/imgs" -name '*.png' -o -name '*.jpg' | grep -v -e bad_ -e garbage -e empty | sort >"$tmp/good"
n_good=$(wc -l <"$tmp/good")

"$medvlp" index build -m "$model" -o "$tmp/idx" --images "$tmp/imgs" --batch 4 >"$tmp/sum.json" 2>"$tmp/build_err"
check "images build exits 0 despite bad files" [ $? = 0 ]
check "images build: $n_good added, 4 skipped" jq -e --argjson n "$n_good" \
    '.inputs == $n + 4 and .added == $n and .skipped == 4 and .vectors.images == $n and .vectors.captions == 0' "$tmp/sum.json"
check "each bad file is named in a warning" [ "$(grep -c -e 'bad_truncated.jpg' -e 'bad_crc.png' -e 'garbage.png' -e 'empty.jpg' "$tmp/build_err")" = 4 ]
check "not a TTY: plain progress lines" grep -q "^index build: $((n_good + 4))/$((n_good + 4)) inputs" "$tmp/build_err"
check "manifest: Flat for a small build" grep -q '"Flat"' "$tmp/idx/manifest.json"

# brute force over the vectors `medvlp embed-image` prints for the same files
mapfile -t good <"$tmp/good"
"$medvlp" embed-image -m "$model" "${good[@]}" >"$tmp/vectors" 2>/dev/null
echo "a frontal chest radiograph" | "$medvlp" embed-text -m "$model" >"$tmp/q_text" 2>/dev/null
search -i "$tmp/idx" --text "a frontal chest radiograph" -k 1000 >"$tmp/s_text.json"
brute_force "$tmp/vectors" "$tmp/good" "$tmp/q_text" >"$tmp/bf_text.json"
check "text -> images: all $n_good in brute-force order" same_ranking "$tmp/s_text.json" "$tmp/bf_text.json"
check "search JSON: target, k" jq -e '.target == "images" and .k == 1000 and (.took_ms | type) == "number"' "$tmp/s_text.json"
"$medvlp" embed-image -m "$model" "${good[3]}" >"$tmp/q_img" 2>/dev/null
search -i "$tmp/idx" --image "${good[3]}" --target images -k 5 >"$tmp/s_img.json"
brute_force "$tmp/vectors" "$tmp/good" "$tmp/q_img" | jq -c '.[:5]' >"$tmp/bf_img.json"
check "image -> images top 5 == brute force" same_ranking "$tmp/s_img.json" "$tmp/bf_img.json"
check "an image finds itself first (score 1)" jq -e --arg s "${good[3]}" \
    '.results[0].metadata.source == $s and .results[0].score > 0.9999' "$tmp/s_img.json"
search -i "$tmp/idx" --embedding "$(cat "$tmp/q_img")" --target images -k 5 >"$tmp/s_emb.json"
# The printed vector is the normalised embedding rounded to 9 digits: same hits, scores to 1e-6.
check "--embedding == the image query" jq -n -e --slurpfile a "$tmp/s_emb.json" --slurpfile b "$tmp/s_img.json" \
    '($a[0].results | map(del(.score))) == ($b[0].results | map(del(.score))) and
     ([range($a[0].results | length) as $i | (($a[0].results[$i].score - $b[0].results[$i].score) | fabs)] | max) < 1e-6'

"$medvlp" index build -m "$model" -o "$tmp/idx" --images "$tmp/imgs" >"$tmp/sum2.json" 2>/dev/null
check "rerun of a finished build adds nothing" jq -e --argjson n "$n_good" '.added == 0 and .already == $n and .skipped == 4' "$tmp/sum2.json"

# ---- resume: --limit, then the rest ----
"$medvlp" index build -m "$model" -o "$tmp/lim" --images "$tmp/imgs" --limit 5 --batch 2 >"$tmp/lim1.json" 2>/dev/null
check "--limit 5 stops after 5 inputs" jq -e '.added + .skipped == 5 and .left > 0' "$tmp/lim1.json"
"$medvlp" index build -m "$model" -o "$tmp/lim" --images "$tmp/imgs" --batch 2 >"$tmp/lim2.json" 2>/dev/null
check "the rerun continues" jq -e --slurpfile a "$tmp/lim1.json" --argjson n "$n_good" \
    '.already == $a[0].added and .added == $n - $a[0].added and .left == 0' "$tmp/lim2.json"
search -i "$tmp/lim" --text "a frontal chest radiograph" -k 1000 >"$tmp/s_lim.json"
check "resumed index: same ranking as the one-go build, no duplicates" same_ranking "$tmp/s_lim.json" "$tmp/bf_text.json"

# ---- kill -9 while blocked reading a FIFO in the 4th batch of a pairs build, then resume ----
mkdir "$tmp/kill"
{
    echo "image,text"
    for i in "${!good[@]}"; do
        [ "$i" = 7 ] && echo "$tmp/kill/fifo.png,blocked"
        echo "${good[$i]},report $i"
    done
} >"$tmp/kill.csv"
mkfifo "$tmp/kill/fifo.png"
exec 3<>"$tmp/kill/fifo.png" # a writer that never writes: the build's read of the FIFO blocks
"$medvlp" index build -m "$model" -o "$tmp/kidx" --pairs "$tmp/kill.csv" --batch 2 >/dev/null 2>&1 3>&- &
pid=$!
# Batches are read after the previous one is acknowledged: once the FIFO is open, 6 inputs are durable.
for _ in $(seq 400); do ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'fifo.png' && break; sleep 0.05; done
check "the build reached the FIFO" bash -c "ls -l /proc/$pid/fd | grep -q fifo.png"
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
exec 3>&-
rm "$tmp/kill/fifo.png"
cp "${good[0]}" "$tmp/kill/fifo.png"
"$medvlp" index build -m "$model" -o "$tmp/kidx" --pairs "$tmp/kill.csv" >"$tmp/kill_sum.json" 2>/dev/null
check "after kill -9 the rerun adds exactly the rest" jq -e --argjson n "$((n_good + 1))" \
    '.already == 6 and .added == $n - 6 and .skipped == 0 and .vectors.images == .vectors.captions' "$tmp/kill_sum.json"
for t in images captions; do
    search -i "$tmp/kidx" --text "report" --target $t -k 1000 >"$tmp/k_$t.json"
    check "after kill -9: $t holds every row once" jq -e --argjson n "$((n_good + 1))" \
        '(.results | length) == $n and ([.results[].metadata | .source + "|" + .caption] | unique | length) == $n' \
        "$tmp/k_$t.json"
done

# ---- pairs: quoted fields, escaped quotes, CRLF, embedded newlines, text files, bad rows ----
mkdir -p "$tmp/pairs/img" "$tmp/pairs/txt"
cp "${good[@]:0:4}" "$tmp/pairs/img/"
mapfile -t pimgs < <(cd "$tmp/pairs/img" && ls)
captions=('Heart size normal, lungs "clear".' $'Right lower lobe\nopacity' 'Small left pleural effusion' 'No acute findings')
{
    printf 'id,path,report,view\r\n'
    for i in 0 1 2 3; do
        printf '%d,img/%s,"%s",PA\r\n' "$i" "${pimgs[$i]}" "${captions[$i]//\"/\"\"}"
    done
    printf '4,img/missing.png,lost image,AP\r\n'
    printf '5,img/%s,,AP\r\n' "${pimgs[0]}"
    printf '6\r\n'
} >"$tmp/pairs/pairs.csv"
"$medvlp" index build -m "$model" -o "$tmp/pidx" --pairs "$tmp/pairs/pairs.csv" --img-col path --text-col 2 \
    >"$tmp/psum.json" 2>"$tmp/perr"
check "pairs build: 4 added, 3 bad rows skipped" jq -e \
    '.inputs == 7 and .added == 4 and .skipped == 3 and .vectors.images == 4 and .vectors.captions == 4' "$tmp/psum.json"
check "pairs warnings: missing image, empty caption, short row" [ "$(grep -c -e 'missing.png' -e 'empty caption' -e 'line 9: .*too few fields' "$tmp/perr")" = 3 ]
for i in 0 1 2 3; do printf '%s\n' "$tmp/pairs/img/${pimgs[$i]}"; done >"$tmp/psrc"
mapfile -t psrc <"$tmp/psrc"
"$medvlp" embed-image -m "$model" "${psrc[@]}" >"$tmp/pvec" 2>/dev/null
for i in 0 1 2 3; do
    search -i "$tmp/pidx" --text "${captions[$i]}" --target captions -k 1 >"$tmp/p_self.json"
    check "caption $i (quotes/newlines intact) finds itself" jq -e --arg c "${captions[$i]}" --arg s "${psrc[$i]}" \
        '.results[0].metadata.caption == $c and .results[0].metadata.source == $s and .results[0].score > 0.9999' "$tmp/p_self.json"
done
# caption -> image and image -> caption against brute force
search -i "$tmp/pidx" --text "Small left pleural effusion" -k 4 >"$tmp/p_c2i.json"
echo "Small left pleural effusion" | "$medvlp" embed-text -m "$model" >"$tmp/q_c" 2>/dev/null
brute_force "$tmp/pvec" "$tmp/psrc" "$tmp/q_c" >"$tmp/bf_c2i.json"
check "caption -> images == brute force" same_ranking "$tmp/p_c2i.json" "$tmp/bf_c2i.json"
check "caption -> images carries the pair's caption" jq -e \
    '[.results[] | select(.metadata.source | endswith("'"${pimgs[2]}"'")) | .metadata.caption] == ["Small left pleural effusion"]' "$tmp/p_c2i.json"
# the caption vectors, in source order, from embed-text over the captions (newline-free ones only
# can go through embed-text's line input: caption 1 is compared via its own search above)
for i in 0 2 3; do printf '%s\n' "${captions[$i]}"; done | "$medvlp" embed-text -m "$model" >"$tmp/cvec" 2>/dev/null
for i in 0 2 3; do printf '%s\n' "${psrc[$i]}"; done >"$tmp/csrc"
"$medvlp" embed-image -m "$model" "${psrc[3]}" >"$tmp/q_i" 2>/dev/null
search -i "$tmp/pidx" --image "${psrc[3]}" -k 4 | jq -c '.results |= map(select(.metadata.caption | contains("\n") | not))' >"$tmp/p_i2c.json"
brute_force "$tmp/cvec" "$tmp/csrc" "$tmp/q_i" >"$tmp/bf_i2c.json"
check "image -> captions == brute force" same_ranking "$tmp/p_i2c.json" "$tmp/bf_i2c.json"

# --text-from-files with --text-root, and a missing text file
for i in 0 1; do printf '%s\n' "${captions[$i]}" >"$tmp/pairs/txt/r$i.txt"; done
printf 'image,text\nimg/%s,r0.txt\nimg/%s,r1.txt\nimg/%s,gone.txt\n' "${pimgs[0]}" "${pimgs[1]}" "${pimgs[2]}" >"$tmp/pairs/files.csv"
"$medvlp" index build -m "$model" -o "$tmp/fidx" --pairs "$tmp/pairs/files.csv" --text-from-files \
    --text-root "$tmp/pairs/txt" >"$tmp/fsum.json" 2>"$tmp/ferr"
check "--text-from-files: 2 added, the missing text file skipped" jq -e '.added == 2 and .skipped == 1' "$tmp/fsum.json"
check "missing text file named" grep -q 'gone.txt' "$tmp/ferr"
search -i "$tmp/fidx" --text "${captions[1]}" --target captions -k 1 >"$tmp/f1.json"
check "caption read from its file" jq -e --arg c "${captions[1]}" '.results[0].metadata.caption == $c and .results[0].score > 0.9999' "$tmp/f1.json"

# ---- factories: HNSW32 and a trained IVF give the brute-force ranking on this small set ----
for f in HNSW32 IVF2,Flat; do
    "$medvlp" index build -m "$model" -o "$tmp/f_$f" --images "$tmp/imgs" --factory "$f" --train-size 6 --batch 4 \
        --ef-construction 16 >"$tmp/fac.json" 2>/dev/null
    check "--factory $f builds" jq -e --argjson n "$n_good" '.added == $n and .vectors.images == $n' "$tmp/fac.json"
    check "--factory $f is recorded" grep -q "\"$f\"" "$tmp/f_$f/manifest.json"
    search -i "$tmp/f_$f" --text "a frontal chest radiograph" -k 1000 >"$tmp/s_fac.json"
    check "--factory $f: brute-force ranking" same_ranking "$tmp/s_fac.json" "$tmp/bf_text.json"
done
# PQ codes re-ranked on the stored vectors: with both lists scanned and every code a candidate
# (--refine-k-factor), the exact ranking; with k·1 candidates, the top 3 of 2-bit PQ codes re-ranked,
# not the exact top 3.
f='IVF2,PQ4x2np,RFlat'
"$medvlp" index build -m "$model" -o "$tmp/f_pq" --images "$tmp/imgs" --factory "$f" --train-size "$n_good" \
    >"$tmp/fac.json" 2>/dev/null
check "--factory $f builds" jq -e --argjson n "$n_good" '.added == $n and .vectors.images == $n' "$tmp/fac.json"
jq -c '.[:3]' "$tmp/bf_text.json" >"$tmp/bf_top3.json"
search -i "$tmp/f_pq" --text "a frontal chest radiograph" -k 3 --nprobe 2 --refine-k-factor 10 >"$tmp/s_pq.json"
check "--factory $f --nprobe 2 --refine-k-factor 10: brute-force top 3" same_ranking "$tmp/s_pq.json" "$tmp/bf_top3.json"
search -i "$tmp/f_pq" --text "a frontal chest radiograph" -k 3 --nprobe 2 --refine-k-factor 1 >"$tmp/s_pq1.json"
check "--refine-k-factor 1: the PQ codes' top 3 instead" not same_ranking "$tmp/s_pq1.json" "$tmp/bf_top3.json"
check "--refine-k-factor 1: still 3 results" jq -e '.results | length == 3' "$tmp/s_pq1.json"

# ---- bad usage and bad input: exit 2 with a message ----
usage_error "index without subcommand" "$medvlp" index
usage_error "index build without -o" "$medvlp" index build -m "$model" --images "$tmp/imgs"
usage_error "both --images and --pairs" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/imgs" --pairs "$tmp/kill.csv"
usage_error "--img-col with --images" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/imgs" --img-col a
usage_error "--batch 0" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/imgs" --batch 0
usage_error "missing image folder" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/nowhere"
usage_error "missing CSV" "$medvlp" index build -m "$model" -o "$tmp/x" --pairs "$tmp/nowhere.csv"
usage_error "unknown CSV column" "$medvlp" index build -m "$model" -o "$tmp/x" --pairs "$tmp/kill.csv" --img-col nope
printf 'image,text\na.png,"never closed\n' >"$tmp/bad.csv"
usage_error "unterminated quote" "$medvlp" index build -m "$model" -o "$tmp/x" --pairs "$tmp/bad.csv"
usage_error "--ef-construction 0" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/imgs" --ef-construction 0
usage_error "bad factory" "$medvlp" index build -m "$model" -o "$tmp/x" --images "$tmp/imgs" --factory Bogus99
usage_error "model without image tower" "$medvlp" index build -m "$MEDVLP_FIXTURES/models/cxr-bert" -o "$tmp/y" --images "$tmp/imgs"
usage_error "search without query" "$medvlp" search -m "$model" -i "$tmp/idx"
usage_error "search with two queries" "$medvlp" search -m "$model" -i "$tmp/idx" --text a --image "${good[0]}"
usage_error "search -k 0" "$medvlp" search -m "$model" -i "$tmp/idx" --text a -k 0
usage_error "search -k 1001" "$medvlp" search -m "$model" -i "$tmp/idx" --text a -k 1001
usage_error "search bad target" "$medvlp" search -m "$model" -i "$tmp/idx" --text a --target both
usage_error "--embedding without --target" "$medvlp" search -m "$model" -i "$tmp/idx" --embedding '[1,2]'
usage_error "--embedding of the wrong dimension" "$medvlp" search -m "$model" -i "$tmp/idx" --embedding '[1,2]' --target images
usage_error "--embedding not JSON" "$medvlp" search -m "$model" -i "$tmp/idx" --embedding '[1,' --target images
usage_error "search a folder without an index" "$medvlp" search -m "$model" -i "$tmp/imgs" --text a
usage_error "search an undecodable image" "$medvlp" search -m "$model" -i "$tmp/idx" --image "$tmp/imgs/c/garbage.png"
usage_error "search --ef-search 0" "$medvlp" search -m "$model" -i "$tmp/idx" --text a --ef-search 0
usage_error "search --nprobe abc" "$medvlp" search -m "$model" -i "$tmp/idx" --text a --nprobe abc
usage_error "search --refine-k-factor 1001" "$medvlp" search -m "$model" -i "$tmp/idx" --text a --refine-k-factor 1001
usage_error "search with another model" "$medvlp" search -m "$MEDVLP_FIXTURES/models/convirt" -i "$tmp/idx" --text a

# ---- medvlp search == POST /search on the same index (the daemon holds the index lock: CLI first) ----
search -i "$tmp/pidx" --text "pleural effusion" -k 3 >"$tmp/cli_q1.json"
search -i "$tmp/pidx" --image "${psrc[1]}" -k 4 >"$tmp/cli_q2.json"
search -i "$tmp/pidx" --embedding "$(cat "$tmp/q_c")" --target images -k 2 >"$tmp/cli_q3.json"
"$medvlpd" -m "$model" -i "$tmp/pidx" --listen 127.0.0.1:0 2>"$tmp/dlog" --nprobe 3 --refine-k-factor 5 &
pid=$!
for _ in $(seq 200); do
    grep -q ': ready' "$tmp/dlog" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
port=$(grep -o 'port [0-9]*' "$tmp/dlog" | awk '{print $2}')
[ -n "$port" ] && grep -q ': ready' "$tmp/dlog" || { echo "medvlpd did not become ready" >&2; cat "$tmp/dlog" >&2; exit 1; }
url=http://127.0.0.1:$port/search
curl -s -m 20 -H 'Content-Type: application/json' -d '{"text":"pleural effusion","k":3}' "$url" >"$tmp/http_q1.json"
jq -n -c --arg b "$(base64 -w0 "${psrc[1]}")" '{image: $b, k: 4}' >"$tmp/q2_body.json"
curl -s -m 20 -H 'Content-Type: application/json' --data-binary @"$tmp/q2_body.json" "$url" >"$tmp/http_q2.json"
jq -c '{embedding: ., target: "images", k: 2}' "$tmp/q_c" >"$tmp/q3_body.json"
curl -s -m 20 -H 'Content-Type: application/json' --data-binary @"$tmp/q3_body.json" "$url" >"$tmp/http_q3.json"
for q in 1 2 3; do
    # byte-identical apart from took_ms
    check "query $q: medvlp search == POST /search" [ "$(sed 's/,"took_ms":[^}]*}$/}/' "$tmp/cli_q$q.json")" = \
        "$(sed 's/,"took_ms":[^}]*}$/}/' "$tmp/http_q$q.json")" ]
    check "query $q: results present" jq -e '.results | length > 0' "$tmp/cli_q$q.json"
done
curl -s -m 20 "http://127.0.0.1:$port/index" >"$tmp/index_stats.json"
check "GET /index shows the search settings (flags, defaults)" jq -e \
    '.search_params == {"ef_search": 128, "nprobe": 3, "refine_k_factor": 5}' "$tmp/index_stats.json"
kill -TERM "$pid"; wait "$pid"; pid=
MEDVLP_EF_SEARCH=0 "$medvlpd" -m "$model" -i "$tmp/pidx" --listen 127.0.0.1:0 2>"$tmp/dlog"
rc=$?
checks=$((checks + 1))
if [ "$rc" != 2 ] || ! grep -q 'MEDVLP_EF_SEARCH' "$tmp/dlog"; then
    failures=$((failures + 1)); echo "FAIL: MEDVLP_EF_SEARCH=0 must stop medvlpd with exit 2" >&2
fi

echo "$checks checks, $failures failed"
[ "$failures" = 0 ]
