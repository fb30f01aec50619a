#!/usr/bin/env bash
# deploy/nginx.conf passes `nginx -t` once its site lines point at this machine (self-signed cert).
set -euo pipefail
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "SKIP: nginx not installed"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl not installed"; exit 77; }
PATH=$PATH:/usr/sbin
. "$(dirname "$0")/nginx_render.sh"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
read -r https_port http_port < <(free_ports 2)
render_nginx_conf "$dir" "$https_port" "$http_port" 127.0.0.1:3 127.0.0.1:1 127.0.0.1:2
grep -q 'client_max_body_size 32m;' "$dir/nginx.conf"
nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
echo "nginx -t: ok"
