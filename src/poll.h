/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POLL_H
#define POPFETCH_POLL_H

#include <stdbool.h>
#include <stddef.h>

#include "account.h"
#include "config.h"

/*
 * Fetches each of n accounts once (or, with mode ACCOUNT_CHECK or
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

/*
 * The daemon: polls every account of *cfgp (but those with enabled =
 * false, and, when nonly > 0, only the accounts named in only) on its
 * own interval (with a
 * little jitter, exponential backoff after failures, harder after a
 * refused login, and no sooner than the server's LOGIN-DELAY), in worker
 * processes within the same limits as poll_once and never two at once
 * for one user@host, until SIGTERM or SIGINT.
 * SIGUSR1 polls every account now; SIGHUP reloads the configuration from
 * path, with state_dir (--state-dir, or NULL) as config_load takes it (a
 * broken one is reported and the old one stays; *cfgp is then
 * replaced, the old one freed). Across a reload an account is the one of
 * the same name: a new one is polled soon (not before a LOGIN-DELAY
 * pending for its user@host), a dropped one no more, its poll in progress
 * ending first (and holding its user@host until then). An
 * idle account whose interval changed is next polled at the earlier of
 * the time planned and its last poll's end plus the new interval (with
 * its backoff); one whose login settings changed (host, port, tls,
 * allow_plaintext, auth, ca_file, fingerprint, user, proxy, the password
 * or its source) loses its backoff and is polled soon, as is one whose
 * login was refused and whose secret comes from outside the file (it may
 * have been fixed). A LOGIN-DELAY stays while user and host do. A poll
 * running at the reload ends with its old settings; if it failed and
 * they have changed since, the failure counts for nothing and the next
 * poll comes soon. Tells systemd through $NOTIFY_SOCKET when
 * it is ready, what it is doing (STATUS=) and, with $WATCHDOG_USEC, that
 * it is alive. Returns EX_OK after a signal to stop, or an exit code
 * when it cannot run at all.
 */
int	poll_daemon(const char *path, const char *state_dir,
	    struct config **cfgp, const char *const *only, size_t nonly);

#endif
