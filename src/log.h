/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_LOG_H
#define POPFETCH_LOG_H

/*
 * Diagnostics on standard error, one line each, "popfetch: " first.
 * Only the account loop and main log; the modules below them return
 * errors instead. Callers escape server text before logging it.
 */
enum log_level {
	LOG_ERROR,	/* shown even with -q */
	LOG_WARN,
	LOG_INFO,	/* shown by default */
	LOG_DEBUG,	/* -v: the protocol, without secrets */
	LOG_TRACE	/* -vv: also libcurl's own notes */
};

/* Sets the most verbose level that is printed (default LOG_INFO). */
void	log_set_level(enum log_level);
enum log_level log_get_level(void);

/* Prints one line at level (a newline is added). */
void	log_msg(enum log_level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
