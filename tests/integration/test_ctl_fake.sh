# The gantry CLI against a scripted stand-in for the API on 127.0.0.1, for the paths a
# single server without agents cannot show: tables of nodes and replicas placed on them,
# describe with replicas per node, apply --wait reaching ready or timing out, a crash
# loop and a placement failure reported by the server, a follower's redirect to the
# leader (method and body kept), a 503 during an election retried (but not for a
# delete), a non-JSON error answer, the server's version header and a streamed log.
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
    if name == "slow":
        status = {"desired": 2, "replicas": 2, "running": 1, "ready": 0, "conditions": []}
        replicas = [{"id": "slow-0", "workload": name, "state": "running", "ready": False, "restarts": 0},
                    {"id": "slow-1", "workload": name, "state": "starting", "ready": False, "restarts": 0}]
    if name == "stuck":
        status = {"desired": 3, "replicas": 0, "running": 0, "ready": 0,
                  "conditions": [{"type": "PlacementFailed", "message": "no node has 64Gi of free memory"}]}
        replicas = []
    return {"name": name, "generation": 1, "status": status, "created_ms": 0}, {"items": replicas}

# A workload with replicas on two nodes of two clouds, for the tables. Times are 0, which
# the CLI prints as an unknown age, so the output is the same in every run.
NODES = [
    {"name": "n1", "cloud": "private", "region": "eu", "zone": "a", "labels": {"disk": "ssd"},
     "capacity": {"cpu_millis": 4000, "memory_bytes": 8589934592, "pids": 4096},
     "allocated": {"replicas": 1}, "cost": 0.0, "state": "ready"},
    {"name": "n2", "cloud": "public", "region": "us", "zone": "b", "labels": {},
     "capacity": {"cpu_millis": 1500, "memory_bytes": 2147483648, "pids": 1024},
     "allocated": {"replicas": 1}, "cost": 0.12, "state": "cordoned"},
]
WEB_REPLICAS = [
    {"id": "web-0", "workload": "web", "generation": 2, "node": "n1", "cloud": "private", "state": "running",
     "ready": True, "restarts": 0, "exit_code": 0, "address": "10.88.0.2", "reason": ""},
    {"id": "web-1", "workload": "web", "generation": 2, "node": "n2", "cloud": "public", "state": "starting",
     "ready": False, "restarts": 1, "exit_code": 137, "address": "", "reason": "health check failing"},
    {"id": "web-2", "workload": "web", "generation": 2, "node": "", "cloud": "", "state": "pending",
     "ready": False, "restarts": 0, "exit_code": 0, "address": "", "reason": "no node fits"},
]
WEB = {"name": "web", "generation": 2, "created_ms": 0, "updated_ms": 0,
       "spec": {"name": "web", "image": "busybox", "command": ["httpd", "-f", "-p", "8080"],
                "env": {"GREETING": "hello"}, "replicas": 3,
                "resources": {"cpu": "250m", "memory": "64Mi", "pids": 128}, "restart": "always",
                "health": {"http": {"port": 8080, "path": "/"}, "interval": "2s", "timeout": "1s",
                           "failure_threshold": 3, "start_period": "0s"},
                "placement": {"clouds": ["private", "public"], "spread": "node", "constraints": [],
                              "strategy": "spread"},
                "autoscale": "off", "update": {"max_surge": 1, "max_unavailable": 0}, "stop_grace": "10s"},
       "status": {"desired": 3, "replicas": 3, "running": 1, "ready": 1,
                  "conditions": [{"type": "Progressing", "message": "fewer ready replicas than desired"}]}}
EVENTS = [
    {"seq": 1, "time_ms": 0, "actor": "user:ann", "kind": "apply", "object": "workload/web", "message": "created: generation 1, 3 replicas"},
    {"seq": 2, "time_ms": 0, "actor": "user:ann", "kind": "apply", "object": "workload/api", "message": "created: generation 1, 1 replicas"},
    {"seq": 3, "time_ms": 0, "actor": "server:1", "kind": "place", "object": "workload/web", "message": "placed 3 replicas, first web-0 on n1"},
]

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
    def do_DELETE(self):
        with open(record, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
        self.answer(503, {"error": {"code": "no_leader", "message": "leadership was lost before the write committed; retry shortly"}})
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
        elif url.path == "/v1/workloads/web":
            self.answer(200, WEB)
        elif url.path.startswith("/v1/workloads/"):
            self.answer(200, workload(url.path.rsplit("/", 1)[1])[0])
        elif url.path == "/v1/nodes":
            self.answer(200, {"items": NODES})
        elif url.path == "/v1/events":
            since = int(parse_qs(url.query).get("since", ["0"])[0])
            items = [e for e in EVENTS if e["seq"] > since]
            self.answer(200, {"items": items, "last": items[-1]["seq"] if items else since})
        elif url.path == "/v1/replicas" and parse_qs(url.query).get("workload", ["web"])[0] == "web":
            self.answer(200, {"items": WEB_REPLICAS})
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

run nodes --server "http://$LEADER" get nodes -o wide
gt_check "get nodes -o wide (golden)" diff -u - "$GT_TMP/nodes.out" <<'TXT'
NAME   CLOUD     STATE      CPU     MEMORY   REPLICAS   CPU REQ   MEM REQ   REGION   ZONE   ADDRESS   SUBNET   PIDS   COST   LABELS
n1     private   ready      4       8Gi      1          -         -         eu       a      <none>    <none>   4096   0      disk=ssd
n2     public    cordoned   1500m   2Gi      1          -         -         us       b      <none>    <none>   1024   0.12   <none>
TXT
run replicas --server "http://$LEADER" get replicas
gt_check "get replicas (golden)" diff -u - "$GT_TMP/replicas.out" <<'TXT'
NAME    WORKLOAD   GENERATION   NODE     STATE      READY   RESTARTS
web-0   web        2            n1       running    true    0
web-1   web        2            n2       starting   false   1
web-2   web        2            <none>   pending    false   0
TXT
run replica1 --server "http://$LEADER" get replicas web-1 -o wide
gt_check "get replicas NAME -o wide (golden)" diff -u - "$GT_TMP/replica1.out" <<'TXT'
NAME    WORKLOAD   GENERATION   NODE   STATE      READY   RESTARTS   CLOUD    EXIT   ADDRESS   REASON
web-1   web        2            n2     starting   false   1          public   137    <none>    health check failing
TXT
run describe --server "http://$LEADER" describe workload web
gt_check "describe workload (golden)" diff -u - "$GT_TMP/describe.out" <<'TXT'
Name:         web
Generation:   2
Age:          <unknown>
Image:        busybox
Command:      httpd -f -p 8080
Env:          GREETING hello
Ports:        none
Replicas:     3 desired, 3 placed, 1 running, 1 ready
Clouds:       private 1 (1 ready), public 1 (0 ready), <none> 1 (0 ready)
Resources:    cpu 250m, memory 64Mi, pids 128
Restart:      always
Health:       http port 8080, path /, interval 2s, timeout 1s, failure_threshold 3, start_period 0s
Placement:    clouds private public, spread node, constraints none, strategy spread
Autoscale:    off
Update:       max_surge 1, max_unavailable 0
Stop grace:   10s
Conditions:
  Progressing    fewer ready replicas than desired
Placement by node:
  NODE     CLOUD     REPLICAS   RUNNING   READY
  n1       private   1          1         1
  n2       public    1          0         0
  <none>   <none>    1          0         0
Replicas:
  NAME    GENERATION   NODE     STATE      READY   RESTARTS   CLOUD     EXIT   ADDRESS     REASON
  web-0   2            n1       running    true    0          private   0      10.88.0.2   <none>
  web-1   2            n2       starting   false   1          public    137    <none>      health check failing
  web-2   2            <none>   pending    false   0          <none>    0      <none>      no node fits
Events:
  SEQ   AGE         KIND    ACTOR      MESSAGE
  1     <unknown>   apply   user:ann   created: generation 1, 3 replicas
  3     <unknown>   place   server:1   placed 3 replicas, first web-0 on n1
TXT
run nodesyaml --server "http://$LEADER" get nodes n2 -o yaml
gt_check "get nodes NAME -o yaml (golden)" diff -u - "$GT_TMP/nodesyaml.out" <<'TXT'
name: n2
cloud: public
region: us
zone: b
labels: {}
capacity:
  cpu_millis: 1500
  memory_bytes: 2147483648
  pids: 1024
allocated:
  replicas: 1
cost: 0.12
state: cordoned
TXT

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

spec slow
run slow --server "http://$LEADER" apply -f "$GT_TMP/slow.yaml" --wait --timeout 1500ms
gt_check "apply --wait times out: exit 1" [ "$RC" = 1 ]
gt_check "the timeout message names the workload and where it stands" \
    grep -qx 'gantry: timed out after 1.5s waiting for workload/slow: 0/2 ready, 1 running (1 starting)' "$GT_TMP/slow.err"

spec viafollower
run redirect --server "http://$FOLLOWER" apply -f "$GT_TMP/viafollower.yaml"
gt_check "a follower's redirect is followed" \
    grep -qx 'workload/viafollower created (generation 1)' "$GT_TMP/redirect.out"
gt_check "the redirected request kept its method and body" \
    grep -q '^POST /v1/apply user:[^ ]* {"workloads": *\[{"name": *"viafollower"' "$GT_TMP/posts"

run flaky --server "http://$LEADER" get workloads flaky
gt_check "a 503 during an election is retried" bash -c "[ $RC = 0 ] && grep -q '^flaky ' '$GT_TMP/flaky.out'"
run del --server "http://$LEADER" delete web
gt_check "a delete answered 503 is reported, exit 1" \
    bash -c "[ $RC = 1 ] && grep -qx 'gantry: leadership was lost before the write committed; retry shortly' '$GT_TMP/del.err'"
gt_check "a delete answered 503 is not sent again" [ "$(grep -c '^DELETE /v1/workloads/web$' "$GT_TMP/posts")" = 1 ]
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
