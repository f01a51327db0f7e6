/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_ACCOUNT_H
#define POPFETCH_ACCOUNT_H

#include <signal.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

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
};

/*
 * Fetches one account once: logs in, delivers every new message into
 * its Maildir, records it, deletes it from the server unless the account
 * keeps mail, and quits. A DELE is sent only for a message that is
 * durably in the Maildir and durably recorded; on any failure before
 * QUIT nothing that was not stored is deleted. Errors and warnings are
 * logged here, once each, prefixed with the account name. When cancel
 * (may be NULL) becomes non-zero, the run ends within about a second,
 * keeping every invariant. Returns res->code.
 */
int	account_run(const struct config *, const struct account *,
	    const volatile sig_atomic_t *cancel, struct account_result *res);

#endif
