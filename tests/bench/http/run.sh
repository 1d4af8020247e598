#!/usr/bin/env bash
# HTTP server benchmark on loopback: gantry_http beside the HTTP servers installed on every
# Gantry host (busybox httpd, Python's http.server), measured by the same load generator in
# the same run.
#   tests/bench/http/run.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds=${1:-3}
conns=${2:-4}
build=build/bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target gantry_http >/dev/null
out=$(mktemp -d /tmp/gantry-bench-http.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$out"
}
trap cleanup EXIT

cc -O2 -pthread -o "$out/http_load" tests/bench/http/http_load.c
cc -O2 -D_GNU_SOURCE -I. -o "$out/bench_server" tests/bench/http/bench_server.c \
    "$build/scheduler/libgantry_http.a" "$build/common/libgantry_common.a" \
    $(pkg-config --cflags --libs libuv jansson) -lhttp_parser

# Ports in the loopback range that nothing else in the suite uses.
gport=17780 bport=17781 pport=17782
"$out/bench_server" "127.0.0.1:$gport" & pids+=($!)
mkdir -p "$out/www"
printf '{"status":"ok"}' >"$out/www/healthz"
busybox httpd -f -p "127.0.0.1:$bport" -h "$out/www" & pids+=($!)
cat >"$out/py_server.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$out/py_server.py" "$pport" & pids+=($!)

for port in $gport $bport $pport; do
    for _ in $(seq 50); do
        if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then break; fi
        sleep 0.1
    done
done

echo "GET /healthz on loopback, $conns connections, $seconds s each"
echo "keep-alive (one connection per client):"
"$out/http_load" -c "$conns" -d "$seconds" -l "gantry_http" 127.0.0.1 $gport /healthz
"$out/http_load" -c "$conns" -d "$seconds" -l "python3 http.server" 127.0.0.1 $pport /healthz
echo "a new connection per request:"
"$out/http_load" -k -c "$conns" -d "$seconds" -l "gantry_http" 127.0.0.1 $gport /healthz
"$out/http_load" -k -c "$conns" -d "$seconds" -l "busybox httpd" 127.0.0.1 $bport /healthz
"$out/http_load" -k -c "$conns" -d "$seconds" -l "python3 http.server" 127.0.0.1 $pport /healthz
