/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "header.h"
#include "xmalloc.h"

static void
pick_finish(struct header_pick *h)
{
	if (h->which == HEADER_FROM && h->from == NULL)
		h->from = h->cur;
	else if (h->which == HEADER_SUBJECT && h->subject == NULL)
		h->subject = h->cur;
	else
		free(h->cur);
	h->cur = NULL;
	h->which = HEADER_NONE;
}

static void
pick_append(struct header_pick *h, const char *p, size_t n)
{
	size_t have = strlen(h->cur);

	if (have + n > HEADER_VALUE_MAX)
		n = HEADER_VALUE_MAX - have;
	h->cur = xreallocarray(h->cur, have + n + 1, 1);
	memcpy(h->cur + have, p, n);
	h->cur[have + n] = '\0';
}

void
header_pick_line(struct header_pick *h, const char *line, size_t n)
{
	const char *colon;

	if (h->done)
		return;
	if (n == 0) {
		if (h->which != HEADER_NONE)
			pick_finish(h);
		h->done = 1;
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		/* Unfolding removes the line break, not the blank. */
		if (h->which != HEADER_NONE)
			pick_append(h, line, n);
		return;
	}
	if (h->which != HEADER_NONE)
		pick_finish(h);
	if ((colon = memchr(line, ':', n)) == NULL)
		return;
	if ((size_t)(colon - line) == 4 && strncasecmp(line, "From", 4) == 0)
		h->which = HEADER_FROM;
	else if ((size_t)(colon - line) == 7 &&
	    strncasecmp(line, "Subject", 7) == 0)
		h->which = HEADER_SUBJECT;
	else
		return;
	colon++;
	while (colon < line + n && (*colon == ' ' || *colon == '\t'))
		colon++;
	h->cur = xstrdup("");
	pick_append(h, colon, (size_t)(line + n - colon));
}

void
header_pick_free(struct header_pick *h)
{
	free(h->from);
	free(h->subject);
	free(h->cur);
	memset(h, 0, sizeof(*h));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
b64val(int c)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(set, c) : NULL;

	return p != NULL ? (int)(p - set) : -1;
}

/* Appends one byte, as ISO-8859-1 when latin1, to o. */
static void
put(struct buf *o, unsigned char c, bool latin1)
{
	char u[2];

	if (!latin1 || c < 0x80) {
		(void)buf_append(o, (char *)&c, 1);	/* capped: cut */
		return;
	}
	u[0] = (char)(0xc0 | (c >> 6));
	u[1] = (char)(0x80 | (c & 0x3f));
	(void)buf_append(o, u, 2);
}

/*
 * Decodes the encoded word "=?cs?e?text?=" at p (n bytes) into o.
 * Returns false, writing nothing, when it is not one we can decode.
 */
static bool
decode_word(const char *p, size_t n, struct buf *o)
{
	const char *cs = p + 2, *q1, *q2, *t;
	size_t cslen, i;
	bool latin1, b;
	unsigned acc = 0;
	int bits = 0, v, hi, lo;

	if (n < 8 || (q1 = memchr(cs, '?', n - 2)) == NULL ||
	    q1 + 2 >= p + n || q1[2] != '?')
		return false;
	cslen = (size_t)(q1 - cs);
	if (memchr(cs, '*', cslen) != NULL)	/* RFC 2231 language */
		cslen = (size_t)((const char *)memchr(cs, '*', cslen) - cs);
	if ((cslen == 5 && strncasecmp(cs, "utf-8", 5) == 0) ||
	    (cslen == 8 && strncasecmp(cs, "us-ascii", 8) == 0))
		latin1 = false;
	else if (cslen == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0)
		latin1 = true;
	else
		return false;
	if (q1[1] != 'B' && q1[1] != 'b' && q1[1] != 'Q' && q1[1] != 'q')
		return false;
	b = q1[1] == 'B' || q1[1] == 'b';
	t = q1 + 3;
	q2 = p + n - 2;			/* the closing "?=" */
	for (i = 0; t + i < q2; i++) {
		if (b) {
			if (t[i] == '=')
				break;
			if ((v = b64val(t[i])) < 0)
				return false;
			acc = (acc << 6) | (unsigned)v;
			if ((bits += 6) >= 8) {
				bits -= 8;
				put(o, (unsigned char)(acc >> bits), latin1);
			}
		} else if (t[i] == '_')
			put(o, ' ', latin1);
		else if (t[i] == '=' && t + i + 2 < q2 + 1 &&
		    (hi = hexval(t[i + 1])) >= 0 &&
		    (lo = hexval(t[i + 2])) >= 0) {
			put(o, (unsigned char)(hi << 4 | lo), latin1);
			i += 2;
		} else
			put(o, (unsigned char)t[i], latin1);
	}
	return true;
}

/* Length of the encoded word at p, or 0. */
static size_t
word_len(const char *p, const char *end)
{
	const char *q;
	int marks = 0;

	if (end - p < 8 || p[0] != '=' || p[1] != '?')
		return 0;
	for (q = p + 2; q + 1 < end; q++) {
		if (*q == ' ' || *q == '\t')
			return 0;
		if (*q == '?' && ++marks == 3)
			return q[1] == '=' ? (size_t)(q + 2 - p) : 0;
	}
	return 0;
}

/* Length of a valid UTF-8 sequence of a printable character at p, or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned cp;
	size_t len, i;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = p[0] & (0xff >> (len + 1));
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls, and marks that reorder what a terminal shows. */
	if (cp < 0xa0 || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f)
		return 0;
	return len;
}

char *
header_display(const char *value, size_t n, size_t max)
{
	const char *p = value, *end = value + n, *gap = NULL;
	const unsigned char *u;
	struct buf d;
	size_t len, i, shown = 0;
	char *out, *o, *esc;

	buf_init(&d, HEADER_VALUE_MAX * 2);
	while (p < end) {
		if ((len = word_len(p, end)) > 0 &&
		    decode_word(p, len, &d)) {
			p += len;
			/* Blanks between two encoded words are dropped. */
			for (gap = p; gap < end && (*gap == ' ' ||
			    *gap == '\t'); gap++)
				;
			if (gap > p && word_len(gap, end) > 0)
				p = gap;
			continue;
		}
		(void)buf_append(&d, p, 1);
		p++;
	}
	o = out = xreallocarray(NULL, d.len + 1, 4);
	u = (const unsigned char *)d.data;
	for (i = 0; i < d.len && shown < max; shown++) {
		if (u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\') {
			*o++ = (char)u[i++];
		} else if (u[i] == '\t') {
			*o++ = ' ';
			i++;
		} else if ((len = utf8_len(u + i, d.len - i)) > 0) {
			memcpy(o, u + i, len);
			o += len;
			i += len;
		} else {
			esc = buf_escape(u + i, 1, 1);
			memcpy(o, esc, strlen(esc));
			o += strlen(esc);
			free(esc);
			i++;
		}
	}
	if (i < d.len) {
		memcpy(o, "...", 3);
		o += 3;
	}
	*o = '\0';
	buf_free(&d);
	return out;
}
