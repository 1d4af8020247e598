#!/usr/bin/env python3
"""Time from `POST /v1/apply` of an N-replica workload until all N replicas run, on a live
cluster. Repeats R times (deleting the workload in between) and prints each run and the
median. Usage: apply_latency.py API_URL REPLICAS RUNS [IMAGE]: the imported root filesystem
`busybox` running `sleep 3600` by default; with IMAGE (a registry reference), that image
running its own default command.

The polls read the leader's own state (`?stale=1` on the leader: every entry it has
applied, so a replica shows running there as soon as its status is committed) over one
kept-alive connection. A read without it costs a Raft barrier entry, replicated and synced
on every server; polled every 5 ms, those took a third of a 2-core machine's CPU from the
starts being measured."""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

api, replicas, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
image = sys.argv[4] if len(sys.argv) > 4 else None
where = urllib.parse.urlsplit(api)
conn = None


def call(method, path, body=None):
    """One request on a kept-alive connection (opened again when the server closed it): the
    polls below then cost the cluster little CPU of its own, which the 2 cores of a small
    machine would otherwise take from the replicas being started."""
    global conn
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(2):
        if conn is None:
            conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        try:
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            r = conn.getresponse()
            text = r.read()
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
            return json.loads(text or b"{}")
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = None
            if attempt == 1:
                raise


leader = call("GET", "/v1/cluster").get("leader_api_address")
if leader:
    where = urllib.parse.urlsplit("http://" + leader)
    if conn is not None:
        conn.close()
    conn = None


def running(name):
    items = call("GET", "/v1/replicas?stale=1&workload=" + name).get("items", [])
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
