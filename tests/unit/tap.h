/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_TAP_H
#define POPFETCH_TAP_H

/*
 * A minimal checker for the unit tests: each check prints one TAP line,
 * and tap_done() prints the plan and returns the exit status (0 all
 * passed, 1 some failed). make check reads the lines with automake's
 * TAP driver, which counts each check: "ok" as PASS, "not ok" as FAIL,
 * "ok N # SKIP" as SKIP.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static int tap_n, tap_failed, tap_skipped;

/*
 * Prints s, with a backslash before each "#" that the TAP driver would
 * take for a directive ("# SKIP", "# TODO"): only tap_skip() may say
 * SKIP, and a failed check whose message reads "# todo" stays a FAIL.
 */
static void __attribute__((unused))
tap_put_escaped(const char *s)
{
	const char *p;

	for (; *s != '\0'; s++) {
		if (*s == '#') {
			for (p = s + 1; *p == ' ' || *p == '\t'; p++)
				continue;
			if (strncasecmp(p, "skip", 4) == 0 ||
			    strncasecmp(p, "todo", 4) == 0)
				putchar('\\');
		}
		putchar(*s);
	}
}

static void __attribute__((format(printf, 2, 3), unused))
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL) {
		printf("(description lost)\n");
		fflush(stdout);
		return;
	}
	va_start(ap, fmt);
	(void)vsnprintf(s, (size_t)n + 1, fmt, ap);	/* measured above */
	va_end(ap);
	tap_put_escaped(s);
	free(s);
	putchar('\n');
	fflush(stdout);
}

/*
 * Counts one check that could not run here, with the reason: a SKIP in
 * make check's summary, never a PASS. Call it once for each check that
 * the case would have made, so that the plan is the same either way.
 */
static void __attribute__((format(printf, 1, 2), unused))
tap_skip(const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	tap_skipped++;
	printf("ok %d # SKIP ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int __attribute__((unused))
tap_done(void)
{
	printf("1..%d\n# %d failed, %d skipped\n", tap_n, tap_failed,
	    tap_skipped);
	return tap_failed == 0 && tap_n > 0 ? 0 : 1;
}

#endif
