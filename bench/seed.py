# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic mailboxes for bench/run.

    seed.py KIND COUNT SEED DIR [SIZE]

writes a pristine server Maildir DIR (messages in DIR/cur, LF line ends,
owned by the mail user when run as root) and DIR.sha256, the sorted
sha256 of every message as a client should deliver it. KIND:

    mixed   most 2-50 KB, about 8.5% 100 KB-2 MB, 1% 5-10 MB (text and
            base64 attachments)
    small   2-4 KB text messages
    tiny    300-600 byte text messages (for 100 000-message mailboxes)
    single  COUNT messages of SIZE bytes each

The same arguments always give the same bytes. Message names carry
S=size and W=virtual size (CRLF) so that Dovecot's LIST needs no read.
Bodies contain lines starting with "." (dot-stuffing on the wire) and,
rarely, "From " lines; every message starts with a Return-Path header,
as mail delivered by an MTA does.
"""
import base64
import hashlib
import os
import pwd
import random
import sys

WORDS = ("the quick brown fox jumps over lazy dog mail server client "
         "message fetch deliver maildir pop3 retrieve delete keep poll "
         "latency window pipeline header body attachment report invoice "
         "meeting tomorrow please find attached regards thanks hello "
         "world lorem ipsum dolor sit amet consectetur adipiscing elit "
         "sed do eiusmod tempor incididunt ut labore et dolore magna "
         "aliqua").split()


def line_pool(rng, n=4096):
    pool = []
    for i in range(n):
        k = rng.randint(3, 14)
        line = " ".join(rng.choice(WORDS) for _ in range(k))
        r = i % 97
        if r == 0:
            line = "." + line            # stuffed on the wire
        elif r == 1:
            line = ".."                  # stuffed twice
        elif r == 2:
            line = "."                   # a lone dot inside the body
        elif r == 3:
            line = ""
        elif r == 4 and i % 2:
            line = "From " + line        # mbox-unsafe, fine in a Maildir
        pool.append(line.encode() + b"\n")
    return pool


def headers(rng, tag, i, ctype):
    s = rng.randrange(50)
    return ("Return-Path: <sender%d@example.org>\n"
            "Received: from mx%d.example.org (mx%d.example.org "
            "[192.0.2.%d])\n\tby mail.example.net (Postfix) with ESMTPS "
            "id %08X\n\tfor <alice@example.net>; "
            "Tue, 14 Nov 2023 %02d:%02d:%02d +0000 (UTC)\n"
            "From: Sender %d <sender%d@example.org>\n"
            "To: Alice <alice@example.net>\n"
            "Subject: Benchmark message %d of set %s\n"
            "Date: Tue, 14 Nov 2023 %02d:%02d:%02d +0000\n"
            "Message-ID: <%s.%d@bench.popfetch.test>\n"
            "MIME-Version: 1.0\n%s\n"
            % (s, s % 4, s % 4, s + 1, rng.getrandbits(32), i // 3600 % 24,
               i // 60 % 60, i % 60, s, s, i, tag, i // 3600 % 24,
               i // 60 % 60, i % 60, tag, i, ctype)).encode()


def text_body(rng, pool, size):
    out = []
    n = 0
    while n < size:
        chunk = rng.choices(pool, k=64)
        out.extend(chunk)
        n += sum(len(x) for x in chunk)
    body = b"".join(out)[:size]
    nl = body.rfind(b"\n")
    return body[:nl + 1] if nl > 0 else b"hello\n"


def b64_body(rng, size):
    raw = rng.randbytes(size * 3 // 4)
    enc = base64.b64encode(raw)
    return b"".join(enc[j:j + 76] + b"\n" for j in range(0, len(enc), 76))


def message(rng, pool, tag, i, size):
    if size < 64 * 1024:
        h = headers(rng, tag, i, "Content-Type: text/plain; charset=utf-8")
        return h + b"\n" + text_body(rng, pool, max(size - len(h), 64))
    bnd = "=_bench_%s_%d" % (tag, i)
    h = headers(rng, tag, i,
                'Content-Type: multipart/mixed; boundary="%s"' % bnd)
    text = text_body(rng, pool, 2048)
    att = b64_body(rng, max(size - len(h) - len(text) - 400, 1024))
    return (h + b"\nThis is a multi-part message in MIME format.\n\n--"
            + bnd.encode() + b"\nContent-Type: text/plain; charset=utf-8\n\n"
            + text + b"\n--" + bnd.encode()
            + b"\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n"
            b'Content-Disposition: attachment; filename="file%d.bin"\n\n'
            % i + att + b"\n--" + bnd.encode() + b"--\n")


def sizes(rng, kind, count, size):
    if kind == "single":
        return [size] * count
    if kind == "small":
        return [rng.randint(2048, 4096) for _ in range(count)]
    if kind == "tiny":
        return [rng.randint(300, 600) for _ in range(count)]
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.01:
            out.append(rng.randint(5 << 20, 10 << 20))
        elif r < 0.095:
            out.append(rng.randint(100 << 10, 2 << 20))
        else:
            out.append(rng.randint(2 << 10, 50 << 10))
    return out


def main():
    kind, count, seed, top = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        sys.argv[4]
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    rng = random.Random("popfetch-bench/%s/%d/%s/%d" % (kind, count, seed,
                                                        size))
    pool = line_pool(rng)
    tag = "%s%s" % (kind, seed)
    cur = os.path.join(top, "cur")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(top, sub), mode=0o700)
    mail = pwd.getpwnam("mail") if os.getuid() == 0 else None
    hashes = []
    total = 0
    for i, sz in enumerate(sizes(rng, kind, count, size)):
        msg = message(rng, pool, tag, i, sz)
        if kind == "single":
            # exact size: pad or trim the last body line
            msg = msg[:sz - 1] + b"\n" if len(msg) >= sz else \
                msg + b"x" * (sz - len(msg) - 1) + b"\n"
        vsize = len(msg) + msg.count(b"\n")
        name = "%d.M%dP%s.bench,S=%d,W=%d:2," % (1700000000 + i, i, tag,
                                                  len(msg), vsize)
        path = os.path.join(cur, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msg)
        if mail:
            os.chown(path, mail.pw_uid, mail.pw_gid)
        hashes.append(hashlib.sha256(msg).hexdigest())
        total += len(msg)
    if mail:
        for d in (top, cur, os.path.join(top, "new"),
                  os.path.join(top, "tmp")):
            os.chown(d, mail.pw_uid, mail.pw_gid)
    with open(top + ".sha256", "w") as f:
        f.write("".join(h + "\n" for h in sorted(hashes)))
    print("%d %d" % (count, total))


if __name__ == "__main__":
    main()
