/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "xmalloc.h"
#include "tap.h"
#include "testutil.h"

#define HOME	"/home/tester"

/*
 * Most rows are one account with every required key on lines 1 to 6;
 * what a row adds to the account starts on line 7.
 */
#define HEAD	"accounts = ( {\n"
#define REQ	" name = \"a\";\n host = \"h\";\n user = \"u\";\n" \
		" maildir = \"/tmp/m\";\n"
#define PWC	" password_command = \"pass x\";\n"
#define TAIL	"} );\n"
#define ACC(x)	HEAD REQ PWC x TAIL
/* The same with other values for name (line 2) to maildir (line 5). */
#define ACCV(n, h, u, m) \
	HEAD " name = \"" n "\";\n host = \"" h "\";\n user = \"" u "\";\n" \
	" maildir = \"" m "\";\n" PWC TAIL
#define ACC_NOPW(x)	HEAD REQ x TAIL
#define ACC2(n1, n2) \
	"accounts = (\n" \
	" { name = \"" n1 "\"; host = \"h\"; user = \"u\";\n" \
	"   maildir = \"/m\"; password_command = \"x\"; },\n" \
	" { name = \"" n2 "\"; host = \"h\"; user = \"u\";\n" \
	"   maildir = \"/m\"; password_command = \"x\"; }\n" \
	");\n"

/* A certificate's SHA-256 fingerprint, as mpop and openssl x509 give it. */
#define CFP	"ED:E2:49:FE:83:05:59:19:99:3A:E7:FB:E9:34:EC:9E:" \
		"63:C9:6D:D6:CA:90:E9:1A:7A:80:67:78:BE:33:D3:C1"
#define CFP_LC	"ed:e2:49:fe:83:05:59:19:99:3a:e7:fb:e9:34:ec:9e:" \
		"63:c9:6d:d6:ca:90:e9:1a:7a:80:67:78:be:33:d3:c1"
#define SHA1FP	"12:77:2A:0B:DC:75:7E:3E:B4:A1:C2:0C:38:25:EA:9E:2B:58:A9:B4"
#define MD5FP	"12:77:2A:0B:DC:75:7E:3E:B4:A1:C2:0C:38:25:EA:9E"

typedef const char *(*check_fn)(const struct config *);

struct row {
	const char	*what;
	const char	*text;
	int		 code;		/* EX_OK: must load */
	int		 line;		/* "FILE:LINE: "; 0: "FILE: " */
	const char	*word;		/* must appear in the message */
	check_fn	 check;		/* for rows that load */
	int		 mode;		/* of the file; 0: 0600 */
};

static const char *
chk_defaults(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (c->naccounts != 1 || strcmp(a->name, "a") != 0)
		return "account";
	if (a->port != 995 || a->tls != TLS_IMPLICIT || a->auth != AUTH_AUTO)
		return "port/tls/auth";
	if (a->timeout != 60 || a->interval != 300 || c->timeout != 60 ||
	    c->interval != 300)
		return "timeout/interval";
	if (a->keep || a->keep_days != 0 || a->max_size != 0 ||
	    a->allow_plaintext)
		return "keep/max_size";
	if (a->password != NULL || a->password_file != NULL ||
	    strcmp(a->password_command, "pass x") != 0)
		return "password";
	if (a->ca_file != NULL || a->fingerprint != NULL ||
	    a->cert_fingerprint != NULL || a->pin_only)
		return "ca_file/fingerprint/verify_ca";
	if (a->tls_min != TLS_MIN_1_2 || a->tls_cert != NULL ||
	    a->tls_key != NULL)
		return "tls_min_version/tls_cert/tls_key";
	if (c->max_parallel != 8 || c->max_per_host != 4)
		return "max_parallel/max_per_host";
	if (strcmp(c->state_dir, HOME "/.local/state/popfetch") != 0)
		return "state_dir";
	if (a->line != 1 || strcmp(a->maildir, "/tmp/m") != 0)
		return "line/maildir";
	return NULL;
}

static const char *
chk_parallel(const struct config *c)
{
	return c->max_parallel == 32 && c->max_per_host == 1 ? NULL :
	    "max_parallel/max_per_host";
}

static const char *
chk_netrc(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	return a->password == NULL && a->password_file == NULL &&
	    a->password_command == NULL && a->oauth2_token_command == NULL ?
	    NULL : "password sources";
}

static const char *
chk_oauth2(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	return a->auth == AUTH_XOAUTH2 && a->password_command == NULL &&
	    strcmp(a->oauth2_token_command, "tok") == 0 ? NULL : "oauth2";
}

static const char *
chk_oauthbearer(const struct config *c)
{
	return c->accounts[0].auth == AUTH_OAUTHBEARER ? NULL : "auth";
}

static const char *
chk_extras(const struct config *c)
{
	const struct account *a = &c->accounts[0], *b = &c->accounts[1];

	if (a->max_messages != 10 || !a->add_received_header ||
	    a->keepalive != 30 || strcmp(a->proxy, "socks5h://127.0.0.1:1080")
	    != 0)
		return "first account";
	if (b->max_messages != 0 || b->add_received_header ||
	    b->keepalive != 60 || b->proxy != NULL)
		return "second account (defaults)";
	return NULL;
}

static const char *
chk_starttls(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	return a->tls == TLS_STARTTLS && a->port == 110 ? NULL : "port";
}

static const char *
chk_none(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	return a->tls == TLS_NONE && a->port == 110 && a->allow_plaintext ?
	    NULL : "tls none";
}

static const char *
chk_port(const struct config *c)
{
	return c->accounts[0].port == 1995 ? NULL : "port";
}

/* A top-level mda, replaced by the account's own maildir in one. */
static const char *
chk_targets(const struct config *c)
{
	const struct account *a = &c->accounts[0], *b = &c->accounts[1];

	if (a->deliver != DELIVER_MAILDIR || a->mda != NULL ||
	    strcmp(a->maildir, "/m") != 0)
		return "account a";
	if (b->deliver != DELIVER_MDA || b->maildir != NULL ||
	    strcmp(b->mda[0], "/bin/x") != 0 || strcmp(b->mda[1], "%T") != 0 ||
	    b->mda[2] != NULL || strcmp(b->recipient, "r@x") != 0)
		return "account b";
	if (b->on_new_mail == NULL || strcmp(b->on_new_mail[0], "n") != 0)
		return "on_new_mail";
	return NULL;
}

static const char *
chk_lmtp_unix(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (a->deliver != DELIVER_LMTP || a->maildir != NULL ||
	    strcmp(a->lmtp, "unix:/run/lmtp") != 0 || a->recipient != NULL)
		return "lmtp";
	return NULL;
}

static const char *
chk_lmtp_tcp(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (a->deliver != DELIVER_LMTP ||
	    strcmp(a->lmtp, "localhost:24") != 0 ||
	    strcmp(a->recipient, "j@x") != 0)
		return "lmtp";
	return NULL;
}

static const char *
chk_tilde(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (strcmp(a->maildir, HOME "/Mail") != 0)
		return a->maildir;
	if (strcmp(a->password_file, HOME "/.pw") != 0)
		return a->password_file;
	if (strcmp(a->ca_file, HOME) != 0)
		return a->ca_file;
	return strcmp(c->state_dir, HOME "/st") == 0 ? NULL : c->state_dir;
}

static const char *
chk_keep(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (!a->keep || a->keep_days != 30)
		return "keep";
	return a->max_size == 50ULL * 1024 * 1024 ? NULL : "max_size";
}

static const char *
chk_size_int(const struct config *c)
{
	return c->accounts[0].max_size == 1048576 ? NULL : "max_size";
}

static const char *
chk_inherit(const struct config *c)
{
	const struct account *a = &c->accounts[0], *b = &c->accounts[1];

	if (c->naccounts != 2 || c->timeout != 30 || c->interval != 600)
		return "top level";
	if (a->timeout != 30 || a->interval != 600 || b->timeout != 90 ||
	    b->interval != 600)
		return "timeout/interval";
	if (strcmp(a->host, "top") != 0 || strcmp(b->host, "own") != 0)
		return "host";
	if (a->tls != TLS_STARTTLS || a->port != 110 || b->port != 995 ||
	    b->tls != TLS_IMPLICIT)
		return "tls/port";
	if (strcmp(a->password_command, "pc") != 0 || b->password_command ||
	    strcmp(b->password_file, "/pw") != 0 || a->password_file)
		return "password";
	if (!a->keep || !b->keep || a->auth != AUTH_APOP)
		return "keep/auth";
	return strcmp(a->user, "tu") == 0 && strcmp(b->user, "tu") == 0 ?
	    NULL : "user";
}

static const char *
chk_fingerprint(const struct config *c)
{
	const char *f = c->accounts[0].fingerprint;

	return f != NULL && strncmp(f, "sha256//", 8) == 0 ? NULL : "pin";
}

static const char *
chk_pin_only(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	return a->pin_only && a->fingerprint != NULL &&
	    a->cert_fingerprint == NULL && a->ca_file == NULL ? NULL :
	    "pin_only";
}

/* mpop's form, in lower case, is kept in upper case. */
static const char *
chk_cert_fp(const struct config *c)
{
	const struct account *a = &c->accounts[0];

	if (a->fingerprint != NULL || a->cert_fingerprint == NULL)
		return "kind";
	return strcmp(a->cert_fingerprint, CFP ";" CFP) == 0 ? NULL : "case";
}

static const char *
chk_tls13(const struct config *c)
{
	return c->accounts[0].tls_min == TLS_MIN_1_3 ? NULL : "tls_min";
}

static const char *
chk_auth(const struct config *c)
{
	return c->accounts[0].auth == AUTH_CRAM_MD5 ? NULL : "auth";
}

static const char *
chk_two(const struct config *c)
{
	if (c->naccounts != 2 || c->accounts[1].line != 4)
		return "accounts";
	if (config_find_account(c, "b") != &c->accounts[1] ||
	    config_find_account(c, "B") != NULL ||
	    config_find_account(c, "x") != NULL)
		return "config_find_account";
	return NULL;
}

#define PIN	"sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define PIN2	"sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static const struct row rows[] = {
	/* Rows that load. */
	{ "minimal account, defaults", ACC(""), EX_OK, 0, NULL,
	    chk_defaults, 0 },
	{ "starttls: port 110", ACC(" tls = \"starttls\";\n"), EX_OK, 0,
	    NULL, chk_starttls, 0 },
	{ "tls none with allow_plaintext",
	    ACC(" tls = \"none\";\n allow_plaintext = true;\n"), EX_OK, 0,
	    NULL, chk_none, 0 },
	{ "explicit port", ACC(" port = 1995;\n"), EX_OK, 0, NULL,
	    chk_port, 0 },
	{ "~ expansion",
	    "state_dir = \"~/st\";\n" HEAD " name = \"a\"; host = \"h\";\n"
	    " user = \"u\"; maildir = \"~/Mail\";\n"
	    " password_file = \"~/.pw\"; ca_file = \"~\";\n" TAIL,
	    EX_OK, 0, NULL, chk_tilde, 0 },
	{ "keep, keep_days, max_size string",
	    ACC(" keep = true;\n keep_days = 30;\n max_size = \"50M\";\n"),
	    EX_OK, 0, NULL, chk_keep, 0 },
	{ "max_size integer", ACC(" max_size = 1048576;\n"), EX_OK, 0, NULL,
	    chk_size_int, 0 },
	{ "max_size 64-bit integer", ACC(" max_size = 1048576L;\n"), EX_OK,
	    0, NULL, chk_size_int, 0 },
	{ "top-level defaults inherited and overridden",
	    "timeout = 30;\ninterval = 600;\nhost = \"top\";\n"
	    "tls = \"starttls\";\nuser = \"tu\";\nkeep = true;\n"
	    "password_command = \"pc\";\nauth = \"apop\";\n"
	    "accounts = (\n { name = \"a\"; maildir = \"/m\"; },\n"
	    " { name = \"b\"; host = \"own\"; tls = \"implicit\";\n"
	    "   timeout = 90; maildir = \"/m\"; password_file = \"/pw\"; }\n"
	    ");\n", EX_OK, 0, NULL, chk_inherit, 0 },
	{ "fingerprint", ACC(" fingerprint = \"" PIN2 "\";\n"), EX_OK, 0,
	    NULL, chk_fingerprint, 0 },
	{ "two fingerprints", ACC(" fingerprint = \"" PIN ";" PIN2 "\";\n"),
	    EX_OK, 0, NULL, chk_fingerprint, 0 },
	{ "verify_ca = false with a pin",
	    ACC(" fingerprint = \"" PIN "\";\n verify_ca = false;\n"), EX_OK,
	    0, NULL, chk_pin_only, 0 },
	{ "verify_ca = false inherited",
	    "verify_ca = false;\nfingerprint = \"" PIN2 "\";\n" ACC(""),
	    EX_OK, 0, NULL, chk_pin_only, 0 },
	{ "certificate fingerprints",
	    ACC(" fingerprint = \"" CFP_LC ";" CFP "\";\n"), EX_OK, 0, NULL,
	    chk_cert_fp, 0 },
	{ "tls_min_version 1.3", ACC(" tls_min_version = \"1.3\";\n"), EX_OK,
	    0, NULL, chk_tls13, 0 },
	{ "auth cram-md5", ACC(" auth = \"cram-md5\";\n"), EX_OK, 0, NULL,
	    chk_auth, 0 },
	{ "two accounts", ACC2("a", "b"), EX_OK, 0, NULL, chk_two, 0 },
	{ "name of 64 characters",
	    HEAD " name = \"" "abcdefghij" "abcdefghij" "abcdefghij"
	    "abcdefghij" "abcdefghij" "abcdefghij" "abcd" "\";\n"
	    " host = \"h\"; user = \"u\"; maildir = \"/m\";\n"
	    " password = \"p\";\n" TAIL, EX_OK, 0, NULL, NULL, 0 },
	{ "password in a 0600 file", ACC_NOPW(" password = \"p\";\n"),
	    EX_OK, 0, NULL, NULL, 0600 },
	{ "password_file in a 0644 file",
	    ACC_NOPW(" password_file = \"/pw\";\n"), EX_OK, 0, NULL, NULL,
	    0644 },
	{ "password_command in a 0644 file", ACC(""), EX_OK, 0, NULL, NULL,
	    0644 },
	{ "libconfig syntax: colons, commas, comments",
	    "# c\n// c\n/* c */ timeout : 5,\n" ACC(""), EX_OK, 0, NULL, NULL,
	    0 },

	/* Rows that must fail. */
	{ "syntax error", ACC(" port = ;\n"), EX_CONFIG, 7, "syntax", NULL,
	    0 },
	{ "empty file", "", EX_CONFIG, 0, "no accounts", NULL, 0 },
	{ "accounts empty", "accounts = ( );\n", EX_CONFIG, 1, "empty",
	    NULL, 0 },
	{ "accounts not a list", "accounts = { name = \"a\"; };\n",
	    EX_CONFIG, 1, "expected a list", NULL, 0 },
	{ "account not a group", "accounts = ( 1 );\n", EX_CONFIG, 1,
	    "not a group", NULL, 0 },
	{ "unknown top-level key", "colour = 1;\n" ACC(""), EX_CONFIG, 1,
	    "unknown key \"colour\"", NULL, 0 },
	{ "name at top level", "name = \"x\";\n" ACC(""), EX_CONFIG, 1,
	    "unknown key \"name\"", NULL, 0 },
	{ "unknown account key", ACC(" hots = \"x\";\n"), EX_CONFIG, 7,
	    "unknown key \"hots\" in account; did you mean \"host\"?", NULL,
	    0 },
	{ "a key one letter short", ACC(" keep_day = 3;\n"), EX_CONFIG, 7,
	    "\"keep_day\" in account; did you mean \"keep_days\"?", NULL, 0 },
	{ "a misspelt key", ACC(" pasword = \"x\";\n"), EX_CONFIG, 7,
	    "did you mean \"password\"?", NULL, 0 },
	{ "a misspelt top-level key", "state_dirr = \"/x\";\n" ACC(""),
	    EX_CONFIG, 1, "\"state_dirr\"; did you mean \"state_dir\"?", NULL,
	    0 },
	{ "string for int", ACC(" port = \"995\";\n"), EX_CONFIG, 7,
	    "port: expected an integer, got a string", NULL, 0 },
	{ "int for string", ACC(" fingerprint = 5;\n"), EX_CONFIG, 7,
	    "fingerprint: expected a string, got an integer", NULL, 0 },
	{ "float for int", ACC(" timeout = 1.5;\n"), EX_CONFIG, 7,
	    "expected an integer, got a float", NULL, 0 },
	{ "string for bool", ACC(" keep = \"yes\";\n"), EX_CONFIG, 7,
	    "keep: expected a boolean", NULL, 0 },
	{ "int for top-level string", "state_dir = 3;\n" ACC(""),
	    EX_CONFIG, 1, "state_dir: expected a string", NULL, 0 },
	{ "missing host",
	    HEAD " name = \"a\";\n user = \"u\"; maildir = \"/m\";\n" PWC TAIL,
	    EX_CONFIG, 1, "missing required key \"host\"", NULL, 0 },
	{ "missing user",
	    HEAD " name = \"a\";\n host = \"h\"; maildir = \"/m\";\n" PWC TAIL,
	    EX_CONFIG, 1, "missing required key \"user\"", NULL, 0 },
	{ "missing maildir",
	    HEAD " name = \"a\";\n host = \"h\"; user = \"u\";\n" PWC TAIL,
	    EX_CONFIG, 1, "missing required key \"maildir\"", NULL, 0 },
	{ "two targets", ACC(" mbox = \"/mb\";\n"), EX_CONFIG, 7,
	    "one delivery target only", NULL, 0 },
	{ "two targets, top level",
	    "mda = [\"/x\"];\nmbox = \"/mb\";\n"
	    "accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_command = \"x\"; } );\n", EX_CONFIG, 2,
	    "one delivery target only", NULL, 0 },
	{ "mda not a list",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " mda = \"/bin/x %T\";\n" PWC TAIL, EX_CONFIG, 5,
	    "mda: expected a list", NULL, 0 },
	{ "mda empty list",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " mda = [];\n" PWC TAIL, EX_CONFIG, 5, "needs 1 to", NULL, 0 },
	{ "mda non-string",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " mda = (\"/x\", 3);\n" PWC TAIL, EX_CONFIG, 5,
	    "element 2 must be a string", NULL, 0 },
	{ "lmtp bad",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"localhost\";\n" PWC TAIL, EX_CONFIG, 5,
	    "neither unix:/PATH nor HOST:PORT", NULL, 0 },
	{ "lmtp relative socket",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"unix:sock\";\n" PWC TAIL, EX_CONFIG, 5,
	    "unix:/ABSOLUTE/PATH", NULL, 0 },
	{ "lmtp unix",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"unix:/run/lmtp\";\n" PWC TAIL, EX_OK, 0, NULL,
	    chk_lmtp_unix, 0 },
	{ "lmtp tcp",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"localhost:24\"; recipient = \"j@x\";\n" PWC TAIL,
	    EX_OK, 0, NULL, chk_lmtp_tcp, 0 },
	{ "lmtp ipv6",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"[::1]:2424\";\n" PWC TAIL, EX_OK, 0, NULL, NULL, 0 },
	{ "lmtp port 0",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"localhost:0\";\n" PWC TAIL, EX_CONFIG, 5,
	    "neither unix:/PATH nor HOST:PORT", NULL, 0 },
	{ "lmtp no host",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \":24\";\n" PWC TAIL, EX_CONFIG, 5,
	    "neither unix:/PATH nor HOST:PORT", NULL, 0 },
	{ "lmtp user cannot be RCPT TO",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"j\\xc3\\xa4\";\n"
	    " lmtp = \"unix:/run/lmtp\";\n" PWC TAIL, EX_CONFIG, 4,
	    "set recipient", NULL, 0 },
	{ "lmtp recipient not ASCII",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " lmtp = \"unix:/run/lmtp\";\n recipient = \"j\\xc3\\xa4@x\";\n"
	    PWC TAIL, EX_CONFIG, 6, "printable ASCII", NULL, 0 },
	{ "mda recipient not ASCII is fine",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " mda = [\"/bin/x\"];\n recipient = \"j\\xc3\\xa4@x\";\n"
	    PWC TAIL, EX_OK, 0, NULL, NULL, 0 },
	{ "mbox relative",
	    HEAD " name = \"a\";\n host = \"h\";\n user = \"u\";\n"
	    " mbox = \"mb\";\n" PWC TAIL, EX_CONFIG, 5, "absolute path",
	    NULL, 0 },
	{ "targets inherited and replaced",
	    "mda = [\"/bin/x\", \"%T\"];\nrecipient = \"r@x\";\n"
	    "on_new_mail = [\"n\"];\n"
	    "accounts = (\n { name = \"a\"; host = \"h\"; user = \"u\";\n"
	    "   maildir = \"/m\"; password_command = \"x\"; },\n"
	    " { name = \"b\"; host = \"h\"; user = \"u\";\n"
	    "   password_command = \"x\"; }\n);\n", EX_OK, 0, NULL,
	    chk_targets, 0 },
	{ "missing name",
	    HEAD " host = \"h\"; user = \"u\"; maildir = \"/m\";\n" PWC TAIL,
	    EX_CONFIG, 1, "missing required key \"name\"", NULL, 0 },
	{ "empty host", ACC_NOPW(" password = \"p\"; host = \"\";\n"),
	    EX_CONFIG, 0, NULL, NULL, 0 },
	{ "host with a space", ACCV("a", "a b", "u", "/m"), EX_CONFIG, 3,
	    "host", NULL, 0 },
	{ "host with a slash", ACCV("a", "a/b", "u", "/m"), EX_CONFIG, 3,
	    "host", NULL, 0 },
	{ "user with a newline", ACCV("a", "h", "a\\nb", "/m"), EX_CONFIG, 4,
	    "user", NULL, 0 },
	{ "empty user", ACCV("a", "h", "", "/m"), EX_CONFIG, 4, "empty", NULL,
	    0 },
	{ "no password: ~/.netrc at login", ACC_NOPW(""), EX_OK, 0, NULL,
	    chk_netrc, 0 },
	{ "two passwords", ACC(" password_file = \"/pw\";\n"), EX_CONFIG, 1,
	    "account \"a\": set at most one", NULL, 0 },
	{ "password and oauth2_token_command",
	    ACC_NOPW(" password = \"p\";\n oauth2_token_command = \"t\";\n"),
	    EX_CONFIG, 1, "oauth2_token_command", NULL, 0 },
	{ "oauth2_token_command: auth xoauth2 by default",
	    "password_command = \"x\";\n"
	    ACC_NOPW(" oauth2_token_command = \"tok\";\n"), EX_OK, 0, NULL,
	    chk_oauth2, 0 },
	{ "oauth2_token_command with auth oauthbearer",
	    ACC_NOPW(" oauth2_token_command = \"tok\";\n"
	    " auth = \"oauthbearer\";\n"), EX_OK, 0, NULL, chk_oauthbearer, 0 },
	{ "oauth2_token_command with auth plain",
	    ACC_NOPW(" oauth2_token_command = \"tok\";\n auth = \"plain\";\n"),
	    EX_CONFIG, 7, "bearer token", NULL, 0 },
	{ "extras, and their defaults",
	    "accounts = (\n"
	    " { name = \"a\"; host = \"h\"; user = \"u\";\n"
	    "   maildir = \"/m\"; password_command = \"x\";\n"
	    "   max_messages = 10; add_received_header = true;\n"
	    "   keepalive = 30; proxy = \"socks5h://127.0.0.1:1080\"; },\n"
	    " { name = \"b\"; host = \"h\"; user = \"u\";\n"
	    "   maildir = \"/m\"; password_command = \"x\"; }\n"
	    ");\n", EX_OK, 0, NULL, chk_extras, 0 },
	{ "max_messages -1", ACC(" max_messages = -1;\n"), EX_CONFIG, 7,
	    "out of range", NULL, 0 },
	{ "keepalive 3601", ACC(" keepalive = 3601;\n"), EX_CONFIG, 7,
	    "out of range", NULL, 0 },
	{ "add_received_header as a string",
	    ACC(" add_received_header = \"yes\";\n"), EX_CONFIG, 7,
	    "add_received_header", NULL, 0 },
	{ "proxy ftp://", ACC(" proxy = \"ftp://p:21\";\n"), EX_CONFIG, 7,
	    "not a proxy URL", NULL, 0 },
	{ "proxy without a scheme", ACC(" proxy = \"p:1080\";\n"),
	    EX_CONFIG, 7, "not a proxy URL", NULL, 0 },
	{ "proxy with a path", ACC(" proxy = \"http://p:3128/x\";\n"),
	    EX_CONFIG, 7, "nothing after it", NULL, 0 },
	{ "proxy password masked in errors",
	    ACC(" proxy = \"ftp://u:hunter2@p:3128\";\n"), EX_CONFIG, 7,
	    "\"ftp://***@p:3128\"", NULL, 0 },
	{ "proxy without a host", ACC(" proxy = \"socks5://\";\n"),
	    EX_CONFIG, 7, "HOST", NULL, 0 },
	{ "proxy password in a 0644 file",
	    ACC(" proxy = \"http://u:pw@p:3128\";\n"), EX_CONFIG, 7,
	    "proxy: ", NULL, 0644 },
	{ "empty password", ACC_NOPW(" password = \"\";\n"), EX_CONFIG, 6,
	    "empty", NULL, 0 },
	{ "password with CR", ACC_NOPW(" password = \"a\\rb\";\n"),
	    EX_CONFIG, 6, "line break", NULL, 0 },
	{ "password in a 0644 file", ACC_NOPW(" password = \"p\";\n"),
	    EX_CONFIG, 6, "chmod 600", NULL, 0644 },
	{ "password in a 0640 file", ACC_NOPW(" password = \"p\";\n"),
	    EX_CONFIG, 6, "chmod 600", NULL, 0640 },
	{ "top-level password in a 0604 file",
	    "password = \"p\";\n" ACC_NOPW(""), EX_CONFIG, 1, "chmod 600",
	    NULL, 0604 },
	{ "duplicate names", ACC2("a", "a"), EX_CONFIG, 4,
	    "duplicate account name \"a\"", NULL, 0 },
	{ "duplicate names differing in case", ACC2("Mail", "mail"),
	    EX_CONFIG, 4, "duplicate", NULL, 0 },
	{ "name .", ACCV(".", "h", "u", "/m"), EX_CONFIG, 2, "account name",
	    NULL, 0 },
	{ "name ..", ACCV("..", "h", "u", "/m"), EX_CONFIG, 2, "account name",
	    NULL, 0 },
	{ "name a/b", ACCV("a/b", "h", "u", "/m"), EX_CONFIG, 2,
	    "account name", NULL, 0 },
	{ "name empty", ACCV("", "h", "u", "/m"), EX_CONFIG, 2, "account name",
	    NULL, 0 },
	{ "name -x", ACCV("-x", "h", "u", "/m"), EX_CONFIG, 2, "account name",
	    NULL, 0 },
	{ "name .hidden", ACCV(".x", "h", "u", "/m"), EX_CONFIG, 2,
	    "account name", NULL, 0 },
	{ "name with a control byte is escaped",
	    ACCV("a\\x01\\xff", "h", "u", "/m"), EX_CONFIG, 2,
	    "\"a\\x01\\xff\"", NULL, 0 },
	{ "host with a newline is escaped", ACCV("a", "a\\nb", "u", "/m"),
	    EX_CONFIG, 3, "\"a\\x0ab\"", NULL, 0 },
	{ "name of 65 characters",
	    ACCV("abcdefghij" "abcdefghij" "abcdefghij" "abcdefghij"
	    "abcdefghij" "abcdefghij" "abcde", "h", "u", "/m"),
	    EX_CONFIG, 2, "account name", NULL, 0 },
	{ "tls none without allow_plaintext", ACC(" tls = \"none\";\n"),
	    EX_CONFIG, 7, "allow_plaintext = true", NULL, 0 },
	{ "tls none, allow_plaintext false",
	    ACC(" tls = \"none\";\n allow_plaintext = false;\n"), EX_CONFIG,
	    7, "cleartext", NULL, 0 },
	{ "top-level tls none", "tls = \"none\";\n" ACC(""), EX_CONFIG, 1,
	    "cleartext", NULL, 0 },
	{ "bad tls", ACC(" tls = \"ssl\";\n"), EX_CONFIG, 7,
	    "tls: unknown value \"ssl\"", NULL, 0 },
	{ "bad auth", ACC(" auth = \"kerberos\";\n"), EX_CONFIG, 7,
	    "auth: unknown value", NULL, 0 },
	{ "port 0", ACC(" port = 0;\n"), EX_CONFIG, 7, "out of range", NULL,
	    0 },
	{ "port 70000", ACC(" port = 70000;\n"), EX_CONFIG, 7,
	    "out of range", NULL, 0 },
	{ "port -1", ACC(" port = -1;\n"), EX_CONFIG, 7, "out of range",
	    NULL, 0 },
	{ "keep_days without keep", ACC(" keep_days = 7;\n"), EX_CONFIG, 7,
	    "keep = true", NULL, 0 },
	{ "keep_days negative",
	    ACC(" keep = true;\n keep_days = -1;\n"), EX_CONFIG, 8,
	    "out of range", NULL, 0 },
	{ "fingerprint without sha256//",
	    ACC(" fingerprint = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAA=\";\n"),
	    EX_CONFIG, 7, "fingerprint", NULL, 0 },
	{ "fingerprint too short",
	    ACC(" fingerprint = \"sha256//AAAA=\";\n"), EX_CONFIG, 7,
	    "fingerprint", NULL, 0 },
	{ "fingerprint hex",
	    ACC(" fingerprint = \"sha256//e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855\";\n"), EX_CONFIG, 7,
	    "fingerprint", NULL, 0 },
	{ "fingerprint, trailing ;", ACC(" fingerprint = \"" PIN ";\";\n"),
	    EX_CONFIG, 7, "fingerprint", NULL, 0 },
	{ "fingerprint, bad second pin",
	    ACC(" fingerprint = \"" PIN ";sha256//x\";\n"), EX_CONFIG, 7,
	    "fingerprint", NULL, 0 },
	{ "verify_ca = false without fingerprint",
	    ACC(" verify_ca = false;\n"), EX_CONFIG, 7,
	    "verify_ca = false trusts the server by its fingerprint alone",
	    NULL, 0 },
	{ "verify_ca = false with ca_file",
	    ACC(" verify_ca = false;\n fingerprint = \"" PIN "\";\n"
	    " ca_file = \"/ca.pem\";\n"), EX_CONFIG, 7,
	    "verify_ca = false and ca_file contradict", NULL, 0 },
	{ "verify_ca = false, ca_file inherited",
	    "ca_file = \"/ca.pem\";\n" HEAD REQ PWC
	    " verify_ca = false;\n fingerprint = \"" PIN "\";\n" TAIL,
	    EX_CONFIG, 8, "contradict", NULL, 0 },
	{ "verify_ca a string", ACC(" verify_ca = \"no\";\n"), EX_CONFIG, 7,
	    "verify_ca: expected a boolean", NULL, 0 },
	{ "tls_min_version 1.0", ACC(" tls_min_version = \"1.0\";\n"),
	    EX_CONFIG, 7, "TLS 1.0 is not offered", NULL, 0 },
	{ "tls_min_version 1.1", ACC(" tls_min_version = \"1.1\";\n"),
	    EX_CONFIG, 7, "RFC 8996", NULL, 0 },
	{ "tls_min_version 1.4", ACC(" tls_min_version = \"1.4\";\n"),
	    EX_CONFIG, 7, "expected one of \"1.2\", \"1.3\"", NULL, 0 },
	{ "tls_min_version a float", ACC(" tls_min_version = 1.3;\n"),
	    EX_CONFIG, 7, "expected a string, got a float", NULL, 0 },
	{ "fingerprint SHA-1", ACC(" fingerprint = \"" SHA1FP "\";\n"),
	    EX_CONFIG, 7, "is a SHA-1 fingerprint", NULL, 0 },
	{ "fingerprint MD5", ACC(" fingerprint = \"" MD5FP "\";\n"),
	    EX_CONFIG, 7, "is an MD5 fingerprint", NULL, 0 },
	{ "fingerprint, hex without colons",
	    ACC(" fingerprint = \"EDE249FE8305591999\";\n"), EX_CONFIG, 7,
	    "is neither a public-key pin", NULL, 0 },
	{ "fingerprint, a colon too many",
	    ACC(" fingerprint = \"" CFP ":\";\n"), EX_CONFIG, 7,
	    "is neither", NULL, 0 },
	{ "fingerprint, not hex", ACC(" fingerprint = \"" "GD:E2:49:FE:83:"
	    "05:59:19:99:3A:E7:FB:E9:34:EC:9E:63:C9:6D:D6:CA:90:E9:1A:7A:80:"
	    "67:78:BE:33:D3:C1\";\n"), EX_CONFIG, 7, "is neither", NULL, 0 },
	{ "fingerprint, both kinds",
	    ACC(" fingerprint = \"" PIN ";" CFP "\";\n"), EX_CONFIG, 7,
	    "not both", NULL, 0 },
	{ "certificate fingerprint through an https proxy",
	    ACC(" fingerprint = \"" CFP "\";\n proxy = \"https://p:3128\";\n"),
	    EX_CONFIG, 7, "pin the server's public key instead", NULL, 0 },
	{ "tls_key without tls_cert", ACC(" tls_key = \"/k.pem\";\n"),
	    EX_CONFIG, 7, "tls_key without tls_cert", NULL, 0 },
	{ "tls_cert relative", ACC(" tls_cert = \"c.pem\";\n"), EX_CONFIG, 7,
	    "tls_cert: \"c.pem\" must be an absolute path", NULL, 0 },
	{ "tls_cert missing", ACC(" tls_cert = \"/nonexistent/c.pem\";\n"),
	    EX_CONFIG, 7, "tls_cert: /nonexistent/c.pem: No such file", NULL,
	    0 },
	{ "fingerprint, non-canonical base64",
	    ACC(" fingerprint = \"sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAB=\";\n"),
	    EX_CONFIG, 7, "fingerprint", NULL, 0 },
	{ "bad max_size", ACC(" max_size = \"50 M\";\n"), EX_CONFIG, 7,
	    "max_size", NULL, 0 },
	{ "max_size T", ACC(" max_size = \"1T\";\n"), EX_CONFIG, 7,
	    "max_size", NULL, 0 },
	{ "max_size negative", ACC(" max_size = -5;\n"), EX_CONFIG, 7,
	    "out of range", NULL, 0 },
	{ "max_size bool", ACC(" max_size = true;\n"), EX_CONFIG, 7,
	    "expected a string or an integer", NULL, 0 },
	{ "max_parallel and max_per_host",
	    "max_parallel = 32;\nmax_per_host = 1;\n" ACC(""), EX_OK, 0, NULL,
	    chk_parallel, 0 },
	{ "max_parallel 0", "max_parallel = 0;\n" ACC(""), EX_CONFIG, 1,
	    "max_parallel", NULL, 0 },
	{ "max_per_host 257", "max_per_host = 257;\n" ACC(""), EX_CONFIG, 1,
	    "max_per_host", NULL, 0 },
	{ "max_parallel as a string", "max_parallel = \"4\";\n" ACC(""),
	    EX_CONFIG, 1, "max_parallel", NULL, 0 },
	{ "max_parallel in an account", ACC(" max_parallel = 2;\n"),
	    EX_CONFIG, 7, "max_parallel", NULL, 0 },
	{ "timeout 0", "timeout = 0;\n" ACC(""), EX_CONFIG, 1,
	    "out of range", NULL, 0 },
	{ "timeout 86401 in account", ACC(" timeout = 86401;\n"), EX_CONFIG,
	    7, "out of range", NULL, 0 },
	{ "interval 9", ACC(" interval = 9;\n"), EX_CONFIG, 7,
	    "out of range", NULL, 0 },
	{ "relative maildir", ACCV("a", "h", "u", "Mail"), EX_CONFIG, 5,
	    "absolute", NULL, 0 },
	{ "~user maildir", ACCV("a", "h", "u", "~bob/M"), EX_CONFIG, 5,
	    "~user", NULL, 0 },
	{ "relative password_file",
	    ACC_NOPW(" password_file = \"pw\";\n"), EX_CONFIG, 6, "absolute",
	    NULL, 0 },
	{ "error in the second account",
	    "accounts = (\n"
	    " { name = \"a\"; host = \"h\"; user = \"u\";\n"
	    "   maildir = \"/m\"; password_command = \"x\"; },\n"
	    " { name = \"b\"; host = \"h\"; user = \"u\";\n"
	    "   maildir = \"/m\"; password_command = \"x\";\n"
	    "   port = 0; }\n);\n", EX_CONFIG, 6, "port", NULL, 0 },
	{ "duplicate key", ACC(" host = \"h2\";\n"), EX_CONFIG, 7,
	    "\"host\" is set twice in the same group", NULL, 0 },
};

/* Writes text to a new temporary file of the given mode; returns its path. */
static char *
write_temp(const char *text, mode_t mode)
{
	return tu_write_temp(text, strlen(text), mode);
}

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

/* Checks e against what a failing row expects; NULL when it matches. */
static const char *
check_error(const struct row *r, const char *path, const struct err *e)
{
	char prefix[512];

	if (r->line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, r->line);
	else
		snprintf(prefix, sizeof(prefix), "%s:", path);
	if (e->code != r->code)
		return "code";
	if (strncmp(e->msg, prefix, strlen(prefix)) != 0)
		return "prefix";
	if (r->word != NULL && strstr(e->msg, r->word) == NULL)
		return "keyword";
	return printable(e->msg) ? NULL : "printable";
}

static void
run_row(const struct row *r)
{
	struct config *cfg = NULL;
	const char *why;
	struct err e;
	char *path;

	path = write_temp(r->text, r->mode != 0 ? (mode_t)r->mode : 0600);
	err_clear(&e);
	if (config_load(path, NULL, &cfg, &e) == 0) {
		why = r->code != EX_OK ? "loaded" :
		    r->check != NULL ? r->check(cfg) : NULL;
		config_free(cfg);
	} else
		why = r->code == EX_OK ? "failed" : check_error(r, path, &e);
	tap_ok(why == NULL, "%s%s%s%s%s", r->what, why ? ": " : "",
	    why ? why : "", e.msg[0] ? " # " : "", e.msg);
	if (unlink(path) == -1)
		fprintf(stderr, "unlink %s: %s\n", path, strerror(errno));
	free(path);
}

struct size_row {
	const char	*s;
	int		 ok;
	uint64_t	 v;
};

static const struct size_row size_rows[] = {
	{ "0", 1, 0 },
	{ "1048576", 1, 1048576 },
	{ "512k", 1, 512 * 1024 },
	{ "512K", 1, 512 * 1024 },
	{ "50M", 1, 50ULL << 20 },
	{ "50m", 1, 50ULL << 20 },
	{ "1G", 1, 1ULL << 30 },
	{ "1g", 1, 1ULL << 30 },
	{ "1kB", 1, 1024 },
	{ "1MB", 1, 1ULL << 20 },
	{ "100b", 1, 100 },
	{ "100B", 1, 100 },
	{ "007", 1, 7 },
	{ "18446744073709551615", 1, UINT64_MAX },
	{ "17179869183G", 1, 17179869183ULL << 30 },
	{ "", 0, 0 },
	{ "k", 0, 0 },
	{ "B", 0, 0 },
	{ "-1", 0, 0 },
	{ "+1", 0, 0 },
	{ " 1", 0, 0 },
	{ "1 ", 0, 0 },
	{ "1 M", 0, 0 },
	{ "0x10", 0, 0 },
	{ "1.5M", 0, 0 },
	{ "1T", 0, 0 },
	{ "1KK", 0, 0 },
	{ "1BB", 0, 0 },
	{ "1Mb ", 0, 0 },
	{ "18446744073709551616", 0, 0 },
	{ "99999999999999999999999", 0, 0 },
	{ "17179869184G", 0, 0 },
	{ "18014398509481984K", 0, 0 },
};

static void
test_sizes(void)
{
	size_t i;
	uint64_t v;
	int r;

	for (i = 0; i < sizeof(size_rows) / sizeof(size_rows[0]); i++) {
		v = 12345;
		r = config_parse_size(size_rows[i].s, &v);
		if (size_rows[i].ok)
			tap_ok(r == 0 && v == size_rows[i].v,
			    "parse_size \"%s\"", size_rows[i].s);
		else
			tap_ok(r == -1 && v == 12345,
			    "parse_size \"%s\" refused", size_rows[i].s);
	}
}

/*
 * Loads path with --state-dir state_dir (or NULL); returns 0 or -1 like
 * config_load, and frees the result.
 */
static int
try_load_dir(const char *path, const char *state_dir, struct err *e,
    check_fn check, const char **why)
{
	struct config *cfg = NULL;
	int r;

	err_clear(e);
	*why = NULL;
	r = config_load(path, state_dir, &cfg, e);
	if (r == 0 && check != NULL)
		*why = check(cfg);
	config_free(cfg);
	return r;
}

/* try_load_dir without --state-dir. */
static int
try_load(const char *path, struct err *e, check_fn check, const char **why)
{
	return try_load_dir(path, NULL, e, check, why);
}

/* Loads path and expects failure with code and a word in the message. */
static void
expect_fail(const char *what, const char *path, int code, const char *word)
{
	const char *why;
	struct err e;
	int r;

	r = try_load(path, &e, NULL, &why);
	tap_ok(r == -1 && e.code == code && strstr(e.msg, word) != NULL &&
	    printable(e.msg), "%s # %s", what, e.msg);
}

/*
 * Loads the mode 000 file at arg, as an ordinary user (tu_unprivileged):
 * 0 if refused for EACCES, as it must be; 1 if not; 2 if the file itself
 * cannot be reached (its directory is closed to this user), where a
 * refusal would prove nothing.
 */
static int
load_unreadable(void *arg)
{
	const char *path = arg, *why;
	struct stat st;
	struct err e;
	int r;

	if (stat(path, &st) == -1 || (st.st_mode & 0777) != 0) {
		printf("# uid %ld: %s is not a reachable mode 000 file\n",
		    (long)geteuid(), path);
		return 2;
	}
	r = try_load(path, &e, NULL, &why);
	printf("# uid %ld: %s\n", (long)geteuid(), e.msg);
	return r == -1 && e.code == EX_NOINPUT && printable(e.msg) &&
	    strstr(e.msg, strerror(EACCES)) != NULL ? 0 : 1;
}

static void
test_files(void)
{
	char *path;
	int r;

	path = xasprintf("%s/test_config.missing.%ld", tu_tmpdir(),
	    (long)getpid());
	expect_fail("missing file: EX_NOINPUT", path, EX_NOINPUT,
	    strerror(ENOENT));
	free(path);
	expect_fail("directory: EX_NOINPUT", tu_tmpdir(), EX_NOINPUT,
	    "regular");
	/* Root reads it all the same: the load runs as nobody then. */
	path = write_temp(ACC(""), 0);
	r = tu_unprivileged(load_unreadable, path);
	tap_ok(r == 0, "unreadable file: EX_NOINPUT%s", r == 2 ?
	    ": not reached" : r == -1 ? ": no unprivileged run" : "");
	tu_remove_temp(path);
}

#define PEM_CERT	"-----BEGIN CERTIFICATE-----\nMIIB\n" \
			"-----END CERTIFICATE-----\n"
#define PEM_KEY		"-----BEGIN PRIVATE KEY-----\nMIGH\n" \
			"-----END PRIVATE KEY-----\n"
#define PEM_RSA_ENC	"-----BEGIN RSA PRIVATE KEY-----\n" \
			"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n" \
			"MIIE\n-----END RSA PRIVATE KEY-----\n"
#define PEM_ENC		"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHs\n" \
			"-----END ENCRYPTED PRIVATE KEY-----\n"

/*
 * Loads an account with tls_cert (cert_text, cert_mode) and, when
 * key_text is not NULL, tls_key (key_text, key_mode); word NULL: it must
 * load, else fail on line 7 or 8 with word in the message.
 */
static void
client_key_row(const char *what, const char *cert_text, mode_t cert_mode,
    const char *key_text, mode_t key_mode, int line, const char *word)
{
	char *cert = write_temp(cert_text, cert_mode), *key = NULL, *text;
	char *conf, prefix[600];
	const char *why;
	struct err e;
	int r;

	if (key_text != NULL)
		key = write_temp(key_text, key_mode);
	text = xasprintf(HEAD REQ PWC " tls_cert = \"%s\";\n%s%s%s" TAIL,
	    cert, key != NULL ? " tls_key = \"" : "", key != NULL ? key : "",
	    key != NULL ? "\";\n" : "");
	conf = write_temp(text, 0600);
	r = try_load(conf, &e, NULL, &why);
	snprintf(prefix, sizeof(prefix), "%s:%d: account \"a\": ", conf,
	    line);
	if (word == NULL)
		tap_ok(r == 0, "%s # %s", what, e.msg);
	else
		tap_ok(r == -1 && e.code == EX_CONFIG &&
		    strncmp(e.msg, prefix, strlen(prefix)) == 0 &&
		    strstr(e.msg, word) != NULL, "%s # %s", what, e.msg);
	tu_remove_temp(conf);
	tu_remove_temp(cert);
	if (key != NULL)
		tu_remove_temp(key);
	free(text);
}

/* tls_cert and tls_key: the key's file is read when the file is. */
static void
test_client_key(void)
{
	client_key_row("client certificate and key", PEM_CERT, 0644,
	    PEM_KEY, 0600, 0, NULL);
	client_key_row("client certificate holding its key", PEM_CERT PEM_KEY,
	    0600, NULL, 0, 0, NULL);
	client_key_row("key readable by group", PEM_CERT, 0644, PEM_KEY, 0640,
	    8, "holds a private key but is accessible to group or others "
	    "(mode 0640); run: chmod 600");
	client_key_row("certificate with its key readable by others",
	    PEM_CERT PEM_KEY, 0604, NULL, 0, 7, "tls_cert: ");
	client_key_row("certificate without its key", PEM_CERT, 0644, NULL, 0,
	    7, "holds no PEM private key; set tls_key");
	client_key_row("key file without a key", PEM_CERT, 0644, PEM_CERT,
	    0600, 8, "tls_key: ");
	client_key_row("encrypted PKCS#8 key", PEM_CERT, 0644, PEM_ENC, 0600,
	    8, "is encrypted, and popfetch takes no passphrase");
	client_key_row("encrypted traditional key", PEM_CERT, 0644,
	    PEM_RSA_ENC, 0600, 8, "is encrypted");
	client_key_row("traditional key", PEM_CERT, 0644,
	    "-----BEGIN EC PRIVATE KEY-----\nMHcC\n"
	    "-----END EC PRIVATE KEY-----\n", 0600, 0, NULL);
}

/* @include is relative to the file; errors name the included file. */
static void
test_include(void)
{
	char *inc, *top, *text, *want;
	const char *why;
	struct err e;
	int r;

	inc = write_temp(" password = \"p\";\n", 0644);
	text = xasprintf(HEAD REQ "@include \"%s\"\n" TAIL,
	    strrchr(inc, '/') + 1);
	top = write_temp(text, 0600);
	want = xasprintf("%s:1: password: %s holds a password", inc, inc);
	expect_fail("password in an included 0644 file", top, EX_CONFIG,
	    want);
	if (chmod(inc, 0600) == -1 || chmod(top, 0644) == -1)
		exit(99);
	r = try_load(top, &e, NULL, &why);
	tap_ok(r == 0, "password in an included 0600 file # %s", e.msg);
	free(want);
	free(text);
	tu_remove_temp(top);
	tu_remove_temp(inc);

	inc = write_temp("\n port = ;\n", 0600);
	text = xasprintf(HEAD REQ PWC "@include \"%s\"\n" TAIL,
	    strrchr(inc, '/') + 1);
	top = write_temp(text, 0600);
	want = xasprintf("%s:2: ", inc);
	expect_fail("syntax error in an included file", top, EX_CONFIG, want);
	free(want);
	free(text);
	tu_remove_temp(top);
	tu_remove_temp(inc);
}

/*
 * Loads path with --state-dir opt (NULL: without) and compares its state
 * directory with want: NULL if it loads with want, else why not in buf
 * (the load's error, or the state directory it has).
 */
static const char *
state_dir_differs(const char *path, const char *opt, const char *want,
    char *buf, size_t size)
{
	struct config *cfg = NULL;
	struct err e;

	err_clear(&e);
	if (config_load(path, opt, &cfg, &e) == -1)
		snprintf(buf, size, "%s", e.msg);
	else if (strcmp(cfg->state_dir, want) != 0)
		snprintf(buf, size, "%s", cfg->state_dir);
	else
		buf = NULL;
	config_free(cfg);
	return buf;
}

/*
 * The state directory: --state-dir, else the file's state_dir, else
 * $STATE_DIRECTORY (its first path), else XDG, else HOME; never a guess
 * from where the file is.
 */
static void
test_state_dir_order(const char *path, const char *with_key)
{
	char buf[1024];
	const char *why;
	struct err e;
	int r;

	if (setenv("XDG_STATE_HOME", "/xdg", 1) == -1 ||
	    setenv("STATE_DIRECTORY", "/sd/one:/sd/two", 1) == -1)
		exit(99);
	why = state_dir_differs(path, NULL, "/sd/one", buf, sizeof(buf));
	tap_ok(why == NULL, "STATE_DIRECTORY before XDG, its first path # %s",
	    why != NULL ? why : "");
	why = state_dir_differs(with_key, NULL, "/var/x", buf, sizeof(buf));
	tap_ok(why == NULL, "state_dir before STATE_DIRECTORY # %s",
	    why != NULL ? why : "");
	why = state_dir_differs(with_key, "/opt/st", "/opt/st", buf,
	    sizeof(buf));
	tap_ok(why == NULL, "--state-dir before all # %s",
	    why != NULL ? why : "");
	r = try_load_dir(path, "opt/st", &e, NULL, &why);
	tap_ok(r == -1 && e.code == EX_USAGE && strcmp(e.msg, "--state-dir: "
	    "\"opt/st\" is not an absolute path") == 0,
	    "relative --state-dir refused # %s", e.msg);
	if (setenv("STATE_DIRECTORY", "sd", 1) == -1)
		exit(99);
	r = try_load(path, &e, NULL, &why);
	tap_ok(r == -1 && e.code == EX_CONFIG && strstr(e.msg,
	    ": STATE_DIRECTORY=\"sd\" is not an absolute path") != NULL,
	    "relative STATE_DIRECTORY refused # %s", e.msg);
	if (setenv("STATE_DIRECTORY", "", 1) == -1)
		exit(99);
	why = state_dir_differs(path, NULL, "/xdg/popfetch", buf, sizeof(buf));
	tap_ok(why == NULL, "empty STATE_DIRECTORY: unset # %s",
	    why != NULL ? why : "");
	if (unsetenv("STATE_DIRECTORY") == -1 ||
	    unsetenv("XDG_STATE_HOME") == -1)
		exit(99);
}

static void
test_state_dir(void)
{
	char *path = write_temp(ACC(""), 0600), *p2;
	char buf[1024];
	const char *why;
	struct err e;
	int r;

	if (setenv("XDG_STATE_HOME", "/xdg", 1) == -1)
		exit(99);
	why = state_dir_differs(path, NULL, "/xdg/popfetch", buf, sizeof(buf));
	tap_ok(why == NULL, "state_dir from XDG_STATE_HOME");
	if (setenv("XDG_STATE_HOME", "rel", 1) == -1)
		exit(99);
	why = state_dir_differs(path, NULL, HOME "/.local/state/popfetch", buf,
	    sizeof(buf));
	tap_ok(why == NULL, "relative XDG_STATE_HOME ignored");
	if (unsetenv("XDG_STATE_HOME") == -1 || unsetenv("HOME") == -1)
		exit(99);
	r = try_load(path, &e, NULL, &why);
	tap_ok(r == -1 && e.code == EX_CONFIG && strstr(e.msg, "HOME"),
	    "no HOME, no state_dir: error # %s", e.msg);
	p2 = write_temp("state_dir = \"/var/x\";\n" ACC(""), 0600);
	why = state_dir_differs(p2, NULL, "/var/x", buf, sizeof(buf));
	tap_ok(why == NULL, "no HOME, explicit state_dir # %s",
	    why != NULL ? why : "");
	if (setenv("HOME", HOME, 1) == -1)
		exit(99);
	test_state_dir_order(path, p2);
	tu_remove_temp(p2);
	tu_remove_temp(path);
}

/*
 * Without user's file: the system one if this machine has it, else an
 * error naming the user's file tried first.
 */
static void
no_default_path(const char *user)
{
	struct err e;
	char *p, *want;

	struct stat st;
	bool sys;

	/* Whether this machine has it decides, not what the code says. */
	sys = stat(SYSCONFDIR "/popfetch.conf", &st) == 0 ||
	    (errno != ENOENT && errno != ENOTDIR);
	err_clear(&e);
	p = config_default_path(&e);
	if (sys) {
		tap_ok(p != NULL && strcmp(p, SYSCONFDIR "/popfetch.conf") ==
		    0, "default path without a user file: the system one: %s",
		    p != NULL ? p : e.msg);
		free(p);
		return;
	}
	want = xasprintf("no configuration file: tried %s and ", user);
	tap_ok(p == NULL && e.code == EX_NOINPUT &&
	    strncmp(e.msg, want, strlen(want)) == 0 && strstr(e.msg,
	    "/popfetch.conf.example to one of them, or name one with -c") !=
	    NULL, "no default path: %s", p != NULL ? p : e.msg);
	free(want);
	free(p);
}

static void
test_default_path(void)
{
	char *dir, *sub, *file, *p, *home;
	struct err e;
	int fd;

	dir = tu_mkdtemp();
	sub = xasprintf("%s/popfetch", dir);
	file = xasprintf("%s/config", sub);
	if (setenv("XDG_CONFIG_HOME", dir, 1) == -1)
		exit(99);
	no_default_path(file);
	if (mkdir(sub, 0700) == -1 ||
	    (fd = open(file, O_WRONLY | O_CREAT, 0600)) == -1 || close(fd))
		exit(99);
	p = config_default_path(&e);
	tap_ok(p != NULL && strcmp(p, file) == 0, "default path: "
	    "XDG_CONFIG_HOME: %s", p != NULL ? p : e.msg);
	free(p);
	if (unsetenv("XDG_CONFIG_HOME") == -1 || setenv("HOME", dir, 1))
		exit(99);
	home = xasprintf("%s/.config/popfetch/config", dir);
	no_default_path(home);
	free(home);
	if (setenv("HOME", HOME, 1) == -1 || unlink(file) == -1 ||
	    rmdir(sub) == -1 || rmdir(dir) == -1)
		exit(99);
	free(file);
	free(sub);
	free(dir);
}

/*
 * Where the shipped example is: under $top_srcdir or $srcdir (make check
 * sets both), else in the tree a run by hand starts in (its top, or
 * tests/unit); NULL if none. The caller frees the result.
 */
static char *
example_path(void)
{
	static const char *const vars[] = { "top_srcdir", "srcdir" };
	static const char *const rel[] = { "etc/popfetch.conf.example",
	    "../../etc/popfetch.conf.example" };
	const char *dir;
	size_t i;

	for (i = 0; i < 2; i++)
		if ((dir = getenv(vars[i])) != NULL && dir[0] != '\0')
			return xasprintf("%s/%s", dir, rel[0]);
	for (i = 0; i < 2; i++)
		if (access(rel[i], F_OK) == 0)
			return xstrdup(rel[i]);
	return NULL;
}

/* The shipped example must load as it stands (copied to a 0600 file). */
static void
test_example(void)
{
	const char *why;
	char *path, *text, *tmp;
	struct err e;
	int r;

	if ((path = example_path()) == NULL) {
		tap_skip("etc/popfetch.conf.example loads: no $top_srcdir, "
		    "and not run in the source tree");
		return;
	}
	if ((text = tu_slurp(path, NULL)) == NULL) {
		tap_ok(0, "etc/popfetch.conf.example loads: cannot read %s",
		    path);
		free(path);
		return;
	}
	tmp = write_temp(text, 0600);
	r = try_load(tmp, &e, NULL, &why);
	tap_ok(r == 0, "etc/popfetch.conf.example loads # %s", e.msg);
	tu_remove_temp(tmp);
	free(text);
	free(path);
}

int
main(void)
{
	size_t i;

	if (setenv("HOME", HOME, 1) == -1 || unsetenv("XDG_STATE_HOME") == -1 ||
	    unsetenv("STATE_DIRECTORY") == -1)
		return 99;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	test_sizes();
	test_files();
	test_include();
	test_client_key();
	test_state_dir();
	test_default_path();
	test_example();
	config_free(NULL);
	return tap_done();
}
