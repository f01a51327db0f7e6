#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""shaper.py: a plaintext POP3 relay on 127.0.0.1 that slows a session
down and can hide PIPELINING, for tests that must land between a
client's steps (this kernel has no netem).

    shaper.py --target PORT --port-file FILE [--rate BYTES_PER_S]
              [--delay MS] [--no-pipelining]

Listens on a free port of 127.0.0.1 (written to FILE once it listens)
and relays each connection to 127.0.0.1:PORT. The server's bytes reach
the client at no more than --rate bytes a second (default: no limit);
each chunk the client sends reaches the server --delay ms late (default
0). With --no-pipelining, every line of the server that is exactly
"PIPELINING" (a CAPA capability) is removed, so the client sees a server
that cannot pipeline; only for a server whose other lines are known
never to be that word (the test's messages). When either side closes,
both are closed. Python standard library only; two threads a
connection; runs until killed.
"""

import argparse
import os
import socket
import threading
import time


def close_both(a, b):
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def up(client, server, delay):
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            if delay > 0:
                time.sleep(delay)
            server.sendall(data)
    except OSError:
        pass
    close_both(client, server)


def down(server, client, rate, strip):
    pending = b""
    start = time.monotonic()
    sent = 0
    try:
        while True:
            data = server.recv(16384)
            if not data:
                break
            if strip:
                pending += data
                cut = pending.rfind(b"\n") + 1
                lines = pending[:cut].split(b"\n")
                pending = pending[cut:]
                data = b"\n".join(l for l in lines
                                  if l.rstrip(b"\r") != b"PIPELINING")
            if not data:
                continue
            client.sendall(data)
            sent += len(data)
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                elif ahead < -0.05:
                    # Idle time does not build up a burst allowance.
                    start = time.monotonic() - sent / rate
    except OSError:
        pass
    close_both(client, server)


def serve(conn, a):
    try:
        server = socket.create_connection(("127.0.0.1", a.target))
    except OSError:
        conn.close()
        return
    for s in (conn, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = [threading.Thread(target=up, args=(conn, server, a.delay / 1000.0),
                          daemon=True),
         threading.Thread(target=down, args=(server, conn, a.rate,
                                             a.no_pipelining), daemon=True)]
    for th in t:
        th.start()
    for th in t:
        th.join()
    conn.close()
    server.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--delay", type=float, default=0)
    ap.add_argument("--no-pipelining", action="store_true")
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, a.port_file)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, a), daemon=True).start()


if __name__ == "__main__":
    main()
