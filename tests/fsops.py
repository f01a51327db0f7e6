#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""fsops.py: precise file system calls for the durability tests.

    fsops.py [-C DIR] 'OP ARG...' ...

Runs each OP in order (paths relative to DIR, or the current directory)
and exits 1 at the first that does not do what was asked. An OP prefixed
with !ERRNO (e.g. '!EEXIST create-excl a/f') must fail with that errno.
Each OP opens what it needs and closes it again; none syncs unless it
says so.

    write PATH TEXT         create or truncate, write TEXT and a newline
    write-fsync PATH TEXT   the same, then fsync(2) the file before close
    write-fdatasync PATH TEXT   ... fdatasync(2)
    append PATH TEXT        O_APPEND write of TEXT and a newline
    pwrite PATH OFF TEXT    write TEXT at offset OFF (no newline)
    create-excl PATH        open(O_CREAT | O_EXCL), nothing written
    fsync PATH              fsync(2) of a file (opened read-only)
    fdatasync PATH          fdatasync(2) of a file
    fsyncdir DIR            fsync(2) of a directory (FUSE: fsyncdir)
    syncfs PATH             syncfs(2) on the file system holding PATH
    sync                    sync(2)
    truncate PATH N         truncate(2)
    mkdir DIR | rmdir DIR | unlink PATH
    rename FROM TO | link FROM TO | symlink TARGET PATH
    rename2 FROM TO FLAGS   renameat2(2); FLAGS: noreplace, exchange,
                            whiteout or a number
    flock PATH              flock(2) LOCK_EX on PATH, then LOCK_EX|LOCK_NB
                            on a second open of PATH must fail
    fill PATH N             write N bytes of 'x' (may stop short: prints
                            how many were written, then the errno name)
"""

import ctypes
import errno
import fcntl
import os
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
RENAME_FLAGS = {"noreplace": 1, "exchange": 2, "whiteout": 4}


def check(rc):
    if rc == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def write_file(path, text, sync=None, flags=os.O_TRUNC):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
    try:
        data = text.encode() + b"\n"
        if os.write(fd, data) != len(data):
            raise OSError(errno.EIO, "short write")
        if sync is not None:
            sync(fd)
    finally:
        os.close(fd)


def with_fd(path, fn, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    try:
        fn(fd)
    finally:
        os.close(fd)


def fill(path, n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    try:
        while done < n:
            done += os.write(fd, b"x" * min(65536, n - done))
        print(done)
    except OSError as e:
        print(done)
        print(errno.errorcode[e.errno])
    finally:
        os.close(fd)


def flock_pair(path):
    a = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    b = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        raise OSError(errno.EIO, "a second flock did not conflict")
    finally:
        os.close(b)
        os.close(a)


def run(op, args):
    a = args
    if op == "write":
        write_file(a[0], " ".join(a[1:]))
    elif op == "write-fsync":
        write_file(a[0], " ".join(a[1:]), os.fsync)
    elif op == "write-fdatasync":
        write_file(a[0], " ".join(a[1:]), os.fdatasync)
    elif op == "append":
        write_file(a[0], " ".join(a[1:]), flags=os.O_APPEND)
    elif op == "pwrite":
        with_fd(a[0], lambda fd: os.pwrite(fd, " ".join(a[2:]).encode(),
                                           int(a[1])), os.O_WRONLY)
    elif op == "create-excl":
        os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif op == "fsync":
        with_fd(a[0], os.fsync)
    elif op == "fdatasync":
        with_fd(a[0], os.fdatasync)
    elif op == "fsyncdir":
        with_fd(a[0], os.fsync, os.O_RDONLY | os.O_DIRECTORY)
    elif op == "syncfs":
        with_fd(a[0], lambda fd: check(LIBC.syncfs(fd)))
    elif op == "sync":
        os.sync()
    elif op == "truncate":
        os.truncate(a[0], int(a[1]))
    elif op == "mkdir":
        os.mkdir(a[0], 0o755)
    elif op == "rmdir":
        os.rmdir(a[0])
    elif op == "unlink":
        os.unlink(a[0])
    elif op == "rename":
        os.rename(a[0], a[1])
    elif op == "link":
        os.link(a[0], a[1])
    elif op == "symlink":
        os.symlink(a[0], a[1])
    elif op == "rename2":
        flags = RENAME_FLAGS.get(a[2])
        flags = int(a[2]) if flags is None else flags
        check(LIBC.renameat2(-100, a[0].encode(), -100, a[1].encode(),
                             ctypes.c_uint(flags)))
    elif op == "flock":
        flock_pair(a[0])
    elif op == "fill":
        fill(a[0], int(a[1]))
    else:
        raise SystemExit("fsops.py: unknown op " + op)


def main():
    argv = sys.argv[1:]
    if len(argv) >= 2 and argv[0] == "-C":
        os.chdir(argv[1])
        argv = argv[2:]
    for spec in argv:
        words = spec.split()
        want = None
        if words and words[0].startswith("!"):
            want = words.pop(0)[1:]
        try:
            run(words[0], words[1:])
        except OSError as e:
            got = errno.errorcode.get(e.errno, str(e.errno))
            if got != want:
                sys.exit("fsops.py: %s: %s (%s)" % (spec, e.strerror, got))
            continue
        if want is not None:
            sys.exit("fsops.py: %s: succeeded, expected %s" % (spec, want))


if __name__ == "__main__":
    main()
