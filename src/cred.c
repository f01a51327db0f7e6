/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "clock.h"
#include "cred.h"
#include "fsutil.h"
#include "netrc.h"
#include "xmalloc.h"

#define CRED_MAX	16384		/* longest line we accept (tokens) */
#define SHELL_META	"|&;<>()$`\\\"'*?[#~=%{}\n"
#define REAP_STEP_MS	10

struct child {
	pid_t	pid;
	int	fd;		/* read end of the child's stdout */
};

/* Output of a child: the first CRED_MAX + 1 bytes are kept. */
struct out {
	char	buf[CRED_MAX + 1];
	size_t	len;
	char	scratch[512];	/* for the rest, which is thrown away */
};

static char *
cred_esc_path(const char *path)
{
	return buf_escape(path, strlen(path), 256);
}

/*
 * Takes the first line of buf (without CR LF) as the password. full says
 * that the buffer filled up, so a line without LF was cut short.
 */
static int
cred_take_line(const char *buf, size_t len, int full, const char *what,
    int empty_code, char **pw, struct err *e)
{
	const char *lf;
	size_t n;

	if ((lf = memchr(buf, '\n', len)) != NULL)
		n = (size_t)(lf - buf);
	else if (full) {
		err_set(e, EX_CONFIG, "%s: the first line is longer than %d "
		    "bytes", what, CRED_MAX);
		return -1;
	} else
		n = len;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (memchr(buf, '\0', n) != NULL) {
		err_set(e, EX_CONFIG, "%s: the first line contains a NUL "
		    "byte", what);
		return -1;
	}
	if (n == 0) {
		err_set(e, empty_code, "%s: nothing there (the first line "
		    "is empty)", what);
		return -1;
	}
	*pw = xstrndup(buf, n);
	return 0;
}

/* The file must be a regular file that only its owner can access. */
static int
cred_check_file(int fd, const char *ep, struct err *e)
{
	struct stat st;
	char *what;
	int rc;

	if (fstat(fd, &st) == -1) {
		err_set(e, EX_CONFIG, "password_file %s: %s", ep,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, EX_CONFIG, "password_file %s: not a regular file",
		    ep);
		return -1;
	}
	what = xasprintf("password_file %s", ep);
	rc = fs_check_private(st.st_mode, what, ep, e);
	free(what);
	return rc;
}

static int
cred_read_file(int fd, const char *ep, struct out *o, struct err *e)
{
	ssize_t n;

	while (o->len < sizeof(o->buf)) {
		n = read(fd, o->buf + o->len, sizeof(o->buf) - o->len);
		if (n == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_set(e, EX_IOERR, "password_file %s: %s", ep,
			    strerror(errno));
			return -1;
		}
		o->len += (size_t)n;
	}
	return 0;
}

static int
cred_file(const char *path, char **pw, struct err *e)
{
	struct out o;
	char *ep = cred_esc_path(path);
	int fd, rv = -1;

	o.len = 0;
	/* O_NONBLOCK: a FIFO must not hang the open; fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		err_set(e, EX_CONFIG, "password_file %s: %s", ep,
		    strerror(errno));
	else if (cred_check_file(fd, ep, e) == 0 &&
	    cred_read_file(fd, ep, &o, e) == 0)
		rv = cred_take_line(o.buf, o.len, o.len == sizeof(o.buf),
		    "password_file", EX_CONFIG, pw, e);
	if (fd != -1)
		(void)close(fd);	/* read-only: nothing to lose */
	xwipe(&o, sizeof(o));
	free(ep);
	return rv;
}

static void
cred_free_argv(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/*
 * A command with shell syntax goes to /bin/sh -c; a plain one is split
 * on blanks and run directly. Returns a NULL-terminated vector.
 */
static char **
cred_make_argv(const char *cmd)
{
	char **argv;
	size_t n = 0, len;

	argv = xcalloc(strlen(cmd) / 2 + 4, sizeof(*argv));
	if (strpbrk(cmd, SHELL_META) != NULL) {
		argv[0] = xstrdup("/bin/sh");
		argv[1] = xstrdup("-c");
		argv[2] = xstrdup(cmd);
		return argv;
	}
	for (;;) {
		cmd += strspn(cmd, " \t");
		if ((len = strcspn(cmd, " \t")) == 0)
			break;
		argv[n++] = xstrndup(cmd, len);
		cmd += len;
	}
	return argv;
}

/* Moves fd to a number above stderr, so the child's dup2s cannot clash. */
static int
cred_fd_high(int fd)
{
	int nfd, saved;

	if (fd == -1 || fd > STDERR_FILENO)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	saved = errno;
	(void)close(fd);	/* a copy exists, or we fail anyway */
	errno = saved;
	return nfd;
}

/*
 * How an exec that failed is said: as a shell says it, so that a direct
 * command and one run by sh read alike (127 not found, 126 not
 * executable).
 */
static void
cred_exec_failed(int code, const char *what, struct err *e)
{
	if (code == 127)
		err_set(e, EX_CONFIG, "%s: command not found (exit status "
		    "127): check its name, or give its full path", what);
	else
		err_set(e, EX_CONFIG, "%s: command found but not executable "
		    "(exit status 126): check its permissions", what);
}

/*
 * Starts argv with standard input /dev/null and standard output a pipe
 * (ch->fd, its read end), every signal unblocked and SIGPIPE at its
 * default (agent_spawn). A failed exec is reported here, as an error.
 */
static int
cred_spawn(char **argv, const char *what, struct child *ch, struct err *e)
{
	int p[2] = { -1, -1 }, nullfd, rc;

	nullfd = cred_fd_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (nullfd == -1 || pipe2(p, O_CLOEXEC) == -1 ||
	    (p[0] = cred_fd_high(p[0])) == -1 ||
	    (p[1] = cred_fd_high(p[1])) == -1) {
		err_set(e, EX_TEMPFAIL, "%s: %s", what,
		    strerror(errno));
		goto fail;
	}
	/* Standard error stays ours: the user sees what it says. */
	rc = agent_spawn(argv, NULL, nullfd, p[1], 0, &ch->pid);
	if (rc == ENOENT || rc == ENOTDIR)
		cred_exec_failed(127, what, e);
	else if (rc == EACCES || rc == ENOEXEC || rc == EPERM)
		cred_exec_failed(126, what, e);
	else if (rc != 0)
		err_set(e, EX_TEMPFAIL, "%s: cannot start it: %s", what,
		    strerror(rc));
	if (rc != 0)
		goto fail;
	(void)close(nullfd);	/* only the child needed these */
	(void)close(p[1]);
	ch->fd = p[0];
	return 0;
fail:
	if (nullfd != -1)
		(void)close(nullfd);	/* nothing was written through them */
	if (p[0] != -1)
		(void)close(p[0]);
	if (p[1] != -1)
		(void)close(p[1]);
	return -1;
}

/*
 * Reads the child's output until EOF, keeping the first bytes in o and
 * discarding the rest. Returns 0 at EOF, 1 at the deadline, -1 on error.
 */
static int
cred_read_output(int fd, long long deadline, struct out *o)
{
	struct pollfd pfd;
	long long left;
	ssize_t n;
	int rv;

	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if ((left = deadline - clock_ms()) <= 0)
			return 1;
		if (left > INT_MAX)
			left = INT_MAX;
		if ((rv = poll(&pfd, 1, (int)left)) == 0)
			return 1;
		if (rv == -1 && errno == EINTR)
			continue;
		if (rv == -1)
			return -1;
		if (o->len < sizeof(o->buf))
			n = read(fd, o->buf + o->len, sizeof(o->buf) - o->len);
		else
			n = read(fd, o->scratch, sizeof(o->scratch));
		if (n == 0)
			break;
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (n > 0 && o->len < sizeof(o->buf))
			o->len += (size_t)n;
	}
	return 0;
}

static void
cred_kill_child(pid_t pid)
{
	int status;

	(void)kill(pid, SIGKILL);	/* it may be gone already */
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		continue;
}

/*
 * Waits for the child until the deadline, then kills it. Returns 0 with
 * *status set, 1 if it had to be killed, -1 if waitpid failed.
 */
static int
cred_reap(pid_t pid, long long deadline, int *status)
{
	struct timespec step = { 0, REAP_STEP_MS * 1000000L };
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if (clock_ms() >= deadline) {
			cred_kill_child(pid);
			return 1;
		}
		(void)nanosleep(&step, NULL);	/* early wake-up is fine */
	}
}

static int
cred_check_status(int status, const char *what, struct err *e)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	/* A shell's exec that failed (sh -c "..."). */
	if (WIFEXITED(status) && (WEXITSTATUS(status) == 127 ||
	    WEXITSTATUS(status) == 126))
		cred_exec_failed(WEXITSTATUS(status), what, e);
	else if (WIFEXITED(status))
		err_set(e, EX_TEMPFAIL, "%s exited with status %d", what,
		    WEXITSTATUS(status));
	else
		err_set(e, EX_TEMPFAIL, "%s was killed by signal %d", what,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

/* Collects the output and the exit status of a started child. */
static int
cred_finish(struct child *ch, const char *what, unsigned timeout_sec,
    struct out *o, char **pw, struct err *e)
{
	long long deadline = clock_ms() + (long long)timeout_sec * 1000;
	int r, status = 0, saved;

	r = cred_read_output(ch->fd, deadline, o);
	saved = errno;
	(void)close(ch->fd);	/* read end: nothing to lose */
	if (r != 0)
		cred_kill_child(ch->pid);
	else if ((r = cred_reap(ch->pid, deadline, &status)) == -1)
		saved = errno;
	if (r == 1) {
		err_set(e, EX_TEMPFAIL, "%s timed out after %u s", what,
		    timeout_sec);
		return -1;
	}
	if (r == -1) {
		err_set(e, EX_TEMPFAIL, "%s: %s", what,
		    strerror(saved));
		return -1;
	}
	if (cred_check_status(status, what, e) == -1)
		return -1;
	return cred_take_line(o->buf, o->len, o->len == sizeof(o->buf),
	    what, EX_TEMPFAIL, pw, e);
}

static int
cred_command(const char *cmd, const char *what, unsigned timeout_sec,
    char **pw, struct err *e)
{
	struct child ch;
	struct out o;
	char **argv;
	int rv = -1;

	if (timeout_sec == 0)
		timeout_sec = 1;
	argv = cred_make_argv(cmd);
	o.len = 0;
	if (argv[0] == NULL)
		err_set(e, EX_CONFIG, "%s is empty", what);
	else if (cred_spawn(argv, what, &ch, e) == 0)
		rv = cred_finish(&ch, what, timeout_sec, &o, pw, e);
	xwipe(&o, sizeof(o));
	cred_free_argv(argv);
	return rv;
}

/* No source configured: the password is in ~/.netrc, or nowhere. */
static int
cred_netrc(const struct account *a, char **pw, struct err *e)
{
	char *path = netrc_default_path(), *ep;
	int rc;

	if (path == NULL) {
		err_set(e, EX_CONFIG, "no password configured, and no home "
		    "directory for a ~/.netrc");
		return -1;
	}
	if ((rc = netrc_lookup(path, a->host, a->user, pw, e)) == 0) {
		ep = cred_esc_path(path);
		err_set(e, EX_CONFIG, "no password: the account sets none of "
		    "password, password_file, password_command and "
		    "oauth2_token_command, and %s has no entry for this host "
		    "and user", ep);
		free(ep);
	}
	free(path);
	return rc == 1 ? 0 : -1;
}

int
cred_password(const struct account *a, unsigned timeout_sec, char **pw,
    struct err *e)
{
	if (a->password != NULL) {
		*pw = xstrdup(a->password);
		return 0;
	}
	if (a->password_file != NULL)
		return cred_file(a->password_file, pw, e);
	if (a->password_command != NULL)
		return cred_command(a->password_command, "password_command",
		    timeout_sec, pw, e);
	if (a->oauth2_token_command != NULL)
		return cred_command(a->oauth2_token_command,
		    "oauth2_token_command", timeout_sec, pw, e);
	return cred_netrc(a, pw, e);
}
