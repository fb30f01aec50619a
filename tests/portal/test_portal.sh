#!/usr/bin/env bash
# test_portal.sh — runs portal_test.mjs (the search portal in headless Chromium, driven by
# playwright-core) against a real medvlpd: tiny BiomedCLIP model, a scratch index, an API key.
# Skips (exit 77) when Debian's chromium or node is missing, or playwright-core is absent and
# `npm ci` cannot fetch it (scripts/setup installs chromium; this script installs playwright-core).
set -uo pipefail
here=$MEDVLP_SOURCE_ROOT/tests/portal
medvlpd=$MEDVLP_BUILD_ROOT/medvlpd
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "SKIP: no chromium (apt-get install chromium, see scripts/setup)"; exit 77; }
command -v node >/dev/null || { echo "SKIP: no node"; exit 77; }
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    (cd "$here" && timeout 300 npm ci --ignore-scripts --no-audit --no-fund >&2) ||
        { echo "SKIP: playwright-core is not installed and npm ci failed"; exit 77; }
fi

tmp=$(mktemp -d)
source "$MEDVLP_SOURCE_ROOT/tests/http/medvlpd_test_util.sh"
cleanup() { kill_own 9 "$pid"; rm -rf "$tmp"; }
trap cleanup EXIT
echo "portal-test-key" >"$tmp/key"
require_medvlpd -m "$MEDVLP_FIXTURES/models/biomedclip" -i "$tmp/index" --api-key-file "$tmp/key" --log-format text

MEDVLP_PORTAL_URL=$url MEDVLP_PORTAL_KEY=portal-test-key MEDVLP_CHROMIUM=$chromium \
    MEDVLP_PORTAL_SCREENSHOT=$MEDVLP_BUILD_ROOT/portal.png timeout 240 node "$here/portal_test.mjs"
status=$?
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[ "$rc" = 0 ] || { echo "FAIL: medvlpd exited $rc after SIGTERM" >&2; tail -20 "$tmp/log" >&2; status=1; }
exit "$status"
