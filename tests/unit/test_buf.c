/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/wait.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "tap.h"

/*
 * A row is a buffer with a cap and a list of steps; after each step the
 * buffer must hold exactly want (wantlen bytes), NUL-terminated.
 */
struct step {
	char		 op;		/* 'a' append, 'c' consume, 'r' reset,
					   'f' free, 0 end */
	const char	*data;		/* to append */
	size_t		 n;		/* bytes to append or consume */
	int		 rc;		/* of buf_append */
	const char	*want;
	size_t		 wantlen;
};

struct row {
	const char	*what;
	size_t		 cap;
	struct step	 steps[8];
};

#define A(s, rc, w)	{ 'a', s, sizeof(s) - 1, rc, w, sizeof(w) - 1 }
#define AN(s, n, rc, w)	{ 'a', s, n, rc, w, sizeof(w) - 1 }
#define C(n, w)		{ 'c', NULL, n, 0, w, sizeof(w) - 1 }
#define R		{ 'r', NULL, 0, 0, "", 0 }
#define F		{ 'f', NULL, 0, 0, "", 0 }

static const struct row rows[] = {
	{ "exactly at cap", 5, {
		A("hello", 0, "hello"),
		A("!", -1, "hello"),
		A("", 0, "hello") } },
	{ "one over the cap in one append", 5, {
		A("hello!", -1, ""),
		A("hello", 0, "hello") } },
	{ "filled in pieces up to the cap", 5, {
		A("he", 0, "he"),
		A("llo", 0, "hello"),
		A("x", -1, "hello") } },
	{ "second append one over", 5, {
		A("hel", 0, "hel"),
		A("lo!", -1, "hel"),
		A("lo", 0, "hello") } },
	{ "cap 0 takes only nothing", 0, {
		A("", 0, ""),
		A("x", -1, ""),
		A("", 0, "") } },
	{ "cap 1", 1, {
		A("ab", -1, ""),
		A("a", 0, "a"),
		A("b", -1, "a") } },
	{ "NUL bytes are data", 8, {
		A("a\0b", 0, "a\0b"),
		A("\0\0\0\0\0", 0, "a\0b\0\0\0\0\0"),
		A("\0", -1, "a\0b\0\0\0\0\0") } },
	{ "huge n is refused, not wrapped", 10, {
		A("hello", 0, "hello"),
		AN("x", SIZE_MAX, -1, "hello"),
		AN("x", SIZE_MAX - 2, -1, "hello"),
		AN("x", SIZE_MAX / 2 + 1, -1, "hello"),
		A("world", 0, "helloworld") } },
	{ "consume", 11, {
		A("hello world", 0, "hello world"),
		C(0, "hello world"),
		C(6, "world"),
		C(5, ""),
		A("hello world", 0, "hello world") } },
	{ "consume makes room under the cap", 5, {
		A("hello", 0, "hello"),
		C(2, "llo"),
		A("ab", 0, "lloab"),
		A("c", -1, "lloab"),
		C(1, "loab"),
		A("cd", -1, "loab") } },
	{ "consume on an empty buffer", 5, {
		C(0, ""),
		A("ab", 0, "ab"),
		C(2, ""),
		C(0, "") } },
	{ "reset empties and frees the cap", 5, {
		A("hello", 0, "hello"),
		R,
		A("world", 0, "world"),
		A("!", -1, "world"),
		R,
		R } },
	{ "free, then usable again with the same cap", 5, {
		F,
		A("hello", 0, "hello"),
		F,
		F,
		A("abcde", 0, "abcde"),
		A("f", -1, "abcde") } },
};

static void
check_state(const struct buf *b, const char *what, size_t si,
    const struct step *st)
{
	int same = b->len == st->wantlen &&
	    (b->len == 0 || memcmp(b->data, st->want, b->len) == 0);

	tap_ok(same, "%s, step %zu: holds the expected %zu bytes (has %zu)",
	    what, si, st->wantlen, b->len);
	tap_ok(b->data == NULL ? b->len == 0 && b->size == 0 :
	    b->data[b->len] == '\0', "%s, step %zu: NUL-terminated, or "
	    "empty without memory", what, si);
	tap_ok(b->len <= b->cap && (b->data == NULL || b->size <= b->cap + 1),
	    "%s, step %zu: len %zu, size %zu within cap %zu", what, si,
	    b->len, b->size, b->cap);
}

static void
run_row(const struct row *r)
{
	const struct step *st;
	struct buf b;
	size_t si;
	int rc;

	buf_init(&b, r->cap);
	tap_ok(b.len == 0 && b.cap == r->cap, "%s: starts empty", r->what);
	for (si = 0; si < 8 && r->steps[si].op != 0; si++) {
		st = &r->steps[si];
		switch (st->op) {
		case 'a':
			rc = buf_append(&b, st->data, st->n);
			tap_ok(rc == st->rc, "%s, step %zu: append %zu -> %d "
			    "(want %d)", r->what, si, st->n, rc, st->rc);
			break;
		case 'c':
			buf_consume(&b, st->n);
			break;
		case 'r':
			buf_reset(&b);
			break;
		case 'f':
			buf_free(&b);
			break;
		}
		check_state(&b, r->what, si, st);
	}
	buf_free(&b);
}

/* Appends all of data in chunks of chunk bytes, then one byte over. */
static void
fill_to_cap(size_t cap, size_t chunk)
{
	char *data = malloc(cap + 1);
	struct buf b;
	size_t i, off;
	int fail = 0;

	for (i = 0; i <= cap; i++)
		data[i] = (char)(i * 7 + i / 251);
	buf_init(&b, cap);
	for (off = 0; off < cap; off += chunk) {
		size_t n = cap - off < chunk ? cap - off : chunk;

		if (buf_append(&b, data + off, n) != 0)
			fail++;
	}
	tap_ok(fail == 0, "cap %zu in chunks of %zu: every append fits", cap,
	    chunk);
	tap_ok(b.len == cap && memcmp(b.data, data, cap) == 0 &&
	    b.data[cap] == '\0', "cap %zu in chunks of %zu: exact bytes", cap,
	    chunk);
	tap_ok(b.size <= cap + 1, "cap %zu in chunks of %zu: allocated %zu "
	    "<= cap + 1", cap, chunk, b.size);
	tap_ok(buf_append(&b, data + cap, 1) == -1 && b.len == cap &&
	    memcmp(b.data, data, cap) == 0, "cap %zu in chunks of %zu: one "
	    "byte over is refused, buffer unchanged", cap, chunk);
	buf_consume(&b, cap - 1);
	tap_ok(b.len == 1 && b.data[0] == data[cap - 1] && b.data[1] == '\0',
	    "cap %zu: consume all but the last byte", cap);
	buf_free(&b);
	free(data);
}

static void
test_memory(void)
{
	struct buf b;
	char *p;
	size_t size;

	buf_init(&b, 100);
	buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0, "free of a never-used buffer");
	tap_ok(buf_append(&b, "abc", 3) == 0 && b.len == 3,
	    "append after free of a never-used buffer");
	p = b.data;
	size = b.size;
	buf_reset(&b);
	tap_ok(b.len == 0 && b.data == p && b.size == size && p[0] == '\0',
	    "reset keeps the memory");
	buf_consume(&b, 0);
	tap_ok(b.len == 0 && b.data == p, "consume 0 of an empty buffer");
	buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.size == 0, "free clears");

	/* The cap uidstate uses for its own, unbounded, records. */
	buf_init(&b, SIZE_MAX / 2);
	tap_ok(buf_append(&b, "hello", 5) == 0 && b.len == 5 &&
	    strcmp(b.data, "hello") == 0, "cap SIZE_MAX/2: append works");
	buf_free(&b);
}

/*
 * A cap of SIZE_MAX means "no cap"; it is run in a child so that a
 * memory error fails this one row instead of the whole program.
 */
static void
test_cap_max(void)
{
	pid_t pid;
	int status = -1;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct buf b;
		int ok;

		buf_init(&b, SIZE_MAX);
		ok = buf_append(&b, "hello", 5) == 0 &&
		    buf_append(&b, " world", 6) == 0 && b.len == 11 &&
		    b.size >= 12 && strcmp(b.data, "hello world") == 0;
		buf_free(&b);
		_exit(ok ? 0 : 1);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	tap_ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "cap SIZE_MAX: append works (child status %d)", status);
}

struct esc {
	const char	*what;
	const char	*in;
	size_t		 n;
	size_t		 max;
	const char	*want;
};

#define E(w, s, max, out)	{ w, s, sizeof(s) - 1, max, out }

static const struct esc escs[] = {
	E("plain text", "abc", 100, "abc"),
	E("empty", "", 100, ""),
	E("empty, max 0", "", 0, ""),
	E("space and tilde stay", " ~ a b~", 100, " ~ a b~"),
	E("printf and shell characters stay", "%s%n$(x)`'\"", 100,
	    "%s%n$(x)`'\""),
	E("backslash doubles", "a\\b", 100, "a\\\\b"),
	E("backslash-x is not taken for an escape", "\\x41", 100,
	    "\\\\x41"),
	E("control 0x01", "\x01", 100, "\\x01"),
	E("tab CR LF", "\t\r\n", 100, "\\x09\\x0d\\x0a"),
	E("terminal escape sequence", "\x1b[31mred", 100, "\\x1b[31mred"),
	E("0x1f", "\x1f", 100, "\\x1f"),
	E("DEL 0x7f", "\x7f", 100, "\\x7f"),
	E("0x80", "\x80", 100, "\\x80"),
	E("0xff", "\xff", 100, "\\xff"),
	E("UTF-8 bytes one by one", "caf\xc3\xa9", 100, "caf\\xc3\\xa9"),
	E("NUL inside", "a\0b", 100, "a\\x00b"),
	E("NUL at the end", "ab\0", 100, "ab\\x00"),
	E("exactly max: no dots", "abc", 3, "abc"),
	E("one over max", "abcd", 3, "abc..."),
	E("far over max", "abcdefghij", 3, "abc..."),
	E("max 0", "abc", 0, "..."),
	E("truncation after escapes", "\x01\x02\x03\x04", 2,
	    "\\x01\\x02..."),
	E("truncation inside a UTF-8 sequence", "\xc3\xa9", 1, "\\xc3..."),
	E("truncation at a backslash", "ab\\\\", 3, "ab\\\\..."),
	E("terminal escape cut short", "\x1b]0;title\x07", 4,
	    "\\x1b]0;..."),
};

static void
test_escape_rows(void)
{
	size_t i;
	char *out;

	for (i = 0; i < sizeof(escs) / sizeof(escs[0]); i++) {
		out = buf_escape(escs[i].in, escs[i].n, escs[i].max);
		tap_ok(out != NULL && strcmp(out, escs[i].want) == 0,
		    "escape: %s: got \"%s\"", escs[i].what,
		    out == NULL ? "(null)" : out);
		free(out);
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reverses the escaping; returns the byte count or -1 if malformed. */
static long
unescape(const char *s, unsigned char *out)
{
	long n = 0;

	while (*s != '\0') {
		if (*s != '\\') {
			out[n++] = (unsigned char)*s++;
			continue;
		}
		if (s[1] == '\\') {
			out[n++] = '\\';
			s += 2;
		} else if (s[1] == 'x' && hexval(s[2]) >= 0 &&
		    hexval(s[3]) >= 0) {
			out[n++] = (unsigned char)(hexval(s[2]) * 16 +
			    hexval(s[3]));
			s += 4;
		} else
			return -1;
	}
	return n;
}

static void
test_escape_all_bytes(void)
{
	unsigned char in[256], back[256 * 4];
	char *out, *big;
	size_t i, bad = 0;
	int ok;

	for (i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	out = buf_escape(in, sizeof(in), sizeof(in));
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 ||
		    (unsigned char)out[i] > 0x7e)
			bad++;
	tap_ok(bad == 0, "all 256 bytes: output is printable ASCII only");
	tap_ok(unescape(out, back) == 256 && memcmp(back, in, 256) == 0,
	    "all 256 bytes: the escaping is reversible");
	tap_ok(strlen(out) == 94 + 2 + 161 * 4,
	    "all 256 bytes: 94 printable kept, backslash doubled, 161 as "
	    "\\xNN (length %zu)", strlen(out));
	free(out);

	/* The worst case: every byte needs four. */
	big = malloc(10000);
	memset(big, 0xff, 10000);
	out = buf_escape(big, 10000, 10000);
	ok = strlen(out) == 40000;
	for (i = 0; ok && i < 40000; i += 4)
		ok = memcmp(out + i, "\\xff", 4) == 0;
	tap_ok(ok, "10000 bytes of 0xff: 40000 characters of \\xff");
	free(out);
	out = buf_escape(big, 10000, 9999);
	tap_ok(strlen(out) == 9999 * 4 + 3 &&
	    strcmp(out + 9999 * 4, "...") == 0,
	    "10000 bytes of 0xff, max 9999: 9999 escapes and dots");
	free(out);
	free(big);
}

int
main(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	fill_to_cap(1000, 1);
	fill_to_cap(1000, 300);
	fill_to_cap(256, 256);
	fill_to_cap(257, 1);
	fill_to_cap(1 << 20, 4097);
	test_memory();
	test_cap_max();
	test_escape_rows();
	test_escape_all_bytes();
	return tap_done();
}
