/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/*
 * Set once by main (and per worker process) before any account runs,
 * then only read: process-wide settings, like stderr itself.
 */
static enum log_level log_level = LL_INFO;
static bool log_syslog, log_journal, log_demote, log_erase, log_stamp;

void
log_set_level(enum log_level level)
{
	log_level = level;
}

void
log_set_erase_line(bool on)
{
	log_erase = on && isatty(STDERR_FILENO);
}

void
log_set_timestamps(bool on)
{
	log_stamp = on && isatty(STDERR_FILENO);
}

void
log_set_demote_errors(bool on)
{
	log_demote = on;
}

/* True when JOURNAL_STREAM names the file that standard error is. */
static bool
log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_open(bool use_syslog)
{
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("popfetch", LOG_PID, LOG_MAIL);
	else
		log_journal = log_stderr_is_journal();
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = {
		LOG_ERR, LOG_WARNING, LOG_WARNING, LOG_INFO, LOG_DEBUG,
		LOG_DEBUG
	};
	char line[2048], stamp[32] = "";
	time_t now;
	struct tm tm;
	va_list ap;

	if (level == LL_ERROR && log_demote)
		level = LL_DEBUG;
	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(prio[level], "%s", line);
	else if (log_journal)
		fprintf(stderr, "<%d>%s\n", prio[level], line);
	else {
		if (log_stamp && (now = time(NULL)) != (time_t)-1 &&
		    localtime_r(&now, &tm) != NULL &&
		    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S ",
		    &tm) == 0)
			stamp[0] = '\0';
		/* One write per line: lines of parallel workers never mix.
		 * On a terminal with a progress line, that line goes first. */
		fprintf(stderr, "%s%spopfetch: %s\n", log_erase ? "\r\033[K" :
		    "", stamp, line);
	}
}
