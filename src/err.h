/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_ERR_H
#define POPFETCH_ERR_H

#include <stdbool.h>
#include <sysexits.h>

/*
 * An error: a sysexits(3) code saying how bad it is, and one line of text
 * saying what happened. Modules below the account loop fill one in and
 * return -1; the account loop logs it once, prefixed with the account.
 *
 * Codes used: EX_TEMPFAIL (network, timeout, [IN-USE], [SYS/TEMP]: retry
 * later), EX_PROTOCOL (the server broke the protocol), EX_NOPERM
 * (authentication refused, TLS peer not trusted), EX_CONFIG (the
 * configuration), EX_CANTCREAT and EX_IOERR (local delivery and state),
 * EX_UNAVAILABLE (libcurl lacks POP3), EX_SOFTWARE (a bug of ours).
 *
 * Text that came from a server must be escaped (buf_escape) before it is
 * put into msg.
 */
struct err {
	int	code;		/* EX_OK when nothing went wrong */
	int	errnum;		/* the errno behind it (err_errno), or 0 */
	char	msg[1024];
};

/* Sets code and message (printf-style; truncated to fit). */
void	err_set(struct err *, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * As err_set, and records errnum, the errno that caused it, for callers
 * that act on the cause (err_no_space). The message should name it.
 */
void	err_errno(struct err *, int code, int errnum, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/*
 * True when e was caused by a lack of room: ENOSPC (the file system is
 * full), EDQUOT (the user's quota) or EFBIG (a file past its limit).
 * What was stored before it is sound; nothing after it can be.
 */
bool	err_no_space(const struct err *);

/* Resets to EX_OK with an empty message. */
void	err_clear(struct err *);

/*
 * Returns whichever of two exit codes is the more severe, for the exit
 * status of a run over several accounts. Order, most severe first:
 * EX_SOFTWARE, EX_CONFIG, EX_IOERR, EX_CANTCREAT, EX_NOPERM, EX_PROTOCOL,
 * EX_UNAVAILABLE, EX_TEMPFAIL, EX_OK. Unknown codes rank just below
 * EX_SOFTWARE.
 */
int	err_worse(int a, int b);

#endif
