"""Moves a workload back and forth between clouds for tests/bench/move and reports each
move's time and the fewest ready replicas seen, polled every 50 ms."""
import json
import statistics
import sys
import time
import urllib.request

api, replicas, moves = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def call(path, body=None):
    req = urllib.request.Request(api + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def where():
    items = call("/v1/replicas?workload=web")["items"]
    live = [r for r in items if r["state"] not in ("stopping", "stopped", "lost")]
    ready = [r for r in live if r["state"] == "running" and r["ready"]]
    return len(ready), live, ready


call("/v1/apply", {"name": "web", "image": "busybox", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                   "replicas": replicas, "resources": {"cpu": "10m", "memory": "8Mi"}, "stop_grace": "1s",
                   "placement": {"clouds": ["private"]}, "update": {"max_surge": 2, "max_unavailable": 0}})
t0 = time.monotonic()
while where()[0] < replicas:
    if time.monotonic() - t0 > 60:
        sys.exit("web did not start")
    time.sleep(0.1)
times, lows = [], []
for k in range(moves):
    to = "public" if k % 2 == 0 else "private"
    low = replicas
    t0 = time.monotonic()
    call("/v1/workloads/web/move", {"to": to})
    while True:
        n, live, ready = where()
        low = min(low, n)
        if len(live) == replicas and len(ready) == replicas and all(r["cloud"] == to for r in ready):
            break
        if time.monotonic() - t0 > 120:
            sys.exit("move %d did not finish" % k)
        time.sleep(0.05)
    times.append(time.monotonic() - t0)
    lows.append(low)
    print("move %d to %-8s %.2fs, fewest ready %d of %d" % (k + 1, to, times[-1], low, replicas), flush=True)
    time.sleep(1)
print()
print("median move time %.2fs (target under 3 s); fewest ready replicas in any move: %d of %d (target: never below %d)"
      % (statistics.median(times), min(lows), replicas, replicas))
