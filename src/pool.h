/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POOL_H
#define POPFETCH_POOL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "account.h"
#include "config.h"

/*
 * Worker processes: each fetches one account once (account_run) and
 * sends its result back through a pipe. A pool keeps its limits, at most
 * max_parallel workers and max_per_host to one host; the caller asks
 * pool_can_start before pool_start, and collects results with pool_reap
 * once SIGCHLD says a worker ended. Used by the one-shot run (poll.c)
 * and by the daemon (daemon.c).
 */
struct pool;

struct pool *pool_new(unsigned max_parallel, unsigned max_per_host);

/* Frees the pool; workers still running are not waited for. */
void	pool_free(struct pool *);

/* New limits, for the workers started from now on. */
void	pool_set_limits(struct pool *, unsigned max_parallel,
	    unsigned max_per_host);

/* Whether a worker for an account at host may start now. */
bool	pool_can_start(const struct pool *, const char *host);

/* How many workers run. */
size_t	pool_running(const struct pool *);

/*
 * How a worker runs its account: slot (shared memory, or NULL) for its
 * progress; errors logged at debug level when demote (the daemon says a
 * lasting failure itself); quiet as account_opts.quiet. owner, not NULL,
 * is handed back by pool_reap.
 */
struct pool_job {
	struct account_progress	*slot;
	bool			 demote;
	bool			 quiet;
	void			*owner;
};

/*
 * Starts a worker for account a. Returns 0, or -1 (logged) when it
 * cannot. The worker takes SIGTERM and SIGINT as a request to stop
 * (the run ends within about a second, every invariant kept).
 */
int	pool_start(struct pool *, const struct config *cfg,
	    const struct account *a, const struct pool_job *job);

/*
 * Reaps one worker that has ended, if any: fills *res (a worker that
 * died gives EX_SOFTWARE, logged) and returns the owner its job named;
 * NULL when none has ended.
 */
void	*pool_reap(struct pool *, struct account_result *res);

/*
 * SIGTERM and SIGINT as a request to stop, in this process: returns the
 * flag they set, for account_opts.cancel (*oterm and *oint, if not NULL,
 * get the handlers before). Workers take them so; a run that fetches in
 * this process does too.
 */
const volatile sig_atomic_t *pool_catch_stop(struct sigaction *oterm,
	    struct sigaction *oint);

/* Sends sig to every running worker. */
void	pool_signal_all(const struct pool *, int sig);

/*
 * The parent's signals: blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP and
 * SIGUSR1, to be taken with pool_wait_signal (*old gets the previous
 * mask).
 */
void	pool_block_signals(sigset_t *set, sigset_t *old);

/* Waits up to ms milliseconds for one of set; returns it, or 0. */
int	pool_wait_signal(const sigset_t *set, long ms);

#endif
