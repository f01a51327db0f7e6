/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Fuzzes what --dry-run does with a server's header lines: picking From
 * and Subject (unfolding), RFC 2047 decoding, and making text safe for a
 * terminal. Whatever goes in, no byte below 0x20 (nor DEL) may come out.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *v)
{
	char *out;
	size_t i;

	if (v == NULL)
		return;
	out = header_display(v, strlen(v), 80);
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			__builtin_trap();
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	struct header_pick h;
	char *out;
	size_t i;

	memset(&h, 0, sizeof(h));
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		header_pick_line(&h, p, (size_t)(nl - p));
		p = nl + 1;
	}
	check(h.from);
	check(h.subject);
	header_pick_free(&h);
	out = header_display((const char *)data, size, 1000);
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			__builtin_trap();
	free(out);
	return 0;
}
