/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POLL_H
#define POPFETCH_POLL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * Fetches each of n accounts once: at most cfg->max_parallel at a time,
 * and at most cfg->max_per_host sessions to one host at a time, each in
 * a process of its own (one account, or max_parallel 1, runs in this
 * process). Unless quiet, prints one summary line per account on
 * standard output, in the order given. Returns the most severe exit code
 * (err_worse) over all accounts; a worker that dies is EX_SOFTWARE.
 */
int	poll_once(const struct config *cfg, const struct account *const *accts,
	    size_t n, bool quiet);

#endif
