#!/usr/bin/env python3
"""The register checker of linearizable.py on small histories made by hand."""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linearizable  # noqa: E402


def w(client, value, invoke, complete, outcome="ok", key="k"):
    return {"client": client, "op": "write", "key": key, "value": value, "invoke": invoke,
            "complete": complete, "outcome": outcome}


def r(client, value, invoke, complete, outcome="ok", key="k"):
    return {"client": client, "op": "read", "key": key, "value": value, "invoke": invoke,
            "complete": complete, "outcome": outcome}


def ok(history):
    return linearizable.check_key(history)[0]


class RegisterTest(unittest.TestCase):
    def test_empty_and_initial(self):
        self.assertTrue(ok([]))
        self.assertTrue(ok([r("a", None, 0, 1)]))
        self.assertFalse(ok([r("a", "x", 0, 1)]))

    def test_sequential(self):
        self.assertTrue(ok([w("a", "1", 0, 1), r("b", "1", 2, 3), w("a", "2", 4, 5),
                            r("b", "2", 6, 7)]))

    def test_concurrent_linearizable(self):
        # b's read overlaps both writes: it may see either; c's later read sees the write
        # that can be ordered last.
        h = [w("a", "1", 0, 10), w("b", "2", 1, 4), r("c", "1", 5, 6), r("d", "1", 11, 12)]
        self.assertTrue(ok(h))
        h = [w("a", "1", 0, 10), w("b", "2", 1, 4), r("c", "2", 2, 3), r("d", "1", 5, 6),
             r("e", "1", 11, 12)]
        self.assertTrue(ok(h))

    def test_stale_read(self):
        # The write of 2 completed before the read began, which still sees 1.
        h = [w("a", "1", 0, 1), w("a", "2", 2, 3), r("b", "1", 4, 5)]
        self.assertFalse(ok(h))
        text = linearizable.check_key(h)[1]
        self.assertIn("not linearizable", text)

    def test_lost_write(self):
        # An acknowledged write is gone: a later read finds the register absent.
        h = [w("a", "1", 0, 1), r("b", "1", 2, 3), r("b", None, 4, 5)]
        self.assertFalse(ok(h))
        # Lost in the final reads of a server.
        h = [w("a", "1", 0, 1), w("a", "2", 2, 3)]
        final = linearizable.final_reads({"servers": {"1": {"k": "2"}, "2": {"k": "1"}}}, 3)
        self.assertFalse(ok(h + final))
        final = linearizable.final_reads({"servers": {"1": {"k": "2"}, "2": {"k": "2"}}}, 3)
        self.assertTrue(ok(h + final))

    def test_order_of_reads(self):
        # Two reads in sequence see 2 then 1 while the writes of 1 and 2 overlap both:
        # the register cannot go back.
        h = [w("a", "1", 0, 10), w("b", "2", 0, 10), r("c", "2", 1, 2), r("c", "1", 3, 4),
             r("c", "2", 5, 6)]
        self.assertFalse(ok(h))

    def test_unknown_write(self):
        # It may take effect late ...
        h = [w("a", "1", 0, 1), w("b", "2", 2, 3, "unknown"), r("c", "1", 4, 5),
             r("c", "2", 50, 51)]
        self.assertTrue(ok(h))
        # ... or never.
        h = [w("a", "1", 0, 1), w("b", "2", 2, 3, "unknown"), r("c", "1", 4, 5)]
        self.assertTrue(ok(h))
        # But not before it was invoked.
        h = [w("a", "1", 0, 1), r("c", "2", 2, 3), w("b", "2", 4, 5, "unknown")]
        self.assertFalse(ok(h))
        # And once: after a later write was seen, it cannot come back.
        h = [w("b", "2", 0, 1, "unknown"), r("c", "2", 2, 3), w("a", "3", 4, 5),
             r("c", "3", 6, 7), r("c", "2", 8, 9)]
        self.assertFalse(ok(h))

    def test_failed_write(self):
        # A write that certainly failed must never be seen.
        h = [w("a", "1", 0, 1, "failed"), r("b", "1", 2, 3)]
        self.assertFalse(ok(h))
        h = [w("a", "1", 0, 1, "failed"), r("b", None, 2, 3), r("b", "x", 4, 5, "failed")]
        self.assertTrue(ok(h))

    def test_keys_are_independent(self):
        h = [w("a", "1", 0, 1, key="x"), w("a", "2", 0, 1, key="y"), r("b", "1", 2, 3, key="x"),
             r("b", "2", 2, 3, key="y")]
        self.assertTrue(all(v[0] for v in linearizable.check(h).values()))
        h.append(r("b", "1", 4, 5, key="y"))
        res = linearizable.check(h)
        self.assertTrue(res["x"][0])
        self.assertFalse(res["y"][0])

    def test_random_sequential_histories(self):
        # Histories made by a real register with random overlaps are linearizable.
        rng = random.Random(7)
        for _ in range(50):
            t = 0.0
            value = None
            h = []
            for i in range(60):
                start = t
                t += rng.random()
                if rng.random() < 0.5:
                    value = "v%d" % i
                    h.append(w("c%d" % (i % 4), value, start - rng.random(), t + rng.random()))
                else:
                    h.append(r("c%d" % (i % 4), value, start - rng.random(), t + rng.random()))
                t += 0.01
            self.assertTrue(ok(h))

    def test_wide_concurrency_is_bounded(self):
        # Many overlapping writes and reads: memoisation keeps this quick.
        h = [w("c%d" % i, "v%d" % i, 0, 100) for i in range(14)]
        h += [r("r%d" % i, "v%d" % i, 1 + i, 1.5 + i) for i in range(14)]
        self.assertTrue(ok(h))
        h.append(r("z", "v0", 50, 51))
        self.assertFalse(ok(h))

    def test_search_limit_is_a_failure(self):
        h = [w("c%d" % i, "v%d" % i, 0, 100) for i in range(6)] + [r("z", "v3", 101, 102)]
        verdict, text = linearizable.check_key(h, limit=3)
        self.assertFalse(verdict)
        self.assertIn("undecided", text)
        self.assertTrue(linearizable.check_key(h)[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
