# SPDX-License-Identifier: GPL-3.0-or-later
"""Small POP3 helpers for bench/run, all on 127.0.0.1.

    pop3util.py port                      print a free TCP port
    pop3util.py wait PORT TLS CA PID      wait (15 s) for a +OK greeting
    pop3util.py warm PORT PASS USER...    log in, STAT, UIDL, QUIT: lets
                                          Dovecot build its index before
                                          a timed run
"""
import os
import poplib
import socket
import ssl
import sys
import time


def alive(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(port, tls, ca, pid):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and alive(pid):
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=2)
            if tls == "1":
                ctx = ssl.create_default_context(cafile=ca)
                s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
            line = s.makefile("rb").readline()
            s.close()
            if line.startswith(b"+OK"):
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    return 1


def warm(port, password, users):
    for user in users:
        p = poplib.POP3("127.0.0.1", int(port), timeout=120)
        p.user(user)
        p.pass_(password)
        p.stat()
        p.uidl()
        p.quit()
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
        return 0
    if cmd == "wait":
        return wait(*sys.argv[2:6])
    if cmd == "warm":
        return warm(sys.argv[2], sys.argv[3], sys.argv[4:])
    print("pop3util.py: unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
