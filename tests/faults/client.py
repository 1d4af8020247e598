#!/usr/bin/env python3
"""Workload clients of the fault suite, run inside the clients' host namespace.

  client.py run --servers A:P,B:P,C:P --history FILE --stop-file FILE [--clients 5]
                [--keys 6] [--seed N] [--timeout 12] [--think-ms 30]
      Concurrent clients, each a thread, write and read registers until the stop file
      exists. A register is a workload reg-K whose env.V holds the value: a write is
      POST /v1/apply of {"name":"reg-K",...,"env":{"V":VALUE}} (VALUE unique per client
      and attempt), a read is the linearizable GET /v1/workloads/reg-K (404: absent). Every
      operation is appended to the history (one JSON object a line): client, op, key,
      value, invoke and complete (time.monotonic() of this process), outcome, status,
      server, note.

      Outcomes, as docs/api.md "Errors" defines them: 200 is ok; a 503 whose message says
      the write "may or may not have been applied" is unknown, any other 503 means nothing
      was applied (failed; the client repeats the write after Retry-After, as the CLI
      does), as does a 507 (the NOSPACE alarm; repeated a second later); a timeout or a connection lost after the request was sent is unknown; a
      connection that could not be made is failed; 500 is unknown. Reads are ok only with
      an answer of 200 or 404; a read that failed tells nothing. A client moves to the next
      server after a failure.

  client.py probe --servers ... --limit SECONDS --name NAME
      Writes NAME (not a register) through any server until one write answers 200; prints
      the seconds it took; exit status 1 when the limit passed.

  client.py final --servers ... --keys 6 --out FILE [--history FILE]
      Reads every register (and every other key of the history) from every server's own
      copy (?stale=1) into
      {"servers": {"1": {"reg-0": VALUE, ...}, ...}}.

  client.py once --servers ... --history FILE --op write|read --key K [--value V]
      One operation, tried on the servers in the order given until one answers (a write
      certainly not applied is repeated on the next), appended to the history like the
      clients' (client "once"). Prints its outcome and value.

  client.py events --servers ... [--since N]
      Prints "LAST DOWNS" for the audit events after N: the newest sequence number and
      how many node_state events marked a node down. With N < 0: the newest sequence
      number any server applied (its gantry_events_last), and 0.
"""
import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time

CONNECT_TIMEOUT = 1.0


class Answer:
    def __init__(self, status, body, retry_after):
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def message(self):
        doc = self.json()
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return str(doc["error"].get("message", ""))
        return self.body[:200]


class NotSent(Exception):
    """The request never left: nothing can have been applied."""


class Lost(Exception):
    """The request was sent and no answer came back."""


def request(server, method, path, body=None, timeout=12.0):
    host, port = server.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=CONNECT_TIMEOUT)
    try:
        try:
            conn.connect()
        except OSError as e:
            raise NotSent(str(e))
        conn.sock.settimeout(timeout)
        headers = {"Content-Type": "application/json", "Connection": "close"}
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=data, headers=headers)
        except OSError as e:
            # Part of the request may have left: the server could have it whole.
            raise Lost("sending: %s" % e)
        try:
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            raise Lost("%s: %s" % (type(e).__name__, e))
        return Answer(resp.status, text, resp.getheader("Retry-After"))
    finally:
        conn.close()


def spec(key, value):
    return {"name": key, "image": "busybox", "replicas": 0, "env": {"V": value}}


class History:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def add(self, rec):
        line = json.dumps(rec, sort_keys=True)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def client_loop(cid, args, servers, history, rng):
    name = "c%d" % cid
    idx = cid % len(servers)
    attempt = 0
    keys = ["reg-%d" % i for i in range(args.keys)]
    while not os.path.exists(args.stop_file):
        key = rng.choice(keys)
        server = servers[idx]
        if rng.random() < 0.5:
            attempt += 1
            value = "%s-%d" % (name, attempt)
            # A write certainly not applied is repeated, as a client would; each attempt is
            # an operation of its own in the history.
            while True:
                rec = {"client": name, "op": "write", "key": key, "value": value,
                       "server": server}
                outcome, again, wait = do_write(rec, server, key, value, args.timeout)
                history.add(rec)
                if outcome != "ok":
                    idx = (idx + 1) % len(servers)
                    server = servers[idx]
                if not again or os.path.exists(args.stop_file):
                    break
                time.sleep(wait)
        else:
            rec = {"client": name, "op": "read", "key": key, "server": server}
            if do_read(rec, server, key, args.timeout) != "ok":
                idx = (idx + 1) % len(servers)
            history.add(rec)
        time.sleep(rng.uniform(0, 2 * args.think_ms) / 1000.0)


def do_write(rec, server, key, value, timeout):
    """Fills rec; returns (outcome, repeat?, seconds to wait before repeating)."""
    rec["invoke"] = time.monotonic()
    again, wait = False, 0.0
    try:
        a = request(server, "POST", "/v1/apply", spec(key, value), timeout)
        rec["status"] = a.status
        if a.status == 200:
            outcome = "ok"
        elif a.status == 503:
            msg = a.message()
            rec["note"] = msg[:200]
            if "may or may not" in msg:
                outcome = "unknown"
            else:
                outcome = "failed"
                again = True
                try:
                    wait = min(float(a.retry_after or 1), 2.0)
                except ValueError:
                    wait = 1.0
        elif a.status == 507:
            # The NOSPACE alarm: nothing was applied; repeated once space is back.
            outcome, again, wait = "failed", True, 1.0
            rec["note"] = a.message()[:200]
        elif 400 <= a.status < 500 and a.status != 408:
            outcome = "failed"
            rec["note"] = a.message()[:200]
        else:
            outcome = "unknown"
            rec["note"] = a.message()[:200]
    except NotSent as e:
        outcome, again, wait = "failed", True, 0.2
        rec["note"] = "not sent: %s" % e
    except Lost as e:
        outcome = "unknown"
        rec["note"] = "no answer: %s" % e
    rec["complete"] = time.monotonic()
    rec["outcome"] = outcome
    return outcome, again, wait


def do_read(rec, server, key, timeout):
    rec["invoke"] = time.monotonic()
    try:
        a = request(server, "GET", "/v1/workloads/" + key, None, timeout)
        rec["status"] = a.status
        if a.status == 200:
            doc = a.json()
            rec["value"] = doc["spec"]["env"].get("V") if doc else None
            rec["outcome"] = "ok" if doc else "failed"
        elif a.status == 404 and '"not_found"' in a.body:
            rec["value"] = None
            rec["outcome"] = "ok"
        else:
            rec["outcome"] = "failed"
            rec["note"] = a.message()[:200]
    except (NotSent, Lost) as e:
        rec["outcome"] = "failed"
        rec["note"] = str(e)[:200]
    rec["complete"] = time.monotonic()
    return rec["outcome"]


def cmd_run(args):
    servers = args.servers.split(",")
    history = History(args.history)
    threads = []
    for c in range(args.clients):
        rng = random.Random("%s-%d" % (args.seed, c))
        t = threading.Thread(target=client_loop, args=(c, args, servers, history, rng),
                             daemon=True)
        t.start()
        threads.append(t)
    print("clients: %d against %s" % (args.clients, args.servers), flush=True)
    for t in threads:
        t.join()
    print("clients: stopped", flush=True)
    return 0


def cmd_once(args):
    servers = args.servers.split(",")
    history = History(args.history)
    rec = {}
    for server in servers:
        rec = {"client": "once", "op": args.op, "key": args.key, "server": server}
        if args.op == "write":
            rec["value"] = args.value
            outcome, again, _ = do_write(rec, server, args.key, args.value, args.timeout)
        else:
            outcome = do_read(rec, server, args.key, args.timeout)
            again = outcome != "ok"
        history.add(rec)
        if not again:
            break
    print(rec.get("outcome"), rec.get("value"))
    return 0


def cmd_probe(args):
    servers = args.servers.split(",")
    start = time.monotonic()
    i = 0
    n = 0
    while time.monotonic() - start < args.limit:
        n += 1
        server = servers[i % len(servers)]
        left = max(0.5, args.limit - (time.monotonic() - start))
        try:
            a = request(server, "POST", "/v1/apply",
                        spec(args.name, "probe-%d-%d" % (os.getpid(), n)), min(left, 5.0))
            if a.status == 200:
                print("%.3f" % (time.monotonic() - start))
                return 0
        except (NotSent, Lost):
            pass
        i += 1
        time.sleep(0.05)
    print("%.3f" % (time.monotonic() - start))
    return 1


def cmd_final(args):
    servers = args.servers.split(",")
    out = {"servers": {}}
    # The registers of the clients and any other key of the history.
    keys = {"reg-%d" % k for k in range(args.keys)}
    if args.history and os.path.exists(args.history):
        with open(args.history) as f:
            keys |= {json.loads(line)["key"] for line in f if line.strip()}
    keys = sorted(keys)
    for n, server in enumerate(servers, 1):
        values = {}
        a = request(server, "GET", "/v1/workloads?stale=1", None, 20.0)
        if a.status != 200:
            print("server %s answered %d" % (server, a.status), file=sys.stderr)
            return 1
        items = {w["name"]: w for w in a.json()["items"]}
        for key in keys:
            w = items.get(key)
            values[key] = w["spec"]["env"].get("V") if w else None
        out["servers"][str(n)] = values
    with open(args.out, "w") as f:
        json.dump(out, f, sort_keys=True)
    return 0


def cmd_events(args):
    servers = args.servers.split(",")
    since = args.since
    downs = 0
    if since < 0:
        # The newest sequence number any server has applied (gantry_events_last).
        last = -1
        for server in servers:
            try:
                a = request(server, "GET", "/metrics", None, 5.0)
            except (NotSent, Lost):
                continue
            for line in a.body.splitlines():
                if line.startswith("gantry_events_last "):
                    last = max(last, int(float(line.split()[1])))
        if last < 0:
            print("no server answered /metrics", file=sys.stderr)
            return 1
        print(last, 0)
        return 0
    for _ in range(1000):
        answer = None
        for server in servers:
            try:
                a = request(server, "GET", "/v1/events?since=%d" % since, None, 10.0)
            except (NotSent, Lost):
                continue
            if a.status == 200:
                answer = a.json()
                break
        if answer is None:
            print("no server answered /v1/events", file=sys.stderr)
            return 1
        for e in answer["items"]:
            if e.get("kind") == "node_state" and e.get("message", "").startswith("down"):
                downs += 1
        if not answer["items"]:
            break
        since = answer["last"]
    print(since, downs)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run", "probe", "final", "events", "once"])
    p.add_argument("--servers", required=True)
    p.add_argument("--history")
    p.add_argument("--stop-file")
    p.add_argument("--clients", type=int, default=5)
    p.add_argument("--keys", type=int, default=6)
    p.add_argument("--seed", default="1")
    p.add_argument("--timeout", type=float, default=12.0)
    p.add_argument("--think-ms", type=float, default=30.0)
    p.add_argument("--limit", type=float, default=30.0)
    p.add_argument("--name", default="probe")
    p.add_argument("--out")
    p.add_argument("--since", type=int, default=0)
    p.add_argument("--op", choices=["write", "read"])
    p.add_argument("--key")
    p.add_argument("--value")
    args = p.parse_args()
    return {"run": cmd_run, "probe": cmd_probe, "final": cmd_final, "events": cmd_events,
            "once": cmd_once}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
