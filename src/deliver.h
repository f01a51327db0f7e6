/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_DELIVER_H
#define POPFETCH_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "maildir.h"

/*
 * Delivery to an account's one target: a Maildir, an MDA (a command that
 * reads the message on standard input), an mbox file, or an LMTP server.
 *
 * Every message is first written whole into a spool, a Maildir's tmp/:
 * the target Maildir itself, or, for the other targets, a private one in
 * the state directory (STATE_DIR/ACCOUNT.spool). The caller writes it
 * with maildir_msg_begin/write/finish on deliver_spool(); nothing is
 * handed on before its last byte was received.
 *
 * The order that loses nothing is the caller's, kept and stated at
 * account_commit_work (account_commit.c). A Maildir takes a whole batch
 * in one deliver_hand (rename into new/, fsync of new/); the other
 * targets take one message per call, so that each can be recorded as
 * delivered right after its handover.
 */
struct deliver;

/* What deliver_hand did with a message (or with a Maildir's batch). */
enum deliver_result {
	DELIVER_TAKEN = 0,	/* delivered: record it, then DELE */
	DELIVER_TEMPFAIL = 1,	/* try again later: leave it on the server */
	DELIVER_REFUSED = 2,	/* refused for good: leave it, report once */
	DELIVER_HELD = 3	/* the target takes nothing now (an MDA's exit
				   73 or 75: a full disk, a quota): leave it
				   and the rest for the next run */
};

/*
 * Opens the account's target (for a Maildir: creates it if missing; for
 * the others: the spool in state_dir). Returns 0 with *dp set, or -1 with
 * e filled in (EX_CANTCREAT, EX_IOERR, EX_UNAVAILABLE).
 */
int	deliver_open(struct deliver **dp, const struct account *a,
	    const char *state_dir, struct err *e);

/*
 * Opens only what deliver_recover needs, for a command that settles an
 * interrupted run but delivers nothing (import-uids): for a Maildir the
 * Maildir (created if missing), for the other targets nothing at all (no
 * spool, no mbox file, no connection). Only deliver_recover and
 * deliver_close may be used on it. Returns 0 with *dp set, or -1 with e
 * filled in (EX_CANTCREAT, EX_IOERR).
 */
int	deliver_open_recovery(struct deliver **dp, const struct account *a,
	    struct err *e);

/* Closes; NULL is a no-op. Messages must be freed first. */
void	deliver_close(struct deliver *);

/* The Maildir whose tmp/ spools messages; owned by the deliver handle. */
struct maildir *deliver_spool(struct deliver *);

/* True when the target is a Maildir (deliver_hand takes whole batches). */
bool	deliver_is_maildir(const struct deliver *);

/*
 * Makes n finished messages ready to hand over: for a Maildir, fsyncs
 * each (they must be durable before they are journaled); the spool of
 * the other targets needs nothing (a crash loses only a copy of mail
 * that is still on the server). Returns 0 or -1 with e filled in.
 */
int	deliver_sync(struct deliver *, struct maildir_msg **msgs, size_t n,
	    struct err *e);

/*
 * Hands messages over, starting with msgs[0]; *taken gets how many this
 * call handled (n for a Maildir, 1 for the others). Returns
 * DELIVER_TAKEN when they were delivered; DELIVER_TEMPFAIL or
 * DELIVER_REFUSED (other targets only: msgs[0] was not delivered, e says
 * why, and the next message may still be tried); DELIVER_HELD (an MDA:
 * msgs[0] was not delivered, e says why, and no later message should be
 * tried in this run); or -1 when delivery itself is broken (e filled in:
 * stop the account, nothing of this call counts as delivered).
 */
int	deliver_hand(struct deliver *, struct maildir_msg **msgs, size_t n,
	    size_t *taken, struct err *e);

/*
 * A uidstate_recover_fn (arg: the deliver handle): sets found[i] for the
 * pending names that are known delivered. A Maildir is searched; for the
 * other targets a handover that a crash interrupted cannot be checked,
 * so nothing is found and the message, still on the server, is delivered
 * again: a duplicate, never a loss.
 */
int	deliver_recover(void *arg, const char *const *names, size_t n,
	    bool *found, struct err *e);

#endif
