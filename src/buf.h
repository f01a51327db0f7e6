/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_BUF_H
#define POPFETCH_BUF_H

#include <stddef.h>

/*
 * A byte buffer with a hard cap: it grows as needed but never past cap,
 * so a buffer that a server can fill cannot exhaust memory.
 */
struct buf {
	char	*data;		/* NUL-terminated after each append */
	size_t	 len;
	size_t	 size;		/* allocated */
	size_t	 cap;		/* most bytes it may ever hold */
};

/* Starts an empty buffer that will never hold more than cap bytes. */
void	buf_init(struct buf *, size_t cap);

/* Appends n bytes. Returns 0, or -1 (buffer unchanged) past the cap. */
int	buf_append(struct buf *, const void *, size_t n);

/* Forgets the first n bytes (n <= len). */
void	buf_consume(struct buf *, size_t n);

/* Empties the buffer, keeping its memory. */
void	buf_reset(struct buf *);

/* Frees the memory; the buffer is empty and usable again after it. */
void	buf_free(struct buf *);

/*
 * Returns a newly allocated, NUL-terminated copy of n bytes of untrusted
 * text that is safe for a terminal or a log: printable ASCII other than
 * backslash stays, backslash becomes "\\", and every other byte "\xNN".
 * At most max input bytes are kept; longer input ends with "...".
 * The caller frees the result.
 */
char	*buf_escape(const void *, size_t n, size_t max);

#endif
