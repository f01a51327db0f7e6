/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_XMALLOC_H
#define POPFETCH_XMALLOC_H

#include <stddef.h>

/*
 * Allocation that never returns NULL: on exhaustion or size overflow the
 * process prints a message and exits with EX_OSERR. Every returned
 * pointer belongs to the caller, to be released with free(3).
 */
void	*xmalloc(size_t);
void	*xcalloc(size_t nmemb, size_t size);
void	*xreallocarray(void *, size_t nmemb, size_t size);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xasprintf(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/*
 * Overwrites n bytes at p with zeros in a way the compiler may not remove,
 * for secrets. p may be NULL when n is 0.
 */
void	xwipe(void *p, size_t n);

/* Wipes a NUL-terminated secret and frees it; NULL is a no-op. */
void	xfree_secret(char *);

#endif
