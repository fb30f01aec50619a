# Sourced by the nginx tests. render_nginx_conf DIR HTTPS_PORT HTTP_PORT WRITER REPLICA...
# Writes DIR/nginx.conf from deploy/nginx.conf by rewriting only its `# site: NAME` lines
# (listen ports on 127.0.0.1, replica addresses, a self-signed cert, pid and log files under DIR),
# so the proxy under test is the shipped configuration. Also writes DIR/tls.crt and DIR/tls.key.
render_nginx_conf() {
  local dir=$1 https_port=$2 http_port=$3 writer=$4; shift 4
  local servers="" replica
  for replica in "$@"; do
    servers+="        server $replica max_fails=3 fail_timeout=10s;\n"
  done
  mkdir -p "$dir/logs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || return 1
  awk -v dir="$dir" -v https="$https_port" -v http="$http_port" -v servers="$servers" -v writer="$writer" '
    /# site: replicas$/ { if (!done) { printf "%s", servers; done = 1 } next }
    /# site: writer$/       { print "        server " writer ";"; next }
    /# site: pid$/          { print "pid " dir "/nginx.pid;"; next }
    /# site: error_log$/    { print "error_log " dir "/logs/error.log info;"; next }
    /# site: access_log$/   { print "    access_log " dir "/logs/access.log medvlp;"; next }
    /# site: listen_http$/  { print "        listen 127.0.0.1:" http ";"; next }
    /# site: listen_https$/ { print "        listen 127.0.0.1:" https " ssl http2;"; next }
    /# site: cert$/         { print "        ssl_certificate " dir "/tls.crt;"; next }
    /# site: key$/          { print "        ssl_certificate_key " dir "/tls.key;"; next }
    /^[^#].*# site: /       { print "unhandled site line: " $0 > "/dev/stderr"; exit 1 }
    { print }
  ' "$MEDVLP_SOURCE_ROOT/deploy/nginx.conf" > "$dir/nginx.conf"
}

# Two free loopback TCP ports per call site (bind 0, read, close; a race with other processes is
# possible but harmless on a test machine).
free_ports() { # N
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
[s.bind(("127.0.0.1",0)) for s in socks]
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
