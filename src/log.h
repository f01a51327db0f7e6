/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_LOG_H
#define POPFETCH_LOG_H

#include <stdbool.h>

/*
 * Diagnostics, one line each: on standard error as "popfetch: ...", or
 * with a syslog priority prefix ("<3>...") when standard error is the
 * journal (systemd sets JOURNAL_STREAM), or to syslog(3). Only the
 * account loop, the scheduler and main log; the modules below them
 * return errors instead. Callers escape server text before logging it.
 */
enum log_level {
	LL_ERROR,	/* shown even with -q */
	LL_NOTICE,	/* a problem said once: shown with -q, never
			   demoted (mail left on the server, a failure
			   that lasts) */
	LL_WARN,
	LL_INFO,	/* shown by default */
	LL_DEBUG,	/* -v: the protocol, without secrets */
	LL_TRACE	/* -vv: also libcurl's own notes */
};

/* Sets the most verbose level that is printed (default LL_INFO). */
void	log_set_level(enum log_level);

/*
 * Where lines go: syslog (facility mail) when use_syslog, else standard
 * error, with priority prefixes when it is the journal. Call once, early.
 */
void	log_open(bool use_syslog);

/*
 * While on, errors are logged at LL_DEBUG instead (the daemon's way of
 * reporting a failing login once, not at every poll).
 */
void	log_set_demote_errors(bool);

/*
 * With on, and standard error a terminal, each line starts by erasing
 * the terminal's current line (where a progress line may stand).
 */
void	log_set_erase_line(bool on);

/*
 * With on, and standard error a terminal (not the journal, which stamps
 * lines itself, nor syslog), each line starts with the local date and
 * time: for a daemon watched in the foreground.
 */
void	log_set_timestamps(bool on);

/* Prints one line at level (a newline is added). */
void	log_msg(enum log_level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
