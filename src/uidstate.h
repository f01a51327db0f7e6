/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_UIDSTATE_H
#define POPFETCH_UIDSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "uid.h"

/*
 * One account's record of delivered UIDs of one mailbox (user@host), in
 * DIR/ACCOUNT.state, with an append-only journal DIR/ACCOUNT.journal
 * written during a run and folded into the state file at the end. DIR/ACCOUNT.lock is held (flock) from
 * open to close, so two processes never work on one account at once.
 *
 * The order that keeps mail from being lost or duplicated, per batch:
 * uidstate_pending (names the tmp/ files about to be moved into new/),
 * then the move, then uidstate_delivered; only then may a DELE be sent.
 * After a crash in between, uidstate_open asks the caller which pending
 * files reached the Maildir and records exactly those as delivered.
 */
struct uidstate;

/*
 * Asked at open for the pending messages of an interrupted run: sets
 * found[i] for each of the n names that reached the Maildir. Returns 0,
 * or -1 with e filled in.
 */
typedef int (*uidstate_recover_fn)(void *arg, const char *const *names,
	    size_t n, bool *found, struct err *e);

/*
 * Creates dir if missing (0700), takes the account's lock, loads its
 * state and replays any journal left by an interrupted run (calling
 * recover for its pending records), then compacts the result. Returns 0
 * with the state in *sp, UIDSTATE_BUSY with e filled in (EX_TEMPFAIL)
 * when another process holds the lock, or -1 with e filled in:
 * EX_CANTCREAT when dir or a file cannot be
 * created, EX_IOERR for I/O errors and for a corrupt state or journal
 * (the message names the file and line; nothing is reset).
 */
#define UIDSTATE_BUSY	(-2)
int	uidstate_open(struct uidstate **sp, const char *dir,
	    const char *account, uidstate_recover_fn recover, void *arg,
	    struct err *e);

/*
 * Reads the state as uidstate_open and uidstate_use_mailbox would, for a
 * report, changing nothing:
 * no directory or lock file is made, no lock is taken, and a journal left
 * by a running or interrupted run is read but not folded in (*pending
 * gets the number of its messages whose delivery the next run settles).
 * A missing state is empty. *other is set when the account's state
 * describes another mailbox than mailbox (then the one kept for mailbox,
 * or none, is read). Only uidstate_has, uidstate_was_deleted,
 * uidstate_count and uidstate_close may be used on the result. Returns 0, or -1 with e
 * filled in (EX_IOERR: unreadable or corrupt).
 */
int	uidstate_peek(struct uidstate **sp, const char *dir,
	    const char *account, const char *mailbox, size_t *pending,
	    bool *other, struct err *e);

/*
 * The name of the mailbox user@host, as states record it (the host's
 * case folded; port and TLS mode are no part of it). The caller frees.
 */
char	*uidstate_mailbox(const char *user, const char *host);

/*
 * Ties the state, just opened, to mailbox (made by uidstate_mailbox), so
 * that UIDs of one mailbox are never applied to another. A state that
 * names no mailbox (written by popfetch 0.1) is adopted. A state of
 * another mailbox is kept aside, as DIR/ACCOUNT@HASH.state, and the
 * state kept for mailbox, if any, takes its place; otherwise it starts
 * empty. Returns 1 when the account changed mailbox (*was gets the old
 * one's name, the caller's to free), 0 when not (*was NULL), or -1 with
 * e filled in (EX_IOERR).
 */
int	uidstate_use_mailbox(struct uidstate *, const char *mailbox,
	    char **was, struct err *e);

/* Releases the lock and frees; NULL is a no-op. Nothing is written. */
void	uidstate_close(struct uidstate *);

/* True when uid is recorded as delivered; *first_seen gets its time. */
bool	uidstate_has(const struct uidstate *, const char *uid,
	    time_t *first_seen);

/*
 * True when uid is recorded and marked by uidstate_deleted: the server
 * committed the deletion of the message under it. *size (unless size is
 * NULL) gets that message's size as LIST gave it. A UID listed again
 * with that size is the same message, kept by a server that ignored the
 * deletion; with another size it is a new message under a reused UID.
 */
bool	uidstate_was_deleted(const struct uidstate *, const char *uid,
	    uint64_t *size);

/* Number of recorded UIDs. */
size_t	uidstate_count(const struct uidstate *);

/*
 * Journals that n messages with these UIDs are about to be moved into
 * the Maildir under these unique names, durably (fdatasync) before it
 * returns 0. Returns -1 with e filled in.
 */
int	uidstate_pending(struct uidstate *, const char *const *uids,
	    const char *const *names, size_t n, struct err *e);

/*
 * Records n UIDs as delivered at time now, with their sizes as LIST gave
 * them (sizes NULL: not known), durably in the journal before it returns
 * 0. A UID already recorded keeps its record, unless it is marked
 * deleted (uidstate_was_deleted): then the new message replaces it.
 * Returns -1 with e filled in.
 */
int	uidstate_delivered(struct uidstate *, const char *const *uids,
	    const uint64_t *sizes, size_t n, time_t now, struct err *e);

/*
 * Marks uid, if recorded, as deleted by the server, the message then
 * under it of size octets (as LIST gave it). Call it only once QUIT was
 * answered +OK, when the deletion is committed. Takes effect at
 * uidstate_commit; it is not journaled: lost in a crash, it only leaves
 * the UID as a UID recorded without it (a message listed under it again
 * is taken for the same one, and deleted again).
 */
void	uidstate_deleted(struct uidstate *, const char *uid, uint64_t size);

/*
 * Forgets every recorded UID that is not a key of present (the UIDs the
 * server listed). Takes effect at uidstate_commit.
 */
void	uidstate_retain(struct uidstate *, const struct uidmap *present);

/*
 * Writes the state file anew if anything changed (temporary file, fsync,
 * rename, fsync of the directory) and removes the journal. Returns 0 or
 * -1 with e filled in; on failure the journal still holds every record.
 */
int	uidstate_commit(struct uidstate *, struct err *e);

#endif
