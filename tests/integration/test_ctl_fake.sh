# The gantry CLI against a scripted stand-in for the API on 127.0.0.1, for the paths a
# single server without agents cannot show: apply --wait reaching ready, a crash loop and
# a placement failure reported by the server, a follower's redirect to the leader (method
# and body kept), a 503 during an election retried, a non-JSON error answer, the server's
# version header and a streamed log.
source "$(dirname "$0")/lib.sh"

GANTRY=$GT_BUILD/ctl/gantry
[ -x "$GANTRY" ] || gt_skip "gantry is not built"
command -v python3 >/dev/null || gt_skip "python3 is missing"

LEADER=127.0.0.1:17713
FOLLOWER=127.0.0.1:17714
cat >"$GT_TMP/fake_api.py" <<'PY'
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

leader, follower, record = sys.argv[1], sys.argv[2], sys.argv[3]
polls = {}
flaky = {"left": 1}
lock = threading.Lock()

def workload(name):
    with lock:
        polls[name] = polls.get(name, 0) + 1
        n = polls[name]
    status = {"desired": 2, "replicas": 2, "running": 2, "ready": min(n - 1, 2), "conditions": []}
    replicas = [{"id": "%s-%d" % (name, i), "workload": name, "state": "running", "ready": i < status["ready"],
                 "restarts": 0, "exit_code": 0, "node": "n1", "cloud": "private"} for i in range(2)]
    if name == "crash":
        status = {"desired": 1, "replicas": 1, "running": 0, "ready": 0, "conditions": []}
        replicas = [{"id": "crash-0", "workload": name, "state": "exited", "ready": False,
                     "restarts": 5, "exit_code": 1, "node": "n1", "cloud": "private"}]
    if name == "stuck":
        status = {"desired": 3, "replicas": 0, "running": 0, "ready": 0,
                  "conditions": [{"type": "PlacementFailed", "message": "no node has 64Gi of free memory"}]}
        replicas = []
    return {"name": name, "generation": 1, "status": status, "created_ms": 0}, {"items": replicas}

class Leader(BaseHTTPRequestHandler):
    server_version = "gantry-scheduler/9.9"
    sys_version = ""
    def log_message(self, *args):
        pass
    def answer(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(record, "a") as f:
            f.write("%s %s %s %s\n" % (self.command, self.path, self.headers.get("X-Gantry-Actor"), body.decode()))
        if self.path == "/v1/apply":
            names = [w["name"] for w in json.loads(body)["workloads"]]
            self.answer(200, {"workloads": [{"name": n, "outcome": "created", "generation": 1} for n in names]})
        else:
            self.answer(404, {"error": {"code": "not_found", "message": "no such endpoint"}})
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/healthz":
            self.answer(200, {"status": "ok", "leader": True})
        elif url.path == "/v1/workloads/flaky":
            with lock:
                left = flaky["left"]
                flaky["left"] -= 1
            if left > 0:
                self.answer(503, {"error": {"code": "no_leader", "message": "no leader is elected at the moment; retry shortly"}})
            else:
                self.answer(200, workload("flaky")[0])
        elif url.path == "/v1/workloads/gateway":
            self.answer(502, b"<html>bad gateway</html>", "text/html")
        elif url.path.startswith("/v1/workloads/"):
            self.answer(200, workload(url.path.rsplit("/", 1)[1])[0])
        elif url.path == "/v1/replicas":
            name = parse_qs(url.query).get("workload", [""])[0]
            with lock:
                polls[name] = polls.get(name, 1) - 1
            self.answer(200, workload(name)[1])
        elif url.path == "/v1/replicas/web-0/logs":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for i in range(3):
                self.wfile.write(b"line %d\n" % i)
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.answer(404, {"error": {"code": "not_found", "message": "no such endpoint: GET " + url.path}})

class Follower(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def redirect(self):
        self.send_response(307)
        self.send_header("Location", "http://%s%s" % (leader, self.path))
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = redirect

def serve(addr, handler):
    host, port = addr.split(":")
    ThreadingHTTPServer((host, int(port)), handler).serve_forever()

threading.Thread(target=serve, args=(follower, Follower), daemon=True).start()
serve(leader, Leader)
PY
gt_spawn fake python3 "$GT_TMP/fake_api.py" "$LEADER" "$FOLLOWER" "$GT_TMP/posts"
gt_check "the stand-in API answers" \
    gt_wait_for "the stand-in" 20 curl -sf "http://$LEADER/healthz"
gt_wait_for "the follower" 20 curl -s -o /dev/null "http://$FOLLOWER/healthz"

spec() { printf 'name: %s\nimage: busybox\nreplicas: 2\n' "$1" >"$GT_TMP/$1.yaml"; }
run() {
    local name=$1; shift
    "$GANTRY" "$@" >"$GT_TMP/$name.out" 2>"$GT_TMP/$name.err"
    RC=$?
}

spec good
run good --server "http://$LEADER" apply -f "$GT_TMP/good.yaml" --wait --timeout 20s
gt_check "apply --wait exits 0 once every replica is ready" [ "$RC" = 0 ]
gt_check "apply --wait shows each change of progress, then the end" \
    diff -u <(printf '%s\n' "workload/good created (generation 1)" \
        "workload/good 0/2 ready, 2 running" "workload/good 1/2 ready, 2 running" \
        "workload/good 2/2 ready, 2 running" "1 workload ready") "$GT_TMP/good.out"

spec crash
run crash --server "http://$LEADER" apply -f "$GT_TMP/crash.yaml" --wait --timeout 20s
gt_check "a crash loop ends --wait with exit 1" [ "$RC" = 1 ]
gt_check "the crash loop message names the replica" \
    grep -qx 'gantry: workload/crash failed: replica crash-0 is in a crash loop: restarted 5 times, last exit code 1 (0/1 ready, 0 running (1 exited))' "$GT_TMP/crash.err"

spec stuck
run stuck --server "http://$LEADER" apply -f "$GT_TMP/stuck.yaml" --wait --timeout 20s
gt_check "a placement failure ends --wait with exit 1" [ "$RC" = 1 ]
gt_check "the placement failure message is the server's condition" \
    grep -qx 'gantry: workload/stuck failed: PlacementFailed: no node has 64Gi of free memory (0/3 ready, 0 running (no replicas placed yet))' "$GT_TMP/stuck.err"

spec viafollower
run redirect --server "http://$FOLLOWER" apply -f "$GT_TMP/viafollower.yaml"
gt_check "a follower's redirect is followed" \
    grep -qx 'workload/viafollower created (generation 1)' "$GT_TMP/redirect.out"
gt_check "the redirected request kept its method and body" \
    grep -q '^POST /v1/apply user:[^ ]* {"workloads": *\[{"name": *"viafollower"' "$GT_TMP/posts"

run flaky --server "http://$LEADER" get workloads flaky
gt_check "a 503 during an election is retried" bash -c "[ $RC = 0 ] && grep -q '^flaky ' '$GT_TMP/flaky.out'"
run gateway --server "http://$LEADER" get workloads gateway
gt_check "a non-JSON error answer is one sentence" \
    bash -c "[ $RC = 1 ] && [ \"\$(cat '$GT_TMP/gateway.err')\" = 'gantry: a server in between failed (HTTP 502)' ]"
run version --server "http://$LEADER" version
gt_check "version shows the server's version header" \
    grep -qx "Server: gantry-scheduler/9.9 at http://$LEADER" "$GT_TMP/version.out"
run logs --server "http://$LEADER" logs web-0 -f
gt_check "logs streams the replica's output" \
    bash -c "[ $RC = 0 ] && [ \"\$(cat '$GT_TMP/logs.out')\" = \"\$(printf 'line 0\nline 1\nline 2')\" ]"
run nologs --server "http://$LEADER" logs web-9
gt_check "logs of a missing endpoint says the server does not serve logs" \
    bash -c "[ $RC = 1 ] && grep -q '^gantry: the server does not serve logs (GET /v1/replicas/web-9/logs answered 404)' '$GT_TMP/nologs.err'"
# Every gantry run above was built with the sanitizers; a report on its standard error is
# a bug even when the output was right.
gt_check "no sanitizer report from any gantry run" \
    bash -c "! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$GT_TMP'/*.err"
gt_finish
