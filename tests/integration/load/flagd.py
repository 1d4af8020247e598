#!/usr/bin/env python3
"""Streams the test's load flag to replicas: flagd.py DIR PORT.

Every connection gets a line "on" or "off" (whether DIR/on exists) at once, at every
change (the file is checked every 50 ms) and every second, so a replica blocked in its
shell's read builtin learns of a change without starting a process, and notices a dead
connection by the silence.
"""
import os
import socketserver
import sys
import time

FLAG_DIR = sys.argv[1]
PORT = int(sys.argv[2])


def state():
    return b"on\n" if os.path.exists(os.path.join(FLAG_DIR, "on")) else b"off\n"


class Stream(socketserver.BaseRequestHandler):
    def handle(self):
        last, sent_at = None, 0.0
        try:
            while True:
                now, t = state(), time.monotonic()
                if now != last or t - sent_at >= 1.0:
                    self.request.sendall(now)
                    last, sent_at = now, t
                time.sleep(0.05)
        except OSError:
            return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server(("0.0.0.0", PORT), Stream).serve_forever()
