/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "account.h"
#include "err.h"
#include "log.h"
#include "poll.h"
#include "xmalloc.h"

/* One account's place in a pool run. */
struct job {
	const struct account	*acct;
	pid_t			 pid;	/* 0: not started, -1: finished */
	int			 fd;	/* result pipe, read end */
	bool			 done;
	struct account_result	 res;
};

static void
poll_print(const struct account *a, const struct account_result *res)
{
	printf("popfetch: %s: %lu fetched (%" PRIu64 " bytes), %lu deleted, "
	    "%lu kept, %lu skipped\n", a->name, res->fetched, res->bytes,
	    res->deleted, res->kept, res->skipped);
	fflush(stdout);
}

/* Sessions now open to host. */
static unsigned
poll_host_load(const struct job *jobs, size_t n, const char *host)
{
	unsigned load = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (jobs[i].pid > 0 && strcasecmp(jobs[i].acct->host, host) == 0)
			load++;
	return load;
}

static void
poll_child(const struct config *cfg, struct job *jobs, size_t n, size_t me,
    int wfd)
{
	struct account_result res;
	ssize_t w;
	size_t i;

	for (i = 0; i < n; i++)
		if (jobs[i].pid > 0)
			close(jobs[i].fd);	/* the others' pipes */
	(void)account_run(cfg, jobs[me].acct, &res);
	w = write(wfd, &res, sizeof(res));
	fflush(stderr);
	_exit(w == (ssize_t)sizeof(res) ? 0 : EX_OSERR);
}

/* Starts job i in a child. Returns 0, or -1 (logged) when fork fails. */
static int
poll_start(const struct config *cfg, struct job *jobs, size_t n, size_t i)
{
	int p[2];

	if (pipe(p) == -1) {
		log_msg(LOG_ERROR, "%s: pipe: %s", jobs[i].acct->name,
		    strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((jobs[i].pid = fork()) == -1) {
		log_msg(LOG_ERROR, "%s: fork: %s", jobs[i].acct->name,
		    strerror(errno));
		close(p[0]);
		close(p[1]);
		jobs[i].pid = 0;
		return -1;
	}
	if (jobs[i].pid == 0) {
		close(p[0]);
		poll_child(cfg, jobs, n, i, p[1]);
	}
	close(p[1]);
	jobs[i].fd = p[0];
	return 0;
}

/* Collects the result of the child that ended with status. */
static void
poll_reap(struct job *j, int status)
{
	ssize_t r;

	r = read(j->fd, &j->res, sizeof(j->res));
	close(j->fd);
	j->pid = -1;
	j->done = true;
	if (r == (ssize_t)sizeof(j->res) && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		return;
	memset(&j->res, 0, sizeof(j->res));
	j->res.code = EX_SOFTWARE;
	if (WIFSIGNALED(status))
		log_msg(LOG_ERROR, "%s: worker killed by signal %d",
		    j->acct->name, WTERMSIG(status));
	else
		log_msg(LOG_ERROR, "%s: worker failed", j->acct->name);
}

/* Starts every job the limits allow. Returns how many are running. */
static size_t
poll_fill(const struct config *cfg, struct job *jobs, size_t n,
    size_t running)
{
	size_t i;

	for (i = 0; i < n && running < cfg->max_parallel; i++) {
		if (jobs[i].pid != 0 || jobs[i].done ||
		    poll_host_load(jobs, n, jobs[i].acct->host) >=
		    cfg->max_per_host)
			continue;
		if (poll_start(cfg, jobs, n, i) == 0)
			running++;
		else {
			jobs[i].done = true;
			jobs[i].res.code = EX_OSERR;
		}
	}
	return running;
}

static int
poll_pool(const struct config *cfg, struct job *jobs, size_t n, bool quiet)
{
	size_t running = 0, printed = 0, i;
	int status, code = EX_OK;
	pid_t pid;

	while (printed < n) {
		running = poll_fill(cfg, jobs, n, running);
		/* Summaries go out in the configured order, as they can. */
		for (; printed < n && jobs[printed].done; printed++) {
			code = err_worse(code, jobs[printed].res.code);
			if (!quiet)
				poll_print(jobs[printed].acct,
				    &jobs[printed].res);
		}
		if (running == 0)
			continue;
		if ((pid = waitpid(-1, &status, 0)) == -1) {
			if (errno == EINTR)
				continue;
			log_msg(LOG_ERROR, "waitpid: %s", strerror(errno));
			return EX_OSERR;
		}
		for (i = 0; i < n; i++)
			if (jobs[i].pid == pid) {
				poll_reap(&jobs[i], status);
				running--;
			}
	}
	return code;
}

int
poll_once(const struct config *cfg, const struct account *const *accts,
    size_t n, bool quiet)
{
	struct job *jobs;
	size_t i;
	int code = EX_OK;

	if (n <= 1 || cfg->max_parallel <= 1) {
		struct account_result res;

		/* Accounts are independent: one failing stops no other. */
		for (i = 0; i < n; i++) {
			code = err_worse(code, account_run(cfg, accts[i], &res));
			if (!quiet)
				poll_print(accts[i], &res);
		}
		return code;
	}
	jobs = xcalloc(n, sizeof(*jobs));
	for (i = 0; i < n; i++)
		jobs[i].acct = accts[i];
	code = poll_pool(cfg, jobs, n, quiet);
	free(jobs);
	return code;
}
