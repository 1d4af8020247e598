"""Samples a workload's ready replica count every 200 ms until a stop file appears, asking
the servers in turn (a killed leader's address fails over to the next), and writes
"MIN SAMPLES" to the output file. OUT.started appears after the first sample, so a caller
can wait for the sampler before it starts the operation under watch. Used by the cloud tests to show that moves and drains
never drop the ready count.

    python3 ready_sampler.py WORKLOAD OUT STOPFILE URL [URL...]
"""
import json
import os
import sys
import time
import urllib.request

workload, out, stop, urls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
lowest, samples, turn = None, 0, 0
deadline = time.monotonic() + 600
while not os.path.exists(stop) and time.monotonic() < deadline:
    for attempt in range(len(urls)):
        url = urls[(turn + attempt) % len(urls)]
        try:
            with urllib.request.urlopen(url + "/v1/replicas?workload=" + workload, timeout=1) as r:
                items = json.load(r)["items"]
        except Exception:
            continue
        turn = (turn + attempt) % len(urls)
        ready = sum(1 for x in items if x["state"] == "running" and x["ready"])
        lowest = ready if lowest is None else min(lowest, ready)
        samples += 1
        if samples == 1:
            open(out + ".started", "w").close()
        break
    time.sleep(0.2)
with open(out, "w") as f:
    f.write("%s %d\n" % (lowest if lowest is not None else -1, samples))
