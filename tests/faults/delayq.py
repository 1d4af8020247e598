#!/usr/bin/env python3
"""Holds the packets of one NFQUEUE queue for a fixed time, then lets them go.

The kernel of the test machines has no netem qdisc (CONFIG_NET_SCH_NETEM is off), so a
delay on a host's link is made in user space: faults.sh sends the host's outgoing packets
to queue QUEUE (iptables -j NFQUEUE, which nftables cannot express), and this program,
run inside the host's network namespace, gives each its ACCEPT verdict DELAY_MS after it
arrived; LOSS_PCT of them (0 to 100) get DROP instead. Packets leave in the order they
came. The packet bodies are not copied (metadata only).

usage: delayq.py QUEUE DELAY_MS [LOSS_PCT [SEED]]

The netlink messages are those of include/uapi/linux/netfilter/nfnetlink_queue.h:
  CONFIG  (subsys 3, type 2): NFQA_CFG_CMD {u8 cmd, u8 pad, be16 pf}, NFQA_CFG_PARAMS
          {be32 copy_range, u8 copy_mode}, NFQA_CFG_QUEUE_MAXLEN be32,
          NFQA_CFG_MASK/FLAGS be32
  PACKET  (type 0): NFQA_PACKET_HDR {be32 id, be16 hw_protocol, u8 hook}
  VERDICT (type 1): NFQA_VERDICT_HDR {be32 verdict, be32 id}
"""
import collections
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_CFG_MASK, NFQA_CFG_FLAGS = 4, 5
NFQA_CFG_F_FAIL_OPEN = 1
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, 0))

    def send(self, msg_type, attrs, ack=False):
        self.seq += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.num) + b"".join(attrs)
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        hdr = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                          flags, self.seq, 0)
        self.sock.send(hdr + body)
        if ack:
            self.expect_ack()

    def expect_ack(self):
        data = self.sock.recv(65536)
        length, kind = struct.unpack_from("=IH", data, 0)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err != 0:
                raise OSError(-err, os.strerror(-err))

    def bind(self):
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))], ack=True)
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], ack=True)
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 20000))], ack=True)
        # A full queue lets packets through rather than dropping them.
        self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                                     attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))],
                  ack=True)

    def unbind(self):
        try:
            self.send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0))])
        except OSError:
            pass

    def verdict(self, packet_id, verdict):
        self.send(NFQNL_MSG_VERDICT, [attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))])

    def packets(self, data):
        """Packet ids in one datagram of netlink messages."""
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 20
                end = off + length
                while a + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if (atype & 0x7FFF) == NFQA_PACKET_HDR:
                        yield struct.unpack_from("!I", data, a + 4)[0]
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3


def main():
    num = int(sys.argv[1])
    delay = int(sys.argv[2]) / 1000.0
    loss = float(sys.argv[3]) / 100.0 if len(sys.argv) > 3 else 0.0
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    q = Queue(num)
    q.bind()
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    held = collections.deque()
    print("delayq: queue %d, delay %d ms, loss %.1f%%" % (num, delay * 1000, loss * 100), flush=True)
    while running[0]:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, pid, v = held.popleft()
            q.verdict(pid, v)
        timeout = max(0.0, held[0][0] - now) if held else 0.5
        try:
            ready, _, _ = select.select([q.sock], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = q.sock.recv(1 << 20)
        except OSError:
            continue
        t = time.monotonic()
        for pid in q.packets(data):
            v = NF_DROP if loss and rng.random() < loss else NF_ACCEPT
            held.append((t + delay, pid, v))
    # Whatever is still held goes now, then the queue is unbound.
    while held:
        _, pid, v = held.popleft()
        q.verdict(pid, v)
    q.unbind()


if __name__ == "__main__":
    main()
