#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""powerloss.py: helpers of tests/power-loss.test.

    powerloss.py gen --seed S --first K --count N --out DIR
        N messages (K, K+1, ...) of varied sizes, LF lines, the same for
        the same seed: most a few KiB, some tens, a few hundreds of KiB;
        lines with a leading dot and "From " lines among them.
    powerloss.py clear --port P
        deletes every message of the test user (a POP3 session to the
        server on 127.0.0.1:P, DELE all, QUIT).
    powerloss.py snapshot --port P --map FILE
        adds to FILE ("UID SHA256" lines) each message the server serves
        that FILE lacks: the SHA-256 of what a client must store (RETR,
        dot-unstuffed, CRLF to LF).
    powerloss.py check --port P --map FILE --maildir MD --state-dir SD
                       --account NAME --mode delete|keep [--final]
        what a power cut must never leave: each file in MD/new and
        MD/cur is, byte for byte, a message of FILE (nothing empty,
        partial or foreign), none twice; every UID of FILE that the
        server no longer has is intact in MD; every UID that the state
        (SD/NAME.state, and "D" records of SD/NAME.journal) records as
        delivered is intact in MD. --final also: every message of FILE
        in MD exactly once, MD/tmp empty, and the server empty (delete)
        or still holding all of FILE, all of it recorded (keep).
        Prints one line of counts (the last: how many messages of FILE
        the server has that are not recorded, a next run's work); on
        failure the reasons, and exits 1.
        For the other delivery targets, --target says where the
        messages are: maildir (popfetch's own, the default), agent (a
        Maildir MD that an MDA writes: its tmp/ is not ours to check),
        dovecot (the same, written by Dovecot's LMTP, which puts one
        Return-Path line on top of each message: taken off) or mbox
        (--mbox FILE, mboxrd, as popfetch writes it). --dups-max N lets
        up to N extra copies through in all (the messages in flight at
        N crashes; a Maildir of popfetch's own gets none); --spool DIR,
        popfetch's spool, must have an empty tmp/ with --final.
    powerloss.py kill-tree PID...
        a power cut for processes: stops each PID and every descendant
        (again until no new one appears: nothing can fork away), kills
        them all with SIGKILL, and waits until each is gone (or a
        zombie: a process killed inside a FUSE request finishes it
        first).
"""

import argparse
import hashlib
import os
import poplib
import time
import random
import re
import signal
import sys
import time

WORDS = ("mail fetch power cut durable fsync rename maildir journal state "
         "server client pipeline batch commit window header body message "
         "delivery loss duplicate order drop recover").split()


def gen(a):
    rnd = random.Random("%s/%d" % (a.seed, a.first))
    os.makedirs(a.out, exist_ok=True)
    for n in range(a.first, a.first + a.count):
        r = rnd.random()
        if r < 0.70:
            size = rnd.randint(300, 4000)
        elif r < 0.95:
            size = rnd.randint(10000, 60000)
        else:
            size = rnd.randint(100000, 300000)
        lines = [
            "From: Sender %d <s%d@example.org>" % (n % 7, n % 7),
            "To: Alice <alice@example.net>",
            "Subject: power-loss test message %d (seed %s)" % (n, a.seed),
            "Date: Tue, 14 Nov 2023 10:%02d:%02d +0000" % (n // 60 % 60,
                                                           n % 60),
            "Message-ID: <pl%d.%s@popfetch.test>" % (n, a.seed),
            "",
            "Message %d." % n,
        ]
        total = sum(len(l) + 1 for l in lines)
        while total < size:
            k = rnd.random()
            if k < 0.03:
                line = "." + " ".join(rnd.choices(WORDS, k=5))
            elif k < 0.05:
                line = "From " + " ".join(rnd.choices(WORDS, k=4))
            else:
                line = " ".join(rnd.choices(WORDS, k=rnd.randint(3, 12)))
            lines.append(line)
            total += len(line) + 1
        with open(os.path.join(a.out, "m%06d" % n), "w") as f:
            f.write("\n".join(lines) + "\n")


def login(port):
    """A session of our own. A killed popfetch's session may still hold
    the mailbox a moment ([IN-USE]), and a loaded Dovecot may drop a
    login: tried again for some seconds (what is checked is the server's
    mail, not this login)."""
    for attempt in range(20):
        try:
            p = poplib.POP3("127.0.0.1", port, timeout=30)
            p.user("alice")
            p.pass_("secret")
            return p
        except (poplib.error_proto, OSError) as e:
            if attempt == 19:
                raise
            sys.stderr.write("# login to the server: %s; again\n" % e)
            time.sleep(0.5)


def server_uids(port):
    p = login(port)
    uids = {}
    for line in p.uidl()[1]:
        num, uid = line.decode().split(" ", 1)
        uids[uid] = int(num)
    p.quit()
    return uids


def clear(a):
    p = login(a.port)
    for line in p.uidl()[1]:
        p.dele(int(line.split()[0]))
    p.quit()


def read_map(path):
    m = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                uid, h = line.split()
                m[uid] = h
    return m


def snapshot(a):
    have = read_map(a.map)
    p = login(a.port)
    with open(a.map, "a") as f:
        for line in p.uidl()[1]:
            num, uid = line.decode().split(" ", 1)
            if uid in have:
                continue
            lines = p.retr(int(num))[1]
            data = b"\n".join(lines) + b"\n"
            f.write("%s %s\n" % (uid, hashlib.sha256(data).hexdigest()))
    p.quit()


def recorded(state_dir, account):
    """UIDs the state and journal record as delivered; problems."""
    uids, problems = set(), []
    path = os.path.join(state_dir, account + ".state")
    if os.path.exists(path):
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        if not lines or lines[0] not in (b"popfetch-uidstate 1",
                                         b"popfetch-uidstate 2"):
            problems.append("%s: no valid first line (%d bytes)" %
                            (path, os.path.getsize(path)))
        elif not any(l.startswith(b"end:") for l in lines):
            problems.append("%s: truncated (no end line)" % path)
        for i, l in enumerate(lines[1:]):
            # Version 2 may name its mailbox on its second line.
            if i == 0 and l.startswith(b"mailbox "):
                continue
            if b" " in l:
                uids.add(l.split(b" ")[0].decode())
    path = os.path.join(state_dir, account + ".journal")
    if os.path.exists(path):
        with open(path, "rb") as f:
            for l in f.read().split(b"\n"):
                w = l.split(b" ")
                # "D UID TIME", or "D UID TIME SIZE".
                if len(w) in (3, 4) and w[0] == b"D":
                    uids.add(w[1].decode())
    return uids, problems


def maildir_messages(md, strip_return_path):
    """(where, bytes) of each file in md/new and md/cur."""
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            if strip_return_path and data.startswith(b"Return-Path: "):
                data = data.split(b"\n", 1)[1] if b"\n" in data else b""
            yield "%s/%s" % (sub, name), data


FROM_LINE = re.compile(rb"^>*From ")


def mbox_messages(path):
    """(where, bytes) of each message of an mboxrd file as popfetch writes
    it: a "From " line, the message with one '>' more on each ^>*From
    line, a blank line. A message cut short shows as foreign bytes."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    msgs, cur, start = [], None, 0
    for i, line in enumerate(lines):
        if line.startswith(b"From ") and (i == 0 or lines[i - 1] == b""):
            if cur is not None:
                msgs.append((start, cur))
            cur, start = [], i + 1
            continue
        if cur is None:
            msgs.append((i + 1, [b"(bytes before the first From line)"]))
            cur, start = [], i + 1
            continue
        cur.append(line[1:] if FROM_LINE.match(line) and line[:1] == b">"
                   else line)
    if cur is not None:
        msgs.append((start, cur))
    for start, body in msgs:
        # The blank line that parts messages is not the message's.
        if body and body[-1] == b"":
            body = body[:-1]
        else:
            body = body + [b"(no blank line after it)"]
        yield "line %d" % start, b"\n".join(body) + b"\n"


def target_messages(a):
    if a.target == "mbox":
        return mbox_messages(a.mbox)
    return maildir_messages(a.maildir, a.target == "dovecot")


def check(a):
    expected = read_map(a.map)
    by_hash = {h: uid for uid, h in expected.items()}
    bad = []
    disk = {}
    dups = []
    for where, data in target_messages(a):
        h = hashlib.sha256(data).hexdigest()
        if h not in by_hash:
            bad.append("%s: %d bytes, not a message of the server "
                       "(empty, partial or foreign)" % (where, len(data)))
            continue
        uid = by_hash[h]
        if uid in disk:
            dups.append("%s: a duplicate of %s (UID %s)" %
                        (where, disk[uid], uid))
            continue
        disk[uid] = where
    if len(dups) > a.dups_max:
        bad += ["DUP " + x for x in dups]
        bad.append("DUP %d duplicates, more than the %d crashes so far "
                   "allow" % (len(dups), a.dups_max))
    on_server = server_uids(a.port)
    for uid in sorted(expected):
        if uid not in on_server and uid not in disk:
            bad.append("LOST: UID %s is gone from the server and not "
                       "intact in the Maildir" % uid)
    rec, problems = recorded(a.state_dir, a.account)
    bad += problems
    for uid in sorted(rec):
        if uid in expected and uid not in disk:
            bad.append("UID %s is recorded as delivered but not intact in "
                       "the Maildir" % uid)
    ntmp = 0
    if a.target == "maildir":
        tmp = os.path.join(a.maildir, "tmp")
        ntmp = len(os.listdir(tmp)) if os.path.isdir(tmp) else 0
    if a.spool and a.final:
        tmp = os.path.join(a.spool, "tmp")
        n = len(os.listdir(tmp)) if os.path.isdir(tmp) else 0
        if n:
            bad.append("the spool's tmp/ holds %d files" % n)
    if a.final:
        for uid in sorted(expected):
            if uid not in disk:
                bad.append("UID %s is not in the Maildir" % uid)
        if ntmp:
            bad.append("tmp/ holds %d files" % ntmp)
        left = [u for u in expected if u in on_server]
        if a.mode == "delete" and left:
            bad.append("%d messages are still on the server" % len(left))
        if a.mode == "keep":
            if len(left) != len(expected):
                bad.append("only %d of %d messages are on the server" %
                           (len(left), len(expected)))
            missing = [u for u in expected if u not in rec]
            if missing:
                bad.append("%d delivered messages are not recorded" %
                           len(missing))
    pending = [u for u in on_server if u in expected and u not in rec]
    print("expected %d, intact in the Maildir %d, on the server %d, "
          "recorded %d, in tmp/ %d, duplicates %d, to fetch %d" %
          (len(expected), len(disk), len(on_server), len(rec), ntmp,
           len(dups), len(pending)))
    # The worst first: lost mail, then what the state wrongly trusts,
    # then damaged files; a few of each kind.
    order = ("LOST", "UID", "new/", "cur/", "line", "DUP", "")
    shown = {}
    for kind in order:
        same = [x for x in bad if x.startswith(kind) and x not in shown]
        for x in same[:8]:
            print("  " + x)
        if len(same) > 8:
            print("  ... and %d more like it" % (len(same) - 8))
        shown.update(dict.fromkeys(same))
    sys.exit(1 if bad else 0)


def children():
    """{ppid: [pid, ...]} of every process now."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_tree(a):
    seen = set()
    todo = list(a.pids)
    while todo:
        for pid in todo:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            seen.add(pid)
        kids = children()
        todo = [k for p in seen for k in kids.get(p, []) if k not in seen]
    for pid in seen:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while any(alive(p) for p in seen):
        if time.monotonic() > deadline:
            sys.exit("processes live on: %s" %
                     " ".join(str(p) for p in seen if alive(p)))
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    g = sp.add_parser("gen")
    g.add_argument("--seed", required=True)
    g.add_argument("--first", type=int, required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--out", required=True)
    c = sp.add_parser("clear")
    c.add_argument("--port", type=int, required=True)
    s = sp.add_parser("snapshot")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--map", required=True)
    k = sp.add_parser("check")
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--map", required=True)
    k.add_argument("--maildir")
    k.add_argument("--state-dir", required=True)
    k.add_argument("--account", required=True)
    k.add_argument("--mode", choices=("delete", "keep"), required=True)
    k.add_argument("--final", action="store_true")
    k.add_argument("--target", default="maildir",
                   choices=("maildir", "agent", "dovecot", "mbox"))
    k.add_argument("--mbox")
    k.add_argument("--dups-max", type=int, default=0)
    k.add_argument("--spool")
    t = sp.add_parser("kill-tree")
    t.add_argument("pids", type=int, nargs="+")
    a = ap.parse_args()
    if a.cmd == "check" and (a.mbox if a.target == "mbox" else
                             a.maildir) is None:
        ap.error("check: --%s is required" %
                 ("mbox" if a.target == "mbox" else "maildir"))
    {"gen": gen, "clear": clear, "snapshot": snapshot, "check": check,
     "kill-tree": kill_tree}[a.cmd](a)


if __name__ == "__main__":
    main()
