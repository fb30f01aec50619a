#!/usr/bin/env bash
# deploy/healthcheck (the image's HEALTHCHECK) succeeds only on a 200 from /healthz at the port in
# MEDVLP_LISTEN: checked against small HTTP servers answering 200 and 503, and a closed port.
# (tests/deploy/nginx_test.sh also runs it against a real medvlpd.)
set -uo pipefail
probe="$MEDVLP_SOURCE_ROOT/deploy/healthcheck"
. "$(dirname "$0")/nginx_render.sh"
. "$(dirname "$0")/../kill_own.sh"
pids=()
trap 'kill_own TERM "${pids[@]}"' EXIT
serve() { # PORT STATUS: answers every GET with STATUS
  /usr/bin/python3 -c 'import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = int(sys.argv[2]) if self.path == "/healthz" else 404
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$1" "$2" &
  pids+=($!)
}
read -r ok_port bad_port closed_port < <(free_ports 3)
serve "$ok_port" 200; serve "$bad_port" 503
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ok_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$bad_port") 2>/dev/null && break
  sleep 0.1
done
failures=0
MEDVLP_LISTEN="0.0.0.0:$ok_port" "$probe" || { echo "FAIL: probe rejected a 200"; failures=$((failures + 1)); }
MEDVLP_LISTEN="0.0.0.0:$bad_port" "$probe" 2>/dev/null && { echo "FAIL: probe accepted a 503"; failures=$((failures + 1)); }
MEDVLP_LISTEN="0.0.0.0:$closed_port" "$probe" 2>/dev/null && { echo "FAIL: probe accepted a closed port"; failures=$((failures + 1)); }
MEDVLP_LISTEN="no-port" "$probe" 2>/dev/null && { echo "FAIL: probe accepted MEDVLP_LISTEN without a port"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "healthcheck: 200 accepted; 503, closed port, bad MEDVLP_LISTEN rejected"
exit $((failures > 0))
