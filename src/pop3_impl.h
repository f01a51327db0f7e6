/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POP3_IMPL_H
#define POPFETCH_POP3_IMPL_H

/*
 * Inside the pop3 module only: what the login (login.c) uses of the
 * engine (pop3.c) besides pop3.h, to trace and to speak its commands.
 */
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "pop3.h"

/*
 * Hands text (CR and LF at its end cut, escaped) to the session's trace
 * callback, if any, as a line of direction dir (POP3_TRACE_).
 */
void	pop3_trace(struct pop3 *, char dir, const char *text, size_t n);

/*
 * What may be shown of a command we send, into out (NUL-terminated,
 * cut at outsize): the command whole when it can carry no secret, else
 * with the secret replaced by "<redacted>".
 */
void	pop3_redact(const char *cmd, size_t n, char *out, size_t outsize);

/* The POP3_CAP_ bit of one CAPA line, or 0. */
unsigned pop3_cap_bit(const char *line, size_t n);

/*
 * Sends cmd, a line that may carry a secret (taken: wiped and freed),
 * and waits for its reply. With sasl, "+ " lines go to cb->data, which
 * answers them with pop3_sasl_reply. The command buffer that held it is
 * wiped too. Returns 0, or -1 as pop3_drain.
 */
int	pop3_send_secret(struct pop3 *, const struct pop3_cb *cb, void *arg,
	    char *cmd, bool sasl, struct err *e);

/*
 * Queues a line that answers a SASL challenge (a secret, traced as
 * "<redacted>"): no command of its own, so no reply of its own. Returns
 * 0, or -1 (EX_SOFTWARE) when it is too long or holds CR or LF.
 */
int	pop3_sasl_reply(struct pop3 *, const char *line, struct err *e);

/*
 * Forgets every command queued or in flight and every byte received and
 * not yet parsed: after a refused login, whose reply ended the exchange.
 */
void	pop3_forget(struct pop3 *);

#endif
