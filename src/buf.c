/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xmalloc.h"

void
buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->size = 0;
	b->cap = cap;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t want;

	if (n > b->cap - b->len)
		return -1;
	if (b->len + n + 1 > b->size) {
		want = b->size < 256 ? 256 : b->size;
		while (want < b->len + n + 1)
			want *= 2;
		if (b->cap < SIZE_MAX && want > b->cap + 1)
			want = b->cap + 1;
		b->data = xreallocarray(b->data, 1, want);
		b->size = want;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->size = 0;
}

char *
buf_escape(const void *p, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t i, keep = n > max ? max : n;
	char *out, *o;

	/* Worst case 4 output bytes per input byte, plus "..." and NUL. */
	o = out = xreallocarray(NULL, keep + 1, 4);
	for (i = 0; i < keep; i++) {
		if (s[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (s[i] >= 0x20 && s[i] < 0x7f)
			*o++ = (char)s[i];
		else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[s[i] >> 4];
			*o++ = hex[s[i] & 0xf];
		}
	}
	if (keep < n) {
		memcpy(o, "...", 3);
		o += 3;
	}
	*o = '\0';
	return out;
}
