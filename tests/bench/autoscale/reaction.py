"""Measures the autoscaler's reaction for tests/bench/autoscale: the flag file switches the
replicas' CPU load on and off; the API is polled every 50 ms."""
import json
import os
import statistics
import sys
import time
import urllib.request

api, flag, runs, down = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def call(path, body=None):
    req = urllib.request.Request(api + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def running():
    items = call("/v1/replicas?workload=burn")["items"]
    return sum(1 for r in items if r["state"] == "running")


def desired():
    return call("/v1/workloads/burn")["status"]["desired"]


def wait(pred, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pred():
            return True
        time.sleep(0.05)
    return False


call("/v1/apply", {"name": "burn", "image": "busybox", "command": ["load"],
                   "resources": {"cpu": "100m", "memory": "16Mi"}, "stop_grace": "1s",
                   "replicas": 1,
                   "autoscale": {"min": 1, "max": 4, "cpu": "50%", "scale_down_after": down}})
if not wait(lambda: running() == 1, 30):
    sys.exit("burn did not start")
first, full, back = [], [], []
for k in range(runs):
    time.sleep(3)  # idle samples in the window first
    open(flag, "w").write("on\n")
    t0 = time.monotonic()
    if not wait(lambda: running() >= 2, 30):
        sys.exit("no scale-up in run %d" % k)
    first.append(time.monotonic() - t0)
    if not wait(lambda: running() == 4 and desired() == 4, 60):
        sys.exit("not at 4 in run %d" % k)
    full.append(time.monotonic() - t0)
    time.sleep(2)
    os.unlink(flag)
    t1 = time.monotonic()
    if not wait(lambda: desired() == 1 and running() == 1, 600):
        sys.exit("no scale-down in run %d" % k)
    back.append(time.monotonic() - t1)
    print("run %d: first new replica running %.2fs, all 4 running %.2fs, back to 1 %.1fs"
          % (k + 1, first[-1], full[-1], back[-1]), flush=True)

print()
print("%-44s %12s %s" % ("", "gantry", "Kubernetes HPA defaults"))
print("%-44s %11.2fs %s" % ("load start -> first new replica running", statistics.median(first),
                            "15 s sync period + pod start"))
print("%-44s %11.2fs %s" % ("load start -> all 4 replicas running", statistics.median(full),
                            "several 15 s periods (scale-up policy: double per 15 s)"))
print("%-44s %11.1fs %s" % ("load end -> back to 1 (scale_down_after %s)" % down,
                            statistics.median(back), "300 s stabilization window + 15 s sync"))
