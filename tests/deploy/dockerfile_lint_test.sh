#!/usr/bin/env bash
# The shipped Dockerfile passes docker-check's lint, and each rule catches the mistake it names:
# every mutation below breaks exactly one property and must be reported under that rule.
set -uo pipefail
check="$MEDVLP_SOURCE_ROOT/scripts/docker-check"
dockerfile="$MEDVLP_SOURCE_ROOT/Dockerfile"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
failures=0

out=$("$check" lint --dockerfile "$dockerfile") || { echo "FAIL: shipped Dockerfile: $out"; exit 1; }

expect_rule() { # RULE SED_SCRIPT: the mutated Dockerfile must fail lint with RULE
  local rule=$1 script=$2 out
  sed -E "$script" "$dockerfile" > "$dir/Dockerfile"
  if cmp -s "$dir/Dockerfile" "$dockerfile"; then
    echo "FAIL: mutation for $rule changed nothing (test out of date with the Dockerfile)"; failures=$((failures + 1)); return
  fi
  if out=$("$check" lint --dockerfile "$dir/Dockerfile"); then
    echo "FAIL: $rule: lint passed a Dockerfile mutated by '$script'"; failures=$((failures + 1))
  elif ! grep -q ": $rule: " <<<"$out"; then
    echo "FAIL: $rule: lint failed for another reason: $out"; failures=$((failures + 1))
  else
    echo "ok: $rule"
  fi
}

expect_rule exec-entrypoint    's|^ENTRYPOINT \["/usr/local/bin/medvlpd"\]|ENTRYPOINT /usr/local/bin/medvlpd|'
expect_rule exec-entrypoint    '/^ENTRYPOINT/d'
expect_rule non-root-user      's|^USER medvlp:medvlp|USER root|'
expect_rule non-root-user      '/^USER /d'
expect_rule healthcheck        '/^HEALTHCHECK/,/CMD \[/d'
expect_rule pinned-base        's|^ARG DEBIAN_IMAGE=.*|ARG DEBIAN_IMAGE=debian:bookworm-slim|'
expect_rule pinned-base        's|^ARG DEBIAN_IMAGE=.*|ARG DEBIAN_IMAGE=debian|'
expect_rule no-add-url         's|^COPY deploy/healthcheck |ADD https://example.org/healthcheck |'
expect_rule apt-lists-cleaned  's|&& rm -rf /var/lib/apt/lists/\* \\|\\|'
expect_rule apt-no-recommends  's|apt-get install -y --no-install-recommends|apt-get install -y|'
expect_rule runtime-only       's|libjansson4 |libjansson-dev |'
expect_rule volumes            's|^VOLUME .*|VOLUME ["/weights"]|'
expect_rule oci-labels         '/org.opencontainers.image.licenses=/d'
expect_rule expose             '/^EXPOSE/d'
[ "$failures" -eq 0 ] || { echo "$failures lint rule checks failed"; exit 1; }
