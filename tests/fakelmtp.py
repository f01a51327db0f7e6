#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""fakelmtp.py: a small LMTP server (RFC 2033) that misbehaves on demand,
for popfetch's tests.

    fakelmtp.py (--socket PATH | --port N --port-file FILE [--host H])
                --log FILE [--store DIR] [options]

It listens on a Unix socket (mode 0666) or on TCP (port 0: one of its
choice, written to --port-file), serves each connection in a thread, and
logs one JSON object a line to --log: "connect", each command ("cmd",
with "batched": true when more input was already waiting behind it, which
a client may only do with PIPELINING), "message" (an accepted or refused
message: its sha256 after un-dot-stuffing and CRLF to LF, its size, and
how many of its lines did not end with CRLF), "drop", "protocol" errors
(LHLO twice, a command out of order). A message answered 250 is stored
in --store (if given) as one file, fsynced, and the directory fsynced,
before the answer is sent: an accepted message is durable.

Faults, for every transaction unless a condition narrows them:
    --no-pipelining        do not offer PIPELINING
    --greeting "CODE TEXT" instead of 220
    --mail "CODE TEXT"     the answer to MAIL FROM
    --rcpt "CODE TEXT"     the answer to RCPT TO
    --data-end "CODE TEXT" the answer after the final dot (message kept
                           only if it is 2xx)
    --refuse-subject WORD  answer 550 after the final dot to messages
                           whose header holds WORD
    --drop-mid-data N      close the connection after N bytes of DATA
    --hang-after-data      never answer the final dot (read on)
    --trickle              send every reply a byte at a time (a reader
                           must put lines together across reads)
    --bye-after-message    after answering a message, say 421 and close
                           (an idle limit): the client must reconnect
    --drop-second-mail     close the connection, unanswered, at the
                           second MAIL FROM of a connection (a drop the
                           client cannot see coming)
    --421-second-mail      the same, but answer it 421 first (an idle
                           limit that the client met with its command)
    --kill-client-at N     on the N-th accepted message (counted over
                           the server's life), store it, then SIGKILL the
                           peer process (SO_PEERCRED, Unix socket only)
                           before answering: a crash between a delivery
                           and popfetch's record of it
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

import testserver

LOCK = threading.Lock()
STATE = {"accepted": 0, "seq": 0}


def log(args, **rec):
    with LOCK:
        with open(args.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")


def store(args, data):
    with LOCK:
        STATE["seq"] += 1
        seq = STATE["seq"]
    name = "m%06d.%d" % (seq, os.getpid())
    tmp = os.path.join(args.store, "." + name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(args.store, name))
    dfd = os.open(args.store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def peer_pid(sock):
    try:
        cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                               struct.calcsize("3i"))
        return struct.unpack("3i", cred)[0]
    except OSError:
        return None


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.buf = b""
        self.out = []

    def write(self, data):
        self.out.append(data)

    def flush(self):
        data, self.out = b"".join(self.out), []
        if not self.server.args.trickle:
            self.request.sendall(data)
            return
        for i in range(len(data)):
            self.request.sendall(data[i:i + 1])
            time.sleep(0.002)

    def reply(self, line):
        self.write(line.encode("latin-1") + b"\r\n")
        self.flush()

    def handle(self):
        a = self.server.args
        self.conn = os.urandom(4).hex()
        log(a, event="connect", conn=self.conn)
        try:
            self.session(a)
        except (BrokenPipeError, ConnectionResetError):
            log(a, event="reset", conn=self.conn)

    def rawline(self, cap):
        """A line with its end (b"" at EOF); at most cap bytes."""
        while b"\n" not in self.buf and len(self.buf) < cap:
            chunk = self.request.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        i = self.buf.find(b"\n")
        n = i + 1 if 0 <= i < cap else cap
        line, self.buf = self.buf[:n], self.buf[n:]
        return line

    def readline(self):
        """A command line, and whether more input waits behind it."""
        line = self.rawline(4096)
        return line, len(self.buf) > 0

    def session(self, a):
        self.reply(a.greeting or "220 fakelmtp ready")
        if a.greeting and not a.greeting.startswith("2"):
            return
        lhlo, mail, rcpts, mails = False, None, 0, 0
        while True:
            raw, batched = self.readline()
            if not raw:
                log(a, event="eof", conn=self.conn)
                return
            line = raw.rstrip(b"\r\n").decode("latin-1")
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            log(a, event="cmd", conn=self.conn, line=line, batched=batched,
                crlf=raw.endswith(b"\r\n"))
            if verb == "LHLO":
                if lhlo:
                    log(a, event="protocol", conn=self.conn,
                        what="LHLO twice")
                lhlo = True
                caps = ["250-fakelmtp", "250-8BITMIME",
                        "250-ENHANCEDSTATUSCODES"]
                if not a.no_pipelining:
                    caps.append("250-PIPELINING")
                caps.append("250 SIZE")
                for c in caps:
                    self.write(c.encode() + b"\r\n")
                self.flush()
            elif not lhlo and verb not in ("QUIT", "NOOP", "RSET"):
                log(a, event="protocol", conn=self.conn,
                    what="%s before LHLO" % verb)
                self.reply("503 5.5.1 LHLO first")
            elif verb == "MAIL":
                mails += 1
                if (a.drop_second_mail or a.second_mail_421) and \
                        mails == 2:
                    if a.second_mail_421:
                        self.reply("421 4.4.2 fakelmtp idle, closing")
                    log(a, event="drop", conn=self.conn, at="MAIL")
                    return
                if mail is not None:
                    log(a, event="protocol", conn=self.conn,
                        what="MAIL inside a transaction")
                mail, rcpts = line[10:], 0
                self.reply(a.mail or "250 2.1.0 OK")
                if a.mail and not a.mail.startswith("2"):
                    mail = None
            elif verb == "RCPT":
                if mail is None:
                    self.reply("503 5.5.1 MAIL first")
                    continue
                r = a.rcpt or "250 2.1.5 OK"
                if r.startswith("2"):
                    rcpts += 1
                self.reply(r)
            elif verb == "DATA":
                if mail is None or rcpts == 0:
                    self.reply("503 5.5.1 No valid recipients")
                    continue
                self.reply("354 OK")
                if not self.data(a, mail, rcpts):
                    return
                mail = None
                if a.bye_after_message:
                    self.reply("421 4.4.2 fakelmtp idle, closing")
                    log(a, event="bye", conn=self.conn)
                    return
            elif verb == "RSET":
                mail = None
                self.reply("250 2.0.0 OK")
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("500 5.5.2 Unknown command")

    def data(self, a, mail, rcpts):
        """Reads the message; answers it. False: the connection ends."""
        body, bare, got = [], 0, 0
        while True:
            raw = self.rawline(1 << 20)
            if not raw:
                log(a, event="eof-in-data", conn=self.conn)
                return False
            got += len(raw)
            if a.drop_mid_data is not None and got >= a.drop_mid_data:
                log(a, event="drop", conn=self.conn, after=got)
                self.request.shutdown(socket.SHUT_RDWR)
                return False
            if not raw.endswith(b"\r\n"):
                bare += 1
            if raw in (b".\r\n", b".\n"):
                break
            if raw.startswith(b"."):
                raw = raw[1:]
            body.append(raw[:-2] + b"\n" if raw.endswith(b"\r\n") else raw)
        data = b"".join(body)
        head = data.split(b"\n\n", 1)[0]
        answer = a.data_end or "250 2.0.0 OK queued"
        if a.refuse_subject and a.refuse_subject.encode() in head:
            answer = "550 5.7.1 refused: %s" % a.refuse_subject
        rec = dict(event="message", conn=self.conn, sha256=hashlib.sha256(
            data).hexdigest(), size=len(data), bare_lf=bare, mail=mail,
            answer=answer)
        if a.hang_after_data:
            log(a, hang=True, **rec)
            while self.rawline(1 << 20):
                pass
            return False
        if answer.startswith("2"):
            if a.store:
                store(a, data)
            with LOCK:
                STATE["accepted"] += 1
                n = STATE["accepted"]
            if a.kill_client_at == n:
                pid = peer_pid(self.request)
                log(a, killed=pid, **rec)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                return False
        log(a, **rec)
        for _ in range(rcpts):
            self.write(answer.encode("latin-1") + b"\r\n")
        self.flush()
        return True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TCP6Server(TCPServer):
    address_family = socket.AF_INET6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--port", type=int)
    ap.add_argument("--port-file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", required=True)
    ap.add_argument("--store")
    ap.add_argument("--no-pipelining", action="store_true")
    ap.add_argument("--greeting")
    ap.add_argument("--mail")
    ap.add_argument("--rcpt")
    ap.add_argument("--data-end")
    ap.add_argument("--refuse-subject")
    ap.add_argument("--drop-mid-data", type=int)
    ap.add_argument("--hang-after-data", action="store_true")
    ap.add_argument("--trickle", action="store_true")
    ap.add_argument("--bye-after-message", action="store_true")
    ap.add_argument("--drop-second-mail", action="store_true")
    ap.add_argument("--421-second-mail", dest="second_mail_421",
                    action="store_true")
    ap.add_argument("--kill-client-at", type=int)
    a = ap.parse_args()
    # Answers may carry escapes for tests of escaping: "\x1b" in argv.
    for k in ("greeting", "mail", "rcpt", "data_end"):
        v = getattr(a, k)
        if v is not None:
            setattr(a, k, v.encode().decode("unicode_escape"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if a.socket:
        if os.path.exists(a.socket):
            os.unlink(a.socket)
        srv = UnixServer(a.socket, Handler)
        os.chmod(a.socket, 0o666)
    else:
        cls = TCP6Server if ":" in a.host else TCPServer
        srv = cls((a.host, a.port or 0), Handler)
        testserver.write_port_file(a.port_file, srv.server_address[1])
    srv.args = a
    srv.serve_forever()


if __name__ == "__main__":
    main()
