#!/usr/bin/env bash
# test_fetch.sh — weights/fetch against a local fake hub (fake_hub.py): downloads land byte-exact,
# a re-run skips them, an interrupted download resumes, a checksum mismatch (SHA-256 from the hub,
# MD5 from GCS) removes the file and fails, a zip-shipped checkpoint is extracted with its tokenizer
# files and manifest and then loads, offline and unknown names fail with exit 2 and a message.
set -uo pipefail
src=$MEDVLP_SOURCE_ROOT
fetch=$src/weights/fetch
medvlp=$MEDVLP_BUILD_ROOT/medvlp
fx=$MEDVLP_FIXTURES
tmp=$(mktemp -d)
hub_pid=
failures=0
checks=0
source "$MEDVLP_SOURCE_ROOT/tests/kill_own.sh"
cleanup() { kill_own TERM "$hub_pid"; rm -rf "$tmp"; }
trap cleanup EXIT
# jq 1.6 exits 0 for `jq -e FILTER FILE` when FILE is empty: an empty answer must fail its check.
jq() { if [ "${1:-}" = -e ] && [ -f "${!#}" ] && [ ! -s "${!#}" ]; then return 1; fi; command jq "$@"; }
check() {
    local what=$1; shift
    checks=$((checks + 1))
    if ! "$@" >/dev/null 2>&1; then failures=$((failures + 1)); echo "FAIL: $what" >&2; fi
}
start_hub() { # [--bad-sha]
    kill_own TERM "$hub_pid"; [ -n "$hub_pid" ] && wait "$hub_pid" 2>/dev/null
    rm -f "$tmp/port"
    python3 "$src/tests/weights/fake_hub.py" "$tmp/hub" "$tmp/port" "$@" &
    hub_pid=$!
    for _ in $(seq 100); do [ -f "$tmp/port" ] && break; sleep 0.05; done
    export MEDVLP_HF_ENDPOINT=http://127.0.0.1:$(cat "$tmp/port") MEDVLP_GCS_ENDPOINT=http://127.0.0.1:$(cat "$tmp/port")
}
run_fetch() { MEDVLP_WEIGHTS_DIR=$tmp/weights "$fetch" "$@" >"$tmp/out" 2>&1; }

# The hub's content: the tiny fixtures under the published repository names.
repo=$tmp/hub/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224
mkdir -p "$repo" "$tmp/hub/pytrial" "$tmp/hub/emilyalsentzer/Bio_ClinicalBERT"
cp "$fx"/models/biomedclip/{open_clip_config.json,open_clip_pytorch_model.bin,vocab.txt,tokenizer_config.json} "$repo/"
echo '{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]"}' >"$repo/special_tokens_map.json"
python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z: z.write(sys.argv[2], "pytorch_model.bin")' \
    "$tmp/hub/pytrial/medclip-pretrained.zip" "$fx/families/medclip/pytorch_model.bin"
cp "$fx/families/medclip/vocab.txt" "$tmp/hub/emilyalsentzer/Bio_ClinicalBERT/vocab.txt"
cp "$fx/families/medclip/bert_config.json" "$tmp/hub/emilyalsentzer/Bio_ClinicalBERT/config.json"
start_hub

# ---- a hub model: byte-exact, re-run skips, resume, checksum mismatch ----
run_fetch biomedclip
check "fetch biomedclip exits 0" [ $? = 0 ]
dest=$tmp/weights/biomedclip
for f in open_clip_config.json open_clip_pytorch_model.bin vocab.txt tokenizer_config.json special_tokens_map.json; do
    check "biomedclip $f byte-exact" cmp "$repo/$f" "$dest/$f"
done
check "no .part left" [ -z "$(find "$dest" -name '*.part')" ]
# The real repository has no config.json (its text tower is BERT-base by default); the tiny
# fixture's sizes need one, so it is added beside the downloads before loading.
cp "$fx/models/biomedclip/config.json" "$dest/"
"$medvlp" info -m "$dest" >"$tmp/info.json" 2>/dev/null
check "medvlp info loads the fetched model" jq -e '.family == "biomedclip"' "$tmp/info.json"
check "info checksum = sha256sum of the download" [ "$(jq -r .weights_checksum "$tmp/info.json")" = \
    "$(sha256sum "$repo/open_clip_pytorch_model.bin" | cut -d' ' -f1)" ]
run_fetch biomedclip
check "re-run finds every file present" [ "$(grep -c ': present' "$tmp/out")" = 5 ]

rm "$dest/open_clip_pytorch_model.bin"
head -c 1000 "$repo/open_clip_pytorch_model.bin" >"$dest/open_clip_pytorch_model.bin.part"
run_fetch biomedclip
check "interrupted download resumes to the exact file" cmp "$repo/open_clip_pytorch_model.bin" "$dest/open_clip_pytorch_model.bin"

rm "$dest/open_clip_pytorch_model.bin"
head -c 1000 /dev/zero >"$dest/open_clip_pytorch_model.bin.part"   # a corrupt partial file
run_fetch biomedclip
check "corrupt resume exits 2" [ $? = 2 ]
check "corrupt resume says SHA-256 mismatch" grep -q 'SHA-256 mismatch' "$tmp/out"
check "corrupt resume leaves no file" test ! -e "$dest/open_clip_pytorch_model.bin" -a ! -e "$dest/open_clip_pytorch_model.bin.part"

start_hub --bad-sha
run_fetch biomedclip
check "announced SHA-256 differs: exit 2" [ $? = 2 ]
check "announced SHA-256 differs: file not installed" [ ! -e "$dest/open_clip_pytorch_model.bin" ]

# ---- a zip on GCS + tokenizer files from another repo + manifest ----
run_fetch medclip
check "medclip, bad MD5: exit 2 with a message" grep -q 'MD5 mismatch' "$tmp/out"
check "medclip, bad MD5: nothing extracted" [ ! -e "$tmp/weights/medclip/pytorch_model.bin" ]
start_hub
run_fetch medclip
check "fetch medclip exits 0" [ $? = 0 ]
mc=$tmp/weights/medclip
check "medclip checkpoint extracted byte-exact" cmp "$fx/families/medclip/pytorch_model.bin" "$mc/pytorch_model.bin"
check "medclip zip removed after extraction" [ ! -e "$mc/medclip-pretrained.zip" ]
check "medclip vocab from Bio_ClinicalBERT" cmp "$fx/families/medclip/vocab.txt" "$mc/vocab.txt"
check "medclip manifest written" jq -e '.family == "medclip" and .checkpoint == "pytorch_model.bin"' "$mc/medvlp.json"
printf 'left pleural effusion\nno acute process\n' >"$tmp/lines"
"$medvlp" embed-text -m "$mc" <"$tmp/lines" >"$tmp/fetched.jsonl" 2>/dev/null
"$medvlp" embed-text -m "$fx/families/medclip" <"$tmp/lines" >"$tmp/fixture.jsonl" 2>/dev/null
check "fetched medclip embeds like the fixture" cmp "$tmp/fetched.jsonl" "$tmp/fixture.jsonl"
check "fetched medclip produced rows" [ -s "$tmp/fetched.jsonl" ]

# ---- failures that need no hub ----
MEDVLP_HF_ENDPOINT=http://127.0.0.1:1 run_fetch cxr-bert-specialized
check "offline: exit 2" [ $? = 2 ]
check "offline: message suggests --tiny" grep -q 'use --tiny' "$tmp/out"
run_fetch no-such-model
check "unknown model: exit 2" [ $? = 2 ]
check "unknown model: message" grep -q "unknown model 'no-such-model'" "$tmp/out"
run_fetch --tiny medclip-roco
check "--tiny medclip-roco labelled random" [ -f "$tmp/weights/medclip-roco/TINY-RANDOM-WEIGHTS" ]
"$medvlp" info -m "$tmp/weights/medclip-roco" --no-checksum 2>/dev/null >"$tmp/tiny.json"
check "--tiny model loads and says so" jq -e '.tiny_random_weights == true and .family == "medclip-flax"' "$tmp/tiny.json"

echo "weights_fetch: $checks checks, $failures failed"
[ "$failures" = 0 ]
