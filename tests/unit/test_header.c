/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "header.h"
#include "progress.h"
#include "tap.h"

/* header_display: decoding and escaping, with the bytes it must give. */
static const struct disp_row {
	const char	*what;
	const char	*in;
	size_t		 max;
	const char	*want;
} disp_rows[] = {
	{ "plain", "Hello there", 80, "Hello there" },
	{ "UTF-8 B", "=?UTF-8?B?SsO8cmdlbg==?=", 80, "J\xc3\xbcrgen" },
	{ "UTF-8 Q with _", "=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", 80,
	    "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln" },
	{ "ISO-8859-1 to UTF-8", "=?ISO-8859-1?Q?Andr=E9?=", 80,
	    "Andr\xc3\xa9" },
	{ "two words, blank between dropped",
	    "=?UTF-8?Q?a?= =?UTF-8?Q?b?=", 80, "ab" },
	{ "word then text keeps the blank", "=?UTF-8?Q?a?= b", 80, "a b" },
	{ "unknown charset left alone", "=?koi8-r?B?8tXT?=", 80,
	    "=?koi8-r?B?8tXT?=" },
	{ "bad base64 left alone", "=?UTF-8?B?***?=", 80, "=?UTF-8?B?***?=" },
	{ "not closed left alone", "=?UTF-8?Q?abc", 80, "=?UTF-8?Q?abc" },
	{ "language suffix (RFC 2231)", "=?UTF-8*en?Q?hi?=", 80, "hi" },
	{ "escape sequence escaped", "a\x1b[2Jb", 80, "a\\x1b[2Jb" },
	{ "encoded escape escaped", "=?UTF-8?Q?=1B]0;t=07?=", 80,
	    "\\x1b]0;t\\x07" },
	{ "invalid UTF-8 escaped", "a\xc3(b", 80, "a\\xc3(b" },
	{ "overlong UTF-8 escaped", "\xc0\xaf", 80, "\\xc0\\xaf" },
	{ "C1 control escaped", "\xc2\x9b" "31m", 80, "\\xc2\\x9b" "31m" },
	{ "bidi override escaped", "a\xe2\x80\xae" "b", 80,
	    "a\\xe2\\x80\\xae" "b" },
	{ "tab becomes a blank", "a\tb", 80, "a b" },
	{ "backslash doubled", "a\\b", 80, "a\\\\b" },
	{ "cut at max", "abcdefgh", 5, "abcde..." },
	{ "cut counts characters", "\xc3\xa9\xc3\xa9\xc3\xa9", 2,
	    "\xc3\xa9\xc3\xa9..." },
};

struct pick_row {
	const char	*what;
	const char	*lines[8];	/* NULL ends */
	const char	*from;		/* NULL: none */
	const char	*subject;
};

static const struct pick_row pick_rows[] = {
	{ "simple", { "From: a@b", "Subject: hi", "X: y", "", NULL },
	    "a@b", "hi" },
	{ "folded subject", { "Subject: one", " two", "\tthree", "To: x",
	    "", NULL }, NULL, "one two\tthree" },
	{ "case-insensitive names", { "FROM:  a", "subject:b", "", NULL },
	    "a", "b" },
	{ "first one wins", { "Subject: 1", "Subject: 2", "", NULL }, NULL,
	    "1" },
	{ "after the blank line: body", { "To: x", "", "From: body", NULL },
	    NULL, NULL },
	{ "From_ line is not From:", { "From a@b Mon", "", NULL }, NULL,
	    NULL },
	{ "continuation of another field", { "To: x", " Subject: no", "",
	    NULL }, NULL, NULL },
	{ "no blank line at the end", { "From: a", " b", NULL }, "a b",
	    NULL },
};

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
test_pick(const struct pick_row *r)
{
	struct header_pick h;
	size_t i;

	memset(&h, 0, sizeof(h));
	for (i = 0; r->lines[i] != NULL; i++)
		header_pick_line(&h, r->lines[i], strlen(r->lines[i]));
	if (!h.done)
		header_pick_line(&h, "", 0);
	tap_ok(same(h.from, r->from) && same(h.subject, r->subject),
	    "pick: %s", r->what);
	header_pick_free(&h);
}

static void
test_long_value(void)
{
	struct header_pick h;
	char line[100];
	int i;

	memset(&h, 0, sizeof(h));
	header_pick_line(&h, "Subject: x", 10);
	memset(line, 'y', sizeof(line));
	line[0] = ' ';
	for (i = 0; i < 100; i++)
		header_pick_line(&h, line, sizeof(line));
	header_pick_line(&h, "", 0);
	tap_ok(h.subject != NULL && strlen(h.subject) == HEADER_VALUE_MAX,
	    "pick: a value is capped at %d bytes", HEADER_VALUE_MAX);
	header_pick_free(&h);
}

/*
 * Several accounts on one line: the full form while all fit, the compact
 * one (each still with its rate and time left) when not, and a count of
 * those that do not fit even so; never wider than the terminal.
 */
static void
test_progress_line(void)
{
	static const char *const names[] = {
		"personal", "work-imap-gateway", "family", "lists"
	};
	struct account accts[4];
	const struct account *ap[4];
	struct account_progress slots[4];
	struct progress *pr;
	char out[512];
	size_t i, len;

	memset(accts, 0, sizeof(accts));
	memset(slots, 0, sizeof(slots));
	for (i = 0; i < 4; i++) {
		accts[i].name = (char *)names[i];
		ap[i] = &accts[i];
		slots[i].state = PROGRESS_RUNNING;
		slots[i].msgs_total = 40;
		slots[i].msgs_done = 12;
		slots[i].bytes_total = 10 * 1024 * 1024;
		slots[i].bytes_done = 3 * 1024 * 1024;
		slots[i].started_ms = 1000;
	}
	pr = progress_new(-1, ap, slots, 4);
	len = progress_render(pr, 3000, 400, out, sizeof(out));
	tap_ok(len == strlen(out) && strstr(out, "personal 12/40, 3.0 "
	    "MiB/10.0 MiB, 1.5 MiB/s, 0:05 left | work-imap-gateway") == out,
	    "progress line: wide: the full form # %s", out);
	len = progress_render(pr, 3000, 120, out, sizeof(out));
	tap_ok(len <= 120 && strcmp(out, "personal 12/40 1.5M/s 0:05 | "
	    "work-imap-ga 12/40 1.5M/s 0:05 | family 12/40 1.5M/s 0:05 | "
	    "lists 12/40 1.5M/s 0:05") == 0,
	    "progress line: 120 columns: compact, each with rate and time "
	    "left # %s", out);
	len = progress_render(pr, 3000, 70, out, sizeof(out));
	tap_ok(len <= 70 && strcmp(out, "personal 12/40 1.5M/s 0:05 | "
	    "work-imap-ga 12/40 1.5M/s 0:05 +2 more") == 0,
	    "progress line: 70 columns: the rest counted # %s", out);
	len = progress_render(pr, 3000, 20, out, sizeof(out));
	tap_ok(len <= 20 && strcmp(out, "4 accounts") == 0,
	    "progress line: 20 columns # %s", out);
	slots[1].state = PROGRESS_DONE;
	slots[2].state = PROGRESS_WAITING;
	len = progress_render(pr, 3000, 80, out, sizeof(out));
	tap_ok(len <= 80 && strcmp(out, "personal 12/40 1.5M/s 0:05 | "
	    "lists 12/40 1.5M/s 0:05") == 0, "progress line: 80 columns, "
	    "two running, not the two that ended or wait # %s", out);
	progress_free(pr);
}

static void
test_progress(void)
{
	struct account_progress p;
	char out[256];

	memset(&p, 0, sizeof(p));
	p.msgs_total = 10;
	p.bytes_total = 4 * 1024 * 1024;
	progress_format("a", &p, 1000, false, out, sizeof(out));
	tap_ok(strcmp(out, "a 0/10, 0 B/4.0 MiB") == 0,
	    "progress: not started # %s", out);
	p.msgs_done = 5;
	p.bytes_done = 1024 * 1024;
	p.started_ms = 1000;
	progress_format("a", &p, 3000, false, out, sizeof(out));
	tap_ok(strcmp(out, "a 5/10, 1.0 MiB/4.0 MiB, 512.0 KiB/s, 0:06 left")
	    == 0, "progress: rate and time left # %s", out);
	p.bytes_done = 5 * 1024 * 1024;	/* LIST said less */
	progress_format("a", &p, 3000, false, out, sizeof(out));
	tap_ok(strcmp(out, "a 5/10, 5.0 MiB/5.0 MiB, 2.5 MiB/s, 0:00 left")
	    == 0, "progress: more than LIST said # %s", out);
	p.bytes_done = 1024 * 1024;
	progress_format("an-account-with-a-long-name", &p, 3000, true, out,
	    sizeof(out));
	tap_ok(strcmp(out, "an-account-w 5/10 512K/s 0:06") == 0,
	    "progress: compact # %s", out);
	test_progress_line();
}

int
main(void)
{
	size_t i;
	char *got;

	for (i = 0; i < sizeof(disp_rows) / sizeof(disp_rows[0]); i++) {
		got = header_display(disp_rows[i].in, strlen(disp_rows[i].in),
		    disp_rows[i].max);
		tap_ok(strcmp(got, disp_rows[i].want) == 0, "display: %s",
		    disp_rows[i].what);
		free(got);
	}
	for (i = 0; i < sizeof(pick_rows) / sizeof(pick_rows[0]); i++)
		test_pick(&pick_rows[i]);
	test_long_value();
	test_progress();
	return tap_done();
}
