# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks a delivery for bench/run.

    verify.py PRISTINE_DIR MAILDIR...

The files in the MAILDIRs' new/ and cur/, with CRLF turned into LF, must
be exactly the messages of PRISTINE_DIR (whose hashes seed.py wrote to
PRISTINE_DIR.sha256), each once, in every MAILDIR. Prints "ok N" or a
one-line summary of what is wrong (missing, extra, duplicated, and for an
altered message how it differs from the seeded one); exits 1 then.
"""
import collections
import hashlib
import os
import re
import sys

MSGID = re.compile(rb"^Message-ID: (<[^>]*>)", re.M | re.I)


def files(md):
    for sub in ("new", "cur"):
        d = os.path.join(md, sub)
        if os.path.isdir(d):
            for n in os.listdir(d):
                yield os.path.join(d, n)


def read_norm(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return data


def describe(data, pristine):
    """How a delivered message differs from the seeded one."""
    head = data[:65536]
    m = MSGID.search(head)
    if not m:
        return "no Message-ID"
    orig = pristine.get(m.group(1))
    if orig is None:
        return "unknown Message-ID %s" % m.group(1).decode(errors="replace")
    with open(orig, "rb") as f:
        want = f.read()
    if len(data) > len(want) and data.endswith(want):
        added = data[:len(data) - len(want)].decode(errors="replace")
        return "header lines added: " + " | ".join(
            line.split(":", 1)[0] for line in added.splitlines()
            if line and not line[0].isspace())
    if len(data) < len(want) and want.startswith(data):
        return "truncated at %d of %d bytes" % (len(data), len(want))
    dl, wl = data.split(b"\n"), want.split(b"\n")
    for i, (a, b) in enumerate(zip(dl, wl)):
        if a != b:
            return "line %d differs: %r, seeded %r" % (i + 1, a[:60], b[:60])
    return "%d lines, seeded %d" % (len(dl), len(wl))


def pristine_ids(top):
    ids = {}
    for path in files(top):
        with open(path, "rb") as f:
            m = MSGID.search(f.read(65536))
        if m:
            ids[m.group(1)] = path
    return ids


def main():
    top = sys.argv[1]
    with open(top + ".sha256") as f:
        want = collections.Counter(line.strip() for line in f)
    total = sum(want.values())
    problems = []
    pristine = None
    for md in sys.argv[2:]:
        got = collections.Counter()
        altered = []
        for path in files(md):
            data = read_norm(path)
            h = hashlib.sha256(data).hexdigest()
            got[h] += 1
            if h not in want:
                altered.append(data)
        missing = sum((want - got).values())
        dup = sum((got - want).values()) - len(altered)
        if not (missing or altered or dup):
            continue
        p = "%s: %d of %d missing" % (md, missing, total)
        if dup:
            p += ", %d duplicated" % dup
        if altered:
            if pristine is None:
                pristine = pristine_ids(top)
            kinds = collections.Counter(describe(d, pristine)
                                        for d in altered)
            p += ", %d altered (%s)" % (len(altered), "; ".join(
                "%d: %s" % (n, k) for k, n in kinds.most_common(3)))
        problems.append(p)
    if problems:
        print("; ".join(problems))
        sys.exit(1)
    print("ok %d" % total)


if __name__ == "__main__":
    main()
