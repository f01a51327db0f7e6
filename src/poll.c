/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "err.h"
#include "log.h"
#include "progress.h"
#include "poll.h"
#include "pool.h"
#include "xmalloc.h"

static void
poll_print(const struct account *a, const struct account_result *res)
{
	char line[512];

	account_summary(a->name, res, line, sizeof(line));
	printf("popfetch: %s\n", line);
	fflush(stdout);
}

static void
poll_tick(void *arg)
{
	progress_draw(arg, false);
}

static int
poll_serial(const struct config *cfg, const struct account *const *accts,
    size_t n, const struct poll_opts *po, struct account_progress *slots,
    struct progress *pr)
{
	struct account_opts ao;
	struct account_result res;
	struct sigaction oterm, oint;
	const volatile sig_atomic_t *cancel;
	int code = EX_OK;
	size_t i;

	cancel = pool_catch_stop(&oterm, &oint);
	/* Accounts are independent: one failing stops no other. */
	for (i = 0; i < n && !*cancel; i++) {
		memset(&ao, 0, sizeof(ao));
		ao.mode = po->mode;
		ao.cancel = cancel;
		ao.quiet = po->quiet;
		if (pr != NULL) {
			ao.progress = &slots[i];
			ao.tick = poll_tick;
			ao.tick_arg = pr;
		}
		code = err_worse(code, account_run(cfg, accts[i], &ao, &res));
		progress_clear(pr);
		if (!po->quiet && po->mode == ACCOUNT_FETCH)
			poll_print(accts[i], &res);
	}
	if (*cancel)
		code = err_worse(code, EX_TEMPFAIL);
	sigaction(SIGTERM, &oterm, NULL);
	sigaction(SIGINT, &oint, NULL);
	return code;
}

/* One account's place in a run of poll_once. */
struct once_job {
	const struct account	*acct;
	bool			 started;
	bool			 done;
	struct account_result	 res;
};

static void
once_fill(struct pool *p, const struct config *cfg, struct once_job *jobs,
    size_t n, struct account_progress *slots, const struct poll_opts *po,
    bool stopping)
{
	struct pool_job job = { NULL, false, po->quiet, NULL };
	size_t i;

	for (i = 0; i < n; i++) {
		if (jobs[i].started || jobs[i].done)
			continue;
		if (stopping) {
			/* Interrupted before its turn: not fetched. */
			jobs[i].done = true;
			jobs[i].res.code = EX_TEMPFAIL;
			continue;
		}
		if (!pool_can_start(p, jobs[i].acct->host))
			continue;
		job.slot = slots != NULL ? &slots[i] : NULL;
		job.owner = &jobs[i];
		if (pool_start(p, cfg, jobs[i].acct, &job) == 0)
			jobs[i].started = true;
		else {
			jobs[i].done = true;
			jobs[i].res.code = EX_OSERR;
		}
	}
}

static void
once_collect(struct pool *p, struct once_job *jobs,
    struct account_progress *slots)
{
	struct account_result res;
	struct once_job *job;

	while ((job = pool_reap(p, &res)) != NULL) {
		job->done = true;
		job->res = res;
		/* Also when the worker died mid-way. */
		if (slots != NULL)
			slots[job - jobs].state = PROGRESS_DONE;
	}
}

/*
 * Progress slots that worker processes fill in and this one reads: shared
 * memory. NULL when there is to be no display (or no memory for it).
 */
static struct account_progress *
poll_slots(size_t n)
{
	void *m;

	m = mmap(NULL, n * sizeof(struct account_progress),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

int
poll_once(const struct config *cfg, const struct account *const *accts,
    size_t n, const struct poll_opts *po)
{
	struct pool *p;
	struct account_progress *slots = NULL;
	struct progress *pr = NULL;
	struct once_job *jobs;
	size_t i, printed = 0;
	bool stopping = false;
	sigset_t set, old;
	int code = EX_OK, sig;

	if (po->progress && po->mode == ACCOUNT_FETCH && n > 0 &&
	    (slots = poll_slots(n)) != NULL)
		pr = progress_new(STDOUT_FILENO, accts, slots, n);
	if (n <= 1 || cfg->max_parallel <= 1 || po->mode != ACCOUNT_FETCH) {
		code = poll_serial(cfg, accts, n, po, slots, pr);
		goto out;
	}
	jobs = xcalloc(n, sizeof(*jobs));
	for (i = 0; i < n; i++)
		jobs[i].acct = accts[i];
	p = pool_new(cfg->max_parallel, cfg->max_per_host);
	pool_block_signals(&set, &old);
	for (;;) {
		once_fill(p, cfg, jobs, n, slots, po, stopping);
		/* Summaries go out in the order given, as soon as they can. */
		for (; printed < n && jobs[printed].done; printed++) {
			code = err_worse(code, jobs[printed].res.code);
			progress_clear(pr);
			if (!po->quiet)
				poll_print(jobs[printed].acct,
				    &jobs[printed].res);
		}
		if (printed == n)
			break;
		if (pr != NULL)
			progress_draw(pr, true);
		sig = pool_wait_signal(&set, pr != NULL ? 200 : 1000);
		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = true;
			pool_signal_all(p, SIGTERM);
		}
		once_collect(p, jobs, slots);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	pool_free(p);
	free(jobs);
out:
	progress_free(pr);
	if (slots != NULL)
		(void)munmap(slots, n * sizeof(*slots));	/* at exit anyway */
	return code;
}
