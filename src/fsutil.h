/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_FSUTIL_H
#define POPFETCH_FSUTIL_H

#include <sys/types.h>

#include <stdbool.h>

#include "err.h"

/*
 * mkdir -p: creates path and every missing parent, mode 0700 (before the
 * umask), each made durable (an fsync of its parent, also when it
 * existed: a run that died may have left it unsynced).
 * Returns 0 when path is a directory afterwards, or -1 with e filled in:
 * EX_CANTCREAT, "cannot create WHAT PATH: reason", or EX_IOERR when a
 * parent cannot be synced.
 */
int	fs_mkdirs(const char *path, const char *what, struct err *e);

/*
 * Whether a run could write in dir: a file can be created there (one is
 * made and removed at once), or, when dir does not exist yet, its
 * nearest existing parent lets a run create it. Returns 0, or -1 with e
 * filled in (EX_CANTCREAT, naming WHAT and the directory).
 */
int	fs_writable(const char *dir, const char *what, struct err *e);

/*
 * Makes path's entry in its parent directory durable (an fsync of the
 * parent): without it a power cut can take a new Maildir, or a new mbox,
 * and the mail later put into it, away. created says whether we made
 * path just now: a parent we may not read is left alone when path was
 * there before us (as /home often is, for a home directory). Returns 0,
 * or -1 with e filled in (EX_IOERR, "cannot sync WHAT DIR: reason").
 */
int	fs_sync_parent(const char *path, bool created, const char *what,
	    struct err *e);

/*
 * Refuses a file that holds a secret (a password, a private key) when
 * group or others may access it: returns 0 when mode (a st_mode) gives
 * them nothing, else -1 with e filled in: EX_CONFIG, "WHAT is accessible
 * to group or others (mode 0644); run: chmod 600 PATH". what begins the
 * message ("password_file /p", "/p holds a password but"); path is the
 * file as shown, escaped by the caller.
 */
int	fs_check_private(mode_t mode, const char *what, const char *path,
	    struct err *e);

#endif
