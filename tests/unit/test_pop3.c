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

/*
 * The engine on a detached session: queued commands, then the server's
 * bytes fed in every split. The callbacks write one transcript: status
 * lines "S+:" or "S-:", lines "L:", stream bytes as they come, "E" at
 * the end of a body; so the transcript does not depend on the split.
 */
struct seen {
	char	text[8192];
	size_t	len;
	int	fail_at_end;	/* > 0: the Nth end callback fails */
};

static void
seen_add(struct seen *s, const char *tag, const char *p, size_t n, bool sep)
{
	size_t t = strlen(tag);

	if (s->len + t + n + 1 >= sizeof(s->text))
		return;
	memcpy(s->text + s->len, tag, t);
	s->len += t;
	memcpy(s->text + s->len, p, n);
	s->len += n;
	if (sep)
		s->text[s->len++] = '|';
}

static int
cb_status(void *arg, bool ok, const char *line, size_t n, struct err *e)
{
	(void)e;
	seen_add(arg, ok ? "S+:" : "S-:", line, n, true);
	return 0;
}

static int
cb_line(void *arg, const char *p, size_t n, struct err *e)
{
	(void)e;
	seen_add(arg, "L:", p, n, true);
	return 0;
}

static int
cb_chunk(void *arg, const char *p, size_t n, struct err *e)
{
	(void)e;
	seen_add(arg, "", p, n, false);
	return 0;
}

static int
cb_end(void *arg, struct err *e)
{
	struct seen *s = arg;

	seen_add(s, "E", "", 0, true);
	if (s->fail_at_end > 0 && --s->fail_at_end == 0) {
		err_set(e, EX_IOERR, "callback failed");
		return -1;
	}
	return 0;
}

static const struct pop3_cb lines_cb = { cb_status, cb_line, cb_end };
static const struct pop3_cb stream_cb = { cb_status, cb_chunk, cb_end };
static const struct pop3_cb single_cb = { cb_status, NULL, NULL };

struct exchange {
	const char	*name;
	const char	*server;
	const char	*want;		/* transcript; NULL: must fail */
	int		 code;		/* the error code when it fails */
	int		 fail_at_end;	/* > 0: end callback N fails */
};

static const struct exchange exchanges[] = {
	{ "pipelined CAPA, RETR, RETR -ERR, DELE, QUIT",
	    "+OK caps\r\nUIDL\r\nPIPELINING\r\n.\r\n"
	    "+OK 9 octets\r\nab\r\n..c\r\n.\r\n"
	    "-ERR no such message\r\n"
	    "+OK deleted\r\n+OK bye\r\n",
	    "S+:+OK caps|L:UIDL|L:PIPELINING|E|S+:+OK 9 octets|ab\n.c\nE|"
	    "S-:-ERR no such message|S+:+OK deleted|S+:+OK bye|", 0, 0 },
	{ "bare +OK and -ERR",
	    "+OK\r\n.\r\n+OK\r\n.\r\n-ERR\r\n+OK\r\n+OK\r\n",
	    "S+:+OK|E|S+:+OK|E|S-:-ERR|S+:+OK|S+:+OK|", 0, 0 },
	{ "LF-only status lines are accepted",
	    "+OK\n.\r\n+OK\n.\r\n-ERR x\n+OK\n+OK\n",
	    "S+:+OK|E|S+:+OK|E|S-:-ERR x|S+:+OK|S+:+OK|", 0, 0 },
	{ "garbage status line", "+OK\r\n.\r\nHELLO\r\n", NULL, EX_PROTOCOL,
	    0 },
	{ "+OKAY is not +OK", "+OKAY\r\n", NULL, EX_PROTOCOL, 0 },
	{ "-ERROR is not -ERR", "+OK\r\n.\r\n-ERROR\r\n", NULL, EX_PROTOCOL,
	    0 },
	{ "unsolicited data after the last reply",
	    "+OK\r\n.\r\n+OK\r\n.\r\n-ERR\r\n+OK\r\n+OK\r\n+OK extra\r\n",
	    NULL, EX_PROTOCOL, 0 },
	{ "a callback failing stops the session",
	    "+OK\r\n.\r\n+OK\r\nx\r\n.\r\n", NULL, EX_IOERR, 2 },
};

static const char *
run_exchange(const struct exchange *x, size_t first, size_t step,
    struct seen *s, struct err *e)
{
	struct pop3 *p = pop3_detached();
	size_t n = strlen(x->server), off = 0, len;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->fail_at_end = x->fail_at_end;
	err_clear(e);
	if (pop3_queue(p, POP3_LINES, &lines_cb, s, 0, "CAPA", e) == -1 ||
	    pop3_queue(p, POP3_STREAM, &stream_cb, s, 9, "RETR 1", e) == -1 ||
	    pop3_queue(p, POP3_STREAM, &stream_cb, s, 9, "RETR 2", e) == -1 ||
	    pop3_queue(p, POP3_SINGLE, &single_cb, s, 0, "DELE 1", e) == -1 ||
	    pop3_queue(p, POP3_SINGLE, &single_cb, s, 0, "QUIT", e) == -1) {
		pop3_close(p);
		return "queueing failed";
	}
	while (off < n && rc == 0) {
		len = off == 0 && first > 0 ? first : step;
		if (len > n - off)
			len = n - off;
		rc = pop3_feed(p, x->server + off, len, e);
		off += len;
	}
	s->text[s->len] = '\0';
	if (rc == 0 && pop3_inflight(p) != 0 && x->want != NULL) {
		pop3_close(p);
		return "replies left in flight";
	}
	pop3_close(p);
	if (x->want == NULL)
		return rc == -1 && e->code == x->code ? NULL :
		    "did not fail as it should";
	if (rc == -1)
		return e->msg;
	return strcmp(s->text, x->want) == 0 ? NULL : s->text;
}

static void
test_exchanges(void)
{
	const char *why, *first_why;
	struct seen s;
	struct err e;
	size_t i, cut, n;

	for (i = 0; i < sizeof(exchanges) / sizeof(exchanges[0]); i++) {
		n = strlen(exchanges[i].server);
		why = run_exchange(&exchanges[i], 0, n, &s, &e);
		tap_ok(why == NULL, "engine: %s: whole%s%s", exchanges[i].name,
		    why ? ": " : "", why ? why : "");
		why = run_exchange(&exchanges[i], 0, 1, &s, &e);
		tap_ok(why == NULL, "engine: %s: byte by byte%s%s",
		    exchanges[i].name, why ? ": " : "", why ? why : "");
		first_why = NULL;
		for (cut = 1; cut < n && first_why == NULL; cut++)
			first_why = run_exchange(&exchanges[i], cut, n, &s, &e);
		tap_ok(first_why == NULL, "engine: %s: every two-way split",
		    exchanges[i].name);
	}
}

static void
test_engine_limits(void)
{
	struct pop3 *p = pop3_detached();
	char *big = malloc(10000);
	struct seen s;
	struct err e;

	memset(&s, 0, sizeof(s));
	memset(big, 'x', 10000);
	err_clear(&e);
	tap_ok(pop3_queue(p, POP3_SINGLE, &single_cb, &s, 0, "NOOP", &e) == 0 &&
	    pop3_feed(p, big, 10000, &e) == -1 && e.code == EX_PROTOCOL,
	    "a status line over the cap without LF is refused");
	pop3_close(p);

	p = pop3_detached();
	err_clear(&e);
	tap_ok(pop3_queue(p, POP3_LINES, &lines_cb, &s, 0, "UIDL", &e) == 0 &&
	    pop3_feed(p, "+OK\r\n", 5, &e) == 0 &&
	    pop3_feed(p, big, 10000, &e) == -1 && e.code == EX_PROTOCOL,
	    "a listing line over the cap is refused");
	pop3_close(p);

	p = pop3_detached();
	err_clear(&e);
	tap_ok(pop3_queue(p, POP3_SINGLE, &single_cb, &s, 0, "BAD\r\nX", &e) ==
	    -1 && e.code == EX_SOFTWARE, "a command with CR LF is refused");
	tap_ok(pop3_queue(p, POP3_SINGLE, &single_cb, &s, 0, "", &e) == -1,
	    "an empty command is refused");
	pop3_close(p);
	free(big);
}

static void
test_list_uidl(void)
{
	static const struct {
		const char	*line;
		int		 rc;
		unsigned long	 num;
		uint64_t	 size;
	} lists[] = {
		{ "1 120", 0, 1, 120 },
		{ "42 0", 0, 42, 0 },
		{ "7 300 extra words", 0, 7, 300 },
		{ "18446744073709551615 18446744073709551615", 0,
		    18446744073709551615UL, UINT64_MAX },
		{ "1 18446744073709551616", -1, 0, 0 },
		{ "0 10", -1, 0, 0 },
		{ "1", -1, 0, 0 },
		{ "1 ", -1, 0, 0 },
		{ " 1 10", -1, 0, 0 },
		{ "1  10", -1, 0, 0 },
		{ "1 10x", -1, 0, 0 },
		{ "-1 10", -1, 0, 0 },
		{ "1 -10", -1, 0, 0 },
		{ "a 10", -1, 0, 0 },
		{ "", -1, 0, 0 },
	};
	static const struct {
		const char	*line;
		int		 rc;
		unsigned long	 num;
		const char	*uid;
	} uidls[] = {
		{ "1 abc", 0, 1, "abc" },
		{ "12 00000001abcdef", 0, 12, "00000001abcdef" },
		{ "3 has space", 0, 3, "has space" },	/* uid_valid refuses */
		{ "3 ", -1, 0, NULL },
		{ "3", -1, 0, NULL },
		{ "0 x", -1, 0, NULL },
		{ "x 1", -1, 0, NULL },
		{ " 1 x", -1, 0, NULL },
	};
	unsigned long num;
	uint64_t size;
	const char *uid;
	size_t i, len;
	int rc;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		rc = pop3_parse_list(lists[i].line, strlen(lists[i].line),
		    &num, &size);
		tap_ok(rc == lists[i].rc && (rc == -1 ||
		    (num == lists[i].num && size == lists[i].size)),
		    "LIST line \"%s\"", lists[i].line);
	}
	for (i = 0; i < sizeof(uidls) / sizeof(uidls[0]); i++) {
		rc = pop3_parse_uidl(uidls[i].line, strlen(uidls[i].line),
		    &num, &uid, &len);
		tap_ok(rc == uidls[i].rc && (rc == -1 ||
		    (num == uidls[i].num && len == strlen(uidls[i].uid) &&
		    memcmp(uid, uidls[i].uid, len) == 0)),
		    "UIDL line \"%s\"", uidls[i].line);
	}
}

int
main(void)
{
	test_rows();
	test_output_bound();
	test_long_line();
	test_err_codes();
	test_exchanges();
	test_engine_limits();
	test_list_uidl();
	return tap_done();
}
