#!/bin/bash
# cli_tokenize.sh — `medvlp tokenize` on the corpus lines (stdin) equals the reference ids, per config;
# bad input and bad usage exit 2 with a message.
set -u
medvlp="$MEDVLP_BUILD_ROOT/medvlp"
fx="$MEDVLP_FIXTURES/text"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

run_config() { # name, args...
    local name=$1; shift
    if ! "$medvlp" tokenize "$@" < "$fx/cli_corpus.txt" > "$tmp/$name.out" 2> "$tmp/$name.err"; then
        fail "$name: exit status $?: $(cat "$tmp/$name.err")"; return
    fi
    local total same
    total=$(wc -l < "$fx/cli_expected_$name.jsonl")
    same=$(paste -d '\t' "$tmp/$name.out" "$fx/cli_expected_$name.jsonl" | awk -F '\t' '$1 == $2' | wc -l)
    echo "$name: $same/$total CLI lines match"
    [ "$same" = "$total" ] && [ "$(wc -l < "$tmp/$name.out")" = "$total" ] || fail "$name: $same/$total lines match"
}
run_config uncased_256 --vocab "$fx/vocab_uncased.txt" --max-len 256
run_config cased_256 --vocab "$fx/vocab_cased.txt" --cased --max-len 256
run_config uncased_16 --vocab "$fx/vocab_uncased.txt" --max-len 16

# -m DIR: vocab + tokenizer_config.json + context length from config.json.
mkdir "$tmp/model"
cp "$fx/vocab_cased.txt" "$tmp/model/vocab.txt"
echo '{"do_lower_case": false}' > "$tmp/model/tokenizer_config.json"
echo '{"max_position_embeddings": 256}' > "$tmp/model/config.json"
"$medvlp" tokenize -m "$tmp/model" < "$fx/cli_corpus.txt" | cmp -s - "$fx/cli_expected_cased_256.jsonl" ||
    fail "-m DIR (cased, context 256) differs from the reference"
echo '{"model_cfg": {"text_cfg": {"context_length": 16}}}' > "$tmp/model/open_clip_config.json"
echo '{"do_lower_case": true}' > "$tmp/model/tokenizer_config.json"
cp "$fx/vocab_uncased.txt" "$tmp/model/vocab.txt"
"$medvlp" tokenize -m "$tmp/model" < "$fx/cli_corpus.txt" | cmp -s - "$fx/cli_expected_uncased_16.jsonl" ||
    fail "-m DIR (open_clip context 16) differs from the reference"

# Invalid UTF-8 on line 3: exit 2, message names the line.
printf 'ok\nfine\nbad \xff byte\nmore\n' > "$tmp/bad.txt"
"$medvlp" tokenize --vocab "$fx/vocab_uncased.txt" < "$tmp/bad.txt" > /dev/null 2> "$tmp/bad.err"
status=$?
[ $status = 2 ] || fail "invalid UTF-8: exit $status, want 2"
grep -q "line 3" "$tmp/bad.err" || fail "invalid UTF-8 message does not name line 3: $(cat "$tmp/bad.err")"

# Usage errors: exit 2.
for args in "" "--vocab" "--vocab $fx/vocab_uncased.txt --max-len 1" "--vocab $fx/vocab_uncased.txt --max-len x" \
            "--vocab /nonexistent/vocab.txt" "-m $tmp/model --vocab $fx/vocab_uncased.txt" "--bogus"; do
    # shellcheck disable=SC2086
    "$medvlp" tokenize $args < /dev/null > /dev/null 2> "$tmp/usage.err"
    status=$?
    [ $status = 2 ] || fail "'tokenize $args': exit $status, want 2"
    [ -s "$tmp/usage.err" ] || fail "'tokenize $args': no message"
done
"$medvlp" tokenize --help > "$tmp/help.out" || fail "--help exit status"
grep -q -- "--vocab" "$tmp/help.out" || fail "--help does not describe --vocab"

[ $failures = 0 ] && echo "cli_tokenize: ok" || echo "cli_tokenize: $failures failures"
exit $((failures > 0))
