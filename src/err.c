/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

void
err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	e->errnum = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

void
err_errno(struct err *e, int code, int errnum, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	e->errnum = errnum;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

bool
err_no_space(const struct err *e)
{
	return e->code != EX_OK && (e->errnum == ENOSPC ||
	    e->errnum == EDQUOT || e->errnum == EFBIG);
}

void
err_clear(struct err *e)
{
	e->code = EX_OK;
	e->errnum = 0;
	e->msg[0] = '\0';
}

static int
err_rank(int code)
{
	static const int order[] = {
		EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, EX_PROTOCOL, EX_NOPERM,
		EX_CANTCREAT, EX_IOERR, EX_CONFIG
	};
	size_t i;

	if (code == EX_SOFTWARE)
		return 100;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (order[i] == code)
			return (int)i;
	return 99;
}

int
err_worse(int a, int b)
{
	return err_rank(a) >= err_rank(b) ? a : b;
}
