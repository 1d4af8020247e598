#!/usr/bin/env python3
"""The fault suite's driver: the seeded plan of faults, and the final report.

  driver.py plan SEED COUNT KIND,KIND,...
      COUNT lines "N KIND TARGET HOLD ARG...", the same for the same arguments. TARGET is a
      role resolved when the fault starts (leader, follower0/1 = the lower/higher id of the
      two others, agent4/5); HOLD is how long the fault lasts, in seconds.

  driver.py report --history H --final F --faults T
      Checks the run and prints its figures. Prints "CHECK PASS|FAIL description" lines,
      which test_faults.sh counts, and the figures after them.

Kinds (what each does is in test_faults.sh):
  minority   one server host's link down               TARGET leader|follower0|follower1
  minority-long  the leader host's link down for 10.5-13 s: past the node-down timeout and
             the 10 s a follower waits for the leader's answer to a request it relayed
  majority   two server hosts' links down              TARGET leader (+ a follower) | followers
  bridge     nftables drops between two servers, the third reaches both
  oneway     nftables drops of one direction between servers
  agent      an agent host's link down (some longer than the node-down timeout)
  delay      200 ms on every packet a host sends (netem, or NFQUEUE here)
  loss       random loss on a host's link, both ways
  crash      the leader host's link cut and its server stopped (SIGSTOP), then resumed
  crash-long the same for 10.5-13 s
  disk       a server's data file system filled, then freed (restarted if it stopped)
  corrupt-state  one byte of a stopped server's state database flipped
  corrupt-raft   one byte of a stopped server's Raft segment flipped
  corrupt-quorum  a follower cut off while writes go on, the other follower's newest Raft
             segment damaged, the leader cut off: can the two followers elect a leader
             without the writes the leader and the damaged follower acknowledged?
  clock      a server's wall clock stepped forwards or back (libfaketime), then reset
"""
import argparse
import json
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linearizable  # noqa: E402

ALL_KINDS = ["minority", "minority-long", "majority", "bridge", "oneway", "agent", "delay",
             "loss", "crash", "crash-long", "disk", "corrupt-state", "corrupt-raft", "corrupt-quorum",
             "clock"]
# Faults after which a node may rightly be found down: its agent cut off (past the timeout),
# or its packets lost.
DOWN_EXPECTED = {"agent", "loss"}


def plan(seed, count, kinds):
    rng = random.Random(int(seed))
    out = []
    server_roles = ["leader", "follower0", "follower1"]
    for n in range(1, count + 1):
        kind = rng.choice(kinds)
        if kind == "minority":
            line = [kind, rng.choice(server_roles), "%.1f" % rng.uniform(1.5, 4)]
        elif kind == "minority-long":
            line = [kind, "leader", "%.1f" % rng.uniform(10.5, 13)]
        elif kind == "majority":
            line = [kind, rng.choice(["leader", "followers"]), "%.1f" % rng.uniform(1.5, 3.5)]
        elif kind == "bridge":
            # leader: the leader and follower0 cannot talk (follower1 bridges); followers: the
            # two followers cannot talk (the leader bridges).
            line = [kind, rng.choice(["leader", "followers"]), "%.1f" % rng.uniform(2, 4)]
        elif kind == "oneway":
            # leader-out: the leader's packets to both followers are dropped; leader-in: the
            # followers' packets to the leader; follower-out: follower0's to the leader.
            line = [kind, rng.choice(["leader-out", "leader-in", "follower-out"]),
                    "%.1f" % rng.uniform(2, 4)]
        elif kind == "agent":
            hold = rng.choice([rng.uniform(1.5, 4), rng.uniform(7, 9)])
            line = [kind, rng.choice(["agent4", "agent5"]), "%.1f" % hold]
        elif kind == "delay":
            line = [kind, rng.choice(server_roles + ["agent4", "agent5"]),
                    "%.1f" % rng.uniform(3, 6), "200"]
        elif kind == "loss":
            line = [kind, rng.choice(server_roles + ["agent4", "agent5"]),
                    "%.1f" % rng.uniform(2, 4), str(rng.choice([10, 20, 30, 40]))]
        elif kind == "crash":
            line = [kind, "leader", "%.1f" % rng.uniform(2, 5)]
        elif kind == "crash-long":
            line = [kind, "leader", "%.1f" % rng.uniform(10.5, 13)]
        elif kind == "disk":
            line = [kind, rng.choice(server_roles), "%.1f" % rng.uniform(2, 4)]
        elif kind in ("corrupt-raft", "corrupt-state"):
            line = [kind, rng.choice(server_roles), "0", kind[len("corrupt-"):],
                    "%.6f" % rng.random(), "%.6f" % rng.random()]
        elif kind == "corrupt-quorum":
            line = [kind, "followers", "%.1f" % rng.uniform(2, 4), "raft", "1", "%.6f" % rng.random()]
        elif kind == "clock":
            step = rng.choice([1, -1]) * rng.choice([30, 300, 3600, 86400])
            line = [kind, rng.choice(server_roles), "%.1f" % rng.uniform(3, 6), str(step)]
        else:
            raise SystemExit("unknown fault kind %r (kinds: %s)" % (kind, ",".join(ALL_KINDS)))
        out.append(" ".join([str(n)] + line))
    return out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def lost_writes(records, final):
    """{server: [acknowledged writes the server's final copy contradicts]}."""
    writes_by_value = {}
    for r in records:
        if r["op"] == "write" and r["outcome"] != "failed":
            writes_by_value.setdefault((r["key"], r["value"]), []).append(r)
    lost = {}
    for server, values in final["servers"].items():
        lost[server] = []
        for r in records:
            if r["op"] != "write" or r["outcome"] != "ok":
                continue
            v = values.get(r["key"])
            writers = writes_by_value.get((r["key"], v), []) if v is not None else []
            # Lost when the value kept was written by operations that all ended before this
            # write began (or was never written by anyone): nothing can order it last.
            if not writers or all(w["outcome"] == "ok" and w["complete"] < r["invoke"] for w in writers):
                lost[server].append(r)
    return lost


def report(args):
    records = linearizable.load(args.history)
    with open(args.final) as f:
        final = json.load(f)
    faults = []
    with open(args.faults) as f:
        for line in f:
            if line.strip():
                faults.append(line.rstrip("\n").split("\t"))
    checks = []

    def check(ok, desc):
        checks.append((ok, desc))
        print("CHECK %s %s" % ("PASS" if ok else "FAIL", desc), flush=True)

    writes = [r for r in records if r["op"] == "write"]
    reads = [r for r in records if r["op"] == "read"]
    acked = [r for r in writes if r["outcome"] == "ok"]
    unknown = [r for r in writes if r["outcome"] == "unknown"]
    failed = [r for r in writes if r["outcome"] == "failed"]
    reads_ok = [r for r in reads if r["outcome"] == "ok"]

    check(len(acked) > 0 and len(reads_ok) > 0,
          "the clients had writes acknowledged (%d) and reads answered (%d)" % (len(acked), len(reads_ok)))

    lost = lost_writes(records, final)
    n_lost = len({id(r) for rs in lost.values() for r in rs})
    for server, rs in sorted(lost.items()):
        check(not rs, "server %s keeps every acknowledged write (%d lost)" % (server, len(rs)))
        for r in rs[:5]:
            print("  lost on server %s: %s; final value %r" % (
                server, linearizable.describe(r), final["servers"][server].get(r["key"])))

    last = max([r["complete"] for r in records] + [0.0])
    results = linearizable.check(records + linearizable.final_reads(final, last))
    bad = [k for k, (ok, _) in results.items() if not ok]
    settle = [r for r in faults if r[8] != "-"]
    late = [r for r in settle if r[8] == "late"]
    check(not late, "after each fault that cut agents off from the leader, the nodes ran the cluster's placement "
          "within 30 s (%d faults%s)" % (len(settle), ", not after: " + ", ".join(
              "%s %s" % (r[0], r[1]) for r in late) if late else ""))
    lossy = [r for r in faults if r[1].startswith("corrupt") and "LOST COMMITTED ENTRIES" in r[9]]
    check(not lossy, "a server started on a damaged file refuses to run or holds every entry it "
          "had committed%s" % (": not after " + ", ".join("fault %s (%s)" % (
              r[0], r[9].split("LOST COMMITTED ENTRIES ")[1].split(";")[0]) for r in lossy)
              if lossy else ""))
    false_downs = [r for r in faults if r[1] not in DOWN_EXPECTED and
                   ((r[6].isdigit() and int(r[6]) > 0) or (r[7].isdigit() and int(r[7]) > 0))]
    check(not false_downs, "no node was declared down during faults that leave every agent "
          "alive and reachable (all kinds but %s)%s" % (" and ".join(sorted(DOWN_EXPECTED)),
          ": declared during " + ", ".join("fault %s %s (%s events, %s log lines)" % (
              r[0], r[1], r[6], r[7]) for r in false_downs) if false_downs else ""))
    check(not bad, "the history is linearizable (%d keys%s)" % (
        len(results), (", not: " + ", ".join(bad)) if bad else ""))
    for k in bad:
        print("  %s: %s" % (k, results[k][1].replace("\n", "\n  ")))

    # Figures.
    print("figures:")
    print("  operations: %d writes (%d acknowledged, %d failed and repeated or given up, %d unknown), "
          "%d reads (%d answered)" % (len(writes), len(acked), len(failed), len(unknown), len(reads),
                                       len(reads_ok)))
    print("  acknowledged writes lost: %d" % n_lost)
    by_kind = {}
    for row in faults:
        # n kind role hold recovery status downs_events downs_logs settled note
        by_kind.setdefault(row[1], []).append(row)
    print("  faults injected: %d (%s)" % (len(faults), ", ".join(
        "%s %d" % (k, len(v)) for k, v in sorted(by_kind.items()))))
    print("  time to a writable cluster after the undo, by kind (median / max, seconds):")
    for k, rows in sorted(by_kind.items()):
        times = [float(r[4]) for r in rows if r[5] == "ok"]
        late = sum(1 for r in rows if r[5] != "ok")
        print("    %-13s %6.2f / %6.2f  (%d faults%s)" % (
            k, median(times), max(times) if times else float("nan"), len(rows),
            ", %d not writable within the limit" % late if late else ""))
    times = [float(r[8]) for r in settle if r[8] != "late"]
    if settle:
        print("  nodes running the cluster's placement after faults that cut agents off from the "
              "leader (median / max, seconds): %.2f / %.2f"
              % (median(times), max(times) if times else float("nan")))

    def downs(rows):
        return (sum(int(r[6]) for r in rows if r[6].isdigit()),
                sum(int(r[7]) for r in rows if r[7].lstrip("-").isdigit()))
    ev, lg = downs(by_kind.get("delay", []))
    print("  false node-down declarations during 200 ms delay phases: %d events, %d log lines "
          "(%d phases)" % (ev, lg, len(by_kind.get("delay", []))))
    print("  node-down declarations by fault kind (events / log lines; only agent faults held "
          "past the node-down timeout cut a node off for that long):")
    for k, rows in sorted(by_kind.items()):
        ev, lg = downs(rows)
        print("    %-13s %d / %d" % (k, ev, lg))
    for r in faults:
        if len(r) > 9 and r[9]:
            print("  fault %s %s %s: %s" % (r[0], r[1], r[2], r[9]))
    return 0 if all(ok for ok, _ in checks) else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        seed, count, kinds = sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
        for line in plan(seed, count, kinds):
            print(line)
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["report"])
    p.add_argument("--history", required=True)
    p.add_argument("--final", required=True)
    p.add_argument("--faults", required=True)
    return report(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
