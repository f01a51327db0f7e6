# SPDX-License-Identifier: GPL-3.0-or-later
"""testserver.py: what the test servers share (tests/fakepop3.py,
tests/proxyd.py, tests/fakelmtp.py): the JSON-lines log, the port file,
the listening loop and the exit on SIGTERM. A module, not a program: the
scripts import it from their own directory, which Python puts first on
sys.path when it runs a script. Python 3 standard library only.
"""

import json
import os
import signal
import socket
import sys
import threading
import time


class Log:
    """The --log file: one JSON object a line, {"event": ..., fields...,
    "t": seconds since the start}; nothing without a path."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.f = open(path, "a", encoding="utf-8") if path else None

    def __call__(self, event, **fields):
        if not self.f:
            return
        rec = {"event": event}
        rec.update(fields)
        rec["t"] = round(time.monotonic() - self.start, 3)
        with self.lock:
            self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self.f.flush()


def add_listen_args(ap, port_help, verbose_help):
    """The options of serve() and Log: --port, --port-file, --max-conns,
    --lifetime, --log and -v."""
    ap.add_argument("--port", type=int, default=0, help=port_help)
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--max-conns", type=int, default=0,
                    help="exit after serving N connections (0: no limit)")
    ap.add_argument("--lifetime", type=float, default=60,
                    help="exit after this many seconds in any case (60)")
    ap.add_argument("--log", help="JSON-lines log file (appended to)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help=verbose_help)


def write_port_file(path, port):
    """Writes the port to path whole: a reader never sees half of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def serve(args, log, host, backlog, session, **listen_fields):
    """Listens on host:args.port and runs session(sock, n) in a thread for
    the n-th connection, until args.lifetime is over or args.max_conns
    connections came; then waits for the sessions, until the lifetime is
    over. Logs "listen" (the port and listen_fields), "connect" and
    "exit"."""
    deadline = time.monotonic() + args.lifetime
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, args.port))
    ls.listen(backlog)
    ls.settimeout(0.2)
    port = ls.getsockname()[1]
    log("listen", port=port, **listen_fields)
    if args.port_file:
        write_port_file(args.port_file, port)
    threads, n = [], 0
    while time.monotonic() < deadline and \
            (not args.max_conns or n < args.max_conns):
        try:
            sock, peer = ls.accept()
        except socket.timeout:
            continue
        n += 1
        sock.settimeout(None)
        # Replies go out at once: no Nagle delay between the parts.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log("connect", conn=n, peer="%s:%d" % peer)
        t = threading.Thread(target=session(sock, n), daemon=True)
        t.start()
        threads.append(t)
    ls.close()
    for t in threads:
        t.join(max(0, deadline - time.monotonic()))
    if time.monotonic() >= deadline:
        log("exit", reason="lifetime over")
    else:
        log("exit", reason="max-conns served")


def run(log, serve_fn):
    """Runs serve_fn(); logs "exit" on SIGTERM. Exits at once either way:
    the sessions' threads are not waited for."""
    signal.signal(signal.SIGTERM, lambda *_: (
        log("exit", reason="SIGTERM"), os._exit(0)))
    serve_fn()
    sys.stdout.flush()
    os._exit(0)
