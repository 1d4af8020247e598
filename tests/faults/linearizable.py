#!/usr/bin/env python3
"""Linearizability of a history of registers, one register per key.

A history is a list of operations, each a dict:
  client, op ("write" | "read"), key, value (None: the register is absent),
  invoke, complete (seconds on one clock), outcome ("ok" | "failed" | "unknown")

- an ok operation took effect once, between its invocation and its completion;
- a failed operation took no effect (a failed read tells nothing): it is left out;
- an unknown write may take effect at any time after its invocation, or never: it has no
  completion; an unknown read tells nothing and is left out. (Two shortcuts keep the
  search small and change no verdict: an unknown write whose value nobody read is left
  out, and one whose value is written by no other operation must have taken effect before
  the first read of that value ended, which becomes its completion.)

Registers of different keys are independent, so each key is checked alone. The search is
the Wing-Gong algorithm as refined by Lowe ("just-in-time linearization"): the calls and
returns of the key's operations are kept in one list ordered by time; walking it from the
front, the first operation whose call comes before any return may be linearized next if
the register allows it (a read must see the current value); it is then lifted out of the
list and the walk starts over. Reaching a return means the operation it ends was not
linearized in time: undo the last choice and try the next call after it. The set of
linearized operations with the register's value is remembered, so that a configuration
reached by another order is not explored twice. The history is linearizable when every
operation that has a return is linearized (unknown writes may be left over).

Usage: linearizable.py HISTORY.jsonl [FINAL.json]   (exit status 0 when linearizable)
"""
import json
import sys

INITIAL = None  # the value of a register no write reached: the workload does not exist


class Op:
    __slots__ = ("index", "rec", "is_write", "value", "invoke", "complete")

    def __init__(self, index, rec, complete):
        self.index = index
        self.rec = rec
        self.is_write = rec["op"] == "write"
        self.value = rec.get("value")
        self.invoke = rec["invoke"]
        self.complete = complete  # None: no return (unknown write)


class Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op, is_call):
        self.op = op
        self.is_call = is_call
        self.match = None  # a call's return (None for an unknown write), a return's call
        self.prev = None
        self.next = None


def prepare(records):
    """Operations of one key that constrain the register, in a fresh list."""
    first_read = {}  # value -> earliest completion of an ok read that returned it
    for r in records:
        if r["op"] == "read" and r["outcome"] == "ok":
            v = r.get("value")
            first_read[v] = min(first_read.get(v, r["complete"]), r["complete"])
    writers = {}
    for r in records:
        if r["op"] == "write" and r["outcome"] != "failed":
            writers[r.get("value")] = writers.get(r.get("value"), 0) + 1
    ops = []
    for r in records:
        if r["outcome"] == "failed":
            continue
        if r["op"] == "read":
            if r["outcome"] != "ok":
                continue
            ops.append(Op(len(ops), r, r["complete"]))
        elif r["outcome"] == "ok":
            ops.append(Op(len(ops), r, r["complete"]))
        else:
            v = r.get("value")
            # An unknown write nobody read: were it linearized, only writes could follow
            # before the next read, so leaving it out changes nothing.
            if v not in first_read:
                continue
            # The only write of its value that somebody read took effect before the first
            # such read ended: that is its return. (A read that ended before the write
            # began keeps it without a return; the search then fails on that read.)
            end = first_read[v]
            ops.append(Op(len(ops), r, end if writers[v] == 1 and end >= r["invoke"] else None))
    return ops


def build_list(ops):
    events = []
    for op in ops:
        call = Entry(op, True)
        # At equal times a call sorts before a return: the two operations count as
        # concurrent, which never rejects a linearizable history.
        events.append((op.invoke, 0, op.index, call))
        if op.complete is not None:
            ret = Entry(op, False)
            call.match = ret
            ret.match = call
            events.append((op.complete, 1, op.index, ret))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = Entry(None, True)
    prev = head
    for _, _, _, e in events:
        prev.next = e
        e.prev = prev
        prev = e
    return head


def lift(call):
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    if ret is not None:
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev


def unlift(call):
    ret = call.match
    if ret is not None:
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def step(state, op):
    """(allowed, next state) of the register."""
    if op.is_write:
        return True, op.value
    return op.value == state, state


MAX_CONFIGURATIONS = 5_000_000


def check_key(records, initial=INITIAL, limit=MAX_CONFIGURATIONS):
    """(linearizable, explanation) for the operations of one key. A search that would
    remember more than `limit` configurations stops undecided, which counts as a failure."""
    ops = prepare(records)
    head = build_list(ops)
    returns_left = sum(1 for op in ops if op.complete is not None)
    state = initial
    linearized = 0
    seen = set()
    stack = []
    deepest = (-1, None, None)
    entry = head.next
    while returns_left > 0:
        if entry is None:
            # Nothing left to try at this level (cannot happen while a return is pending,
            # as every remaining return follows its call); treated as a dead end.
            if not stack:
                break
            call, state = stack.pop()
            linearized &= ~(1 << call.op.index)
            unlift(call)
            if call.match is not None:
                returns_left += 1
            entry = call.next
            continue
        if entry.is_call:
            op = entry.op
            allowed, nxt = step(state, op)
            if allowed:
                key = (linearized | (1 << op.index), nxt)
                if key not in seen:
                    if len(seen) >= limit:
                        return False, ("undecided: the search passed %d configurations "
                                       "(%d operations)" % (limit, len(ops)))
                    seen.add(key)
                    stack.append((entry, state))
                    state = nxt
                    linearized = key[0]
                    lift(entry)
                    if entry.match is not None:
                        returns_left -= 1
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) > deepest[0]:
                deepest = (len(stack), entry.op, state)
            if not stack:
                break
            call, state = stack.pop()
            linearized &= ~(1 << call.op.index)
            unlift(call)
            if call.match is not None:
                returns_left += 1
            entry = call.next
    if returns_left == 0:
        return True, "linearizable (%d operations, %d configurations)" % (len(ops), len(seen))
    depth, stuck, value = deepest
    if stuck is None:
        return False, "not linearizable"
    lines = ["not linearizable: after %d operations were linearized, none of the orders "
             "tried could linearize %s (register then %r)" % (depth, describe(stuck.rec), value)]
    lo = stuck.invoke
    hi = stuck.complete if stuck.complete is not None else stuck.invoke
    near = [o for o in ops if o.invoke <= hi and (o.complete is None or o.complete >= lo - 1.0)]
    lines.append("operations around it:")
    for o in sorted(near, key=lambda o: o.invoke)[:40]:
        lines.append("  " + describe(o.rec))
    return False, "\n".join(lines)


def describe(rec):
    return "%s %s %s=%r [%.3f, %s] %s%s" % (
        rec.get("client"), rec["op"], rec["key"], rec.get("value"), rec["invoke"],
        "%.3f" % rec["complete"] if rec.get("complete") is not None else "-",
        rec["outcome"], (" (%s)" % rec["note"]) if rec.get("note") else "")


def check(records):
    """{key: (linearizable, explanation)} for a whole history."""
    by_key = {}
    for r in records:
        by_key.setdefault(r["key"], []).append(r)
    return {k: check_key(v) for k, v in sorted(by_key.items())}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def final_reads(final, after):
    """The stale reads of every key on every server, made once the cluster settled, as
    reads that happened after everything else."""
    out = []
    t = after + 1.0
    for server, values in sorted(final["servers"].items()):
        for key, value in sorted(values.items()):
            out.append({"client": "final@" + server, "op": "read", "key": key, "value": value,
                        "invoke": t, "complete": t, "outcome": "ok"})
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1])
        return 2
    records = load(argv[1])
    if len(argv) > 2:
        with open(argv[2]) as f:
            final = json.load(f)
        last = max([r["complete"] or r["invoke"] for r in records] + [0.0])
        records += final_reads(final, last)
    bad = 0
    for key, (ok, text) in check(records).items():
        print("%s: %s" % (key, text))
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
