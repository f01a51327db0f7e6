#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a POP3 server sends, for tests/interop-*.test.

    interop-raw.py [options] OUT

Logs in with USER and PASS (after STLS, or over implicit TLS, verified
against --ca, as --tls says), reads CAPA, UIDL and LIST, RETRs every
message, and writes into the directory OUT:

    capa      the CAPA response after the login, one capability a line
    list      "N UID SIZE" a line, SIZE as LIST gives it
    wire.N    message N exactly as it came: CRLF lines, still dot-stuffed
    msg.N     message N as a POP3 client must store it (RFC 1939): the
              lines are split at CRLF and nothing else, a leading dot is
              taken off each line that has one, and each line ends in LF.
              Any other byte (a bare CR or LF, NUL, 8-bit) is kept.

With --utf8 it sends UTF8 (RFC 6856) before the login if CAPA lists it,
as a client that supports it would; "utf8" in OUT then says whether it
was sent.
It sends no QUIT: it closes its side of the connection and waits for the
server to close the other, so that nothing changes and the server has let
go of the mailbox before the test goes on. Exit status 0, or 1 with a
message on standard error.
"""

import argparse
import io
import os
import poplib
import socket
import ssl
import sys


def read_multiline(p):
    """The lines after a +OK until the terminating ".CRLF", as sent."""
    data = b""
    while True:
        chunk = p.file.readline(poplib._MAXLINE + 1)
        if not chunk:
            raise EOFError("the server closed the connection mid-response")
        # A "." line ends the response only at the start of a line, and a
        # line starts after CRLF (a bare LF does not end one).
        if chunk == b".\r\n" and (data == b"" or data.endswith(b"\r\n")):
            return data
        data += chunk


class QuickAck(io.RawIOBase):
    """Reads the socket acknowledging each segment at once: many servers
    write a response in pieces, and without this each multi-line
    response waits out a delayed ACK (40 ms) against their Nagle."""

    def __init__(self, sock):
        self.sock = sock

    def readable(self):
        return True

    def readinto(self, b):
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        n = self.sock.recv_into(b)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return n


def unstuff(wire):
    if not wire:
        return b""
    if not wire.endswith(b"\r\n"):
        raise ValueError("a message that does not end in CRLF")
    lines = wire[:-2].split(b"\r\n")
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\n"
                    for l in lines)


def multiline(p, cmd):
    p._putcmd(cmd)
    resp = p._getresp()
    return resp, read_multiline(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", choices=("implicit", "starttls", "none"),
                    required=True)
    ap.add_argument("--ca")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--utf8", action="store_true")
    ap.add_argument("--count", action="store_true",
                    help="only print how many messages STAT counts")
    ap.add_argument("out", nargs="?")
    a = ap.parse_args()

    ctx = None
    if a.tls != "none":
        ctx = ssl.create_default_context(cafile=a.ca)
    if a.tls == "implicit":
        p = poplib.POP3_SSL(a.host, a.port, context=ctx, timeout=20)
    else:
        p = poplib.POP3(a.host, a.port, timeout=20)
        if a.tls == "starttls":
            p.stls(ctx)
    p.file = io.BufferedReader(QuickAck(p.sock))
    # RFC 6856: UTF8 before the login, if CAPA offers it.
    utf8 = a.utf8 and "UTF8" in capa(p)
    if utf8:
        p._shortcmd("UTF8")
    p.user(a.user)
    p.pass_(a.password)
    if a.count:
        print(p.stat()[0])
    else:
        fetch(p, a, utf8)
    # No QUIT: a session that ends without one changes nothing (RFC 1939;
    # GNU Mailutils rewrites the headers of its mbox on QUIT even when
    # nothing was deleted). Close our side and wait until the server
    # closes its own: it has then let go of the mailbox, and the next
    # session will not find it locked.
    sock = p.sock
    sock.settimeout(10)
    try:
        # On a TLS socket this drops TLS and shuts the TCP connection.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
    except OSError:
        pass
    sock.close()


def capa(p):
    try:
        return p.capa()
    except poplib.error_proto:
        return {}


def fetch(p, a, utf8):
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "capa"), "w") as f:
        for k, v in capa(p).items():
            f.write(" ".join([k] + v) + "\n")
    with open(os.path.join(a.out, "utf8"), "w") as f:
        f.write("1\n" if utf8 else "0\n")
    _, uidl = multiline(p, "UIDL")
    _, listing = multiline(p, "LIST")
    uids = dict(l.split(b" ", 1) for l in uidl.split(b"\r\n") if l)
    sizes = dict(l.split(b" ", 1) for l in listing.split(b"\r\n") if l)
    with open(os.path.join(a.out, "list"), "wb") as f:
        for n in sorted(sizes, key=int):
            f.write(b"%s %s %s\n" % (n, uids[n], sizes[n].split()[0]))
            _, wire = multiline(p, "RETR %s" % n.decode())
            name = n.decode()
            with open(os.path.join(a.out, "wire." + name), "wb") as w:
                w.write(wire)
            with open(os.path.join(a.out, "msg." + name), "wb") as m:
                m.write(unstuff(wire))


if __name__ == "__main__":
    try:
        main()
    except (OSError, EOFError, ValueError, ssl.SSLError,
            poplib.error_proto) as e:
        sys.stderr.write("interop-raw.py: %s\n" % e)
        sys.exit(1)
