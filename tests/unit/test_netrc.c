/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "netrc.h"
#include "xmalloc.h"
#include "tap.h"
#include "testutil.h"

/*
 * Every password in the rows contains "hunter", and no error message may:
 * messages never quote the file.
 */
struct row {
	const char	*what;
	const char	*data;
	size_t		 len;		/* 0: strlen(data) */
	const char	*host;
	const char	*user;
	int		 rv;		/* 1 found, 0 not found, -1 error */
	const char	*want;		/* the password, or a part of e.msg */
};

#define H	"pop.example.org"
#define U	"alice"
#define NUL_DATA	"machine " H "\npassword hunter1\0\n"

static const struct row rows[] = {
	/* Matching. */
	{ "one line", "machine " H " login " U " password hunter1\n", 0,
	    H, U, 1, "hunter1" },
	{ "no final newline", "machine " H " login " U " password hunter1",
	    0, H, U, 1, "hunter1" },
	{ "CRLF line ends", "machine " H "\r\nlogin " U "\r\npassword "
	    "hunter1\r\n", 0, H, U, 1, "hunter1" },
	{ "tabs, blank lines, a token a line", "\n\tmachine\n\n" H "\n\t"
	    "login\t\t" U "\n\fpassword\v hunter1", 0, H, U, 1, "hunter1" },
	{ "host compared case-insensitively", "machine POP.Example.ORG "
	    "login " U " password hunter1\n", 0, H, U, 1, "hunter1" },
	{ "host in the file, user's case", "machine pop.example.org "
	    "password hunter1\n", 0, "Pop.Example.Org", U, 1, "hunter1" },
	{ "login compared exactly", "machine " H " login Alice password "
	    "hunter1\n", 0, H, U, 0, NULL },
	{ "login is not a prefix match", "machine " H " login alic "
	    "password hunter1\nmachine " H " login alice2 password hunter2\n",
	    0, H, U, 0, NULL },
	{ "host is not a suffix match", "machine example.org password "
	    "hunter1\n", 0, H, U, 0, NULL },
	{ "login mismatch falls through", "machine " H " login bob password "
	    "hunter1\nmachine " H " login " U " password hunter2\n", 0, H, U,
	    1, "hunter2" },
	{ "login after the password", "machine " H " password hunter1 login "
	    "bob\nmachine " H " password hunter2 login " U "\n", 0, H, U, 1,
	    "hunter2" },
	{ "entry without a login matches", "machine " H " password hunter1\n",
	    0, H, U, 1, "hunter1" },
	{ "the first match wins", "machine " H " login " U " password "
	    "hunter1\nmachine " H " login " U " password hunter2\n", 0, H, U,
	    1, "hunter1" },
	{ "other hosts skipped", "machine a login " U " password hunter1\n"
	    "machine " H " login " U " password hunter2\nmachine c password "
	    "hunter3\n", 0, H, U, 1, "hunter2" },
	{ "default after the machines", "machine other login " U
	    " password hunter1\ndefault login " U " password hunter2\n", 0,
	    H, U, 1, "hunter2" },
	{ "a machine beats the default", "machine " H " login " U
	    " password hunter1\ndefault login " U " password hunter2\n", 0,
	    H, U, 1, "hunter1" },
	{ "default ends the search", "default login " U " password hunter1\n"
	    "machine " H " login " U " password hunter2\n", 0, H, U, 1,
	    "hunter1" },
	{ "default for another login ends it too", "default login bob "
	    "password hunter1\nmachine " H " login " U " password hunter2\n",
	    0, H, U, 0, NULL },
	{ "default without a login", "default password hunter1\n", 0, H, U,
	    1, "hunter1" },
	{ "match without a password ends the search", "machine " H " login "
	    U "\ndefault password hunter2\n", 0, H, U, 0, NULL },
	{ "no entry for the host", "machine other password hunter1\n", 0, H,
	    U, 0, NULL },
	{ "empty file", "", 0, H, U, 0, NULL },
	{ "blanks only", " \n\t\r\n", 0, H, U, 0, NULL },
	{ "comments only", "# one\n   # two\n#", 0, H, U, 0, NULL },
	{ "comment lines between tokens", "machine " H "\n# login bob "
	    "\"x\n  #password x\nlogin " U " password hunter1\n", 0, H, U, 1,
	    "hunter1" },
	{ "comment after an entry", "machine " H " login " U " password "
	    "hunter1 # the work account\n", 0, H, U, 1, "hunter1" },
	{ "comment line where a value is due", "machine " H " password\n"
	    "# hunter0\nhunter1\n", 0, H, U, 1, "hunter1" },
	{ "a value may start with #", "machine " H " login " U " password "
	    "#hunter1\n", 0, H, U, 1, "#hunter1" },
	{ "keywords in any case", "MACHINE " H " Login " U " PassWord "
	    "hunter1\n", 0, H, U, 1, "hunter1" },
	{ "passwd, as ftp(1)", "machine " H " passwd hunter1\n", 0, H, U, 1,
	    "hunter1" },
	{ "account and port ignored", "machine " H " login " U " account "
	    "acct port 995 password hunter1\n", 0, H, U, 1, "hunter1" },
	{ "quoted, with blanks", "machine " H " password \"hunter 1\tx\"\n",
	    0, H, U, 1, "hunter 1\tx" },
	{ "quoted, escapes", "machine " H " password \"hun\\\"ter\\\\1\"\n",
	    0, H, U, 1, "hun\"ter\\1" },
	{ "quoted, \\t and \\x", "machine " H " password \"hunter\\t\\x\"\n",
	    0, H, U, 1, "hunter\tx" },
	{ "quoted, empty", "machine " H " password \"\"\n", 0, H, U, 1, "" },
	{ "quoted host and login", "machine \"" H "\" login \"" U "\" "
	    "password hunter1\n", 0, H, U, 1, "hunter1" },
	{ "quoted keyword as a value", "machine " H " password \"password\"\n",
	    0, H, U, 1, "password" },
	{ "quoted value at the end of the file", "machine " H " password "
	    "\"hunter1\"", 0, H, U, 1, "hunter1" },
	{ "quote and backslash inside a word", "machine " H " password "
	    "hun\"ter\\1\n", 0, H, U, 1, "hun\"ter\\1" },
	{ "comma is ordinary", "machine " H " password hunter,1\n", 0, H, U,
	    1, "hunter,1" },
	{ "UTF-8 password", "machine " H " password hunter\xc3\xa4\n", 0, H,
	    U, 1, "hunter\xc3\xa4" },
	{ "macdef skipped", "macdef init\ncd /pub\nmachine " H " password "
	    "hunter0\n\nmachine " H " login " U " password hunter1\n", 0, H,
	    U, 1, "hunter1" },
	{ "macdef in an entry", "machine " H " login " U " macdef m\n"
	    "machine other\n\npassword hunter1\n", 0, H, U, 1, "hunter1" },
	{ "macdef ended by a blank CRLF line", "macdef m x y\r\nget \"a\r\n"
	    " \t\r\nmachine " H " password hunter1\r\n", 0, H, U, 1,
	    "hunter1" },
	{ "macdef, empty body", "macdef m\n\nmachine " H " password "
	    "hunter1\n", 0, H, U, 1, "hunter1" },
	{ "macdef at the end of the file", "machine " H " password hunter1\n"
	    "macdef m\nbye", 0, H, U, 1, "hunter1" },
	{ "line break in another entry's password", "machine other password "
	    "\"hunter\\n0\"\nmachine " H " password hunter1\n", 0, H, U, 1,
	    "hunter1" },
	{ "secrets after the match are not kept", "machine " H " password "
	    "hunter1\nmachine " H " password hunter2\ndefault password "
	    "hunter3\n", 0, H, U, 1, "hunter1" },

	/* Errors. */
	{ "password without a value", "machine " H " login " U " password",
	    0, H, U, -1, ":1: password without a value" },
	{ "password without a value, blanks", "machine " H " password \n\n",
	    0, H, U, -1, ":1: password without a value" },
	{ "login followed by a keyword", "machine " H " login\npassword "
	    "hunter1\n", 0, H, U, -1, ":1: login without a value" },
	{ "machine without a value", "machine\nlogin " U "\n", 0, H, U, -1,
	    ":1: machine without a value" },
	{ "line numbers with CRLF", "machine " H "\r\n\r\nlogin\r\n", 0, H, U,
	    -1, ":3: login without a value" },
	{ "line numbers after a macro", "macdef m\na\nb\n\nbogus\n", 0, H, U,
	    -1, ":5: unknown keyword" },
	{ "unterminated quote", "machine " H "\npassword \"hunter1\nlogin "
	    U "\n", 0, H, U, -1, ":2: unterminated quoted string" },
	{ "unterminated quote at the end", "machine " H " password "
	    "\"hunter1", 0, H, U, -1, ":1: unterminated quoted string" },
	{ "backslash at the end", "machine " H " password \"hunter1\\", 0, H,
	    U, -1, ":1: unterminated quoted string" },
	{ "escaped newline", "machine " H " password \"hunter1\\\n\"", 0, H,
	    U, -1, ":1: unterminated quoted string" },
	{ "text after a closing quote", "machine " H " password "
	    "\"hunter\"1\n", 0, H, U, -1, ":1: text right after a closing "
	    "quote" },
	{ "unknown keyword", "machine " H "\nlogin " U "\nprotocol pop3\n",
	    0, H, U, -1, ":3: unknown keyword" },
	{ "unquoted password with a blank", "machine " H " password my "
	    "hunter1\n", 0, H, U, -1, ":1: unknown keyword" },
	{ "a quoted keyword", "\"machine\" " H " password hunter1\n", 0, H,
	    U, -1, ":1: a quoted string where a keyword belongs" },
	{ "login outside an entry", "login " U " password hunter1\n", 0, H,
	    U, -1, ":1: login outside a machine or default entry" },
	{ "password outside an entry", "\n\npassword hunter1\n", 0, H, U, -1,
	    ":3: password outside" },
	{ "a second password", "machine " H " password hunter1 password "
	    "hunter2\n", 0, H, U, -1, ":1: a second password" },
	{ "a second login", "machine " H " login " U "\nlogin bob\n", 0, H,
	    U, -1, ":2: a second login" },
	{ "macdef without a name", "macdef\nget x\n\n", 0, H, U, -1,
	    ":1: macdef without a name" },
	{ "macdef without a name at the end", "macdef ", 0, H, U, -1,
	    ":1: macdef without a name" },
	{ "NUL byte", NUL_DATA, sizeof(NUL_DATA) - 1, H, U, -1,
	    ":2: a NUL byte" },
	{ "password with a line break", "machine " H " password "
	    "\"hunter\\r\\n1\"\n", 0, H, U, -1, ":1: the password contains a "
	    "line break" },
	{ "error after the match", "machine " H " password hunter1\n"
	    "machine x bogus hunter2\n", 0, H, U, -1, ":2: unknown keyword" },
	{ "error in an entry after default", "default password hunter1\n"
	    "machine x password\n", 0, H, U, -1,
	    ":2: password without a value" },
};

/* Does one outcome meet the row? */
static int
check(int rv, const char *pw, const struct err *e, int want_rv,
    const char *want)
{
	if (rv != want_rv)
		return 0;
	if (rv == 1)
		return pw != NULL && strcmp(pw, want) == 0;
	if (pw != NULL)
		return 0;
	if (rv == 0)
		return 1;
	return e->code == EX_CONFIG && strstr(e->msg, want) != NULL &&
	    strstr(e->msg, "hunter") == NULL;
}

/* Feeds data in pieces of step bytes (0: all at once). */
static int
parse(const struct row *r, size_t len, size_t step, char **pw,
    struct err *e)
{
	struct netrc_parser *p;
	size_t off, n;
	int rv = 0;

	p = netrc_parser_new("netrc", r->host, r->user);
	for (off = 0; off < len && rv == 0; off += n) {
		n = step == 0 || len - off < step ? len - off : step;
		rv = netrc_parser_feed(p, r->data + off, n, e);
	}
	if (rv == 0)
		rv = netrc_parser_end(p, pw, e);
	netrc_parser_free(p);
	return rv;
}

static void
run_row(const struct row *r)
{
	size_t len = r->len != 0 ? r->len : strlen(r->data);
	static const size_t steps[] = { 0, 1, 2, 7 };
	char *pw, *path;
	struct err e;
	size_t i;
	int rv, ok = 1;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]) && ok; i++) {
		pw = NULL;
		err_clear(&e);
		rv = parse(r, len, steps[i], &pw, &e);
		if (!check(rv, pw, &e, r->rv, r->want)) {
			printf("# in pieces of %zu: rv %d\n", steps[i], rv);
			ok = 0;
		}
		xfree_secret(pw);
	}
	path = tu_write_temp(r->data, len, 0600);
	err_clear(&e);
	rv = netrc_lookup(path, r->host, r->user, &pw, &e);
	if (!check(rv, pw, &e, r->rv, r->want)) {
		printf("# netrc_lookup: rv %d\n", rv);
		ok = 0;
	}
	xfree_secret(pw);
	tu_remove_temp(path);
	tap_ok(ok, "%s # %s", r->what, e.msg);
}

/* A token of n "x" as the password; over 4096 bytes is an error. */
static void
test_token_len(size_t n, int want_rv)
{
	struct row r;
	char *data, *want;

	want = xmalloc(n + 1);
	memset(want, 'x', n);
	want[n] = '\0';
	data = xasprintf("machine h password %s\nmachine h2 password "
	    "\"%s\"\n", want, want);
	memset(&r, 0, sizeof(r));
	r.what = "token length";
	r.data = data;
	r.host = "h";
	r.user = "u";
	r.rv = want_rv;
	r.want = want_rv == 1 ? want : ":1: a token longer than 4096 bytes";
	run_row(&r);
	r.host = "h2";
	r.want = want_rv == 1 ? want : ":1: a token longer than 4096 bytes";
	run_row(&r);
	free(data);
	free(want);
}

struct perm_row {
	const char	*what;
	const char	*data;
	mode_t		 mode;
	int		 rv;
	const char	*want;
};

static const struct perm_row perm_rows[] = {
	{ "0600", "machine h login u password hunter1\n", 0600, 1,
	    "hunter1" },
	{ "0400", "machine h login u password hunter1\n", 0400, 1,
	    "hunter1" },
	{ "0644 refused", "machine h login u password hunter1\n", 0644, -1,
	    "chmod 600" },
	{ "0640 refused", "machine h login u password hunter1\n", 0640, -1,
	    "mode 0640" },
	{ "0620 (group-writable) refused", "machine h password hunter1\n",
	    0620, -1, "group or others" },
	{ "0602 (world-writable) refused", "machine h password hunter1\n",
	    0602, -1, "group or others" },
	{ "0610 refused", "machine h password hunter1\n", 0610, -1,
	    "group or others" },
	{ "0644, password of another host refused",
	    "machine other password hunter1\n", 0644, -1, "holds a password" },
	{ "0644, an account refused", "machine h login u account hunter1\n",
	    0644, -1, "holds a password" },
	{ "0644 without secrets", "machine h login u\n", 0644, 0, NULL },
	{ "0644, syntax error first", "machine h password\n", 0644, -1,
	    ":1: password without a value" },
};

static void
run_perm_row(const struct perm_row *r)
{
	char *path, *pw = NULL;
	struct err e;
	int rv;

	path = tu_write_temp(r->data, strlen(r->data), r->mode);
	err_clear(&e);
	rv = netrc_lookup(path, "h", "u", &pw, &e);
	tap_ok(check(rv, pw, &e, r->rv, r->want), "mode %s # %s", r->what,
	    e.msg);
	xfree_secret(pw);
	tu_remove_temp(path);
}

/* Only root can give a file away; others skip both checks. */
static void
test_owner(void)
{
	char *path, *pw = NULL;
	struct err e;
	int rv;

	if (geteuid() != 0) {
		tap_skip("owned by another user: only root can chown");
		tap_skip("another user's, without secrets: only root can "
		    "chown");
		return;
	}
	path = tu_write_temp("machine h password hunter1\n", 27, 0600);
	if (chown(path, 65534, (gid_t)-1) == -1)
		exit(99);
	err_clear(&e);
	rv = netrc_lookup(path, "h", "u", &pw, &e);
	tap_ok(check(rv, pw, &e, -1, "owned by uid 65534"),
	    "owned by another user # %s", e.msg);
	xfree_secret(pw);
	tu_remove_temp(path);
	path = tu_write_temp("machine h login u\n", 18, 0644);
	if (chown(path, 65534, (gid_t)-1) == -1)
		exit(99);
	rv = netrc_lookup(path, "h", "u", &pw, &e);
	tap_ok(rv == 0 && pw == NULL, "another user's, without secrets");
	tu_remove_temp(path);
}

static void
test_files(void)
{
	char *path, *big, *pw = NULL;
	struct err e;
	int rv;

	err_clear(&e);
	rv = netrc_lookup("/nonexistent/popfetch-netrc", "h", "u", &pw, &e);
	tap_ok(rv == 0 && pw == NULL, "missing file: 0");
	rv = netrc_lookup("/dev/null/netrc", "h", "u", &pw, &e);
	tap_ok(rv == 0 && pw == NULL, "a path through a file: 0");
	rv = netrc_lookup("/dev/null", "h", "u", &pw, &e);
	tap_ok(rv == 0 && pw == NULL, "/dev/null: 0");
	rv = netrc_lookup(tu_tmpdir(), "h", "u", &pw, &e);
	tap_ok(rv == -1 && pw == NULL && e.code == EX_CONFIG &&
	    strstr(e.msg, "not a regular file") != NULL,
	    "directory refused # %s", e.msg);

	/* 1 MiB is fine, one byte more is not. */
	big = xmalloc(1024 * 1024 + 1);
	memset(big, '\n', 1024 * 1024 + 1);
	memcpy(big, "machine h password hunter1", 26);
	path = tu_write_temp(big, 1024 * 1024, 0600);
	err_clear(&e);
	rv = netrc_lookup(path, "h", "u", &pw, &e);
	tap_ok(rv == 1 && strcmp(pw, "hunter1") == 0, "1 MiB file # %s",
	    e.msg);
	xfree_secret(pw);
	tu_remove_temp(path);
	path = tu_write_temp(big, 1024 * 1024 + 1, 0600);
	rv = netrc_lookup(path, "h", "u", &pw, &e);
	tap_ok(rv == -1 && pw == NULL && e.code == EX_CONFIG &&
	    strstr(e.msg, "larger than 1 MiB") != NULL,
	    "1 MiB + 1 refused # %s", e.msg);
	tu_remove_temp(path);
	free(big);
}

static int
path_is(const char *want)
{
	char *p = netrc_default_path();
	int ok = p != NULL && strcmp(p, want) == 0;

	if (p != NULL && !ok)
		printf("# got %s\n", p);
	free(p);
	return ok;
}

static void
test_default_path(void)
{
	struct passwd *pw;
	char *want;

	if (setenv("NETRC", "/x/netrc", 1) == -1 ||
	    setenv("HOME", "/home/a", 1) == -1)
		exit(99);
	tap_ok(path_is("/x/netrc"), "default path: $NETRC");
	if (setenv("NETRC", "", 1) == -1)
		exit(99);
	tap_ok(path_is("/home/a/.netrc"), "default path: empty $NETRC");
	if (unsetenv("NETRC") == -1 || setenv("HOME", "/", 1) == -1)
		exit(99);
	tap_ok(path_is("/.netrc"), "default path: $HOME /");
	if (setenv("HOME", "", 1) == -1)
		exit(99);
	if ((pw = getpwuid(geteuid())) == NULL) {
		tap_skip("default path: empty $HOME, passwd: uid %ld has no "
		    "passwd entry", (long)geteuid());
		tap_skip("default path: no $HOME, passwd: uid %ld has no "
		    "passwd entry", (long)geteuid());
		return;
	}
	want = xasprintf("%s%s.netrc", pw->pw_dir,
	    strcmp(pw->pw_dir, "/") == 0 ? "" : "/");
	tap_ok(path_is(want), "default path: empty $HOME, passwd");
	if (unsetenv("HOME") == -1)
		exit(99);
	tap_ok(path_is(want), "default path: no $HOME, passwd");
	free(want);
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	test_token_len(4096, 1);
	test_token_len(4097, -1);
	for (i = 0; i < sizeof(perm_rows) / sizeof(perm_rows[0]); i++)
		run_perm_row(&perm_rows[i]);
	test_owner();
	test_files();
	test_default_path();
	return tap_done();
}
