/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_TAP_H
#define POPFETCH_TAP_H

/*
 * A minimal checker for the unit tests: each check prints one line, and
 * tap_done() returns the exit status automake expects (0 all passed,
 * 1 some failed).
 */
#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

static void __attribute__((format(printf, 2, 3), unused))
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int __attribute__((unused))
tap_done(void)
{
	printf("1..%d\n# %d failed\n", tap_n, tap_failed);
	return tap_failed == 0 && tap_n > 0 ? 0 : 1;
}

#endif
