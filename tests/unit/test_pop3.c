/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "pop3.h"
#include "tap.h"

/*
 * The body decoder, fed every way the network may split its input: whole,
 * one byte at a time, and cut in two at every position. Each row is the
 * wire form after the +OK line; out is what must reach the Maildir, and
 * rest the bytes after the terminator, which must be left unconsumed.
 */
struct row {
	const char	*name;
	const char	*wire;
	size_t		 wirelen;	/* 0: strlen(wire) */
	const char	*out;
	size_t		 outlen;	/* 0: strlen(out) */
	bool		 done;		/* the terminator is in wire */
	size_t		 rest;		/* bytes after the terminator */
};

static const struct row rows[] = {
	{ "empty body", ".\r\n", 0, "", 0, true, 0 },
	{ "one line", "a\r\n.\r\n", 0, "a\n", 0, true, 0 },
	{ "dot-stuffed line", "..x\r\n.\r\n", 0, ".x\n", 0, true, 0 },
	{ "line that is a lone dot", "..\r\n.\r\n", 0, ".\n", 0, true, 0 },
	{ "two dots", "...\r\n.\r\n", 0, "..\n", 0, true, 0 },
	{ "dot mid-line kept", "a.b\r\n.\r\n", 0, "a.b\n", 0, true, 0 },
	{ "dot after bare LF kept", "a\n.b\r\n.\r\n", 0, "a\n.b\n", 0,
	    true, 0 },
	{ "bare CR kept", "a\rb\r\n.\r\n", 0, "a\rb\n", 0, true, 0 },
	{ "CR CR LF", "a\r\r\n.\r\n", 0, "a\r\n", 0, true, 0 },
	{ "bare LF kept", "a\nb\r\n.\r\n", 0, "a\nb\n", 0, true, 0 },
	{ "empty lines", "\r\n\r\n.\r\n", 0, "\n\n", 0, true, 0 },
	{ "8-bit bytes", "\x80\xff\xfe\r\n.\r\n", 0, "\x80\xff\xfe\n", 0,
	    true, 0 },
	{ "NUL byte", "a\0b\r\n.\r\n", 8, "a\0b\n", 4, true, 0 },
	{ "pipelined reply follows", "x\r\n.\r\n+OK next\r\n", 0, "x\n", 0,
	    true, 10 },
	{ "not the end: dot CR x", ".\rx\r\n.\r\n", 0, "\rx\n", 0, true, 0 },
	{ "stuffed dot before bare LF", ".\n.\r\n.\r\n", 0, "\n.\n", 0,
	    true, 0 },
	{ "dot-CR-CR-LF", ".\r\r\n.\r\n", 0, "\r\n", 0, true, 0 },
	{ "unterminated", "a\r\nb", 0, "a\nb", 0, false, 0 },
	{ "unterminated at CR", "a\r", 0, "a", 0, false, 0 },
	{ "unterminated at dot", "a\r\n.", 0, "a\n", 0, false, 0 },
	{ "unterminated at dot CR", "a\r\n.\r", 0, "a\n", 0, false, 0 },
	{ "terminator without CRLF before is data", "a.\r\n.\r\n", 0,
	    "a.\n", 0, true, 0 },
	{ "LF-only terminator is not one", "a\n.\n", 0, "a\n.\n", 0,
	    false, 0 },
};

struct result {
	char	*out;
	size_t	 outlen;
	size_t	 consumed;
	bool	 done;
};

/* Feeds wire in pieces of at most step bytes, first piece cut at first. */
static void
feed(const char *wire, size_t n, size_t first, size_t step,
    struct result *res)
{
	struct pop3_unstuff u;
	size_t off = 0, len, used, outn;
	char *buf = malloc(n + 2);

	memset(&u, 0, sizeof(u));
	res->out = malloc(2 * n + 2);
	res->outlen = 0;
	res->done = false;
	while (off < n && !res->done) {
		len = off == 0 && first > 0 ? first : step;
		if (len > n - off)
			len = n - off;
		used = pop3_unstuff(&u, wire + off, len, buf, &outn,
		    &res->done);
		memcpy(res->out + res->outlen, buf, outn);
		res->outlen += outn;
		off += used;
		if (used < len && !res->done)
			break;	/* a decoder that stops early is wrong */
	}
	res->consumed = off;
	free(buf);
}

static bool
check(const struct row *r, size_t first, size_t step)
{
	size_t n = r->wirelen ? r->wirelen : strlen(r->wire);
	size_t outlen = r->outlen ? r->outlen : strlen(r->out);
	struct result res;
	bool good;

	feed(r->wire, n, first, step, &res);
	good = res.done == r->done && res.outlen == outlen &&
	    memcmp(res.out, r->out, outlen) == 0 &&
	    res.consumed == n - r->rest;
	free(res.out);
	return good;
}

static void
test_rows(void)
{
	size_t i, cut, n;
	bool whole, bytes, splits;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		n = rows[i].wirelen ? rows[i].wirelen : strlen(rows[i].wire);
		whole = check(&rows[i], 0, n);
		bytes = check(&rows[i], 0, 1);
		splits = true;
		for (cut = 1; cut < n; cut++)
			splits = splits && check(&rows[i], cut, n);
		tap_ok(whole, "%s: whole", rows[i].name);
		tap_ok(bytes, "%s: byte by byte", rows[i].name);
		tap_ok(splits, "%s: every two-way split", rows[i].name);
	}
}

/* The output bound of the contract: never more than n + 1 bytes. */
static void
test_output_bound(void)
{
	struct pop3_unstuff u;
	char out[3];
	size_t outn, used;
	bool done;

	memset(&u, 0, sizeof(u));
	used = pop3_unstuff(&u, "a\r", 2, out, &outn, &done);
	tap_ok(used == 2 && outn == 1, "held-back CR is not emitted yet");
	used = pop3_unstuff(&u, "x", 1, out, &outn, &done);
	tap_ok(used == 1 && outn == 2 && memcmp(out, "\rx", 2) == 0,
	    "held-back CR then one byte: two bytes out of one in");
}

/* A large body with a long line, in 7-byte pieces. */
static void
test_long_line(void)
{
	size_t n = 1 << 20, i;
	char *wire = malloc(n + 8), *want = malloc(n + 1);
	struct row r;

	for (i = 0; i < n; i++)
		wire[i] = want[i] = (char)('a' + i % 26);
	memcpy(wire + n, "\r\n.\r\n", 5);
	want[n] = '\n';
	memset(&r, 0, sizeof(r));
	r.name = "1 MB line";
	r.wire = wire;
	r.wirelen = n + 5;
	r.out = want;
	r.outlen = n + 1;
	r.done = true;
	tap_ok(check(&r, 0, 7), "1 MiB single line in 7-byte pieces");
	tap_ok(check(&r, 3, 65536), "1 MiB single line in 64 KiB pieces");
	free(wire);
	free(want);
}

static void
test_err_codes(void)
{
	static const struct {
		const char	*line;
		int		 want;
	} codes[] = {
		{ "-ERR [IN-USE] locked", EX_TEMPFAIL },
		{ "-ERR [in-use] locked", EX_TEMPFAIL },
		{ "-ERR [SYS/TEMP] later", EX_TEMPFAIL },
		{ "-ERR [LOGIN-DELAY] wait", EX_TEMPFAIL },
		{ "-ERR [AUTH] bad password", EX_NOPERM },
		{ "-ERR [SYS/PERM] no", EX_PROTOCOL },
		{ "-ERR bad", EX_PROTOCOL },
		{ "-ERR", EX_PROTOCOL },
		{ "+OK [IN-USE]", EX_PROTOCOL },
		{ "-ERR [IN-USE", EX_PROTOCOL },
		{ "-ERR x [IN-USE]", EX_PROTOCOL },
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		tap_ok(pop3_err_code(codes[i].line, strlen(codes[i].line),
		    EX_PROTOCOL) == codes[i].want, "pop3_err_code \"%s\"",
		    codes[i].line);
}

int
main(void)
{
	test_rows();
	test_output_bound();
	test_long_line();
	test_err_codes();
	return tap_done();
}
