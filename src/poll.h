/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POLL_H
#define POPFETCH_POLL_H

#include <stdbool.h>
#include <stddef.h>

#include "account.h"
#include "config.h"

/*
 * The one-shot run. Fetches each of n accounts once (or, with mode ACCOUNT_CHECK or
 * ACCOUNT_DRY_RUN, reports on each, one after the other): at most
 * cfg->max_parallel at a time,
 * and at most cfg->max_per_host sessions to one host at a time, each in
 * a worker process (one account, or max_parallel 1, runs in this
 * process). Unless quiet, prints one summary line per account on
 * standard output, in the order given; with progress, and standard
 * output a terminal, a line of progress above them meanwhile. SIGTERM or SIGINT ends the run
 * within about a second, every invariant kept; accounts not yet started
 * are then not fetched. Returns the most severe exit code (err_worse)
 * over all accounts: EX_TEMPFAIL for an interrupted one, EX_SOFTWARE for
 * a worker that died.
 */
struct poll_opts {
	bool			quiet;		/* no summary lines */
	bool			progress;	/* a progress line on stdout */
	enum account_mode	mode;		/* check and dry run: serial */
};

int	poll_once(const struct config *cfg, const struct account *const *accts,
	    size_t n, const struct poll_opts *);

#endif
