#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""fakepop3.py: a scriptable, fault-injecting POP3 server for popfetch's tests.

It serves a mailbox made from a directory of LF message files (sorted by
name; the UIDL of a message is its file name) with CRLF line endings and
dot-stuffing, on 127.0.0.1 only, optionally over TLS (implicit, or STLS),
and misbehaves on request. Python 3 standard library only.

Files over 1 MiB are streamed from disk in chunks, never held whole in
memory. With --wire, files are served as they are, already in wire form
(CRLF lines; bare CR, bare LF and NUL bytes stay as they are): only
dot-stuffing and, if missing, a final CRLF are added.

Deletions take effect on QUIT only (RFC 1939): the files are moved to
--trash, or, without --trash, hidden from later connections of this
server and left where they are. One session at a time holds the maildrop:
a second login meanwhile gets -ERR [IN-USE].

The --log file gets one JSON object a line: every command received (the
arguments of PASS, APOP and AUTH, and AUTH continuation lines, replaced by
"<secret>", with "tls" saying whether the connection was encrypted when
the secret arrived), connection events, faults injected, messages sent
whole ("retr", with the UID), deletions committed and rolled back, and
the verb of each command that a stalled session left unanswered
("ignored"), and each UTF8 command ("utf8": whether it was accepted, and
the state it came in).
Example: {"event":"cmd","cmd":"PASS","arg":"<secret>","tls":false,
"conn":1,"t":0.013}

With --utf8 the server offers UTF-8 mode (RFC 6856), and until the client
enables it, serves a message with 8-bit bytes in its header as Courier
does: a substitute ("Subject: Cannot display Unicode content") with the
original attached as message/global ("retr" then says "wrapped"). UTF8
is accepted only before login, as the RFC says (Courier also takes it
after login).
"""

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time

import testserver

# name: (parameters with defaults, description). Every scenario also takes
# conn=N: act on the N-th connection only (default: on every connection).
SCENARIOS = {
    "stls-refused": ({}, "answer STLS with -ERR"),
    "greeting-err": ({}, "greet with -ERR, then close"),
    "greeting-garbage": ({}, "greet with a non-POP3 line, then read until "
                         "the client closes"),
    "greeting-drop": ({}, "close the connection before any greeting"),
    "greeting-stall": ({}, "send no greeting; wait until the client closes"),
    "drop-mid-retr": ({"msg": 1, "after": 100},
                      "close (FIN) after AFTER bytes of message MSG (the "
                      "bytes after the +OK line, dot-stuffed; the last "
                      "three are the terminating \".\\r\\n\")"),
    "reset-mid-retr": ({"msg": 1, "after": 100},
                       "reset (RST) after AFTER bytes of message MSG (see "
                       "drop-mid-retr)"),
    "stall-mid-retr": ({"msg": 1, "after": 100},
                       "stop sending after AFTER bytes of message MSG (see "
                       "drop-mid-retr), keep the connection open"),
    "no-quit-reply": ({"commit": 1, "stall": 0},
                      "on QUIT commit the deletions (unless commit=0) and "
                      "close without a reply (stall=1: keep the connection "
                      "open, silent, until the client closes)"),
    "err-on-quit": ({"commit": 0},
                    "answer QUIT with -ERR; commit nothing (unless "
                    "commit=1)"),
    "err-on-dele": ({"msg": 0}, "answer DELE of message MSG (0: every "
                    "message) with -ERR"),
    "idle-timeout": ({"secs": 2},
                     "after login, close the connection (committing "
                     "nothing) when no command came for SECS seconds"),
    "in-use": ({}, "answer the login with -ERR [IN-USE]"),
    "auth-fail": ({}, "answer the login with -ERR [AUTH]"),
    "sys-temp": ({}, "answer the login with -ERR [SYS/TEMP]"),
    "duplicate-uids": ({"msg": 2, "of": 1},
                       "give message MSG the UID of message OF"),
    "hostile-uids": ({"count": 0},
                     "give the first COUNT messages (0: up to 10) hostile "
                     "UIDs: '../../../../tmp/popfetch-escape', 'a/b', '..', "
                     "'has space', control characters, 71 and 200 chars "
                     "(these four are invalid), then 70 chars, 'end', "
                     "'a\\b' (valid)"),
    "list-lies": ({"delta": -10, "msg": 0},
                  "report the size of message MSG (0: all) in LIST, STAT "
                  "and RETR as DELTA octets off"),
    "long-line": ({"size": 10 * 1024 * 1024},
                  "add a last message (UID long-line) whose body is one "
                  "line of SIZE bytes"),
    "plaintext-on-tls-port": ({}, "with --tls-implicit, talk plaintext "
                              "anyway"),
    "apop-greeting": ({"close": 0},
                      "put a <timestamp> in the greeting and answer APOP "
                      "with -ERR [AUTH] (close=1: then close the connection, "
                      "as Solid POP3 does)"),
    "long-status": ({"msg": 0, "size": 10 * 1024 * 1024},
                    "send a status line of SIZE bytes without CRLF, then "
                    "wait until the client closes: as the greeting (msg=0) "
                    "or as the reply to RETR MSG"),
    "utf8-refused": ({}, "answer UTF8 with -ERR (with --utf8)"),
    "bare-ok": ({}, "greet with a bare \"+OK\" and give every +OK "
                "whose text is free (not STAT's, LIST n's, UIDL n's) none"),
    "stls-always": ({}, "list STLS in CAPA also over TLS and after login "
                    "(as some servers do)"),
    "header-uids": ({}, "UIDs are the MD5 of the message's header, as "
                    "popa3d makes them: identical headers, one UID"),
    "fail-close": ({"pause": 2, "reply": 1},
                   "after a failed login, wait PAUSE seconds, send -ERR "
                   "(reply=0: nothing) and close, as Solid POP3 does"),
    "long-capa": ({"size": 5000, "when": 0},
                  "add a capability line of SIZE bytes (\"X-LONG xxx...\"): "
                  "when=0 before and after login, 1 before, 2 after"),
    "hostile-err": ({"at": 2, "msg": 1},
                    "answer with -ERR and a text full of terminal escapes, "
                    "BEL, CR, DEL and bytes >= 0x80: at=1 as the greeting "
                    "(then close), 2 to the login (PASS, APOP or AUTH), "
                    "3 to RETR MSG, 4 to DELE MSG, 5 to QUIT (nothing "
                    "committed)"),
}

HOSTILE_UIDS = [
    "../../../../tmp/popfetch-escape", "a/b", "..", "has space",
    "ctl\x1b]0;x\x07\x01", "x" * 71, "y" * 200,
    "z" * 70, "end", "a\\b",
]

# What a hostile server might say to a terminal: clear the screen, set
# the window title, ring the bell, return the carriage to overwrite the
# line, DEL, raw high bytes (not UTF-8) and UTF-8. No LF: it is one line.
HOSTILE_TEXT = (b"-ERR \x1b[2J\x1b]0;pwned\x07 bell\x07 cr\r here \x7f del "
                b"\x80\x9b\xff\xfe high \xc3\xa9 utf8 \x1b[31mred\x1b[0m")

MAX_LINE = 64 * 1024
STREAM_MIN = 1024 * 1024    # files larger than this are streamed
CHUNK = 1024 * 1024


class Closed(Exception):
    """The session is over (client gone, or a fault closed it)."""


def parse_scenarios(specs):
    """'a:k=v,k=v,b' (repeatable) -> {name: {param: int}}."""
    active = {}
    last = None
    for spec in specs:
        for token in filter(None, (t.strip() for t in spec.split(","))):
            if "=" in token and ":" not in token:
                if last is None:
                    raise SystemExit("parameter %r before any scenario"
                                     % token)
                name, param = last, token
            else:
                name, _, param = token.partition(":")
                if name not in SCENARIOS:
                    raise SystemExit("unknown scenario %r (see --help)"
                                     % name)
                params = dict(SCENARIOS[name][0])
                params["conn"] = 0
                active[name] = params
                last = name
            if param:
                key, _, value = param.partition("=")
                if key not in active[name]:
                    raise SystemExit("scenario %s has no parameter %r"
                                     % (name, key))
                try:
                    active[name][key] = int(value)
                except ValueError:
                    raise SystemExit("%s: %s must be a number"
                                     % (name, key))
    return active


def to_crlf(raw):
    """LF (or CRLF) lines to CRLF; a missing final newline is added."""
    data = re.sub(rb"\r?\n", b"\r\n", raw)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(data):
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def file_chunks(path, wire):
    """The file at path in CRLF form (to_crlf, or as it is with wire), in
    chunks of about CHUNK bytes; a final CRLF is added if missing."""
    carry, last = b"", b""
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if not raw:
                break
            raw, carry = carry + raw, b""
            if not wire and raw.endswith(b"\r"):
                # It may be the CR of a CRLF split between two chunks.
                raw, carry = raw[:-1], b"\r"
            data = raw if wire else re.sub(rb"\r?\n", b"\r\n", raw)
            if data:
                last = (last + data)[-2:]
                yield data
    if carry or (last and last != b"\r\n"):
        yield carry + b"\r\n"


def stuffed_chunks(chunks):
    """Dot-stuff a stream of CRLF chunks (a line may span chunks)."""
    tail = b"\r\n"   # the last two bytes sent: the start is a line start
    for data in chunks:
        joined = tail + data
        yield joined.replace(b"\r\n.", b"\r\n..")[len(tail):]
        tail = joined[-2:]


def unicode_wrapper(data):
    """What Courier serves instead of a message with UTF-8 in its header
    to a client that did not enable UTF-8 mode: a substitute, with the
    original attached as message/global (RFC 6532)."""
    b = b"=_fakepop3_utf8"
    return (b"From: Mail Delivery Subsystem <postmaster@fakepop3.test>\r\n"
            b"Subject: Cannot display Unicode content\r\n"
            b"Mime-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n"
            b"\r\n--" + b + b"\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            b"This E-mail message was determined to be Unicode-formatted\r\n"
            b"but your E-mail reader does not support Unicode E-mail.\r\n"
            b"\r\n--" + b + b"\r\n"
            b"Content-Type: message/global\r\n\r\n" + data +
            b"\r\n--" + b + b"--\r\n")


class Message:
    """data is the CRLF form in memory, or None for a file streamed from
    path; size is its length either way."""

    def __init__(self, name, uid, data, path=None, wire=False, size=None):
        self.name, self.uid, self.data = name, uid, data
        self.path, self.wire = path, wire
        self.size = len(data) if data is not None else size
        self.wrapped = False

    def chunks(self):
        """The message dot-stuffed, without the terminating line."""
        if self.data is not None:
            return iter([dot_stuff(self.data)])
        return stuffed_chunks(file_chunks(self.path, self.wire))

    def whole(self):
        if self.data is not None:
            return self.data
        return b"".join(file_chunks(self.path, self.wire))


class Mailbox:
    """The maildrop, shared by all connections."""

    def __init__(self, args, log):
        self.dir, self.trash, self.log = args.maildir, args.trash, log
        self.wire = args.wire
        self.utf8_offered = args.utf8 is not None
        self.uids = {}      # file name -> UID, from --uid
        for spec in args.uid:
            name, _, uid = spec.partition("=")
            self.uids[name] = uid
        self.lock = threading.Lock()
        self.owner = None
        self.gone = set()   # names deleted without --trash
        self.sizes = {}     # (name, size, mtime) -> CRLF size, streamed

    def acquire(self, conn):
        with self.lock:
            if self.owner is not None:
                return False
            self.owner = conn
            return True

    def release(self, conn):
        with self.lock:
            if self.owner == conn:
                self.owner = None

    def load(self, sc, utf8=True):
        """The messages as this session sees them: utf8 says whether
        UTF-8 mode is on (without it, --utf8 wraps 8-bit headers)."""
        msgs = []
        names = sorted(os.listdir(self.dir)) if self.dir else []
        for name in names:
            path = os.path.join(self.dir, name)
            if name.startswith(".") or name in self.gone or \
                    not os.path.isfile(path):
                continue
            msgs.append(self.message(name, path))
        for m in msgs:
            if m.name in self.uids:
                m.uid = self.uids[m.name]
        if sc("header-uids"):
            for m in msgs:
                head = m.whole().partition(b"\r\n\r\n")[0]
                m.uid = hashlib.md5(head).hexdigest()
        if self.utf8_offered and not utf8:
            for m in msgs:
                if m.data is not None and \
                        max(m.data.partition(b"\r\n\r\n")[0], default=0) \
                        >= 0x80:
                    m.data, m.wrapped = unicode_wrapper(m.data), True
                    m.size = len(m.data)
        p = sc("duplicate-uids")
        if p and max(p["msg"], p["of"]) <= len(msgs):
            msgs[p["msg"] - 1].uid = msgs[p["of"] - 1].uid
        p = sc("hostile-uids")
        if p:
            n = p["count"] or len(HOSTILE_UIDS)
            for m, uid in zip(msgs[:n], HOSTILE_UIDS):
                m.uid = uid
        p = sc("long-line")
        if p:
            data = (b"From: fakepop3 <fake@example.org>\r\n"
                    b"Subject: a very long line\r\n\r\n" +
                    b"x" * p["size"] + b"\r\n")
            msgs.append(Message(None, "long-line", data))
        return msgs

    def message(self, name, path):
        st = os.stat(path)
        if st.st_size <= STREAM_MIN:
            with open(path, "rb") as f:
                raw = f.read()
            if self.wire:
                data = raw + (b"\r\n" if raw and
                              not raw.endswith(b"\r\n") else b"")
            else:
                data = to_crlf(raw)
            return Message(name, name, data)
        key = (name, st.st_size, st.st_mtime_ns)
        if key not in self.sizes:
            self.sizes[key] = sum(len(c) for c in
                                  file_chunks(path, self.wire))
        return Message(name, name, None, path, self.wire, self.sizes[key])

    def commit(self, conn, msgs):
        for m in msgs:
            if m.name is None:
                self.log("dele-commit", conn=conn, uid=m.uid, file=None)
                continue
            if self.trash:
                os.makedirs(self.trash, exist_ok=True)
                os.replace(os.path.join(self.dir, m.name),
                           os.path.join(self.trash, m.name))
            else:
                self.gone.add(m.name)
            self.log("dele-commit", conn=conn, uid=m.uid, file=m.name)


class Session:
    def __init__(self, server, sock, number):
        self.srv, self.args, self.log = server, server.args, server.log
        self.sock, self.n = sock, number
        self.tls = False
        self.rbuf = b""
        self.msgs = None        # None until logged in
        self.marked = set()
        self.user = None
        self.stamp = None
        self.utf8 = False       # UTF-8 mode (RFC 6856) enabled

    # --- plumbing -----------------------------------------------------

    def sc(self, name):
        p = self.args.scenarios.get(name)
        if p is None or (p["conn"] and p["conn"] != self.n):
            return None
        return p

    def event(self, event, **fields):
        self.log(event, conn=self.n, **fields)

    def send(self, data):
        if self.args.verbose:
            first = data.split(b"\r\n", 1)[0][:100]
            print("[%d] S: %r" % (self.n, first), file=sys.stderr)
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.event("close", reason="send failed: %s" % e)
            raise Closed()

    def reply(self, text, free=True):
        """Send text and CRLF. free: any text after a +OK is free, so
        bare-ok drops it."""
        if free and text.startswith("+OK ") and self.sc("bare-ok"):
            text = "+OK" + text[3:].partition("\r\n")[1] + \
                text[3:].partition("\r\n")[2]
        self.send(text.encode("latin-1") + b"\r\n")

    def readline(self):
        while True:
            i = self.rbuf.find(b"\n")
            if i >= 0:
                line, self.rbuf = self.rbuf[:i], self.rbuf[i + 1:]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.rbuf) > MAX_LINE:
                self.event("close", reason="command line too long")
                raise Closed()
            idle = self.sc("idle-timeout") if self.msgs is not None \
                else None
            try:
                if idle:
                    self.sock.settimeout(idle["secs"])
                chunk = self.sock.recv(65536)
            except socket.timeout:
                # RFC 1939's autologout timer: close, commit nothing.
                self.event("fault", fault="idle-timeout")
                raise Closed()
            except OSError as e:
                self.event("close", reason="receive failed: %s" % e)
                raise Closed()
            finally:
                if idle:
                    self.sock.settimeout(None)
            if not chunk:
                self.event("close", reason="client closed",
                           pending=len(self.rbuf))
                raise Closed()
            if not self.rbuf and not self.tls and \
                    chunk.startswith(b"\x16\x03"):
                self.event("tls-hello-on-plaintext")
            self.rbuf += chunk

    def wait_for_close(self):
        """Answer nothing more until the client goes away; log the verb
        of each command it sends meanwhile (event "ignored")."""
        data, self.rbuf = self.rbuf, b""
        try:
            while True:
                *lines, data = data.split(b"\n")
                for line in lines:
                    verb = line.split(b" ", 1)[0].strip()[:20]
                    self.event("ignored", cmd=verb.decode("latin-1"))
                data = data[-MAX_LINE:]
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        self.event("close", reason="client closed")
        raise Closed()

    def start_tls(self):
        self.sock.settimeout(10)
        try:
            # The handshake apart: a failed wrap_socket closes the socket.
            self.sock = self.srv.ctx.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False)
            self.sock.do_handshake()
        except (OSError, ValueError) as e:
            self.event("tls-failed", error=str(e))
            if self.args.client_ca:
                # As a real server would, let the client read the alert
                # (a close with its bytes unread resets the connection).
                time.sleep(1)
            raise Closed()
        self.sock.settimeout(None)
        self.tls = True
        self.event("tls", version=self.sock.version())

    def abort(self, rst):
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        else:
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except OSError:
                pass
        self.sock.close()
        raise Closed()

    def hostile_err(self, at, msg):
        """With hostile-err at AT (and MSG, for RETR and DELE): send its
        -ERR line and return True."""
        p = self.sc("hostile-err")
        if not p or p["at"] != at or (msg and p["msg"] != msg):
            return False
        self.event("fault", fault="hostile-err", at=at, msg=msg)
        self.send(HOSTILE_TEXT + b"\r\n")
        return True

    def long_status(self, msg):
        """With long-status for MSG (0: the greeting): send the overlong
        line, then wait until the client closes (raises Closed)."""
        p = self.sc("long-status")
        if not p or p["msg"] != msg:
            return False
        self.event("fault", fault="long-status", msg=msg, size=p["size"])
        line = b"+OK " + b"x" * (CHUNK - 4)
        left = p["size"]
        while left > 0:
            self.send(line[:left])
            left -= len(line[:left])
            line = b"x" * CHUNK
        self.wait_for_close()

    # --- the session --------------------------------------------------

    def run(self):
        try:
            self.greet()
            while True:
                self.command(self.readline())
        except Closed:
            pass
        finally:
            if self.marked:
                self.event("rollback", marked=len(self.marked))
            if self.msgs is not None:
                self.srv.mailbox.release(self.n)
            try:
                self.sock.close()
            except OSError:
                pass

    def greet(self):
        if self.sc("greeting-drop"):
            self.event("fault", fault="greeting-drop")
            self.abort(rst=False)
        if self.args.tls_implicit and not self.sc("plaintext-on-tls-port"):
            self.start_tls()
        if self.sc("greeting-stall"):
            self.event("fault", fault="greeting-stall")
            self.wait_for_close()
        if self.sc("greeting-err"):
            self.event("fault", fault="greeting-err")
            self.reply("-ERR [SYS/TEMP] service not available")
            self.abort(rst=False)
        if self.hostile_err(1, 0):
            self.abort(rst=False)
        if self.long_status(0):
            return
        if self.sc("greeting-garbage"):
            self.event("fault", fault="greeting-garbage")
            self.send(b"\x00\xff* OK [CAPABILITY IMAP4rev1] \x1b[2J\r\n")
            self.wait_for_close()
        text = "+OK fakepop3 ready"
        if self.args.apop or self.sc("apop-greeting"):
            self.stamp = "<%d.%d@fakepop3.test>" % (os.getpid(), self.n)
            text += " " + self.stamp
        self.reply(text, free=not self.stamp)

    def command(self, line):
        text = line.decode("latin-1")
        cmd, _, arg = text.partition(" ")
        cmd = cmd.upper()
        if self.args.verbose:
            shown = arg if cmd in ("USER", "LIST", "UIDL", "RETR", "TOP",
                                   "DELE") else "..."
            print("[%d] C: %s %s" % (self.n, cmd, shown), file=sys.stderr)
        if cmd == "PASS":
            self.event("cmd", cmd=cmd, arg="<secret>", tls=self.tls)
        elif cmd == "APOP":
            self.event("cmd", cmd=cmd, arg=arg.split(" ")[0] + " <secret>",
                       tls=self.tls)
        elif cmd == "AUTH":
            self.auth_line_len = len(line) + 2
            mech = arg.split(" ")[0]
            self.event("cmd", cmd=cmd, arg=mech + (" <secret>" if " " in arg
                                                   else ""), tls=self.tls)
        elif re.fullmatch(r"[A-Z][A-Z0-9-]{0,19}", cmd):
            self.event("cmd", cmd=cmd, arg=arg[:200], tls=self.tls)
        else:
            self.event("junk", bytes=len(line), tls=self.tls)
        if self.msgs is None:
            handler = getattr(self, "auth_" + cmd.lower(), None)
        else:
            handler = getattr(self, "trans_" + cmd.lower(), None)
        if cmd == "QUIT":
            handler = self.quit
        elif cmd == "CAPA":
            handler = self.capa
        if handler is None:
            self.reply("-ERR unknown command or wrong state")
        else:
            handler(arg)

    def capa(self, arg):
        a = self.args
        if a.no_capa:
            self.reply("-ERR unknown command")
            return
        lines = ["TOP", "USER", "RESP-CODES", "AUTH-RESP-CODE",
                 "IMPLEMENTATION fakepop3"]
        if not a.no_uidl:
            lines.append("UIDL")
        if not a.no_pipelining:
            lines.append("PIPELINING")
        if self.sc("stls-always") or (a.stls and not a.no_stls_in_capa and
                                      not self.tls and self.msgs is None):
            lines.append("STLS")
        if a.sasl_line is not None:
            lines.append(a.sasl_line)
        elif a.sasl:
            lines.append("SASL " + a.sasl)
        if a.utf8 is not None:
            lines.append(("UTF8 " + a.utf8).strip())
        lines += a.capa_extra
        lines += a.capa_pre if self.msgs is None else a.capa_post
        p = self.sc("long-capa")
        if p and p["when"] in (0, 1 if self.msgs is None else 2):
            lines.append("X-LONG " + "x" * p["size"])
        # Lines from the command line may hold any byte (surrogateescape).
        self.send(b"\r\n".join([b"+OK" if self.sc("bare-ok") else
                                 b"+OK Capability list follows"] +
                                [os.fsencode(l) for l in lines] + [b".\r\n"]))

    def auth_utf8(self, arg):
        if self.args.utf8 is None:
            self.reply("-ERR unknown command")
            return
        if self.sc("utf8-refused"):
            self.event("utf8", ok=False, state="authorization",
                       tls=self.tls)
            self.reply("-ERR UTF8 not available now")
            return
        self.utf8 = True
        self.event("utf8", ok=True, state="authorization", tls=self.tls)
        self.reply("+OK UTF8 enabled")

    def trans_utf8(self, arg):
        # RFC 6856: "Commands valid in states: AUTHORIZATION".
        self.event("utf8", ok=False, state="transaction", tls=self.tls)
        self.reply("-ERR UTF8 is valid only before the login")

    # --- AUTHORIZATION state ------------------------------------------

    def auth_stls(self, arg):
        if not self.args.stls or self.tls:
            self.reply("-ERR STLS not available")
            return
        if self.sc("stls-refused"):
            self.event("fault", fault="stls-refused")
            self.reply("-ERR [SYS/TEMP] TLS not available now")
            return
        self.reply("+OK Begin TLS negotiation")
        if self.rbuf:
            # RFC 2595: plaintext sent after STLS must be thrown away.
            self.event("stls-pipelined-data", bytes=len(self.rbuf))
            self.rbuf = b""
        self.start_tls()

    def auth_user(self, arg):
        self.user = arg
        self.reply("+OK send PASS")

    def auth_pass(self, arg):
        if self.user is None:
            self.reply("-ERR USER first")
            return
        self.login(self.user, arg == self.args.password)

    def auth_apop(self, arg):
        user, _, digest = arg.partition(" ")
        p = self.sc("apop-greeting")
        if p:
            self.event("fault", fault="apop-greeting")
            self.reply("-ERR [AUTH] APOP not allowed")
            if p["close"]:
                self.abort(rst=False)
            return
        if not self.stamp:
            self.reply("-ERR APOP not available")
            return
        want = hashlib.md5((self.stamp + self.args.password).encode())
        self.login(user, digest.lower() == want.hexdigest())

    def auth_auth(self, arg):
        mechs = self.args.sasl.upper().split()
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if not mech:
            self.reply("+OK\r\n" + "\r\n".join(mechs) + "\r\n.")
            return
        if mech not in mechs or mech not in ("PLAIN", "LOGIN", "CRAM-MD5",
                                             "XOAUTH2", "OAUTHBEARER"):
            self.reply("-ERR unsupported mechanism")
            return
        if self.args.max_auth_line and \
                self.auth_line_len > self.args.max_auth_line:
            # As Microsoft's servers do (RFC 5034: 255 octets at most).
            self.event("auth-line-too-long", octets=self.auth_line_len)
            self.reply("-ERR [AUTH] line too long")
            return
        if mech in ("XOAUTH2", "OAUTHBEARER"):
            self.auth_oauth2(mech, initial)
            return
        try:
            if mech == "PLAIN":
                resp = self.sasl_step("", initial)
                _, user, pw = resp.split(b"\0")
                ok = pw.decode() == self.args.password
            elif mech == "LOGIN":
                user = self.sasl_step("VXNlcm5hbWU6", initial)
                pw = self.sasl_step("UGFzc3dvcmQ6", "")
                ok = pw.decode() == self.args.password
            else:
                chal = "<%d.%d@fakepop3.test>" % (os.getpid(), self.n)
                resp = self.sasl_step(
                    base64.b64encode(chal.encode()).decode(), "")
                user, _, digest = resp.partition(b" ")
                want = hmac.new(self.args.password.encode(), chal.encode(),
                                hashlib.md5).hexdigest()
                ok = digest.decode() == want
            user = user.decode("latin-1")
        except _Cancel:
            self.reply("-ERR authentication cancelled")
            return
        except (ValueError, UnicodeError):
            self.reply("-ERR malformed authentication data")
            return
        self.login(user, ok)

    # RFC 7628 (OAUTHBEARER) and Google's XOAUTH2: the one message the
    # client sends, with the bearer token in it.
    OAUTH2_FORMS = {
        "XOAUTH2": re.compile(rb"user=([^\x01]*)\x01auth=Bearer "
                              rb"([^\x01]+)\x01\x01"),
        "OAUTHBEARER": re.compile(rb"n,a=([^,]*),\x01host=([^\x01]*)\x01"
                                  rb"port=([0-9]+)\x01auth=Bearer "
                                  rb"([^\x01]+)\x01\x01"),
    }

    def auth_oauth2(self, mech, initial):
        try:
            resp = self.sasl_step("", initial)
        except _Cancel:
            self.reply("-ERR authentication cancelled")
            return
        except (ValueError, UnicodeError):
            self.event("sasl", mech=mech, ir=bool(initial), form_ok=False,
                       auth_line=self.auth_line_len)
            self.reply("-ERR malformed authentication data")
            return
        m = self.OAUTH2_FORMS[mech].fullmatch(resp)
        user = m.group(1).decode("latin-1") if m else None
        token = (m.group(2) if mech == "XOAUTH2" else m.group(4)) \
            if m else b""
        fields = {}
        if m and mech == "OAUTHBEARER":
            fields = {"host": m.group(2).decode("latin-1"),
                      "port": int(m.group(3))}
        ok = token.decode("latin-1") == self.args.password
        self.event("sasl", mech=mech, ir=bool(initial), form_ok=bool(m),
                   user=user, token_ok=ok, token_len=len(token),
                   auth_line=self.auth_line_len, **fields)
        if m and not ok:
            # The error comes as a challenge the client must answer.
            err = json.dumps({"status": "401", "schemes": "bearer",
                              "scope": "https://mail.example/"})
            self.reply("+ " + base64.b64encode(err.encode()).decode())
            ack = self.readline().decode("latin-1")
            self.event("sasl-error-ack", ack=ack[:40])
        self.login(user, ok)

    def sasl_step(self, challenge, initial):
        if initial:
            data = initial
        else:
            self.reply("+ " + challenge)
            data = self.readline().decode("latin-1")
            self.event("cmd", cmd="AUTH-DATA", arg="<secret>", tls=self.tls)
        if data == "*":
            raise _Cancel()
        if data == "=":
            return b""
        return base64.b64decode(data, validate=True)

    def login(self, user, ok):
        if self.hostile_err(2, 0):
            return
        for name, text in (("auth-fail", "-ERR [AUTH] Authentication failed"),
                           ("sys-temp", "-ERR [SYS/TEMP] Temporary failure, "
                            "try again later"),
                           ("in-use", "-ERR [IN-USE] Mailbox is locked by "
                            "another session")):
            if self.sc(name):
                self.event("fault", fault=name)
                self.reply(text)
                return
        if user != self.args.user or not ok:
            self.event("login-failed", user=user)
            p = self.sc("fail-close")
            if p:
                time.sleep(p["pause"])
                if p["reply"]:
                    self.reply("-ERR Authentication failed")
                self.event("fault", fault="fail-close")
                self.abort(rst=False)
            self.reply("-ERR [AUTH] Authentication failed")
            return
        if not self.srv.mailbox.acquire(self.n):
            self.event("login-in-use")
            self.reply("-ERR [IN-USE] Mailbox is locked by another session")
            return
        self.msgs = self.srv.mailbox.load(self.sc, self.utf8)
        self.event("login", user=user, tls=self.tls, messages=len(self.msgs))
        self.reply("+OK Logged in")

    # --- TRANSACTION state --------------------------------------------

    def size(self, i):
        real = self.msgs[i - 1].size
        p = self.sc("list-lies")
        if p and p["msg"] in (0, i):
            return max(0, real + p["delta"])
        return real

    def number(self, arg):
        """The message number in arg, or None after replying -ERR."""
        try:
            i = int(arg.split(" ")[0])
        except ValueError:
            self.reply("-ERR invalid message number")
            return None
        if i < 1 or i > len(self.msgs) or i in self.marked:
            self.reply("-ERR no such message")
            return None
        return i

    def live(self):
        return [i for i in range(1, len(self.msgs) + 1)
                if i not in self.marked]

    def listing(self, arg, what):
        if arg:
            i = self.number(arg)
            if i is not None:
                self.reply("+OK %d %s" % (i, what(i)), free=False)
            return
        lines = ["+OK"] + ["%d %s" % (i, what(i)) for i in self.live()]
        self.reply("\r\n".join(lines + ["."]))

    def trans_stat(self, arg):
        live = self.live()
        self.reply("+OK %d %d" % (len(live), sum(self.size(i) for i in live)),
                   free=False)

    def trans_list(self, arg):
        self.listing(arg, self.size)

    def trans_uidl(self, arg):
        if self.args.no_uidl:
            self.reply("-ERR unknown command")
            return
        self.listing(arg, lambda i: self.msgs[i - 1].uid)

    def trans_retr(self, arg):
        i = self.number(arg)
        if i is None:
            return
        if self.hostile_err(3, i) or self.long_status(i):
            return
        m = self.msgs[i - 1]
        head = b"+OK\r\n" if self.sc("bare-ok") else \
            b"+OK %d octets\r\n" % self.size(i)
        for fault in ("drop-mid-retr", "reset-mid-retr", "stall-mid-retr"):
            p = self.sc(fault)
            if p and p["msg"] == i:
                sent = self.send_body(head, itertools.chain(
                    m.chunks(), [b".\r\n"]), p["after"])
                self.event("fault", fault=fault, msg=i, sent=sent)
                if fault == "stall-mid-retr":
                    self.wait_for_close()
                self.abort(rst=(fault == "reset-mid-retr"))
        sent = self.send_body(head, m.chunks(), None)
        self.send(b".\r\n")
        self.event("retr", msg=i, uid=m.uid, sent=sent, wrapped=m.wrapped)

    def send_body(self, head, chunks, limit):
        """Send head, then the chunks (at most limit bytes of them, if
        not None); the first chunk goes in the same send as head.
        Returns how many body bytes were sent."""
        sent = 0
        for data in chunks:
            if limit is not None:
                data = data[:limit - sent]
            self.send(head + data)
            head = b""
            sent += len(data)
            if limit is not None and sent >= limit:
                break
        if head:
            self.send(head)
        return sent

    def trans_top(self, arg):
        parts = arg.split(" ")
        i = self.number(parts[0])
        if i is None:
            return
        try:
            n = int(parts[1])
        except (IndexError, ValueError):
            self.reply("-ERR TOP needs a line count")
            return
        data = self.msgs[i - 1].whole()
        head, sep, body = data.partition(b"\r\n\r\n")
        lines = body.split(b"\r\n")[:-1] if body else []
        out = head + sep + b"".join(l + b"\r\n" for l in lines[:n])
        self.send(b"+OK\r\n" + dot_stuff(out) + b".\r\n")

    def trans_dele(self, arg):
        i = self.number(arg)
        if i is None:
            return
        if self.hostile_err(4, i):
            return
        p = self.sc("err-on-dele")
        if p and p["msg"] in (0, i):
            self.event("fault", fault="err-on-dele", msg=i)
            self.reply("-ERR cannot delete message %d" % i)
            return
        self.marked.add(i)
        self.reply("+OK message %d deleted" % i)

    def trans_noop(self, arg):
        self.reply("+OK")

    def trans_rset(self, arg):
        self.marked.clear()
        self.reply("+OK")

    def quit(self, arg):
        if self.msgs is None:
            self.reply("+OK bye")
            self.event("close", reason="quit")
            raise Closed()
        commit = True
        p = self.sc("err-on-quit") or self.sc("no-quit-reply")
        if p:
            commit = bool(p["commit"])
        hostile = self.sc("hostile-err")
        if hostile and hostile["at"] == 5:
            commit = False
        doomed = [self.msgs[i - 1] for i in sorted(self.marked)]
        self.marked = set()
        if commit:
            self.srv.mailbox.commit(self.n, doomed)
        elif doomed:
            self.event("rollback", marked=len(doomed))
        p = self.sc("no-quit-reply")
        if p:
            self.event("fault", fault="no-quit-reply", committed=commit)
            if p["stall"]:
                self.wait_for_close()
            self.abort(rst=False)
        if self.hostile_err(5, 0):
            self.event("close", reason="quit")
            raise Closed()
        if self.sc("err-on-quit"):
            self.event("fault", fault="err-on-quit", committed=commit)
            self.reply("-ERR some deleted messages not removed")
        else:
            self.reply("+OK bye, %d messages deleted" % len(doomed))
        self.event("close", reason="quit")
        raise Closed()


class _Cancel(Exception):
    pass


class Server:
    def __init__(self, args):
        self.args = args
        self.log = testserver.Log(args.log)
        self.mailbox = Mailbox(args, self.log)
        self.ctx = None
        if args.tls_implicit or args.stls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.cert, args.key)
            if args.tls_max == "1.2":
                self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            if args.client_ca:
                self.ctx.verify_mode = ssl.CERT_REQUIRED
                self.ctx.load_verify_locations(args.client_ca)

    def serve(self):
        a = self.args
        testserver.serve(a, self.log, a.host, 16,
                         lambda sock, n: Session(self, sock, n).run,
                         scenarios=a.scenarios)


def main():
    scen = "\n".join("  %-22s %s%s" % (
        name, desc, (" [" + ",".join("%s=%s" % kv for kv in p.items()) + "]")
        if p else "") for name, (p, desc) in SCENARIOS.items())
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios (NAME[:PARAM=N[,PARAM=N]...], comma-separated; "
        "every one also\ntakes conn=N to act on the N-th connection only):\n"
        + scen + "\n\n" + __doc__.split("\n\n", 1)[1])
    ap.add_argument("--host", default="127.0.0.1",
                    help="loopback address to listen on (127.0.0.1)")
    testserver.add_listen_args(ap, "port (0: any free one)",
                               "print a transcript on stderr")
    ap.add_argument("--maildir",
                    help="directory of LF message files to serve")
    ap.add_argument("--trash", help="move deleted files here on QUIT")
    ap.add_argument("--user", default="alice")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--tls-implicit", action="store_true",
                    help="TLS from the first byte (POP3S)")
    ap.add_argument("--stls", action="store_true", help="support STLS")
    ap.add_argument("--cert", help="certificate (PEM) for TLS")
    ap.add_argument("--key", help="private key (PEM) for TLS")
    ap.add_argument("--tls-max", choices=["1.2"],
                    help="speak no TLS version above this one")
    ap.add_argument("--client-ca", metavar="PEM",
                    help="require a client certificate from this CA")
    ap.add_argument("--apop", action="store_true",
                    help="<timestamp> in the greeting, APOP accepted")
    ap.add_argument("--sasl", default="",
                    help="SASL mechanisms to offer: any of PLAIN LOGIN "
                    "CRAM-MD5 XOAUTH2 OAUTHBEARER (default: none; the "
                    "bearer token is --password)")
    ap.add_argument("--max-auth-line", type=int, default=0, metavar="N",
                    help="refuse an AUTH command line of over N octets "
                    "with CRLF (0: no limit)")
    ap.add_argument("--capa-extra", action="append", default=[],
                    metavar="LINE", help="add LINE to the CAPA answer")
    ap.add_argument("--capa-pre", action="append", default=[],
                    metavar="LINE", help="add LINE to the CAPA answer "
                    "before login only")
    ap.add_argument("--capa-post", action="append", default=[],
                    metavar="LINE", help="add LINE to the CAPA answer "
                    "after login only")
    ap.add_argument("--sasl-line", metavar="LINE",
                    help="the SASL capability line as sent (instead of "
                    "\"SASL\" and --sasl; the mechanisms accepted are "
                    "still --sasl's)")
    ap.add_argument("--utf8", nargs="?", const="", metavar="ARGS",
                    help="offer UTF8 (RFC 6856) in CAPA, with ARGS (e.g. "
                    "USER, as Courier); see below")
    ap.add_argument("--uid", action="append", default=[],
                    metavar="FILE=UID", help="serve message file FILE "
                    "with this UID")
    ap.add_argument("--wire", action="store_true",
                    help="serve the files as they are, in wire form (see "
                    "below)")
    ap.add_argument("--no-capa", action="store_true",
                    help="answer CAPA with -ERR (an RFC 1939 server)")
    ap.add_argument("--no-pipelining", action="store_true")
    ap.add_argument("--no-uidl", action="store_true",
                    help="no UIDL in CAPA, and UIDL answers -ERR")
    ap.add_argument("--no-stls-in-capa", action="store_true",
                    help="support STLS (with --stls) without saying so")
    ap.add_argument("--scenario", action="append", default=[],
                    help="misbehave (see below)")
    args = ap.parse_args()
    if not args.host.startswith("127."):
        ap.error("--host must be a loopback address (127.x.y.z)")
    if (args.tls_implicit or args.stls) and not (args.cert and args.key):
        ap.error("--tls-implicit and --stls need --cert and --key")
    if args.maildir and not os.path.isdir(args.maildir):
        ap.error("--maildir %s is not a directory" % args.maildir)
    args.scenarios = parse_scenarios(args.scenario)
    server = Server(args)
    testserver.run(server.log, server.serve)


if __name__ == "__main__":
    main()
