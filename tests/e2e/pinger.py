"""The customer's router pinging the floating IP: one ICMP echo every INTERVAL seconds.

    python tests/e2e/pinger.py TARGET OUT [--interval 0.05]

Runs (as root, inside the router's network namespace) until SIGTERM. Each reply appends
``SEQ SENT RECEIVED`` (wall-clock seconds) to OUT and flushes, so the test reads the
replies while it runs. A raw ICMP socket rather than ping(8): exact send and receive times
and no output to parse; iputils is not needed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo(ident: int, seq: int) -> bytes:
    payload = b"bondha-e2e"
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + payload), ident,
                       seq) + payload


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("out")
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    ident = os.getpid() & 0xFFFF
    sent: dict[int, float] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock, \
            open(args.out, "a", encoding="utf-8") as out:
        seq, next_send = 0, time.monotonic()
        while not stop:
            now = time.monotonic()
            if now >= next_send:
                seq = (seq + 1) & 0xFFFF
                sent[seq] = time.time()
                sent.pop((seq - 200) & 0xFFFF, None)  # a reply 10 s late is no reply
                with contextlib.suppress(OSError):  # no neighbour (FAILED): the gap shows it
                    sock.sendto(echo(ident, seq), (args.target, 0))
                next_send += args.interval
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
            if not ready:
                continue
            packet = sock.recv(2048)
            offset = (packet[0] & 0x0F) * 4
            kind, _, _, their_ident, their_seq = struct.unpack("!BBHHH",
                                                               packet[offset:offset + 8])
            if kind == ECHO_REPLY and their_ident == ident and their_seq in sent:
                out.write(f"{their_seq} {sent.pop(their_seq):.6f} {time.time():.6f}\n")
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
