#!/usr/bin/env bash
# cli_embed_text.sh — `medvlp embed-text` and `medvlp info` on the tiny fixtures, output checked
# against the PyTorch reference by check_jsonl (no Python needed). Args: CHECK_JSONL
set -u
medvlp=$MEDVLP_BUILD_ROOT/medvlp check=$1
fx=$MEDVLP_FIXTURES/models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # expect DESCRIPTION STATUS COMMAND...
  local what=$1 want=$2; shift 2
  "$@"; local got=$?
  [ "$got" = "$want" ] || { echo "FAIL: $what: exit $got, expected $want" >&2; fail=1; }
}

for model in biomedclip-safetensors:biomedclip biomedclip:biomedclip cxr-bert:cxr-bert; do
  dir=${model%%:*} ref=${model##*:}
  expect "$dir embed-text" 0 "$medvlp" embed-text -m "$fx/$dir" < "$fx/expected/texts.txt" > "$tmp/out.jsonl" 2> "$tmp/err"
  expect "$dir normalized" 0 "$check" "$fx/expected/$ref.json" single normalized "$tmp/out.jsonl"
  grep -q "line 21 is longer than the context" "$tmp/err" || { echo "FAIL: $dir: no truncation warning" >&2; fail=1; }
  expect "$dir embed-text --raw" 0 "$medvlp" embed-text --raw -m "$fx/$dir" < "$fx/expected/texts.txt" > "$tmp/raw.jsonl" 2>/dev/null
  expect "$dir raw" 0 "$check" "$fx/expected/$ref.json" single raw "$tmp/raw.jsonl"
  expect "$dir info" 0 "$medvlp" info -m "$fx/$dir" > "$tmp/info.json" 2>/dev/null
  grep -q "\"family\": \"$ref\"" "$tmp/info.json" || { echo "FAIL: $dir: info family" >&2; fail=1; }
done

expect "usage" 2 "$medvlp" embed-text --bogus 2>/dev/null
expect "no model dir" 2 "$medvlp" embed-text -m "$tmp/none" < /dev/null 2>/dev/null
expect "broken checkpoint" 2 "$medvlp" info -m "$fx/bad/shape-mismatch" 2>/dev/null
printf 'ok\n\xff\xfe\n' | "$medvlp" embed-text -m "$fx/biomedclip-safetensors" > /dev/null 2> "$tmp/err"
[ $? = 2 ] && grep -q "lines 1-2" "$tmp/err" || { echo "FAIL: invalid UTF-8 not reported" >&2; cat "$tmp/err" >&2; fail=1; }
expect "help" 0 "$medvlp" embed-text --help > /dev/null
exit $fail
