/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzzes the LIST and UIDL line parsers and UID validation. */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "pop3.h"
#include "uid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data, *uid;
	unsigned long num;
	uint64_t bytes;
	size_t len;

	(void)pop3_parse_list(line, size, &num, &bytes);
	if (pop3_parse_uidl(line, size, &num, &uid, &len) == 0) {
		/* The UID must lie inside the line. */
		if (uid < line || uid + len > line + size)
			__builtin_trap();
		(void)uid_valid(uid, len);
	}
	return 0;
}
