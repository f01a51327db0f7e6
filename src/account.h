/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_ACCOUNT_H
#define POPFETCH_ACCOUNT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "uidstate.h"

/* What one account run did. */
struct account_result {
	unsigned long	fetched;	/* messages now in the Maildir */
	uint64_t	bytes;		/* their size on disk */
	unsigned long	deleted;	/* removed from the server (QUIT +OK) */
	unsigned long	kept;		/* left on the server by keep = true */
	unsigned long	skipped;	/* left for another reason (warned) */
	unsigned	login_delay;	/* LOGIN-DELAY the server asked for, s */
	int		code;		/* sysexits: EX_OK or the worst error */
	char		error[256];	/* the first error logged, or "" */
	bool		busy;		/* another popfetch was fetching it:
					   left to that one (code EX_OK) */
};

/* What account_run does. */
enum account_mode {
	ACCOUNT_FETCH,		/* fetch: the real run */
	ACCOUNT_CHECK,		/* log in, report the server and counts */
	ACCOUNT_DRY_RUN		/* list what a run would fetch and delete */
};

/*
 * How far a fetch has come, for a display that may read it from another
 * process at any time (a torn read only shows a stale number). Sizes
 * are as LIST gives them.
 */
struct account_progress {
	volatile uint64_t	msgs_done, msgs_total;
	volatile uint64_t	bytes_done, bytes_total;
	volatile int64_t	started_ms;	/* CLOCK_MONOTONIC; 0: not yet */
	volatile enum {
		PROGRESS_WAITING, PROGRESS_RUNNING, PROGRESS_DONE
	}			state;
};

struct account_opts {
	enum account_mode	 mode;
	/* May be NULL. When it becomes non-zero, the run ends within about
	 * a second, keeping every invariant. */
	const volatile sig_atomic_t *cancel;
	struct account_progress	*progress;	/* may be NULL */
	void			(*tick)(void *arg);	/* after updates */
	void			*tick_arg;
	/* -q: a failure said once (a temporary one once it has lasted
	 * QUIET_GRACE), a lasting one not again until it changes. */
	bool			 quiet;
};

/* How long a temporary failure may last before -q says it. */
#define QUIET_GRACE	(24 * 3600)

/*
 * With ACCOUNT_FETCH, fetches one account once: logs in, delivers every new message into
 * its Maildir, records it, deletes it from the server unless the account
 * keeps mail, and quits. A DELE is sent only for a message that is
 * durably in the Maildir and durably recorded; on any failure before
 * QUIT nothing that was not stored is deleted. Errors and warnings are
 * logged here, once each, prefixed with the account name. With
 * ACCOUNT_CHECK and ACCOUNT_DRY_RUN nothing is fetched, deleted or
 * recorded: a report goes to standard output, a line at a time, each
 * "popfetch: NAME: ...". Returns res->code.
 */
int	account_run(const struct config *, const struct account *,
	    const struct account_opts *, struct account_result *res);

/*
 * The one-line summary of a fetch run for account name, into buf: what
 * it stored, deleted, kept and skipped, led by "failed (WHY); " when
 * the run failed, or what it did when another popfetch had the account.
 */
void	account_summary(const char *name, const struct account_result *res,
	    char *buf, size_t len);

/*
 * Ties the state st, just opened for account a, to the mailbox a names
 * (uidstate_use_mailbox), so that the UIDs of another mailbox never
 * decide what is fetched or deleted; a change of mailbox is logged
 * once, as a warning. Returns 0, or -1 with e filled in. Also used by
 * import-uids, which must follow the same rule.
 */
int	account_use_mailbox(struct uidstate *st, const struct account *a,
	    struct err *e);

#endif
