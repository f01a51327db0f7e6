/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/ioctl.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "progress.h"
#include "xmalloc.h"

#define PROGRESS_LINE	1024
#define PROGRESS_EVERY	200		/* ms between redraws */

struct progress {
	int				 fd;
	const struct account *const	*accts;
	const struct account_progress	*slots;
	size_t				 n;
	int64_t				 last_ms;
	bool				 drawn;
};

/* "1.5 MiB", or in the compact form "1.5M" ("512K", "10B"). */
static void
human(uint64_t v, bool compact, char *out, size_t size)
{
	static const char *const unit[2][3] = {
		{ " B", " KiB", " MiB" }, { "B", "K", "M" }
	};

	if (v >= 1024 * 1024)
		snprintf(out, size, "%.1f%s", (double)v / (1024 * 1024),
		    unit[compact][2]);
	else if (v >= 1024)
		snprintf(out, size, compact ? "%.0f%s" : "%.1f%s",
		    (double)v / 1024, unit[compact][1]);
	else
		snprintf(out, size, "%" PRIu64 "%s", v, unit[compact][0]);
}

void
progress_format(const char *name, const struct account_progress *s,
    int64_t now_ms, bool compact, char *out, size_t size)
{
	uint64_t done = s->bytes_done, total = s->bytes_total;
	char d[32], t[32], r[32];
	double secs, rate = 0;
	unsigned left;
	int64_t start = s->started_ms;

	if (done > total)
		total = done;		/* LIST sizes may be wrong */
	human(done, false, d, sizeof(d));
	human(total, false, t, sizeof(t));
	secs = start > 0 && now_ms > start ? (double)(now_ms - start) / 1000 :
	    0;
	if (secs >= 0.5)
		rate = (double)done / secs;
	if (rate < 1) {
		if (compact)
			snprintf(out, size, "%.12s %" PRIu64 "/%" PRIu64, name,
			    (uint64_t)s->msgs_done, (uint64_t)s->msgs_total);
		else
			snprintf(out, size, "%s %" PRIu64 "/%" PRIu64 ", %s/%s",
			    name, (uint64_t)s->msgs_done,
			    (uint64_t)s->msgs_total, d, t);
		return;
	}
	/* Sizes come from the server: a lie must not overflow this. */
	secs = (double)(total - done) / rate + 0.5;
	left = secs > 359999 ? 359999 : (unsigned)secs;
	if (compact) {
		human((uint64_t)rate, true, r, sizeof(r));
		snprintf(out, size, "%.12s %" PRIu64 "/%" PRIu64 " %s/s %u:%02u",
		    name, (uint64_t)s->msgs_done, (uint64_t)s->msgs_total, r,
		    left / 60, left % 60);
		return;
	}
	human((uint64_t)rate, false, r, sizeof(r));
	snprintf(out, size, "%s %" PRIu64 "/%" PRIu64 ", %s/%s, %s/s, "
	    "%u:%02u left", name, (uint64_t)s->msgs_done,
	    (uint64_t)s->msgs_total, d, t, r, left / 60, left % 60);
}

struct progress *
progress_new(int fd, const struct account *const *accts,
    const struct account_progress *slots, size_t n)
{
	struct progress *p = xcalloc(1, sizeof(*p));

	p->fd = fd;
	p->accts = accts;
	p->slots = slots;
	p->n = n;
	return p;
}

static size_t
progress_width(int fd)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* Writes it all; a display has nothing to do about a failed write. */
static void
progress_write(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0 && (w = write(fd, p, n)) > 0) {
		p += w;
		n -= (size_t)w;
	}
}

/*
 * The running accounts, in the full form while all fit in width, else in
 * the compact one; those that still do not fit are counted ("+2 more").
 */
size_t
progress_render(const struct progress *p, int64_t now, size_t width,
    char *out, size_t size)
{
	char one[256], more[32];
	size_t i, len, shown, running = 0, keep;
	int compact;

	for (i = 0; i < p->n; i++)
		if (p->slots[i].state == PROGRESS_RUNNING && p->slots[i].msgs_total > 0)
			running++;
	if (width > size - 1)
		width = size - 1;
	for (compact = 0; compact < 2; compact++) {
		len = shown = 0;
		out[0] = '\0';
		for (i = 0; i < p->n; i++) {
			if (p->slots[i].state != PROGRESS_RUNNING ||
			    p->slots[i].msgs_total == 0)
				continue;
			progress_format(p->accts[i]->name, &p->slots[i], now,
			    compact, one, sizeof(one));
			snprintf(more, sizeof(more), " +%zu more",
			    running - shown - 1);
			/* Room for this one, and for the count of the rest
			 * unless this is the last. */
			keep = (len ? 3 : 0) + strlen(one) + (shown + 1 <
			    running ? strlen(more) : 0);
			if (len + keep > width)
				break;
			len += (size_t)snprintf(out + len, size - len, "%s%s",
			    len ? " | " : "", one);
			shown++;
		}
		if (shown == running)
			return len;
	}
	/* Compact, and still too many: say how many are not shown. */
	if (shown == 0)
		len = (size_t)snprintf(out, size, "%zu accounts", running);
	else
		len += (size_t)snprintf(out + len, size - len, " +%zu more",
		    running - shown);
	if (len > width)
		len = width;	/* a very narrow terminal */
	out[len] = '\0';
	return len;
}

void
progress_draw(struct progress *p, bool force)
{
	char line[PROGRESS_LINE];
	int64_t now = clock_ms();
	size_t len;

	if (!force && p->drawn && now - p->last_ms < PROGRESS_EVERY)
		return;
	p->last_ms = now;
	line[0] = '\r';
	len = 1 + progress_render(p, now, progress_width(p->fd) - 1,
	    line + 1, sizeof(line) - 8);
	if (len == 1 && !p->drawn)
		return;
	memcpy(line + len, "\033[K", 3);
	progress_write(p->fd, line, len + 3);
	p->drawn = len > 1;
}

void
progress_clear(struct progress *p)
{
	if (p == NULL || !p->drawn)
		return;
	progress_write(p->fd, "\r\033[K", 4);
	p->drawn = false;
}

void
progress_free(struct progress *p)
{
	progress_clear(p);
	free(p);
}
