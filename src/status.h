/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_STATUS_H
#define POPFETCH_STATUS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"
#include "uid.h"

/*
 * What an account's runs did, for popfetch --status and for telling a
 * lasting problem once rather than at every run: DIR/ACCOUNT.status,
 * one "key values" line each. A fetch run rewrites it whole (temporary
 * file, rename) before it gives up the account's lock; anyone reads it
 * without a lock. It is a report, not a record of mail: a lost or
 * damaged file costs at most a warning said again.
 *
 * Notes are per-message problems said once: a message the delivery
 * target refused, one over max_size. A note lives while the server
 * still lists its UID and the problem lasts.
 */
enum note_kind {
	NOTE_REFUSED,		/* the target refused it (permanent) */
	NOTE_OVERSIZE,		/* over max_size, left on the server */
	NOTE_STUCK,		/* left on the server for another reason
				   that may last (a shared UID, RETR
				   refused) */
	NOTE_KINDS
};

struct status_note {
	char		*uid;
	enum note_kind	 kind;
	uint64_t	 size;
	int64_t		 since;		/* when first said */
	char		*text;		/* one printable line */
};

struct status {
	int64_t		 last_run;	/* end of the last run; 0: never */
	int64_t		 last_ok;	/* of the last that did not fail */
	int64_t		 last_mail;	/* of the last that fetched mail */
	int64_t		 failing_since;	/* first failed run in a row; 0 */
	int		 code;		/* the last run's exit status */
	int		 told;		/* failure code said to -q, or 0 */
	char		 error[256];	/* why the last failed run failed
					   (an interrupted one changes
					   nothing), or "" */
	bool		 interrupted;	/* the last run was stopped (SIGINT,
					   SIGTERM): neither failed nor ok */
	unsigned long	 fetched, deleted, kept, skipped;
	uint64_t	 bytes;
	struct status_note *notes;
	size_t		 nnotes;
};

/*
 * Reads DIR/ACCOUNT.status into a zeroed st. A missing file is an
 * account never run (0); an unreadable or damaged one reads as far as it
 * makes sense. Returns -1 only when the file exists and cannot be
 * opened (errno set): --status says so, a run starts afresh.
 */
int	status_load(struct status *st, const char *dir, const char *account);

/* Writes st anew. Returns 0, or -1 with e filled in (EX_IOERR). */
int	status_save(const struct status *st, const char *dir,
	    const char *account, struct err *e);

void	status_free(struct status *st);

/* The note of that kind for uid, or NULL. */
struct status_note *status_note_find(const struct status *st,
	    const char *uid, enum note_kind kind);

/* Adds a note said now (text is copied and made printable). */
void	status_note_add(struct status *st, const char *uid, enum note_kind kind,
	    uint64_t size, int64_t since, const char *text);

/* Drops every note of uid (its message was stored); true if any. */
bool	status_note_forget(struct status *st, const char *uid);

/* Drops the notes of UIDs that present (the server's list) lacks. */
bool	status_note_retain(struct status *st, const struct uidmap *present);

/*
 * The daemon's schedule, beside the accounts' files in DIR/daemon.next:
 * its pid, and each account's next poll (wall clock; 0 while it polls).
 * Written whenever the schedule changes, removed when it stops.
 */
struct status_next {
	const char	*name;
	int64_t		 when;
};

int	status_next_save(const char *dir, pid_t pid,
	    const struct status_next *next, size_t n, struct err *e);
void	status_next_remove(const char *dir);

/*
 * Reads DIR/daemon.next for account: 1 with *when set (0: polling now)
 * and *pid when a daemon that is still alive has it, else 0.
 */
int	status_next_find(const char *dir, const char *account, int64_t *when,
	    pid_t *pid);

/*
 * Prints what --status shows for one account (name, and what st says)
 * to f, times relative to now.
 */
void	status_print(FILE *f, const char *name, const struct status *st,
	    int next_known, int64_t next, pid_t pid, int64_t now);

#endif
