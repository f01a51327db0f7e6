/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

/*
 * The level is set once by main before any account runs and only read
 * afterwards: a process-wide setting, like stderr itself.
 */
static enum log_level log_level = LOG_INFO;

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines from parallel workers never mix. */
	fprintf(stderr, "popfetch: %s\n", line);
}
