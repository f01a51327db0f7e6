/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_PROGRESS_H
#define POPFETCH_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "config.h"

/*
 * A one-line progress display on a terminal: for each account being
 * fetched, messages and bytes done of the total, the rate and the time
 * left. It reads n slots that account_run fills in (perhaps in other
 * processes, through shared memory) and redraws the line in place.
 */
struct progress;

/*
 * Returns a display writing to fd, for accts[i] reading slots[i]; both
 * arrays must outlive it.
 */
struct progress *progress_new(int fd, const struct account *const *accts,
	    const struct account_progress *slots, size_t n);

/* Redraws the line; at most five times a second unless force. */
void	progress_draw(struct progress *, bool force);

/* Erases the line, so that other output can start at column 0. */
void	progress_clear(struct progress *);

/* Erases the line and frees; NULL is a no-op. */
void	progress_free(struct progress *);

/*
 * progress_format and progress_render are used inside progress.c, and
 * exported for test_header, which checks the line's text.
 *
 * Formats one account's progress into out (size bytes) as
 * "NAME 3/10, 1.2/4.0 MiB, 512 KiB/s, 0:06 left", given the time now;
 * compact: "NAME 3/10 512K/s 0:06", the name cut to 12 characters.
 */
void	progress_format(const char *name, const struct account_progress *,
	    int64_t now_ms, bool compact, char *out, size_t size);

/*
 * The line's text for a terminal width columns wide, into out (size
 * bytes): every running account in the full form if all fit, else in
 * the compact form, and those that still do not fit counted ("+2
 * more"). Returns its length, at most width.
 */
size_t	progress_render(const struct progress *, int64_t now_ms,
	    size_t width, char *out, size_t size);

#endif
