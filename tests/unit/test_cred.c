/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cred.h"
#include "err.h"
#include "xmalloc.h"
#include "tap.h"
#include "testutil.h"

struct cmd_row {
	const char	*what;
	const char	*cmd;
	unsigned	 timeout;
	int		 code;		/* EX_OK: succeeds */
	const char	*want;		/* the password, or a word of e.msg */
	double		 max_sec;	/* must return within; 0: no limit */
	bool		 spawn_error;	/* told by posix_spawnp itself */
};

static const struct cmd_row cmd_rows[] = {
	{ "shell: printf two lines", "printf 'secret\\nmore'", 5, EX_OK,
	    "secret", 0, false },
	{ "direct exec: echo", "echo hunter2", 5, EX_OK, "hunter2", 0,
	    false },
	{ "direct exec: blanks", " \techo\t  a  b ", 5, EX_OK, "a b", 0,
	    false },
	{ "direct exec: no newline", "printf secret", 5, EX_OK, "secret",
	    0, false },
	{ "CRLF stripped", "printf 'pw\\r\\n'", 5, EX_OK, "pw", 0, false },
	{ "long output, first line kept",
	    "yes secret | head -c 100000", 5, EX_OK, "secret", 0, false },
	{ "stdin is /dev/null", "cat", 5, EX_TEMPFAIL, "nothing there", 2,
	    false },
	{ "exit 3", "echo secret; exit 3", 5, EX_TEMPFAIL,
	    "exited with status 3", 0, false },
	{ "false", "false", 5, EX_TEMPFAIL, "exited with status 1", 0,
	    false },
	{ "killed by a signal", "kill -9 $$", 5, EX_TEMPFAIL, "signal 9",
	    0, false },
	{ "prints nothing", "true", 5, EX_TEMPFAIL, "nothing there", 0,
	    false },
	{ "prints an empty line", "echo", 5, EX_TEMPFAIL, "nothing there",
	    0, false },
	{ "not found (direct)", "/nonexistent/popfetch-cmd", 5, EX_CONFIG,
	    "password_command: command not found (exit status 127)", 0,
	    false },
	{ "not found (shell)", "/nonexistent/popfetch-cmd 2>/dev/null", 5,
	    EX_CONFIG, "password_command: command not found", 0, false },
	{ "not executable (shell)", "/dev/null 2>/dev/null", 5, EX_CONFIG,
	    "password_command: command found but not executable", 0, false },
	{ "not executable (direct)", "/dev/null", 5, EX_CONFIG,
	    "password_command: command found but not executable (exit status "
	    "126)", 0, true },
	{ "shell pipeline", "echo pw | tr p q", 5, EX_OK, "qw", 0, false },
	{ "sleeps past the timeout", "sleep 10", 1, EX_TEMPFAIL,
	    "timed out after 1 s", 2.5, false },
	{ "prints, then sleeps", "echo secret; sleep 10", 1, EX_TEMPFAIL,
	    "timed out", 2.5, false },
	{ "closes stdout, then sleeps", "exec >&-; sleep 10", 1,
	    EX_TEMPFAIL, "timed out", 2.5, false },
	{ "first line too long",
	    "head -c 17000 /dev/zero | tr '\\0' x", 5, EX_CONFIG,
	    "longer than 16384", 0, false },
	{ "NUL in the password", "printf 'a\\0b\\n'", 5, EX_CONFIG, "NUL",
	    0, false },
};

static double
now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		exit(99);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
run_cmd_row(const struct cmd_row *r)
{
	struct account a;
	struct err e;
	char *pw = NULL;
	double t0, dt;
	int rv, ok;

	/* valgrind runs posix_spawn's vfork as a fork: a failed exec can
	 * only exit 127 there, which reads as "not found". */
	if (r->spawn_error && getenv("POPFETCH_VALGRIND") != NULL) {
		tap_skip("command: %s: under valgrind, posix_spawnp cannot "
		    "report a failed exec", r->what);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.password_command = (char *)(uintptr_t)r->cmd;
	err_clear(&e);
	t0 = now();
	rv = cred_password(&a, r->timeout, &pw, &e);
	dt = now() - t0;
	if (r->code == EX_OK)
		ok = rv == 0 && pw != NULL && strcmp(pw, r->want) == 0;
	else
		ok = rv == -1 && e.code == r->code &&
		    strstr(e.msg, r->want) != NULL &&
		    strstr(e.msg, "secret") == NULL;
	if (r->max_sec > 0 && dt > r->max_sec)
		ok = 0;
	tap_ok(ok, "command: %s (%.2f s) # %s", r->what, dt, e.msg);
	xfree_secret(pw);
}

struct file_row {
	const char	*what;
	const char	*data;		/* NULL: a line of linelen "x" */
	mode_t		 mode;
	int		 code;
	const char	*want;		/* NULL: linelen "x" */
	size_t		 linelen;
};

static const struct file_row file_rows[] = {
	{ "0600, two lines", "secret\nmore\n", 0600, EX_OK, "secret", 0 },
	{ "0400, CRLF", "secret\r\n", 0400, EX_OK, "secret", 0 },
	{ "no final newline", "secret", 0600, EX_OK, "secret", 0 },
	{ "0640 refused", "secret\n", 0640, EX_CONFIG, "chmod 600", 0 },
	{ "0604 refused", "secret\n", 0604, EX_CONFIG, "chmod 600", 0 },
	{ "0610 refused", "secret\n", 0610, EX_CONFIG, "chmod 600", 0 },
	{ "empty file", "", 0600, EX_CONFIG, "nothing there", 0 },
	{ "empty first line", "\nsecret\n", 0600, EX_CONFIG, "nothing there",
	    0 },
	{ "line of 16384 bytes", NULL, 0600, EX_OK, NULL, 16384 },
	{ "line of 16385 bytes", NULL, 0600, EX_CONFIG, "longer than 16384",
	    16385 },
};

static void
run_file_row(const struct file_row *r)
{
	char *data, *path, *pw = NULL;
	size_t len = r->linelen;
	struct account a;
	struct err e;
	int rv, ok;

	if (r->data != NULL)
		data = xstrdup(r->data);
	else {
		data = xmalloc(len + 2);
		memset(data, 'x', len);
		memcpy(data + len, "\n", 2);
	}
	path = tu_write_temp(data, strlen(data), r->mode);
	memset(&a, 0, sizeof(a));
	a.password_file = path;
	err_clear(&e);
	rv = cred_password(&a, 5, &pw, &e);
	if (r->code == EX_OK)
		ok = rv == 0 && pw != NULL && (r->want == NULL ?
		    strlen(pw) == len : strcmp(pw, r->want) == 0);
	else
		ok = rv == -1 && e.code == r->code &&
		    strstr(e.msg, r->want) != NULL &&
		    strstr(e.msg, "secret") == NULL;
	tap_ok(ok, "password_file: %s # %s", r->what, e.msg);
	xfree_secret(pw);
	tu_remove_temp(path);
	free(data);
}

static void
test_file_misc(void)
{
	struct account a;
	struct err e;
	char *pw = NULL;
	int rv;

	memset(&a, 0, sizeof(a));
	a.password_file = (char *)(uintptr_t)"/nonexistent/popfetch-pw";
	err_clear(&e);
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == -1 && e.code == EX_CONFIG &&
	    strstr(e.msg, strerror(ENOENT)) != NULL,
	    "password_file: missing # %s", e.msg);
	a.password_file = (char *)(uintptr_t)tu_tmpdir();
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == -1 && e.code == EX_CONFIG &&
	    strstr(e.msg, "regular") != NULL,
	    "password_file: directory # %s", e.msg);
	memset(&a, 0, sizeof(a));
	a.password = (char *)(uintptr_t)"inline";
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == 0 && strcmp(pw, "inline") == 0 && pw != a.password,
	    "password: copied");
	xfree_secret(pw);
}

/* oauth2_token_command is run like password_command, under its name. */
static void
test_token_command(void)
{
	static const char tok[] = "ya29.a0Af-token_with.dots-and_dashes";
	struct account a;
	struct err e;
	char *pw = NULL, *cmd;
	int rv;

	memset(&a, 0, sizeof(a));
	cmd = xasprintf("printf '%s\\n'", tok);
	a.oauth2_token_command = cmd;
	err_clear(&e);
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == 0 && pw != NULL && strcmp(pw, tok) == 0,
	    "oauth2_token_command: first line # %s", e.msg);
	xfree_secret(pw);
	pw = NULL;
	free(cmd);
	a.oauth2_token_command = (char *)(uintptr_t)"echo; exit 2";
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == -1 && e.code == EX_TEMPFAIL &&
	    strstr(e.msg, "oauth2_token_command exited with status 2") != NULL,
	    "oauth2_token_command: failure names it # %s", e.msg);
	a.oauth2_token_command = (char *)(uintptr_t)"/nonexistent/token-cmd";
	rv = cred_password(&a, 5, &pw, &e);
	tap_ok(rv == -1 && e.code == EX_CONFIG &&
	    strstr(e.msg, "oauth2_token_command: command not found") != NULL,
	    "oauth2_token_command: not found # %s", e.msg);
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(file_rows) / sizeof(file_rows[0]); i++)
		run_file_row(&file_rows[i]);
	test_file_misc();
	for (i = 0; i < sizeof(cmd_rows) / sizeof(cmd_rows[0]); i++)
		run_cmd_row(&cmd_rows[i]);
	test_token_command();
	return tap_done();
}
