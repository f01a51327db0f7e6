#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""proxyd.py: a SOCKS5 and HTTP CONNECT proxy for popfetch's tests.

It listens on 127.0.0.1 only and speaks one protocol: --socks5 (RFC 1928
CONNECT, with IPv4, IPv6 and domain-name addresses; no authentication,
or with --user and --password the RFC 1929 username/password method
only) or --http (HTTP CONNECT tunnels; with --user and --password a
"Proxy-Authorization: Basic" header is required, else 407). Python 3
standard library only; one thread per connection.

It forwards only to 127.0.0.1, ::1 and localhost. Any other target is
refused with the protocol's own answer (SOCKS5 reply 0x02, "connection
not allowed by ruleset"; HTTP 403) and logged. A target that refuses
the connection gets SOCKS5 reply 0x05 or HTTP 502.

The --log file gets one JSON object a line: "listen" (port, mode),
"connect" (peer), "auth" (method "none", "userpass" or "basic", the
user, and "password_ok" true or false: never the password), "request"
(the target host and port as the client sent them, and "atyp": "ipv4",
"ipv6" or "domain", so a test can tell socks5:// from socks5h://, where
the host name arrives as a domain name), "refused" (why, and the reply
sent), "tunnel" (the address connected to), "close" (bytes relayed:
"up" from the client to the target, "down" back) and "exit".
Example: {"event":"request","proto":"socks5","host":"localhost",
"port":1110,"atyp":"domain","conn":1,"t":0.004}
"""

import argparse
import base64
import hmac
import ipaddress
import select
import socket
import sys

import testserver

HANDSHAKE_TIMEOUT = 10      # seconds for the client to say where to go
CONNECT_TIMEOUT = 5         # seconds to reach the target
HEAD_MAX = 16384            # bytes in an HTTP request head
HTTP_TRIES = 5              # requests on one connection before the tunnel

ALLOWED_IPS = (ipaddress.ip_address("127.0.0.1"),
               ipaddress.ip_address("::1"))

# SOCKS5 reply codes (RFC 1928, section 6).
SOCKS_OK = 0x00
SOCKS_FAILURE = 0x01
SOCKS_NOT_ALLOWED = 0x02
SOCKS_UNREACHABLE = 0x04
SOCKS_REFUSED = 0x05
SOCKS_BAD_COMMAND = 0x07
SOCKS_BAD_ATYP = 0x08


class Closed(Exception):
    """The connection is over (the client left, or we refused it)."""


def text(b):
    """Bytes from the client, readable in the log whatever they are."""
    return b.decode("utf-8", errors="backslashreplace")


def addr_type(host):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "domain"
    return "ipv4" if ip.version == 4 else "ipv6"


def allowed(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in ALLOWED_IPS
    except ValueError:
        return False


class Session:
    def __init__(self, server, sock, number):
        self.args, self.log = server.args, server.log
        self.sock, self.n = sock, number
        self.rbuf = b""
        self.target = None
        self.up = self.down = 0

    def event(self, event, **fields):
        self.log(event, conn=self.n, **fields)
        if self.args.verbose:
            print("[%d] %s %s" % (self.n, event, fields), file=sys.stderr)

    def recv_exact(self, n):
        while len(self.rbuf) < n:
            data = self.sock.recv(4096)
            if not data:
                raise Closed()
            self.rbuf += data
        data, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return data

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.event("error", error="send failed: %s" % e)
            raise Closed()

    def run(self):
        try:
            self.sock.settimeout(HANDSHAKE_TIMEOUT)
            if self.args.socks5:
                self.socks5()
            else:
                self.http()
            self.relay()
        except Closed:
            pass
        except socket.timeout:
            self.event("error", error="no request within %d s" %
                       HANDSHAKE_TIMEOUT)
        except (OSError, ValueError) as e:
            self.event("error", error=str(e))
        finally:
            self.event("close", up=self.up, down=self.down)
            for s in (self.sock, self.target):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def open_target(self, host, port):
        """Connects to an allowed target. Returns None or the error."""
        try:
            self.target = socket.create_connection((host, port),
                                                   CONNECT_TIMEOUT)
        except OSError as e:
            return e
        self.target.settimeout(None)
        self.target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.target.getpeername()
        self.event("tunnel", to=("[%s]:%d" if ":" in peer[0] else "%s:%d")
                   % peer[:2])
        return None

    # SOCKS5 (RFC 1928, RFC 1929).

    def socks5(self):
        ver, nmethods = self.recv_exact(2)
        if ver != 5:
            self.event("refused", reason="not SOCKS5 (version %d)" % ver)
            raise Closed()
        methods = self.recv_exact(nmethods)
        want = 0x02 if self.args.user is not None else 0x00
        if want not in methods:
            self.event("refused", reason="no acceptable method",
                       offered=list(methods))
            self.send(b"\x05\xff")
            raise Closed()
        self.send(bytes((5, want)))
        if want == 0x02:
            self.socks5_userpass()
        else:
            self.event("auth", method="none")
        self.socks5_request()

    def socks5_userpass(self):
        ver, ulen = self.recv_exact(2)
        user = self.recv_exact(ulen)
        plen = self.recv_exact(1)[0]
        password = self.recv_exact(plen)
        ok = ver == 1 and self.check(user, password)
        self.event("auth", method="userpass", user=text(user),
                   password_ok=ok)
        self.send(b"\x01" + (b"\x00" if ok else b"\x01"))
        if not ok:
            raise Closed()

    def check(self, user, password):
        return (hmac.compare_digest(user, self.args.user.encode()) and
                hmac.compare_digest(password, self.args.password.encode()))

    def socks5_read_addr(self, atyp):
        if atyp == 1:
            return str(ipaddress.IPv4Address(self.recv_exact(4))), "ipv4"
        if atyp == 4:
            return str(ipaddress.IPv6Address(self.recv_exact(16))), "ipv6"
        if atyp == 3:
            return text(self.recv_exact(self.recv_exact(1)[0])), "domain"
        return None, None

    def socks5_reply(self, code):
        """Answers the request; BND is the proxy's end to the target."""
        addr, port = ("0.0.0.0", 0)
        if self.target is not None:
            addr, port = self.target.getsockname()[:2]
        ip = ipaddress.ip_address(addr)
        self.send(bytes((5, code, 0, 1 if ip.version == 4 else 4)) +
                  ip.packed + port.to_bytes(2, "big"))

    def socks5_refuse(self, code, reason, **fields):
        self.event("refused", reason=reason, reply=code, **fields)
        self.socks5_reply(code)
        raise Closed()

    def socks5_request(self):
        ver, cmd, _, atyp = self.recv_exact(4)
        host, kind = self.socks5_read_addr(atyp)
        if host is None:
            self.socks5_refuse(SOCKS_BAD_ATYP, "address type %d" % atyp)
        port = int.from_bytes(self.recv_exact(2), "big")
        self.event("request", proto="socks5", cmd=cmd, host=host,
                   port=port, atyp=kind)
        if ver != 5 or cmd != 1:
            self.socks5_refuse(SOCKS_BAD_COMMAND, "command %d" % cmd)
        if not allowed(host):
            self.socks5_refuse(SOCKS_NOT_ALLOWED, "target not allowed",
                               host=host, port=port)
        err = self.open_target(host, port)
        if isinstance(err, ConnectionRefusedError):
            self.socks5_refuse(SOCKS_REFUSED, "connect: %s" % err)
        elif isinstance(err, socket.timeout):
            self.socks5_refuse(SOCKS_UNREACHABLE, "connect: timed out")
        elif err is not None:
            self.socks5_refuse(SOCKS_FAILURE, "connect: %s" % err)
        self.socks5_reply(SOCKS_OK)

    # HTTP CONNECT (RFC 9110, section 9.3.6).

    def read_head(self):
        while b"\r\n\r\n" not in self.rbuf[:HEAD_MAX + 4]:
            if len(self.rbuf) > HEAD_MAX:
                self.http_refuse(431, "Request Header Fields Too Large",
                                 "request head over %d bytes" % HEAD_MAX)
            data = self.sock.recv(4096)
            if not data:
                raise Closed()
            self.rbuf += data
        head, self.rbuf = self.rbuf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                self.http_refuse(400, "Bad Request", "malformed header")
            headers[text(name).strip().lower()] = text(value).strip()
        return text(lines[0]), headers

    def http_answer(self, code, reason, extra=""):
        self.send(("HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\n\r\n" %
                   (code, reason, extra)).encode("latin-1"))

    def http_refuse(self, code, reason, why, **fields):
        self.event("refused", reason=why, reply=code, **fields)
        self.http_answer(code, reason, "Connection: close\r\n")
        raise Closed()

    def http(self):
        for _ in range(HTTP_TRIES):
            line, headers = self.read_head()
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                self.http_refuse(400, "Bad Request", "bad request line")
            if parts[0] != "CONNECT":
                self.http_refuse(405, "Method Not Allowed",
                                 "method %s" % parts[0][:20])
            host, port = self.authority(parts[1])
            self.event("request", proto="http", host=host, port=port,
                       atyp=addr_type(host))
            if self.args.user is not None and not self.basic(headers):
                self.event("refused", reason="proxy authentication "
                           "required", reply=407)
                self.http_answer(407, "Proxy Authentication Required",
                                 'Proxy-Authenticate: Basic '
                                 'realm="proxyd"\r\n')
                continue
            if not allowed(host):
                self.http_refuse(403, "Forbidden", "target not allowed",
                                 host=host, port=port)
            err = self.open_target(host, port)
            if isinstance(err, socket.timeout):
                self.http_refuse(504, "Gateway Timeout", "connect: timed out")
            elif err is not None:
                self.http_refuse(502, "Bad Gateway", "connect: %s" % err)
            self.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return
        self.event("refused", reason="too many requests without a tunnel")
        raise Closed()

    def authority(self, auth):
        """host:port or [v6]:port, as CONNECT has it."""
        if auth.startswith("["):
            host, sep, rest = auth[1:].partition("]")
            ok = sep and rest.startswith(":")
            port = rest[1:]
        else:
            host, sep, port = auth.rpartition(":")
            ok = sep and ":" not in host
        if not ok or not host or not port.isdigit() or \
                not 0 < int(port) < 65536:
            self.http_refuse(400, "Bad Request", "bad authority",
                             authority=auth[:100])
        return host, int(port)

    def basic(self, headers):
        """Checks Proxy-Authorization; logs the outcome."""
        value = headers.get("proxy-authorization")
        if value is None:
            self.event("auth", method="none", password_ok=False)
            return False
        scheme, _, cred = value.partition(" ")
        try:
            raw = base64.b64decode(cred.strip(), validate=True)
        except ValueError:
            raw = None
        if scheme.lower() != "basic" or raw is None or b":" not in raw:
            self.event("auth", method=scheme.lower()[:20], user=None,
                       password_ok=False)
            return False
        user, _, password = raw.partition(b":")
        ok = self.check(user, password)
        self.event("auth", method="basic", user=text(user), password_ok=ok)
        return ok

    # The tunnel.

    def relay(self):
        """Copies both ways until both sides are done (half-close kept)."""
        self.sock.settimeout(None)
        if self.rbuf:   # bytes the client sent after its request
            self.target.sendall(self.rbuf)
            self.up += len(self.rbuf)
            self.rbuf = b""
        peer = {self.sock: self.target, self.target: self.sock}
        open_ = [self.sock, self.target]
        while open_:
            readable, _, _ = select.select(open_, [], [])
            for s in readable:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    open_.remove(s)
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                try:
                    peer[s].sendall(data)
                except OSError:
                    return
                if s is self.sock:
                    self.up += len(data)
                else:
                    self.down += len(data)


class Server:
    def __init__(self, args):
        self.args = args
        self.log = testserver.Log(args.log)

    def serve(self):
        a = self.args
        testserver.serve(a, self.log, "127.0.0.1", 64,
                         lambda sock, n: Session(self, sock, n).run,
                         mode="socks5" if a.socks5 else "http",
                         auth=a.user is not None)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--socks5", action="store_true",
                      help="speak SOCKS5 (RFC 1928)")
    mode.add_argument("--http", action="store_true",
                      help="speak HTTP CONNECT")
    testserver.add_listen_args(ap, "port on 127.0.0.1 (0: any free one)",
                               "print the events on stderr")
    ap.add_argument("--user", help="require this user (with --password)")
    ap.add_argument("--password", help="and this password")
    args = ap.parse_args()
    if (args.user is None) != (args.password is None):
        ap.error("--user and --password go together")
    if args.user is not None and (len(args.user.encode()) > 255 or
                                  len(args.password.encode()) > 255):
        ap.error("--user and --password: at most 255 bytes (RFC 1929)")
    server = Server(args)
    testserver.run(server.log, server.serve)


if __name__ == "__main__":
    main()
