#!/usr/bin/env python3
"""Time from `POST /v1/apply` of an N-replica workload until all N replicas run, on a live
cluster. Repeats R times (deleting the workload in between) and prints each run and the
median. Usage: apply_latency.py API_URL REPLICAS RUNS [IMAGE]: the imported root filesystem
`busybox` running `sleep 3600` by default; with IMAGE (a registry reference), that image
running its own default command."""
import json
import statistics
import sys
import time
import urllib.request

api, replicas, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
image = sys.argv[4] if len(sys.argv) > 4 else None


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}")


def running(name):
    items = call("GET", "/v1/replicas?workload=" + name).get("items", [])
    return sum(1 for r in items if r["workload"] == name and r["state"] == "running")


results = []
for run in range(runs):
    name = "lat%d" % run
    spec = {"name": name, "image": image or "busybox",
            "replicas": replicas, "resources": {"cpu": "10m", "memory": "8Mi"},
            "stop_grace": "1s"}
    if image is None:
        spec["command"] = ["sleep", "3600"]
    t0 = time.monotonic()
    call("POST", "/v1/apply", spec)
    deadline = t0 + 30
    while running(name) < replicas and time.monotonic() < deadline:
        time.sleep(0.005)
    took = time.monotonic() - t0
    ok = running(name) >= replicas
    results.append(took if ok else float("inf"))
    print("run %d: %d replicas running after %.0f ms%s" % (run + 1, replicas, took * 1000,
                                                           "" if ok else " (TIMED OUT)"))
    call("DELETE", "/v1/workloads/" + name)
    end = time.monotonic() + 30
    while call("GET", "/v1/replicas?workload=" + name).get("items") and time.monotonic() < end:
        time.sleep(0.05)
print("median: %.0f ms over %d runs" % (statistics.median(results) * 1000, runs))
