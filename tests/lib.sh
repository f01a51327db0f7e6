# SPDX-License-Identifier: GPL-3.0-or-later
#
# tests/lib.sh: helpers shared by popfetch's integration tests (and by
# demo/run). Sourced, never run. POSIX sh: it works under dash and bash,
# whichever $(SHELL) make check uses.
#
# A test starts with
#
#	. "$top_srcdir/tests/lib.sh"
#	t_setup
#
# Environment:
#	top_srcdir	the source tree (required)
#	POPFETCH	absolute path of the popfetch binary under test
#	PYTHON3		python interpreter (default: python3)
#	KEEP_TEST_DIR	if set and not empty, keep the test directory
#	T_REQUIRE	set before sourcing: what the test needs, checked now;
#			default "root dovecot openssl python3 popfetch"
#	T_SKIP_STATUS	exit status for a skip (default 77, automake's)
#
# Everything a test starts lives under its own directory $T and is stopped
# by PID when the test exits; two tests can run in parallel.

# shellcheck disable=SC3043 # local: dash and bash both have it
PATH=$PATH:/usr/sbin:/sbin
export PATH
: "${PYTHON3:=python3}"
T_NAME=$(basename "$0" .test)
T=
T_PIDS=
T_MOUNTS=
T_SEQ=0

# --- reporting -------------------------------------------------------

# t_log MSG...: a progress line in the test's log.
t_log()
{
	echo "# $*"
}

# t_fail MSG...: report a failure and exit 1.
t_fail()
{
	echo "FAIL: $T_NAME: $*" >&2
	exit 1
}

# t_pass: report success and exit 0.
t_pass()
{
	echo "PASS: $T_NAME"
	exit 0
}

# t_skip MSG...: report why the test cannot run and exit 77.
t_skip()
{
	echo "SKIP: $T_NAME: $*" >&2
	exit "${T_SKIP_STATUS:-77}"
}

# t_require WHAT...: skip unless each of root, dovecot, openssl, python3
# (or any other command) is available; fail if the binary under test,
# popfetch, is missing: a test never skips silently for that.
t_require()
{
	local what
	for what in "$@"; do
		case $what in
		root)
			[ "$(id -u)" = 0 ] || t_skip "needs root" \
			    "(a private Dovecot serves mail as the mail user)"
			;;
		dovecot)
			command -v dovecot >/dev/null 2>&1 ||
			    t_skip "dovecot is not installed (dovecot-core)"
			[ -x /usr/lib/dovecot/pop3 ] ||
			    [ -x /usr/libexec/dovecot/pop3 ] ||
			    t_skip "Dovecot's POP3 server is not installed" \
			    "(dovecot-pop3d)"
			id mail >/dev/null 2>&1 ||
			    t_skip "there is no 'mail' user to own the mailbox"
			;;
		python3)
			command -v "$PYTHON3" >/dev/null 2>&1 ||
			    t_skip "$PYTHON3 is not installed"
			;;
		popfetch)
			[ -n "${POPFETCH:-}" ] ||
			    t_fail "POPFETCH is not set (run the test with" \
			    "make check, or set POPFETCH=/path/to/popfetch)"
			[ -x "$POPFETCH" ] ||
			    t_fail "POPFETCH=$POPFETCH is not an executable"
			;;
		*)
			command -v "$what" >/dev/null 2>&1 ||
			    t_skip "$what is not installed"
			;;
		esac
	done
}

[ -n "${top_srcdir:-}" ] || t_fail "top_srcdir is not set"
# shellcheck disable=SC2086 # T_REQUIRE is a list
t_require ${T_REQUIRE-root dovecot openssl python3 popfetch}

# --- the test directory and its processes -----------------------------

# t_setup: create the test directory $T (mode 0755 so that Dovecot's
# unprivileged processes can reach the mailbox under it) and arrange for
# everything to be stopped, and $T removed, when the test exits.
t_setup()
{
	T=$(mktemp -d "${TMPDIR:-/tmp}/popfetch-$T_NAME.XXXXXX") ||
	    t_fail "cannot create a test directory"
	chmod 755 "$T" || t_fail "chmod $T"
	export T
	trap t_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	t_log "test directory: $T"
}

t_cleanup()
{
	local rc=$? pid m
	trap - EXIT
	# Lazily: a mount still in use must not keep its daemon alive.
	for m in $T_MOUNTS; do
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	T_MOUNTS=
	for pid in $T_PIDS; do
		t_stop_pid "$pid"
	done
	T_PIDS=
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ -n "${KEEP_TEST_DIR:-}" ]; then
			echo "# kept the test directory: $T" >&2
		else
			rm -rf "$T"
		fi
	fi
	exit "$rc"
}

# t_alive PID: true while PID runs (a zombie does not count).
t_alive()
{
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) ||
	    return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# t_wait_ready PID LOG MESSAGE COMMAND...: wait until COMMAND... succeeds
# (a daemon PID, started in the background, is ready), 10 s at most; if
# PID ends first or the time runs out, show LOG and fail with MESSAGE.
t_wait_ready()
{
	local pid="$1" log="$2" msg="$3" i=0
	shift 3
	until "$@"; do
		if ! t_alive "$pid" || [ $i -ge 100 ]; then
			cat "$log" >&2
			t_fail "$msg"
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

# t_wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds;
# false once SECONDS have passed without.
t_wait_for()
{
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# t_track PID: stop PID when the test exits.
t_track()
{
	T_PIDS="$T_PIDS $1"
}

# t_stop_pid PID: SIGTERM, up to 5 s later SIGKILL, then reap it.
t_stop_pid()
{
	local pid="$1" i=0 p rest=
	if t_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		while t_alive "$pid" && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if t_alive "$pid"; then
			echo "# PID $pid ignored SIGTERM, killing it" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	for p in $T_PIDS; do
		[ "$p" = "$pid" ] || rest="$rest $p"
	done
	T_PIDS=$rest
	return 0
}

# t_free_port: print a TCP port on 127.0.0.1 that nobody listens on now.
t_free_port()
{
	"$PYTHON3" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# t_wait_pop3 PORT TLS PID [SECONDS]: wait until a POP3 server on
# 127.0.0.1:PORT greets with +OK (TLS: 1 for implicit TLS, verified
# against $T_CA), giving up after SECONDS (default 15) or when PID dies.
t_wait_pop3()
{
	"$PYTHON3" - "$1" "$2" "${T_CA:-}" "$3" "${4:-15}" <<'EOF'
import socket, ssl, sys, time
port, tls, ca, pid, secs = sys.argv[1:]
deadline = time.monotonic() + float(secs)

def alive():
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

while time.monotonic() < deadline and alive():
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=2)
        if tls == "1":
            ctx = ssl.create_default_context(cafile=ca)
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        line = s.makefile("rb").readline()
        s.close()
        if line.startswith(b"+OK"):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF
}

# --- certificates -----------------------------------------------------

# t_make_certs: a throwaway CA ($T_CA) and a certificate for 127.0.0.1
# and localhost signed by it ($T_CERT, $T_KEY), plus an unrelated CA
# ($T_CA_OTHER) for "untrusted" tests. $T_PIN is the server key's
# sha256 public-key pin ("sha256//BASE64"), as for fingerprint.
t_make_certs()
{
	local d="$T/certs"
	mkdir -p "$d" || t_fail "mkdir $d"
	{
		openssl genpkey -algorithm EC \
		    -pkeyopt ec_paramgen_curve:prime256v1 -out "$d/ca.key" &&
		openssl req -x509 -new -key "$d/ca.key" -sha256 -days 30 \
		    -subj "/CN=popfetch test CA" \
		    -addext "basicConstraints=critical,CA:TRUE" \
		    -addext "keyUsage=critical,keyCertSign,cRLSign" \
		    -out "$d/ca.pem" &&
		openssl genpkey -algorithm EC \
		    -pkeyopt ec_paramgen_curve:prime256v1 \
		    -out "$d/other-ca.key" &&
		openssl req -x509 -new -key "$d/other-ca.key" -sha256 \
		    -days 30 -subj "/CN=unrelated test CA" \
		    -addext "basicConstraints=critical,CA:TRUE" \
		    -addext "keyUsage=critical,keyCertSign,cRLSign" \
		    -out "$d/other-ca.pem" &&
		openssl genpkey -algorithm EC \
		    -pkeyopt ec_paramgen_curve:prime256v1 \
		    -out "$d/server.key" &&
		openssl req -new -key "$d/server.key" -subj "/CN=127.0.0.1" \
		    -out "$d/server.csr" &&
		printf '%s\n' \
		    "basicConstraints=critical,CA:FALSE" \
		    "keyUsage=critical,digitalSignature" \
		    "extendedKeyUsage=serverAuth" \
		    "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		    >"$d/server.ext" &&
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
		    -CAkey "$d/ca.key" -CAcreateserial \
		    -CAserial "$d/ca.srl" -days 30 -sha256 \
		    -extfile "$d/server.ext" -out "$d/server.pem"
	} >"$d/openssl.log" 2>&1 || {
		cat "$d/openssl.log" >&2
		t_fail "openssl could not make the test certificates"
	}
	T_CA=$d/ca.pem
	T_CA_OTHER=$d/other-ca.pem
	T_CERT=$d/server.pem
	T_KEY=$d/server.key
	T_PIN=sha256//$(openssl x509 -in "$T_CERT" -noout -pubkey |
	    openssl pkey -pubin -outform der |
	    openssl dgst -sha256 -binary | openssl base64 -A)
	export T_CA T_CA_OTHER T_CERT T_KEY T_PIN
}

# --- a private Dovecot ------------------------------------------------

# t_dovecot_start: run a private Dovecot under $T/dovecot with user
# "alice", password "secret" (uid/gid of the mail user), the mailbox
# $T/mail (Maildir), POP3 (with STLS) on $DOVECOT_POP3_PORT and POP3S on
# $DOVECOT_POP3S_PORT, both on 127.0.0.1, certificate signed by $T_CA
# ($DOVECOT_CA). Makes the certificates first if needed.
#
# Hooks, for a test that needs more (unset, nothing changes):
#	T_DOVECOT_PROTOCOLS	replaces "pop3" (e.g. "pop3 lmtp")
#	T_DOVECOT_EXTRA		added at the end of dovecot.conf
#	T_DOVECOT_PASSWD_EXTRA	lines added to the passwd-file (more users)
t_dovecot_start()
{
	local d="$T/dovecot" try=1
	[ -n "${T_CA:-}" ] || t_make_certs
	if [ "$(id -u)" = 0 ] &&
	    ! setpriv --reuid=mail --regid=mail --clear-groups \
	    test -x "$T/." 2>/dev/null; then
		t_fail "the mail user cannot reach $T (set TMPDIR to a" \
		    "directory everyone can traverse)"
	fi
	mkdir -p "$d" "$T/mail/cur" "$T/mail/new" "$T/mail/tmp" \
	    "$T/mail-home" || t_fail "mkdir"
	chown -R mail:mail "$T/mail" "$T/mail-home" &&
	    chmod 700 "$T/mail" "$T/mail/cur" "$T/mail/new" \
	    "$T/mail/tmp" || t_fail "cannot give the mailbox to mail"
	printf 'alice:{PLAIN}secret:%s:%s::%s::\n' \
	    "$(id -u mail)" "$(id -g mail)" "$T/mail-home" >"$d/passwd"
	[ -z "${T_DOVECOT_PASSWD_EXTRA:-}" ] ||
	    printf '%s\n' "$T_DOVECOT_PASSWD_EXTRA" >>"$d/passwd"
	chmod 644 "$d/passwd"
	while :; do
		DOVECOT_POP3_PORT=$(t_free_port)
		DOVECOT_POP3S_PORT=$(t_free_port)
		t_dovecot_config >"$d/dovecot.conf"
		: >"$d/dovecot.log"
		dovecot -F -c "$d/dovecot.conf" >"$d/stderr" 2>&1 &
		DOVECOT_PID=$!
		t_track "$DOVECOT_PID"
		if t_wait_pop3 "$DOVECOT_POP3_PORT" 0 "$DOVECOT_PID" &&
		    t_wait_pop3 "$DOVECOT_POP3S_PORT" 1 "$DOVECOT_PID"; then
			break
		fi
		t_stop_pid "$DOVECOT_PID"
		# Another test may have taken a port between t_free_port
		# and Dovecot's bind: try again with others.
		if [ $try -lt 3 ] &&
		    grep -q "Address already in use" "$d/stderr" \
		    "$d/dovecot.log"; then
			try=$((try + 1))
			continue
		fi
		cat "$d/stderr" "$d/dovecot.log" >&2
		t_fail "Dovecot did not come up (log above)"
	done
	DOVECOT_CA=$T_CA
	DOVECOT_LOG=$d/dovecot.log
	export DOVECOT_POP3_PORT DOVECOT_POP3S_PORT DOVECOT_CA DOVECOT_LOG
	export DOVECOT_PID
	t_log "Dovecot $DOVECOT_PID: pop3 $DOVECOT_POP3_PORT," \
	    "pop3s $DOVECOT_POP3S_PORT"
}

# t_dovecot_stop: stop the private Dovecot and wait for it.
t_dovecot_stop()
{
	[ -n "${DOVECOT_PID:-}" ] && t_stop_pid "$DOVECOT_PID"
	DOVECOT_PID=
}

t_dovecot_config()
{
	local d="$T/dovecot"
	cat <<EOF
# Generated by tests/lib.sh for one test; everything lives under $T.
instance_name = popfetch-test-${T##*.}
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
listen = 127.0.0.1
protocols = ${T_DOVECOT_PROTOCOLS:-pop3}
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <$T_CERT
ssl_key = <$T_KEY
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
passdb {
  driver = passwd-file
  args = $d/passwd
}
userdb {
  driver = passwd-file
  args = $d/passwd
}
mail_location = maildir:$T/mail
pop3_uidl_format = %08Xu%08Xv
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DOVECOT_POP3_PORT
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $DOVECOT_POP3S_PORT
    ssl = yes
  }
}
${T_DOVECOT_EXTRA:-}
EOF
}

# --- the server's mailbox ---------------------------------------------

# t_seed SET FILE...: put each FILE into the Dovecot mailbox (new/, owned
# by mail, mode 0600) and keep a copy in $T/seed/SET/, the expected set
# for t_assert_same_set. Files are delivered as they are (LF lines).
t_seed()
{
	local set="$1" f name
	shift
	mkdir -p "$T/seed/$set" || t_fail "mkdir $T/seed/$set"
	for f in "$@"; do
		T_SEQ=$((T_SEQ + 1))
		name=$((1700000000 + T_SEQ)).P$$Q$T_SEQ.popfetch-test
		cp "$f" "$T/seed/$set/$name" &&
		    install -o mail -g mail -m 600 "$f" "$T/mail/tmp/$name" &&
		    mv "$T/mail/tmp/$name" "$T/mail/new/$name" ||
		    t_fail "cannot seed $f"
	done
}

# t_gen_message N: print message number N: small, distinct, the same on
# every run.
t_gen_message()
{
	local n="$1" i=0
	printf 'Return-Path: <sender%d@example.org>\n' $((n % 5))
	printf 'From: Sender %d <sender%d@example.org>\n' $((n % 5)) $((n % 5))
	printf 'To: Alice <alice@example.net>\n'
	printf 'Subject: Test message %d\n' "$n"
	printf 'Date: Tue, 14 Nov 2023 %02d:%02d:00 +0000\n' \
	    $((n / 60 % 24)) $((n % 60))
	printf 'Message-ID: <msg%d@popfetch.test>\n' "$n"
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n'
	printf '\n'
	printf 'This is test message %d.\n' "$n"
	while [ $i -lt $((n % 7 + 1)) ]; do
		printf 'Line %d of message %d: %s\n' "$i" "$n" \
		    "the quick brown fox jumps over the lazy dog"
		i=$((i + 1))
	done
	printf -- '-- \nThe popfetch test suite\n'
}

# t_seed_generated N [SET]: seed N new generated messages (set "gen" by
# default); each call makes messages distinct from all earlier ones.
t_seed_generated()
{
	local n="$1" set="${2:-gen}" i=0 dir="$T/gen"
	mkdir -p "$dir" || t_fail "mkdir $dir"
	while [ $i -lt "$n" ]; do
		t_gen_message $((T_SEQ + 1)) >"$dir/msg" ||
		    t_fail "cannot write a message"
		t_seed "$set" "$dir/msg"
		i=$((i + 1))
	done
	rm -f "$dir/msg"
}

# t_server_count: print how many messages the server's mailbox holds.
t_server_count()
{
	find "$T/mail/cur" "$T/mail/new" -type f | wc -l | tr -d ' '
}

# t_server_uidls: print the UIDs the Dovecot serves now, one a line, in
# message order (a POP3 session of its own, which deletes nothing).
t_server_uidls()
{
	"$PYTHON3" - "$DOVECOT_POP3_PORT" <<'EOF'
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=10)
p.user("alice")
p.pass_("secret")
for line in p.uidl()[1]:
    print(line.decode().split(" ", 1)[1])
p.quit()
EOF
}

# --- popfetch ---------------------------------------------------------

# t_maildir NAME: the Maildir t_write_config gives account NAME.
t_maildir()
{
	echo "$T/Maildir-$1"
}

# t_has_key TEXT KEY: true if the libconfig TEXT sets KEY.
t_has_key()
{
	case " $1" in
	*[\ \;\	]"$2"[\ =]*) return 0 ;;
	esac
	return 1
}

# t_write_config FILE 'NAME TLS [SETTINGS]'...: write a popfetch config
# (mode 0600) with state_dir $T/state and one account per argument.
# TLS is implicit, starttls or none. Each account gets host 127.0.0.1,
# the Dovecot port for TLS, ca_file $T_CA (unless tls is none, which gets
# allow_plaintext = true, or $T_NO_CA_FILE is set), user alice, password secret (unless SETTINGS
# sets another password source, or $T_NO_PASSWORD is set) and maildir
# $(t_maildir NAME) (unless SETTINGS names another target: mda, mbox or
# lmtp), except for any of these keys that SETTINGS (libconfig
# text, e.g. 'keep = true; port = 1234;') sets itself. $T_CONFIG_TOP, if
# set, is added at the top level.
t_write_config()
{
	local file="$1" spec name rest tls extra sep=
	shift
	{
		printf 'state_dir = "%s";\n' "$T/state"
		[ -z "${T_CONFIG_TOP:-}" ] || printf '%s\n' "$T_CONFIG_TOP"
		printf 'accounts = (\n'
		for spec in "$@"; do
			name=${spec%% *}
			rest=${spec#"$name"}
			rest=${rest# }
			tls=${rest%% *}
			extra=${rest#"$tls"}
			[ -n "$name" ] && [ -n "$tls" ] ||
			    t_fail "t_write_config: bad account '$spec'"
			printf '%s  {\n    name = "%s"; tls = "%s";\n' \
			    "$sep" "$name" "$tls"
			t_has_key "$extra" host ||
			    printf '    host = "127.0.0.1";\n'
			if ! t_has_key "$extra" port; then
				case $tls in
				implicit) printf '    port = %s;\n' \
				    "${DOVECOT_POP3S_PORT:?no Dovecot}" ;;
				*) printf '    port = %s;\n' \
				    "${DOVECOT_POP3_PORT:?no Dovecot}" ;;
				esac
			fi
			if [ "$tls" = none ]; then
				t_has_key "$extra" allow_plaintext ||
				    printf '    allow_plaintext = true;\n'
			elif ! t_has_key "$extra" ca_file &&
			    [ -z "${T_NO_CA_FILE:-}" ]; then
				printf '    ca_file = "%s";\n' "$T_CA"
			fi
			t_has_key "$extra" user ||
			    printf '    user = "alice";\n'
			t_has_key "$extra" password ||
			    t_has_key "$extra" password_file ||
			    t_has_key "$extra" password_command ||
			    t_has_key "$extra" oauth2_token_command ||
			    [ -n "${T_NO_PASSWORD:-}" ] ||
			    printf '    password = "secret";\n'
			t_has_key "$extra" maildir ||
			    t_has_key "$extra" mda ||
			    t_has_key "$extra" mbox ||
			    t_has_key "$extra" lmtp ||
			    printf '    maildir = "%s";\n' "$(t_maildir "$name")"
			[ -z "$extra" ] || printf '   %s\n' "$extra"
			printf '  }'
			sep=,
		done
		printf '\n);\n'
	} >"$file" || t_fail "cannot write $file"
	chmod 600 "$file" || t_fail "chmod $file"
}

# t_popfetch TAG ARG...: run $POPFETCH ARG... (at most 60 s), stdout in
# $T/TAG.out, stderr in $T/TAG.err, exit status in $T_RC; both outputs are
# copied to the test log.
t_popfetch()
{
	local tag="$1"
	shift
	t_log "run $tag: popfetch $*"
	timeout -k 5 60 "$POPFETCH" "$@" >"$T/$tag.out" 2>"$T/$tag.err"
	T_RC=$?
	sed 's/^/#   stdout: /' "$T/$tag.out"
	sed 's/^/#   stderr: /' "$T/$tag.err"
	t_log "exit status $T_RC"
	[ "$T_RC" != 124 ] && [ "$T_RC" != 137 ] ||
	    t_fail "$tag: popfetch did not finish within 60 seconds"
}

# t_expect_rc TAG WANT: fail unless the last t_popfetch exited with WANT.
t_expect_rc()
{
	[ "$T_RC" = "$2" ] ||
	    t_fail "$1: popfetch exited with $T_RC, expected $2"
}

# t_expect_summary TAG NAME [failed=PATTERN] [fetched=N] [bytes=N]
# [deleted=N] [kept=N] [skipped=N]: $T/TAG.out has exactly one summary
# line for account NAME, in the documented format, with the given
# numbers. A line that says the account failed ("failed (WHY); ...")
# needs failed=PATTERN, a shell pattern WHY must match; without it the
# line must not say so.
t_expect_summary()
{
	local tag="$1" name="$2" lines vals f b d k s want got key why
	shift 2
	lines=$(grep -c "^popfetch: $name: " "$T/$tag.out")
	[ "$lines" = 1 ] ||
	    t_fail "$tag: $lines summary lines for $name, expected 1"
	vals=$(sed -n "s/^popfetch: $name: \(failed (.*); \)\{0,1\}\([0-9][0-9]*\) fetched (\([0-9][0-9]*\) bytes), \([0-9][0-9]*\) deleted, \([0-9][0-9]*\) kept, \([0-9][0-9]*\) skipped\$/\2 \3 \4 \5 \6/p" \
	    "$T/$tag.out")
	[ -n "$vals" ] || t_fail "$tag: malformed summary line for $name"
	why=$(sed -n "s/^popfetch: $name: failed (\(.*\)); [0-9]* fetched (.*/\1/p" \
	    "$T/$tag.out")
	read -r f b d k s <<EOF
$vals
EOF
	case " $* " in
	*" failed="*) ;;
	*) [ -z "$why" ] ||
	    t_fail "$tag: $name: the summary says it failed ($why)" ;;
	esac
	for want in "$@"; do
		key=${want%%=*}
		case $key in
		failed)
			# shellcheck disable=SC2254
			case $why in
			${want#*=}) ;;
			*) t_fail "$tag: $name: failed (\"$why\"), expected" \
			    "\"${want#*=}\"" ;;
			esac
			continue ;;
		fetched) got=$f ;;
		bytes) got=$b ;;
		deleted) got=$d ;;
		kept) got=$k ;;
		skipped) got=$s ;;
		*) t_fail "t_expect_summary: unknown field $key" ;;
		esac
		[ "$got" = "${want#*=}" ] ||
		    t_fail "$tag: $name: $key is \"$got\", expected \"${want#*=}\""
	done
}

# t_bytes DIR: print the total size of the files in DIR.
t_bytes()
{
	find "$1" -type f -exec cat {} + | wc -c | tr -d ' '
}

# t_maildir_count DIR: print how many messages the Maildir DIR holds
# (new/ and cur/; 0 if it does not exist).
t_maildir_count()
{
	local sub n=0
	for sub in new cur; do
		[ -d "$1/$sub" ] &&
		    n=$((n + $(find "$1/$sub" -type f | wc -l)))
	done
	echo "$n"
}

# t_assert_tmp_empty MAILDIR: no file left behind in MAILDIR/tmp.
t_assert_tmp_empty()
{
	[ ! -d "$1/tmp" ] || [ -z "$(ls -A "$1/tmp")" ] ||
	    t_fail "files left in $1/tmp: $(ls -A "$1/tmp" | tr '\n' ' ')"
}

t_hashes()
{
	[ -d "$1" ] || return 0
	find "$1" -type f -exec sha256sum {} + | sort
}

# t_assert_same_set SRC_DIR MAILDIR: every file of SRC_DIR is in
# MAILDIR/new exactly once, byte for byte, and MAILDIR/new holds nothing
# else.
t_assert_same_set()
{
	local src="$1" md="$2" x="$T/.same-set"
	t_hashes "$src" >"$x.src"
	t_hashes "$md/new" >"$x.md"
	cut -d' ' -f1 "$x.src" | sort >"$x.a"
	cut -d' ' -f1 "$x.md" | sort >"$x.b"
	if ! cmp -s "$x.a" "$x.b"; then
		echo "# expected ($src) but not in $md/new:" >&2
		comm -23 "$x.a" "$x.b" | grep -F -f - "$x.src" >&2
		echo "# in $md/new but not expected, or too often:" >&2
		comm -13 "$x.a" "$x.b" | grep -F -f - "$x.md" >&2
		t_fail "$md/new does not hold exactly the messages of $src"
	fi
	rm -f "$x".*
}

# --- the fault-injecting server ---------------------------------------

# t_fakepop3_start NAME ARG...: start tests/fakepop3.py ARG... on a port
# of its choice; sets FAKE_PID, FAKE_PORT and FAKE_LOG ($T/NAME.log, its
# JSON-lines log). Its stderr goes to $T/NAME.stderr.
t_fakepop3_start()
{
	local name="$1"
	shift
	rm -f "$T/$name.port"
	"$PYTHON3" "$top_srcdir/tests/fakepop3.py" --port 0 \
	    --port-file "$T/$name.port" --log "$T/$name.log" "$@" \
	    >"$T/$name.stderr" 2>&1 &
	FAKE_PID=$!
	t_track "$FAKE_PID"
	t_wait_ready "$FAKE_PID" "$T/$name.stderr" \
	    "fakepop3 $name did not start" test -s "$T/$name.port"
	FAKE_PORT=$(cat "$T/$name.port")
	FAKE_LOG=$T/$name.log
	t_log "fakepop3 $name: PID $FAKE_PID, port $FAKE_PORT, args: $*"
}

# t_credentials_sent LOG: true if the fakepop3 LOG shows any command that
# carries credentials (USER, PASS, APOP, AUTH).
t_credentials_sent()
{
	grep -Eq '"cmd":"(USER|PASS|APOP|AUTH)"' "$1"
}

# --- measuring and checking runs --------------------------------------

# t_popfetch_measured TAG ARG...: as t_popfetch, and measure the run
# (with wait4(2), no external tool): T_ELAPSED is the wall-clock time and
# T_CPU the user plus system CPU time, in seconds; T_MAXRSS is the peak
# resident set size in KiB.
t_popfetch_measured()
{
	local tag="$1"
	shift
	t_log "run $tag: popfetch $* (measured)"
	rm -f "$T/$tag.rusage"
	"$PYTHON3" - "$T/$tag" "$POPFETCH" "$@" <<'EOF'
import os, signal, sys, time
base, argv = sys.argv[1], sys.argv[2:]
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
out = os.open(base + ".out", flags, 0o644)
err = os.open(base + ".err", flags, 0o644)
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(60)
_, status, ru = os.wait4(pid, 0)
elapsed = time.monotonic() - start
rc = os.waitstatus_to_exitcode(status)
with open(base + ".rusage", "w") as f:
    f.write("%d %.3f %.3f %d\n" % (rc if rc >= 0 else 128 - rc, elapsed,
                                   ru.ru_utime + ru.ru_stime, ru.ru_maxrss))
EOF
	[ -s "$T/$tag.rusage" ] ||
	    t_fail "$tag: cannot run and measure popfetch"
	read -r T_RC T_ELAPSED T_CPU T_MAXRSS <"$T/$tag.rusage"
	sed 's/^/#   stdout: /' "$T/$tag.out"
	sed 's/^/#   stderr: /' "$T/$tag.err"
	t_log "exit status $T_RC; $T_ELAPSED s elapsed, $T_CPU s CPU," \
	    "peak RSS $T_MAXRSS KiB"
	[ "$T_RC" != 137 ] ||
	    t_fail "$tag: popfetch did not finish within 60 seconds"
}

# t_check_le WHAT VALUE MAX: fail unless the decimal number VALUE is at
# most MAX; WHAT names it in the message.
t_check_le()
{
	# Under valgrind (T_NO_LIMITS set) time and memory mean nothing.
	if [ -n "${T_NO_LIMITS:-}" ]; then
		t_log "not checked under $T_NO_LIMITS: $1 is $2 (limit $3)"
		return 0
	fi
	awk -v v="$2" -v m="$3" 'BEGIN { exit !(v + 0 <= m + 0) }' ||
	    t_fail "$1 is $2, more than $3"
}

# t_assert_escaped FILE: FILE holds no byte that could act on a terminal
# or a log: nothing below 0x20 but newline, nothing from 0x7f up.
t_assert_escaped()
{
	local n
	n=$(LC_ALL=C tr -d '\n\040-\176' <"$1" | wc -c | tr -d ' ')
	if [ "$n" != 0 ]; then
		LC_ALL=C grep -n '[^ -~]' "$1" | od -c | head -20 >&2
		t_fail "$1 holds $n raw control or non-ASCII bytes"
	fi
}

# t_assert_only_complete SRC_DIR MAILDIR: every file in MAILDIR/new is,
# byte for byte, one of the files of SRC_DIR (nothing partial, nothing
# foreign), none is there twice, and MAILDIR/tmp is empty.
t_assert_only_complete()
{
	local x="$T/.only-complete"
	t_hashes "$1" | cut -d' ' -f1 | sort -u >"$x.src"
	t_hashes "$2/new" >"$x.md"
	cut -d' ' -f1 "$x.md" | sort >"$x.b"
	if [ -n "$(sort -u "$x.b" | comm -13 "$x.src" -)" ]; then
		sort -u "$x.b" | comm -13 "$x.src" - | grep -F -f - "$x.md" >&2
		t_fail "$2/new holds a file that is not one of $1's messages"
	fi
	[ -z "$(uniq -d "$x.b")" ] || t_fail "$2/new holds a message twice"
	t_assert_tmp_empty "$2"
	rm -f "$x".*
}

# t_fake_uids LOG EVENT: the UIDs in the fakepop3 LOG's EVENT records
# ("retr": messages sent whole; "dele-commit": deletions committed), one
# a line, sorted.
t_fake_uids()
{
	"$PYTHON3" - "$1" "$2" <<'EOF'
import json, sys
uids = []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        rec = json.loads(line)
        if rec.get("event") == sys.argv[2]:
            uids.append(rec["uid"])
for uid in sorted(uids):
    print(uid)
EOF
}

# t_sanitized: true if $POPFETCH was built with AddressSanitizer (its
# memory use then says nothing about popfetch's own).
t_sanitized()
{
	grep -aq __asan_init "$POPFETCH"
}

# --- powerfs: a file system that simulates a power cut --------------------

# t_powerfs_require: skip unless this machine can mount a FUSE file system
# (/dev/fuse and fusermount3); fail if tests/powerfs was not built, unless
# configure found no libfuse3 (then skip).
t_powerfs_require()
{
	[ -c /dev/fuse ] || t_skip "/dev/fuse is missing"
	command -v fusermount3 >/dev/null 2>&1 ||
	    t_skip "fusermount3 is not installed (fuse3)"
	: "${POWERFS:=$(dirname "${POPFETCH:-.}")/tests/powerfs}"
	if [ ! -x "$POWERFS" ]; then
		[ "${HAVE_FUSE3:-}" != no ] ||
		    t_skip "configure found no libfuse3 (libfuse3-dev):" \
		    "powerfs was not built"
		t_fail "POWERFS=$POWERFS is not built (make check builds it)"
	fi
}

# t_powerfs_mount DIR [OPTION...]: mount a new, empty powerfs on DIR
# (created) with OPTIONs (e.g. -o capacity=1M); POWERFS_PID is its daemon.
# Unmounted and stopped when the test exits.
t_powerfs_mount()
{
	local dir="$1"
	shift
	mkdir -p "$dir" || t_fail "mkdir $dir"
	"$POWERFS" -f "$@" "$dir" >"$dir.log" 2>&1 &
	POWERFS_PID=$!
	t_track "$POWERFS_PID"
	T_MOUNTS="$T_MOUNTS $dir"
	t_wait_ready "$POWERFS_PID" "$dir.log" "powerfs did not mount on $dir" \
	    test -f "$dir/.powerfs"
	t_log "powerfs $POWERFS_PID on $dir $*"
}

# t_powerfs_umount DIR PID: unmount DIR and wait for its daemon PID.
t_powerfs_umount()
{
	local m rest=
	fusermount3 -u "$1" || t_fail "cannot unmount $1"
	for m in $T_MOUNTS; do
		[ "$m" = "$1" ] || rest="$rest $m"
	done
	T_MOUNTS=$rest
	t_stop_pid "$2"
}

# t_powerfs_cmd DIR COMMAND: send COMMAND (drop, sync, limit N, reset) to
# the powerfs mounted on DIR.
t_powerfs_cmd()
{
	echo "$2" >"$1/.powerfs" || t_fail "powerfs on $1 refused: $2"
}

# t_powerfs_drop DIR: a power cut on DIR: whatever was not made durable
# is gone. Stop every process writing there first.
t_powerfs_drop()
{
	t_powerfs_cmd "$1" drop
}

# t_powerfs_counter DIR NAME: print the counter NAME (fsync, fdatasync,
# fsyncdir, drops, syncs, used, limit, nodes) of the powerfs on DIR.
t_powerfs_counter()
{
	sed -n "s/^$2 //p" "$1/.powerfs"
}

# --- many cases in one test ---------------------------------------------

t_case_cleanup()
{
	local pid
	for pid in $T_PIDS; do
		t_stop_pid "$pid"
	done
}

# t_run_cases PREFIX NAME...: run the function PREFIX_NAME for each NAME,
# each in a subshell of its own, so that one failure does not hide the
# others (a failing case's servers are stopped as its subshell exits);
# then fail, naming the cases that failed, if any did.
t_run_cases()
{
	local prefix="$1" c failed=
	shift
	for c in "$@"; do
		t_log "=== case $c"
		if (trap t_case_cleanup EXIT; "${prefix}_$c"); then
			t_log "=== case $c: ok"
		else
			failed="$failed $c"
		fi
	done
	[ -z "$failed" ] || t_fail "failed cases:$failed"
}
