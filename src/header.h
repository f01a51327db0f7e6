/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_HEADER_H
#define POPFETCH_HEADER_H

#include <stddef.h>

/*
 * Picks From and Subject out of a message header given a line at a time
 * (as TOP n 0 returns it), unfolding continuation lines, and renders them
 * for a terminal: RFC 2047 encoded words in UTF-8, US-ASCII or ISO-8859-1
 * are decoded, and anything that is not printable UTF-8 is escaped.
 */
struct header_pick {
	char	*from;		/* raw value, or NULL */
	char	*subject;
	char	*cur;		/* the field being unfolded */
	enum { HEADER_NONE, HEADER_FROM, HEADER_SUBJECT }
		 which;		/* the field cur belongs to */
	int	 done;		/* the blank line was seen */
};

#define HEADER_VALUE_MAX	2048	/* bytes of a value kept */

/* Starts with the struct zeroed. Feeds one line, without its EOL. */
void	header_pick_line(struct header_pick *, const char *line, size_t n);

/* Frees what the struct holds and zeroes it. */
void	header_pick_free(struct header_pick *);

/*
 * Returns value (n bytes) decoded and made safe to print, at most max
 * characters (then "..."), newly allocated: the caller frees it.
 */
char	*header_display(const char *value, size_t n, size_t max);

#endif
