/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/ioctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "clock.h"
#include "buf.h"
#include "xmalloc.h"

extern char **environ;

#define OUT_CAP		4096		/* bytes of its output kept */

/* What one agent_run juggles. */
struct feed {
	int		 infd;		/* the message, or -1 */
	int		 w;		/* our end of its stdin, or -1 */
	int		 o;		/* our end of its output, or -1 */
	char		 buf[65536];
	size_t		 len, off;	/* buf[off..len) still to write */
	bool		 in_eof;
	uint64_t	 pos;		/* read offset in infd */
	char		 out[OUT_CAP];
	size_t		 outlen;
};

static char **
agent_env(char *const *add)
{
	size_t n = 0, k = 0, i;
	char **env;

	while (environ[n] != NULL)
		n++;
	while (add != NULL && add[k] != NULL)
		k++;
	env = xcalloc(n + k + 1, sizeof(*env));
	for (i = 0; i < k; i++)
		env[i] = add[i];
	for (i = 0; i < n; i++)
		env[k + i] = environ[i];	/* getenv takes the first */
	return env;
}

/* Moves more of the message into the pipe. Returns 0 or -1 (e set). */
static int
agent_write(struct feed *f, struct err *e)
{
	ssize_t n;

	if (f->off == f->len && !f->in_eof) {
		n = pread(f->infd, f->buf, sizeof(f->buf), (off_t)f->pos);
		if (n == -1) {
			err_set(e, EX_IOERR, "cannot read the spooled "
			    "message: %s", strerror(errno));
			return -1;
		}
		f->pos += (uint64_t)n;
		f->off = 0;
		f->len = (size_t)n;
		f->in_eof = n == 0;
	}
	if (f->off < f->len) {
		n = write(f->w, f->buf + f->off, f->len - f->off);
		if (n > 0)
			f->off += (size_t)n;
		else if (n == -1 && errno != EAGAIN && errno != EINTR) {
			/* EPIPE: it closed its input; counted as unread. */
			(void)close(f->w);
			f->w = -1;
		}
	}
	if (f->w != -1 && f->in_eof && f->off == f->len) {
		(void)close(f->w);	/* end of input: it sees EOF */
		f->w = -1;
	}
	return 0;
}

static void
agent_read_out(struct feed *f)
{
	char tmp[4096];
	ssize_t n;

	while ((n = read(f->o, tmp, sizeof(tmp))) > 0) {
		size_t keep = (size_t)n;

		if (keep > sizeof(f->out) - f->outlen)
			keep = sizeof(f->out) - f->outlen;
		memcpy(f->out + f->outlen, tmp, keep);
		f->outlen += keep;
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		(void)close(f->o);
		f->o = -1;
	}
}

int
agent_spawn(char *const *argv, char *const *env_add, int in_r, int out_w,
    unsigned flags, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, pipe;
	char **env = agent_env(env_add);
	int rc;

	sigemptyset(&none);
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, in_r, STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out_w, STDOUT_FILENO);
	if (flags & AGENT_STDERR)
		posix_spawn_file_actions_adddup2(&fa, out_w, STDERR_FILENO);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF | (flags & AGENT_GROUP ?
	    POSIX_SPAWN_SETPGROUP : 0));
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &pipe);
	rc = posix_spawnp(pid, argv[0], &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	return rc;
}

/* Feeds and watches the agent until it ends or the limit passes. */
static int
agent_watch(struct feed *f, pid_t pid, unsigned timeout,
    struct agent_result *res, struct err *e)
{
	long long deadline = clock_ms() + (long long)timeout * 1000;
	struct pollfd p[2];
	int n, status;

	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			res->status = status;
			break;
		}
		if (clock_ms() >= deadline) {
			(void)kill(-pid, SIGKILL);	/* its whole group */
			(void)waitpid(pid, &res->status, 0);
			res->timed_out = true;
			break;
		}
		n = 0;
		if (f->w != -1)
			p[n++] = (struct pollfd){ f->w, POLLOUT, 0 };
		if (f->o != -1)
			p[n++] = (struct pollfd){ f->o, POLLIN, 0 };
		/* Short naps: an agent that exits is noticed by waitpid. */
		(void)poll(p, (nfds_t)n, 50);
		if (f->w != -1 && agent_write(f, e) == -1) {
			(void)kill(-pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			return -1;
		}
		if (f->o != -1)
			agent_read_out(f);
	}
	if (f->o != -1)
		agent_read_out(f);	/* what is left; its children may
					 * hold the pipe, so no waiting */
	return 0;
}

/* cmd could not start, for the error number err: why into res->err. */
static void
agent_no_start(const char *cmd, int err, struct agent_result *res)
{
	char *esc = buf_escape(cmd, strlen(cmd), 200);

	snprintf(res->err, sizeof(res->err), "%s: %s", esc, strerror(err));
	free(esc);
}

/*
 * What of the message it did not read, once it ended: what is left in
 * the pipe (in_r, its end), in our buffer, and in f->infd past f->pos.
 */
static void
agent_unread(const struct feed *f, int in_r, struct agent_result *res)
{
	int avail = 0;

	if (ioctl(in_r, FIONREAD, &avail) == -1)
		avail = 0;
	res->unread = (uint64_t)avail + (f->len - f->off);
	if (!f->in_eof) {
		off_t end = lseek(f->infd, 0, SEEK_END);

		res->unread = end > 0 && (uint64_t)end > f->pos ?
		    (uint64_t)end - f->pos + res->unread : res->unread;
	}
}

/* Its output, without trailing blanks, escaped into res->err. */
static void
agent_keep_output(struct feed *f, struct agent_result *res)
{
	char *esc;

	while (f->outlen > 0 && (f->out[f->outlen - 1] == '\n' ||
	    f->out[f->outlen - 1] == '\r' || f->out[f->outlen - 1] == ' '))
		f->outlen--;
	esc = buf_escape(f->out, f->outlen, 300);
	snprintf(res->err, sizeof(res->err), "%s", esc);
	free(esc);
}

/* Closes every descriptor agent_run still holds, ours first, and frees
 * f. */
static void
agent_close(struct feed *f, int in[2], int out[2])
{
	if (f->w != -1)
		(void)close(f->w);
	if (f->o != -1)
		(void)close(f->o);
	if (in[0] != -1)
		(void)close(in[0]);
	if (in[1] != -1)
		(void)close(in[1]);
	if (out[0] != -1)
		(void)close(out[0]);
	if (out[1] != -1)
		(void)close(out[1]);
	free(f);
}

int
agent_run(char *const *argv, char *const *env_add, int infd,
    unsigned timeout, struct agent_result *res, struct err *e)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, rc = -1, serr;
	struct feed *f = xcalloc(1, sizeof(*f));
	pid_t pid;

	memset(res, 0, sizeof(*res));
	f->infd = infd;
	f->in_eof = infd == -1;
	f->w = f->o = -1;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1) {
		err_set(e, EX_OSERR, "pipe: %s", strerror(errno));
		goto out;
	}
	if ((serr = agent_spawn(argv, env_add, in[0], out[1], AGENT_STDERR |
	    AGENT_GROUP, &pid)) != 0) {
		agent_no_start(argv[0], serr, res);
		rc = 0;
		goto out;
	}
	res->spawned = true;
	(void)close(out[1]);	/* only the agent writes there */
	out[1] = -1;
	f->w = in[1];
	f->o = out[0];
	in[1] = out[0] = -1;
	(void)fcntl(f->w, F_SETFL, O_NONBLOCK);
	(void)fcntl(f->o, F_SETFL, O_NONBLOCK);
	/* We hold in[0] too: what is left in the pipe when it ends is what
	 * it did not read, and a write never raises EPIPE here. */
	if (agent_watch(f, pid, timeout, res, e) == -1)
		goto out;
	agent_unread(f, in[0], res);
	agent_keep_output(f, res);
	rc = 0;
out:
	agent_close(f, in, out);
	return rc;
}

const char *
agent_describe(const struct agent_result *r, unsigned timeout, char *buf,
    size_t size)
{
	char how[64];

	if (!r->spawned) {
		snprintf(buf, size, "could not start: %s", r->err);
		return buf;
	}
	if (r->timed_out)
		snprintf(how, sizeof(how), "timed out after %u s, killed",
		    timeout);
	else if (WIFEXITED(r->status))
		snprintf(how, sizeof(how), "exit %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(how, sizeof(how), "killed by signal %d",
		    WTERMSIG(r->status));
	else
		snprintf(how, sizeof(how), "ended (status %d)", r->status);
	if (r->err[0] != '\0')
		snprintf(buf, size, "%s, saying \"%s\"", how, r->err);
	else
		snprintf(buf, size, "%s", how);
	return buf;
}
