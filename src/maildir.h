/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_MAILDIR_H
#define POPFETCH_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/*
 * Delivery into a Maildir (cr.yp.to/proto/maildir.html). A message is
 * written to tmp/ under a unique name, then a batch of finished messages
 * is made durable (maildir_sync: fsync of each file) and moved into new/
 * (maildir_commit: rename, then fsync of new/). Nothing appears in new/
 * that was not complete and fsynced first.
 *
 * Errors: EX_CANTCREAT when a directory or file cannot be created,
 * EX_IOERR when writing, syncing or renaming fails (ENOSPC, EDQUOT, EIO);
 * a message file's creation, write, sync or rename that fails records
 * its errno in the error (err_no_space tells a full disk).
 */
struct maildir;
struct maildir_msg;

/*
 * Opens the Maildir at path, creating it and cur/ new/ tmp/ (mode 0700)
 * when missing, and removes tmp/ files that an earlier popfetch process,
 * now dead, left behind on this host. Returns 0 and stores the handle in
 * *mdp, or -1 with e filled in.
 */
int	maildir_open(struct maildir **mdp, const char *path, struct err *e);

/* Closes the Maildir; NULL is a no-op. Messages must be freed first. */
void	maildir_close(struct maildir *);

/* The path it was opened with; owned by the handle. */
const char *maildir_path(const struct maildir *);

/*
 * Starts a message in tmp/ (mode 0600). Only one message may be open for
 * writing at a time. Returns 0 and stores it in *msgp, or -1.
 */
int	maildir_msg_begin(struct maildir *, struct maildir_msg **msgp,
	    struct err *e);

/* Appends n bytes to the message being written. Returns 0 or -1. */
int	maildir_msg_write(struct maildir_msg *, const void *, size_t n,
	    struct err *e);

/*
 * Ends writing: all bytes are handed to the kernel (not yet fsynced); the
 * file stays open for maildir_sync. Returns 0 or -1.
 */
int	maildir_msg_finish(struct maildir_msg *, struct err *e);

/* The message's unique base name, the same in tmp/ and new/. */
const char *maildir_msg_name(const struct maildir_msg *);

/*
 * Opens the finished message, still in tmp/, for reading (O_CLOEXEC).
 * Returns the descriptor (the caller closes it), or -1 with e filled in.
 */
int	maildir_msg_open_read(const struct maildir_msg *, struct err *e);

/* Bytes written so far. */
uint64_t maildir_msg_size(const struct maildir_msg *);

/*
 * True once maildir_sync made the message durable. After a failed
 * maildir_sync, every message before the one its error names is synced:
 * a batch cut short by a full disk can still commit those.
 */
bool	maildir_msg_synced(const struct maildir_msg *);

/* True once maildir_commit moved the message into new/. For test_maildir
 * only: the callers go by maildir_commit's result. */
bool	maildir_msg_committed(const struct maildir_msg *);

/*
 * Frees a message. One that was not committed is removed from tmp/: a
 * partial or unconfirmed message never stays behind. NULL is a no-op.
 */
void	maildir_msg_free(struct maildir_msg *);

/* fsyncs each of n finished messages. Returns 0 or -1. */
int	maildir_sync(struct maildir *, struct maildir_msg **msgs, size_t n,
	    struct err *e);

/*
 * Renames n synced messages from tmp/ into new/, in order, then fsyncs
 * new/. Returns 0, or -1 when a rename or the fsync fails: messages
 * renamed before the failure are marked committed (but new/ may not be
 * durable), the rest stay in tmp/.
 */
int	maildir_commit(struct maildir *, struct maildir_msg **msgs, size_t n,
	    struct err *e);

/*
 * Recovery after a crash: for each of n unique names, sets found[i] when
 * a message of that name is in new/ or cur/ (where a reader may have
 * moved it, with a ":2,..." suffix), and removes it from tmp/ when it is
 * found in neither. Returns 0 or -1.
 */
int	maildir_recover(struct maildir *, const char *const *names, size_t n,
	    bool *found, struct err *e);

#endif
