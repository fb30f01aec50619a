#!/usr/bin/env bash
# cli_embed_image.sh — `medvlp embed-image` and `medvlp info` on the tiny family fixtures: output
# checked against the PyTorch/PIL reference (check_jsonl), checksums against coreutils sha256sum,
# all-or-nothing output on a bad file, the tiny-random-weights marker. Args: CHECK_JSONL
set -u
medvlp=$MEDVLP_BUILD_ROOT/medvlp check=$1
fx=$MEDVLP_FIXTURES/models
img=$fx/images
images=("$img/rgb_70x52.png" "$img/gray_61x80.jpg" "$img/rgba_48x64.png" "$img/lowcontrast_66x50.png")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # expect DESCRIPTION STATUS COMMAND...
  local what=$1 want=$2; shift 2
  "$@"; local got=$?
  [ "$got" = "$want" ] || { echo "FAIL: $what: exit $got, expected $want" >&2; fail=1; }
}

for model in biomedclip:biomedclip biomedclip-safetensors:biomedclip biovil:biovil convirt:convirt; do
  dir=${model%%:*} ref=${model##*:}
  expect "$dir embed-image" 0 "$medvlp" embed-image -m "$fx/$dir" "${images[@]}" > "$tmp/out.jsonl" 2>/dev/null
  expect "$dir normalized" 0 "$check" "$fx/expected/images_$ref.json" - normalized "$tmp/out.jsonl"
  expect "$dir embed-image --raw" 0 "$medvlp" embed-image --raw -m "$fx/$dir" "${images[@]}" > "$tmp/raw.jsonl" 2>/dev/null
  expect "$dir raw" 0 "$check" "$fx/expected/images_$ref.json" - raw "$tmp/raw.jsonl"
  expect "$dir info" 0 "$medvlp" info -m "$fx/$dir" > "$tmp/info.json" 2>/dev/null
  grep -q "\"family\": \"$ref\"" "$tmp/info.json" || { echo "FAIL: $dir: info family" >&2; fail=1; }
  grep -q '"preprocessing": ' "$tmp/info.json" || { echo "FAIL: $dir: info has no preprocessing" >&2; fail=1; }
  # Every weight file's SHA-256 as coreutils computes it.
  for w in $(grep -o '"path": "[^"]*"' "$tmp/info.json" | cut -d'"' -f4); do
    sum=$(sha256sum "$w" | cut -d' ' -f1)
    grep -q "\"sha256\": \"$sum\"" "$tmp/info.json" || { echo "FAIL: $dir: sha256 of $w" >&2; fail=1; }
  done
done
# One weight file: the checksum is that file's SHA-256; several: SHA-256 of "<sha>  <name>" lines.
sum=$(sha256sum "$fx/convirt/model.pth" | cut -d' ' -f1)
"$medvlp" info -m "$fx/convirt" 2>/dev/null | grep -q "\"weights_checksum\": \"$sum\"" ||
  { echo "FAIL: convirt weights_checksum" >&2; fail=1; }
sum=$( (cd "$fx/biovil" && sha256sum pytorch_model.bin biovil_image_resnet50_proj_size_128.pt) | sha256sum | cut -d' ' -f1)
"$medvlp" info -m "$fx/biovil" 2>/dev/null | grep -q "\"weights_checksum\": \"$sum\"" ||
  { echo "FAIL: biovil weights_checksum" >&2; fail=1; }

# A bad file anywhere: exit 2, the file named, nothing printed.
"$medvlp" embed-image -m "$fx/convirt" "${images[0]}" "$MEDVLP_FIXTURES/vision/bad_garbage.bin" > "$tmp/out" 2> "$tmp/err"
[ $? = 2 ] && [ ! -s "$tmp/out" ] && grep -q "bad_garbage.bin" "$tmp/err" ||
  { echo "FAIL: bad file not reported all-or-nothing" >&2; cat "$tmp/err" >&2; fail=1; }
"$medvlp" embed-image -m "$fx/convirt" "$tmp/missing.png" > "$tmp/out" 2> "$tmp/err"
[ $? = 2 ] && grep -q "missing.png" "$tmp/err" || { echo "FAIL: missing file" >&2; fail=1; }
expect "pixel limit" 2 "$medvlp" embed-image --max-pixels 100 -m "$fx/convirt" "${images[0]}" > /dev/null 2>&1
expect "text-only model" 2 "$medvlp" embed-image -m "$fx/cxr-bert" "${images[0]}" > /dev/null 2>&1
expect "no files" 2 "$medvlp" embed-image -m "$fx/convirt" 2>/dev/null
expect "help" 0 "$medvlp" embed-image --help > /dev/null

# The tiny-random-weights marker is reported loudly.
cp -r "$fx/convirt" "$tmp/tiny" && touch "$tmp/tiny/TINY-RANDOM-WEIGHTS"
"$medvlp" info -m "$tmp/tiny" > "$tmp/info.json" 2> "$tmp/err"
grep -q '"tiny_random_weights": true' "$tmp/info.json" && grep -q "smoke tests only" "$tmp/err" ||
  { echo "FAIL: tiny marker" >&2; fail=1; }
exit $fail
