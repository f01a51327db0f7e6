/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_ACCOUNT_IMPL_H
#define POPFETCH_ACCOUNT_IMPL_H

/*
 * Inside the account module only: the state of one account run, shared
 * by its four files, as pop3_impl.h is by the pop3 module's two.
 *   account.c          the run: login, RETR and DELE, QUIT, what is
 *                      reported
 *   account_plan.c     what the server has, and what the run does with
 *                      each message
 *   account_commit.c   a batch made durable and recorded, in the order
 *                      that loses nothing, before any of it is deleted
 *   account_inspect.c  --check and --dry-run: a report, nothing changed
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "err.h"
#include "header.h"
#include "maildir.h"
#include "status.h"

/* Tuning; overridable at build time (-D) to measure what each costs. */
#ifndef WINDOW_CMDS
#define WINDOW_CMDS	256		/* commands in flight, pipelined */
#endif
#ifndef WINDOW_BYTES
#define WINDOW_BYTES	(16u << 20)	/* expected reply bytes in flight */
#endif
#ifndef BATCH_MSGS
#define BATCH_MSGS	128		/* messages per durable commit */
#endif
#ifndef BATCH_BYTES
#define BATCH_BYTES	(32u << 20)
#endif

enum action {
	A_FETCH,	/* new: retrieve, store, then delete unless keep */
	A_DELETE,	/* already stored in an earlier run: delete only */
	A_KEEP,		/* already stored, kept on the server */
	A_SKIP		/* left on the server, with a warning */
};

struct run;

struct msg {
	struct run	*run;
	const char	*uid;		/* a key of run->present, or NULL */
	uint64_t	 size;		/* as LIST says; may lie */
	uint32_t	 num;		/* valid only in this session */
	unsigned	 action:2;	/* enum action */
	bool		 listed:1;	/* LIST had a line for it */
	bool		 uid_listed:1;	/* UIDL had a line for it */
	bool		 stored:1;	/* durably in the Maildir */
	bool		 skipped:1;	/* counted in res->skipped */
	bool		 deleted:1;	/* DELE answered +OK */
	bool		 oversize:1;	/* over max_size: skipped */
};

struct run {
	const struct config	*cfg;
	const struct account	*acct;
	struct account_result	*res;
	const struct account_opts *opts;
	struct account_progress	 noprogress;	/* when opts has none */
	struct account_progress	*prog;
	struct pop3		*pop;
	struct deliver		*dl;		/* the account's target */
	struct maildir		*md;		/* its spool (deliver.h) */
	struct uidstate		*st;
	int			 told;		/* a failure said to -q now */
	struct status		 status;	/* what earlier runs said */
	struct msg		*msgs;
	size_t			 nmsgs, msgsize;
	struct uidmap		*present;	/* UID -> index, as listed */
	bool			 have_uidl;
	bool			 listed_all;	/* LIST was asked */
	unsigned		 misplaced;	/* numbers out of order */
	bool			 any_new;	/* a UID not yet recorded,
						   or marked deleted */

	uint32_t		*queue;		/* A_FETCH indexes, in order */
	size_t			 nqueue, next_fetch;
	uint32_t		*deles;		/* indexes to DELE */
	size_t			 ndeles, next_dele;

	struct maildir_msg	*cur;		/* the message being received */
	struct maildir_msg	**batch;	/* received, not yet committed */
	size_t			*batch_idx;
	size_t			 nbatch;
	uint64_t		 batch_bytes;

	bool			 local_failed;	/* delivery failed: stop */
	bool			 commit_due;	/* a full batch, not pipelining */
	struct err		 local_err;

	/* The target takes nothing more (out of room, an MDA's 73 or 75):
	 * what came before is committed; the rest stays on the server. */
	bool			 held;
	const struct msg	*held_msg;	/* the first message left */
	bool			 full;		/* held for want of room */
	struct err		 full_err;	/* the first such error */
	const char		*full_dir;	/* where room is lacking */

	uint64_t		 sizes_done;	/* LIST sizes of those received */
	unsigned long		 left_over;	/* new, held back by max_messages */
	struct top_slot		*tops;		/* TOPs in flight */
	char			 stat[96];	/* --check: what STAT said */
};

/* One TOP n 0 in flight; replies come in order. */
struct top_slot {
	struct run		*r;
	size_t			 mi;	/* index into r->msgs */
	/* Called once the reply is in: why is NULL, or the escaped -ERR. */
	void			(*done)(struct top_slot *, const char *why);
	struct header_pick	 h;
};

/* --- account.c ------------------------------------------------------ */

/*
 * Gets the password and logs in (r->pop). Returns 0, or -1 with e filled
 * in (login.c's errors).
 */
int	account_login(struct run *r, struct err *e);

/*
 * What became of UTF-8 mode (RFC 6856), as a sentence, or NULL when the
 * server did not offer it. The caller frees it.
 */
char	*account_utf8_text(const struct run *r);

/*
 * A message left on the server for a reason that may last: said once
 * (shown with -q too), noted for --status, and at later runs only with
 * -v. One without a UID cannot be noted: it is said at every run.
 */
void	account_stuck(struct run *r, const char *uid, uint64_t size,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fills in e (EX_PROTOCOL) for a malformed reply line. Returns -1. */
int	account_bad_line(const char *what, const char *line, size_t n,
	    struct err *e);

/* Tells the caller's display that the progress moved (opts->tick). */
void	account_tick(struct run *r);

/*
 * What the headers in slot t say, "From: ..., Subject: ...", or why
 * there are none (why: the escaped -ERR of TOP, or NULL); newly
 * allocated. The slot is emptied for its next use.
 */
char	*account_top_text(struct top_slot *t, const char *why);

/*
 * The headers of the n messages idx names, by TOP n 0, pipelined; done
 * is called for each as its reply ends, so memory stays that of the
 * window. Returns 0, or -1 with e filled in (the session is broken).
 */
int	account_tops(struct run *r, const uint32_t *idx, size_t n,
	    void (*done)(struct top_slot *, const char *why), struct err *e);

/*
 * The messages over max_size, each said once with its From and Subject
 * (a run: those not noted by an earlier one; one without a UID cannot
 * be noted, and is said at every run; --check and --dry-run: each, on
 * standard output). Returns 0, or -1 with e filled in.
 */
int	account_oversize(struct run *r, struct err *e);

/* --- account_plan.c ------------------------------------------------- */

/*
 * What is on the server, by number, UID and size, into r->msgs; also
 * takes the capabilities read after login (LOGIN-DELAY). Returns 0, or
 * -1 with e filled in (EX_PROTOCOL for a malformed or refused listing,
 * EX_TEMPFAIL for a UIDL refused where it is needed).
 */
int	account_list(struct run *r, struct err *e);

/*
 * Decides each listed message's action: r->queue gets those to fetch
 * (up to max_messages), r->deles those to delete, and res counts those
 * kept and skipped. Returns 0, or -1 (EX_PROTOCOL) when keep = true
 * meets a server without UIDL.
 */
int	account_plan(struct run *r, struct err *e);

/* --- account_commit.c ----------------------------------------------- */

/*
 * Makes the batch (r->batch) durable and recorded, in the order stated
 * at account_commit_work, then queues its messages for DELE (unless keep) and
 * empties it. With a keepalive, the work runs in a second thread while
 * this one sends a NOOP every keepalive seconds it waits: the session
 * (r->pop) is touched by this thread only, never by account_commit_work. A
 * message the target refuses or defers stays on the server, not
 * recorded. The run is held (r->held: what came before is committed,
 * the rest stays on the server) when an MDA takes nothing more, or when
 * there is no room: in tmp/ or in the journal, or in the state
 * directory for the records of a batch already in new/ (its pending
 * records stand; the next run records it). Returns 0, or -1 with e
 * filled in when delivery or the state is broken, a full disk included
 * where nothing of the step can stand (a Maildir's rename into new/, the
 * last record of another target's batch): nothing of the failed step
 * counts as delivered.
 */
int	account_commit(struct run *r, struct err *e);

/*
 * No room for message m (e says why: err_no_space) in dir, which must
 * last as long as the run (r->full_dir keeps it): the run is held from
 * m on. Takes the error out of e. Returns 0.
 */
int	account_no_room(struct run *r, const struct msg *m, const char *dir,
	    struct err *e);

/*
 * How many messages of the queue were held back, and their size (LIST's)
 * in *bytes; each is counted as skipped.
 */
size_t	account_held_back(struct run *r, uint64_t *bytes);

/*
 * Empties the batch: each message's file is removed unless it was
 * already delivered into new/ (maildir_msg_free), and freed.
 */
void	account_batch_free(struct run *r);

/* --- account_inspect.c ---------------------------------------------- */

/*
 * --check and --dry-run: logs in, reports on standard output, and QUITs
 * having changed nothing on the server or in the state (nothing is
 * locked or recovered). e gets the error that ended it, if any.
 */
void	account_inspect(struct run *r, struct err *e);

/* Prints "popfetch: NAME: " and the line to standard output. */
void	account_say(const struct run *r, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
