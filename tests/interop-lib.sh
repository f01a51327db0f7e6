# SPDX-License-Identifier: GPL-3.0-or-later
#
# tests/interop-lib.sh: popfetch against the POP3 servers Debian ships,
# for tests/interop-*.test. Sourced after tests/lib.sh. POSIX sh.
#
# Each server runs privately on 127.0.0.1, from a directory under $T, with
# its own configuration, user (alice, password "secret", the uid of the
# mail user) and certificate (t_make_certs). Servers whose package
# conflicts with Dovecot's are unpacked by tests/install-deps into
# $IX_PKG_DIR/NAME and run in a mount and PID namespace of their own
# (ix_ns_start), where the package's /usr/bin, /usr/sbin, /usr/lib and
# /etc are laid over the machine's, with the test's /etc/passwd, PAM
# service and configuration on top; nothing of the machine changes.
#
# A server's test defines:
#	IX_SERVER	its name, for accounts and messages
#	IX_MODES	the TLS modes it serves: implicit, starttls, none
#	IX_USER		the user name to log in with (password "secret")
#	srv_port MODE	print the port of MODE
#	srv_store FILE...  add the messages to the mailbox, in this order
#	srv_clear	empty the mailbox
#	srv_quirks DIR MODE  (optional) assert what the server did to the
#			bytes, from interop-raw.py's snapshot DIR of the
#			awkward set
# and, where the server needs them:
#	IX_ERR_OK	a regular expression (grep -E) of the commands the
#			server may answer with -ERR in a normal run
#	IX_LOGINS	logins in a normal run (default 1)
#	IX_RAW_TWICE	1: the server changes its messages after a session
#			(see ix_raw)
#	IX_SESSION_BYTES  bytes it makes up anew each session (ix_delivered)
# and then calls ix_main, which runs ix_mode for each mode as a case.
#
# Environment:
#	IX_PKG_DIR		where install-deps unpacked the servers
#				(default /usr/local/lib/popfetch-tests)
#	INTEROP_EXPECT_UTF8	1 (the default): popfetch must enable UTF8
#				(RFC 6856) where the server offers it, so it
#				gets what a UTF8 client gets; 0: what a client
#				without it gets (Courier wraps such messages).
#				popfetch does not enable UTF8 yet: with 1,
#				tests/interop-courier.test fails until it does
#	INTEROP_MODES		run only these modes (to debug one)

# shellcheck disable=SC3043 # local: dash and bash both have it
: "${IX_PKG_DIR:=/usr/local/lib/popfetch-tests}"
: "${INTEROP_EXPECT_UTF8:=1}"
IX_RAW=$top_srcdir/tests/interop-raw.py
IX_PASSWORD=secret

# --- private namespaces -------------------------------------------------

# ix_require_ns: skip unless this machine lets root make a mount and PID
# namespace with overlay mounts (CI's does).
ix_require_ns()
{
	[ "$(id -u)" = 0 ] || t_skip "needs root (private mount namespaces)"
	command -v unshare >/dev/null 2>&1 || t_skip "no unshare (util-linux)"
	mkdir -p "$T/ns-probe/etc" || t_fail "mkdir"
	unshare --fork --pid --kill-child -m --propagation private sh -c \
	    "mount -t overlay overlay -o lowerdir=$T/ns-probe/etc:/etc /etc" \
	    >"$T/ns-probe/log" 2>&1 || {
		cat "$T/ns-probe/log" >&2
		t_skip "cannot make a private mount namespace with an" \
		    "overlay mount (unshare -m, mount -t overlay)"
	}
	rm -rf "$T/ns-probe"
}

# ix_pkg NAME FILE: IX_PKG is the directory install-deps unpacked NAME
# into; skip, naming the reason, unless FILE (a path inside the package)
# is there.
ix_pkg()
{
	IX_PKG=$IX_PKG_DIR/$1
	[ -e "$IX_PKG/$2" ] || t_skip "$1 is not unpacked in $IX_PKG" \
	    "(tests/install-deps does it; the package conflicts with Dovecot's)"
}

# ix_syslog DIR: a syslog receiver on DIR/log.sock that appends each
# message to DIR/syslog, and DIR/dev/log pointing at it, for ix_ns_start
# to lay over /dev/log.
ix_syslog()
{
	local d="$1" i=0
	mkdir -p "$d/dev" || t_fail "mkdir $d/dev"
	: >"$d/syslog"
	"$PYTHON3" - "$d/log.sock" "$d/syslog" <<'EOF' &
import os, socket, sys
path, out = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
EOF
	t_track $!
	while [ ! -S "$d/log.sock" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || t_fail "the syslog receiver did not start"
		sleep 0.05
	done
	ln -sf "$d/log.sock" "$d/dev/log"
}

# ix_users DIR [NAME:HOME]...: DIR/etc/passwd and group: the machine's,
# less any entry of the same names, plus alice (home DIR/home) and each
# NAME (a service's user), all with the mail user's uid and gid.
ix_users()
{
	local d="$1" u g spec names="alice" lines
	shift
	u=$(id -u mail) && g=$(id -g mail) || t_fail "no mail user"
	mkdir -p "$d/etc" "$d/home" || t_fail "mkdir $d"
	chown mail:mail "$d/home" || t_fail "chown $d/home"
	lines="alice:x:$u:$g:Alice:$d/home:/bin/false"
	for spec in "$@"; do
		names="$names ${spec%%:*}"
		lines="$lines
${spec%%:*}:x:$u:$g:${spec%%:*}:${spec#*:}:/usr/sbin/nologin"
	done
	{
		grep -v -E "^($(echo "$names" | tr ' ' '|')):" /etc/passwd
		echo "$lines"
	} >"$d/etc/passwd" || t_fail "cannot write $d/etc/passwd"
	{
		grep -v -E "^($(echo "$names" | tr ' ' '|')):" /etc/group
		for spec in "$@"; do
			echo "${spec%%:*}:x:$g:"
		done
	} >"$d/etc/group" || t_fail "cannot write $d/etc/group"
	chmod 644 "$d/etc/passwd" "$d/etc/group"
}

# ix_pam DIR SERVICE: a PAM service that accepts alice with "secret" and
# nobody else (pam_exec hands the password on standard input).
ix_pam()
{
	local d="$1"
	mkdir -p "$d/etc/pam.d" || t_fail "mkdir $d/etc/pam.d"
	cat >"$d/checkpw" <<EOF
#!/bin/sh
read -r pw
[ "\$PAM_USER" = alice ] && [ "\$pw" = $IX_PASSWORD ]
EOF
	chmod 755 "$d/checkpw"
	printf '%s\n' \
	    "auth required pam_exec.so type=auth expose_authtok quiet $d/checkpw" \
	    "auth required pam_permit.so" \
	    "account required pam_permit.so" \
	    "session required pam_permit.so" >"$d/etc/pam.d/$2"
}

# ix_ns_start DIR PKG SCRIPT: run the shell commands SCRIPT in a mount
# and PID namespace of their own, after laying PKG's usr/bin, usr/sbin and
# usr/lib over the machine's (PKG may be empty), DIR/etc and PKG/etc over
# /etc, and DIR/dev (ix_syslog) over /dev. SCRIPT starts the servers in
# the background; the namespace lives until they all end or it is sent
# SIGTERM, and everything in it dies with it. Output goes to DIR/ns.log;
# IX_NS_PID is the namespace's first process (its init).
ix_ns_start()
{
	local d="$1" pkg="$2" x etc="$1/etc" i=0 ns
	mkdir -p "$d/etc" || t_fail "mkdir $d/etc"
	{
		# As the init of a PID namespace, the shell gets only the
		# signals it has a handler for.
		echo "trap 'exit 0' TERM"
		echo "set -e"
		for x in bin sbin lib; do
			[ -z "$pkg" ] || [ ! -d "$pkg/usr/$x" ] ||
			    echo "mount -t overlay overlay" \
			    "-o lowerdir=$pkg/usr/$x:/usr/$x /usr/$x"
		done
		[ -z "$pkg" ] || [ ! -d "$pkg/etc" ] || etc="$etc:$pkg/etc"
		echo "mount -t overlay overlay -o lowerdir=$etc:/etc /etc"
		[ ! -d "$d/dev" ] ||
		    echo "mount -t overlay overlay -o lowerdir=$d/dev:/dev /dev"
		echo "$3"
		echo "wait"
	} >"$d/ns.sh"
	# unshare itself ignores SIGTERM while it waits: stop its child.
	unshare --fork --pid --kill-child -m --propagation private \
	    sh "$d/ns.sh" >"$d/ns.log" 2>&1 &
	ns=$!
	until IX_NS_PID=$(pgrep -P "$ns"); do
		i=$((i + 1))
		[ $i -lt 100 ] && t_alive "$ns" || {
			cat "$d/ns.log" >&2
			t_fail "the namespace for ${d##*/} did not start"
		}
		sleep 0.05
	done
	t_track "$IX_NS_PID"
	t_track "$ns"
}

# ix_wait DIR PID PORT TLS [PORT TLS]...: wait for each port to greet
# (t_wait_pop3); fail with the server's logs if one does not.
ix_wait()
{
	local d="$1" pid="$2"
	shift 2
	while [ $# -ge 2 ]; do
		t_wait_pop3 "$1" "$2" "$pid" 20 || {
			tail -n 30 "$d"/*.log "$d/syslog" >&2 2>/dev/null
			t_fail "${d##*/} did not come up on port $1"
		}
		shift 2
	done
}

# --- GNU Mailutils and Solid POP3 (also for tests/interop-apop.test) --------

# ix_mu_available: true if GNU Mailutils' pop3d (and popauth) is there.
ix_mu_available()
{
	command -v pop3d >/dev/null 2>&1 &&
	    pop3d --version 2>/dev/null | grep -q Mailutils &&
	    command -v popauth >/dev/null 2>&1
}

ix_mu_config()
{
	local d="$T/mu"
	cat <<EOF
logging { syslog no; };
tcp-wrappers { enable no; };
virtdomain { passwd-dir "$d/domains"; };
auth {
  authentication clear; authentication generic;
  authorization clear; authorization virtdomain;
};
mailbox { mailbox-type mbox; };
tls-file-checks { key-file none; cert-file none; ca-file none; };
apop-database-file "$d/apop.db";
acl { log from any; };
server 127.0.0.1:$MU_STLS { tls-mode stls; tls { $MU_TLS }; };
server 127.0.0.1:$MU_IMPLICIT { tls-mode connection; tls { $MU_TLS }; };
server 127.0.0.1:$MU_PLAIN { tls-mode false; };
EOF
}

# ix_mu_start: GNU Mailutils' pop3d in daemon mode with a private
# configuration: a virtual domain whose passwd file holds
# alice@example.test (uid of mail), the mbox $MU_MBOX, the APOP database
# $T/mu/apop.db (none is made: see popauth), log $T/mu/log; ports
# $MU_STLS (STARTTLS), $MU_IMPLICIT and $MU_PLAIN (no TLS).
ix_mu_start()
{
	local d="$T/mu" hash
	mkdir -p "$d/domains" "$d/home/alice" || t_fail "mkdir $d"
	chown mail:mail "$d/home" "$d/home/alice" || t_fail "chown"
	hash=$(openssl passwd -6 "$IX_PASSWORD") || t_fail "openssl passwd"
	printf 'alice:%s:%s:%s:Alice:%s:/bin/false\n' "$hash" \
	    "$(id -u mail)" "$(id -g mail)" "$d/home/alice" \
	    >"$d/domains/example.test"
	printf 'alice@example.test %s\n' "$IX_PASSWORD" >"$d/apop.txt"
	MU_MBOX=$d/home/alice/INBOX
	MU_TLS="ssl-certificate-file \"$T_CERT\"; ssl-key-file \"$T_KEY\";"
	MU_STLS=$(t_free_port)
	MU_IMPLICIT=$(t_free_port)
	MU_PLAIN=$(t_free_port)
	ix_mu_config >"$d/pop3d.conf"
	pop3d --config-file="$d/pop3d.conf" --config-lint >"$d/lint" 2>&1 ||
	    { cat "$d/lint" >&2; t_fail "Mailutils refuses its config"; }
	pop3d --config-file="$d/pop3d.conf" --daemon --foreground \
	    >"$d/log" 2>&1 &
	MU_PID=$!
	t_track "$MU_PID"
	t_wait_pop3 "$MU_STLS" 0 "$MU_PID" &&
	    t_wait_pop3 "$MU_IMPLICIT" 1 "$MU_PID" &&
	    t_wait_pop3 "$MU_PLAIN" 0 "$MU_PID" ||
	    { cat "$d/log" >&2; t_fail "Mailutils' pop3d did not come up"; }
	t_log "Mailutils pop3d $MU_PID: stls $MU_STLS, implicit" \
	    "$MU_IMPLICIT, plaintext $MU_PLAIN"
}

# ix_solid_find: SOLID is Solid POP3's program (unpacked by install-deps
# into $IX_PKG_DIR/solid-pop3d, or $SOLID_POP3D), or empty.
ix_solid_find()
{
	local f
	SOLID=
	for f in "${SOLID_POP3D:-}" /usr/sbin/solid-pop3d \
	    "$IX_PKG_DIR/solid-pop3d/usr/sbin/solid-pop3d"; do
		[ -n "$f" ] && [ -x "$f" ] && { SOLID=$f; break; }
	done
}

# ix_solid_start: Solid POP3 ($SOLID), one connection per process, from
# socat (socat's log: $T/solid/log), on $SOLID_PORT, in a private
# namespace whose /etc/passwd knows alice and spop3d (its own user) and
# whose /etc/pam.d/solid-pop3d checks the test password. The mailbox is
# the mbox $SOLID_MBOX.
ix_solid_start()
{
	local d="$T/solid"
	ix_users "$d" "spop3d:/nonexistent"
	ix_pam "$d" solid-pop3d
	mkdir -p "$d/spool" || t_fail "mkdir $d/spool"
	SOLID_MBOX=$d/spool/alice
	: >"$SOLID_MBOX"
	chown mail:mail "$d/spool" "$SOLID_MBOX" || t_fail "chown"
	chmod 600 "$SOLID_MBOX"
	cat >"$d/spop3d.conf" <<EOF
<Global>
	MailDropName	"$d/spool/%s"
	MailDropType	mailbox
	LogStatistics	no
	UserOverride	no
	AddBulletins	no
</Global>
EOF
	SOLID_PORT=$(t_free_port)
	ix_syslog "$d"
	# Solid must be the process socat talks to: nofork.
	ix_ns_start "$d" "" "
socat -d -d TCP-LISTEN:$SOLID_PORT,bind=127.0.0.1,reuseaddr,fork \\
    EXEC:\"$SOLID -f $d/spop3d.conf\",nofork >$d/log 2>&1 &"
	SOLID_PID=$IX_NS_PID
	ix_wait "$d" "$SOLID_PID" "$SOLID_PORT" 0
	t_log "Solid POP3 under socat in namespace $SOLID_PID: port $SOLID_PORT"
}

# --- the messages ---------------------------------------------------------

# ix_messages DIR: the awkward set, one file each, in the order they go
# into the mailbox: a plain one; lines that need dot-stuffing; "From "
# and ">From " lines; 8-bit (ISO-8859-1) header and body; a message stored
# with CRLF lines; raw UTF-8 in the Subject (RFC 6532); no final newline;
# one of about 200 KB.
ix_messages()
{
	mkdir -p "$1" || t_fail "mkdir $1"
	"$PYTHON3" - "$1" "$IX_SERVER" <<'EOF' || t_fail "cannot write the messages"
import os, sys
out, server = sys.argv[1:]

def msg(name, subject, body, head=b""):
    n = name[:2]
    data = (b"From: Interop Test <interop@example.org>\n"
            b"To: Alice <alice@example.net>\n"
            b"Subject: " + subject + b"\n"
            b"Date: Tue, 14 Nov 2023 10:%s:00 +0000\n" % n.encode() +
            b"Message-ID: <ix" + n.encode() + b"." + server.encode() +
            b"@popfetch.test>\n" + head + b"\n" + body)
    if name.endswith("crlf"):
        data = data.replace(b"\n", b"\r\n")
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)

msg("01-plain", b"plain", b"A plain message.\n")
msg("02-dots", b"dot lines",
    b".\n..\n.hidden starts with a dot\n...\n. a dot and a space\n"
    b"ends with a dot.\n.\nlast\n")
msg("03-from", b"From_ lines",
    b"From the start of a line\n>From quoted once\n>>From quoted twice\n"
    b" From indented\nFrom\n")
msg("04-latin1", b"8-bit header and body",
    b"caf\xe9 cr\xe8me br\xfbl\xe9e\n" + bytes(range(0xa0, 0x100)) + b"\n",
    b"X-Latin1: caf\xe9 cr\xe8me\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n")
msg("05-crlf", b"stored with CRLF", b"line one\n.\nline three\n")
msg("06-utf8", "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 UTF-8 \u2713".encode(),
    "Raw UTF-8: \u00e9\u00e8\u00e0 \u20ac\n".encode(),
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n")
msg("07-nonl", b"no final newline",
    b"next comes the last line\nwithout a newline")
msg("08-big", b"about 200 KB",
    b"".join(b"%s%05d %s\n" % (b"." if i % 7 == 0 else b"", i,
                               b"x" * (60 + i % 17))
             for i in range(2800)))
EOF
}

# ix_message FILE N: a small new message (for the keep runs).
ix_message()
{
	printf '%s\n' "From: Interop Test <interop@example.org>" \
	    "To: Alice <alice@example.net>" \
	    "Subject: new mail $2" \
	    "Message-ID: <ix-new$2.$IX_SERVER@popfetch.test>" "" \
	    "New mail number $2." "." "..." >"$1" || t_fail "cannot write $1"
}

# ix_mbox_append MBOX FILE...: append the messages to MBOX as a delivery
# agent does (a "From " separator line; "From " at the start of a line
# quoted as ">From ", others left alone; a blank line after each).
ix_mbox_append()
{
	local mbox="$1"
	shift
	"$PYTHON3" - "$mbox" "$@" <<'EOF' || t_fail "cannot append to $mbox"
import re, sys
mbox, files = sys.argv[1], sys.argv[2:]
with open(mbox, "ab") as out:
    for name in files:
        data = open(name, "rb").read()
        data = re.sub(rb"(?m)^From ", b">From ", data)
        if not data.endswith(b"\n"):
            data += b"\n"
        out.write(b"From interop@example.org Tue Nov 14 10:00:00 2023\n" +
                  data + b"\n")
EOF
}

# --- what the server sends ----------------------------------------------

# ix_raw DIR MODE [plain]: interop-raw.py's snapshot of the mailbox into
# DIR (see there), over MODE; as a client with UTF8 (RFC 6856) where
# INTEROP_EXPECT_UTF8=1, unless "plain" says never. A server that changes
# its messages at the end of each session that read them sets
# IX_RAW_TWICE=1: the snapshot is then taken twice, the first one kept in
# DIR.first, and DIR is what the next session will be sent.
ix_raw()
{
	local utf8=
	[ "$INTEROP_EXPECT_UTF8" != 1 ] || [ "${3:-}" = plain ] ||
	    utf8=--utf8
	rm -rf "$1" "$1.first"
	"$PYTHON3" "$IX_RAW" --port "$(srv_port "$2")" --tls "$2" \
	    --ca "$T_CA" --user "$IX_USER" --password "$IX_PASSWORD" \
	    $utf8 "$1" ||
	    t_fail "interop-raw.py cannot read the mailbox over $2"
	[ "${IX_RAW_TWICE:-}" = 1 ] || return 0
	mv "$1" "$1.first" || t_fail "mv $1"
	"$PYTHON3" "$IX_RAW" --port "$(srv_port "$2")" --tls "$2" \
	    --ca "$T_CA" --user "$IX_USER" --password "$IX_PASSWORD" \
	    $utf8 "$1" ||
	    t_fail "interop-raw.py cannot read the mailbox over $2"
}

# ix_count MODE: how many messages the server holds now.
ix_count()
{
	"$PYTHON3" "$IX_RAW" --port "$(srv_port "$1")" --tls "$1" \
	    --ca "$T_CA" --user "$IX_USER" --password "$IX_PASSWORD" \
	    --count || t_fail "interop-raw.py cannot count the messages"
}

# ix_raw_msg DIR SUBJECT: the msg.N file of DIR whose header (not a
# part's) has the Subject SUBJECT (exactly; the line may end in CR), or
# nothing.
ix_raw_msg()
{
	"$PYTHON3" - "$@" <<'EOF'
import glob, os, sys
want = b"Subject: " + os.fsencode(sys.argv[2])
for name in sorted(glob.glob(os.path.join(sys.argv[1], "msg.*"))):
    head = open(name, "rb").read().split(b"\n\n", 1)[0].split(b"\n")
    if want in head or want + b"\r" in head:
        print(name)
        break
EOF
}

# ix_ends_with FILE FORMAT: true if FILE ends with the bytes printf FORMAT
# makes.
ix_ends_with()
{
	# shellcheck disable=SC2059 # the format is the point
	printf "$2" >"$T/.ends-with" || t_fail "printf"
	[ "$(tail -c "$(wc -c <"$T/.ends-with")" "$1" | od -An -tx1)" = \
	    "$(od -An -tx1 <"$T/.ends-with")" ]
}

# ix_delivered TAG RAW MAILDIR BEFORE [UIDS]: the files MAILDIR/new gained
# since the listing BEFORE (a file of names) are, as a set, byte for byte,
# the messages of the snapshot RAW whose UIDs are listed in the file UIDS
# (every message of RAW without it). If the server makes up some bytes
# anew in each session, IX_SESSION_BYTES, a Python regular expression,
# matches them, and they are not compared.
ix_delivered()
{
	IX_SESSION_BYTES=${IX_SESSION_BYTES:-} "$PYTHON3" - "$@" <<'EOF' && return
import hashlib, os, re, sys
tag, raw, md, before = sys.argv[1:5]
session = os.environ["IX_SESSION_BYTES"]

def digest(data):
    if session:
        data = re.sub(session.encode(), b"(session)", data)
    return hashlib.sha256(data).hexdigest()

want_uids = None
if len(sys.argv) > 5:
    want_uids = set(open(sys.argv[5], "rb").read().split())
old = set(open(before).read().split())
got = {}
for name in sorted(os.listdir(os.path.join(md, "new"))):
    if name not in old:
        data = open(os.path.join(md, "new", name), "rb").read()
        got.setdefault(digest(data), []).append(name)
want = {}
for line in open(os.path.join(raw, "list"), "rb"):
    n, uid, size = line.split()
    if want_uids is None or uid in want_uids:
        data = open(os.path.join(raw, "msg." + n.decode()), "rb").read()
        want.setdefault(digest(data), []).append(
            (n.decode(), uid.decode(), data))
bad = False
for h, items in want.items():
    if len(got.get(h, [])) != len(items):
        bad = True
        for n, uid, data in items:
            print("# %s: message %s (UID %s) was not delivered as sent"
                  % (tag, n, uid), file=sys.stderr)
for h, names in got.items():
    if len(want.get(h, [])) != len(names):
        bad = True
        for name in names:
            print("# %s: %s/new/%s is none of the messages sent"
                  % (tag, md, name), file=sys.stderr)
if bad:
    # Show where each unmatched delivered file first differs from the
    # sent message of the same Message-ID, to tell a quirk from a bug.
    def msgid(data):
        for l in data.split(b"\n"):
            if l.lower().startswith(b"message-id:"):
                return l
        return None
    sent = {}
    for items in want.values():
        for n, uid, data in items:
            sent.setdefault(msgid(data), data)
    for h, names in got.items():
        if len(want.get(h, [])) == len(names):
            continue
        for name in names:
            data = open(os.path.join(md, "new", name), "rb").read()
            ref = sent.get(msgid(data))
            if ref is None:
                continue
            i = next((i for i in range(min(len(ref), len(data)))
                      if ref[i] != data[i]), min(len(ref), len(data)))
            print("# %s: %s differs from what was sent at byte %d:\n"
                  "#   sent      %r\n#   delivered %r"
                  % (tag, name, i, ref[max(0, i - 40):i + 40],
                     data[max(0, i - 40):i + 40]), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
	if [ "$(cat "$2/utf8")" = 1 ]; then
		t_fail "$1: popfetch did not deliver what $IX_SERVER sends" \
		    "to a client that enables UTF8 (RFC 6856), as" \
		    "INTEROP_EXPECT_UTF8=1 wants: does popfetch send UTF8?"
	fi
	t_fail "$1: popfetch did not deliver what $IX_SERVER sent"
}

# ix_listing MAILDIR FILE: the names in MAILDIR/new now, into FILE.
ix_listing()
{
	if [ -d "$1/new" ]; then
		ls "$1/new" | sort >"$2"
	else
		: >"$2"
	fi
}

# ix_new_bytes MAILDIR BEFORE: the total size of the files MAILDIR/new
# gained since the listing BEFORE.
ix_new_bytes()
{
	ls "$1/new" | sort | comm -23 - "$2" | (cd "$1/new" &&
	    xargs cat) | wc -c | tr -d ' '
}

# ix_trace_ok TAG NAME: the -v log of run TAG (account NAME) shows one
# login (or $IX_LOGINS), one QUIT, no -ERR but to a command that
# $IX_ERR_OK (an extended regular expression) matches, and nothing but
# the protocol on stderr.
ix_trace_ok()
{
	local err="$T/$1.err" n
	if grep -v -E "^popfetch: $2: [<>#] " "$err" >"$T/$1.odd"; then
		sed 's/^/#   odd: /' "$T/$1.odd" >&2
		t_fail "$1: popfetch -v said more than the protocol (above)"
	fi
	n=$(grep -c -E "^popfetch: $2: > (PASS|AUTH|APOP) " "$err")
	[ "$n" = "${IX_LOGINS:-1}" ] ||
	    t_fail "$1: $n logins in the trace, expected ${IX_LOGINS:-1}"
	n=$(grep -c -E "^popfetch: $2: > QUIT" "$err")
	[ "$n" = 1 ] || t_fail "$1: $n QUITs in the trace, expected 1"
	"$PYTHON3" - "$err" "$2" "${IX_ERR_OK:-^\$}" <<'EOF' ||
import re, sys
trace, name, ok = sys.argv[1:]
prefix = "popfetch: %s: " % name
sent, greeted, bad = [], False, 0
for line in open(trace, encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")[len(prefix):]
    if line.startswith("> "):
        sent.append(line[2:])
    elif line.startswith("< +OK") or line.startswith("< -ERR"):
        if not greeted:
            greeted = True
            continue
        cmd = sent.pop(0) if sent else "(nothing)"
        if line.startswith("< -ERR") and not re.search(ok, cmd):
            print("#   %s -> %s" % (cmd, line[2:]), file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
EOF
	    t_fail "$1: the server answered -ERR (above)"
}

# --- the cases ------------------------------------------------------------

# ix_config NAME MODE [SETTINGS]: $T/NAME.conf, one account NAME.
ix_config()
{
	t_write_config "$T/$1.conf" \
	    "$1 $2 port = $(srv_port "$2"); user = \"$IX_USER\"; ${3:-}"
}

# ix_check NAME N MODE: --check and --dry-run of account NAME, which
# would fetch the N messages the server holds: exit 0, the check
# passes, STAT and the plan say N, the dry run lists N messages with
# their subjects; nothing changes on either side.
ix_check()
{
	local name="$1" n="$2" md
	md=$(t_maildir "$name")
	t_popfetch "$name-check" -c "$T/$name.conf" --check
	t_expect_rc "$name-check" 0
	grep -q "^popfetch: $name: check passed\$" "$T/$name-check.out" ||
	    t_fail "$name-check: no 'check passed'"
	grep -q "^popfetch: $name: STAT: $n messages, " \
	    "$T/$name-check.out" || t_fail "$name-check: STAT is not $n"
	grep -q "^popfetch: $name: a run would: fetch $n new " \
	    "$T/$name-check.out" || t_fail "$name-check: would not fetch $n"
	t_popfetch "$name-dry" -c "$T/$name.conf" --dry-run
	t_expect_rc "$name-dry" 0
	[ "$(grep -c "^popfetch: $name:   fetch " "$T/$name-dry.out")" = "$n" ] ||
	    t_fail "$name-dry: does not list $n messages to fetch"
	grep -q "Subject: dot lines\$" "$T/$name-dry.out" ||
	    t_fail "$name-dry: no 'Subject: dot lines'"
	grep -q "^popfetch: $name: dry run done: " "$T/$name-dry.out" ||
	    t_fail "$name-dry: no 'dry run done'"
	[ "$(t_maildir_count "$md")" = 0 ] ||
	    t_fail "$name: --check or --dry-run delivered"
	[ ! -e "$T/state/$name.state" ] ||
	    t_fail "$name: --check or --dry-run wrote a state"
	[ "$(ix_count "$3")" = "$n" ] ||
	    t_fail "$name: --check or --dry-run changed the mailbox"
}

# ix_delete MODE: the awkward set, then --check, --dry-run, and a run in
# delete mode with -v: what the server sent is delivered, the mailbox is
# left empty, and the trace shows nothing odd.
ix_delete()
{
	local mode="$1" name="$IX_SERVER-$1" md n
	md=$(t_maildir "$name")
	srv_clear
	srv_store "$T/msgs"/*
	ix_raw "$T/$name.raw0" "$mode"
	n=$(wc -l <"$T/$name.raw0/list")
	[ "$n" -gt 0 ] || t_fail "$name: the server lists no message"
	if command -v srv_quirks >/dev/null 2>&1; then
		srv_quirks "$T/$name.raw0" "$mode"
	fi
	ix_config "$name" "$mode"
	ix_check "$name" "$n" "$mode"
	# Again: some servers change their messages on any QUIT (Mailutils).
	ix_raw "$T/$name.raw" "$mode"
	[ "$(wc -l <"$T/$name.raw/list")" = "$n" ] ||
	    t_fail "$name: the number of messages changed"
	ix_listing "$md" "$T/$name.before"
	t_popfetch "$name" -c "$T/$name.conf" -v
	t_expect_rc "$name" 0
	ix_delivered "$name" "$T/$name.raw" "$md" "$T/$name.before"
	t_expect_summary "$name" "$name" fetched="$n" deleted="$n" kept=0 \
	    bytes="$(ix_new_bytes "$md" "$T/$name.before")"
	t_assert_tmp_empty "$md"
	ix_trace_ok "$name" "$name"
	n=$(ix_count "$mode")
	[ "$n" = 0 ] || t_fail "$name: $n messages left on the server"
}

# ix_keep MODE: keep mode over three runs, new mail arriving between
# them: each run delivers exactly the messages with UIDs it has not seen,
# as the server sends them, and leaves everything on the server.
ix_keep()
{
	local mode="$1" name="$IX_SERVER-$1-keep" md run=1 n total
	md=$(t_maildir "$name")
	srv_clear
	srv_store "$T/msgs"/*
	ix_config "$name" "$mode" "keep = true;"
	: >"$T/$name.seen"
	while [ $run -le 3 ]; do
		if [ $run -gt 1 ]; then
			ix_message "$T/new-$run" "$run"
			srv_store "$T/new-$run"
		fi
		ix_raw "$T/$name.raw$run" "$mode"
		cut -d' ' -f2 "$T/$name.raw$run/list" | sort >"$T/$name.uids"
		sort "$T/$name.seen" | comm -23 "$T/$name.uids" - \
		    >"$T/$name.new"
		n=$(wc -l <"$T/$name.new")
		total=$(wc -l <"$T/$name.uids")
		[ $run = 1 ] || [ "$n" = 1 ] || t_fail "$name run $run:" \
		    "$n new UIDs on the server, expected 1 (the UIDs of" \
		    "the others changed?)"
		ix_listing "$md" "$T/$name.before"
		t_popfetch "$name-$run" -c "$T/$name.conf"
		t_expect_rc "$name-$run" 0
		ix_delivered "$name-$run" "$T/$name.raw$run" "$md" \
		    "$T/$name.before" "$T/$name.new"
		t_expect_summary "$name-$run" "$name" fetched="$n" \
		    deleted=0 kept="$total" \
		    bytes="$(ix_new_bytes "$md" "$T/$name.before")"
		cat "$T/$name.new" >>"$T/$name.seen"
		n=$(ix_count "$mode")
		[ "$n" = "$total" ] ||
		    t_fail "$name run $run: $n messages on the server, not $total"
		run=$((run + 1))
	done
	[ "$(t_maildir_count "$md")" = "$total" ] ||
	    t_fail "$name: $(t_maildir_count "$md") messages delivered," \
	    "expected $total"
	t_assert_tmp_empty "$md"
}

ix_mode()
{
	T_PIDS=		# the case's subshell must not stop the server
	ix_delete "$1"
	ix_keep "$1"
}

# ix_main: the awkward set, then each mode as a case of its own.
ix_main()
{
	local m cases=
	ix_messages "$T/msgs"
	for m in ${INTEROP_MODES:-$IX_MODES}; do
		eval "case_$m() { ix_mode $m; }"
		cases="$cases $m"
	done
	# shellcheck disable=SC2086 # a list of names
	t_run_cases case $cases
	t_pass
}
