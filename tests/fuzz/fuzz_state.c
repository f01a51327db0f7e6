/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Fuzzes the state file and journal readers: the input, split at its
 * first NUL byte, becomes ACCOUNT.state and ACCOUNT.journal, then the
 * state is opened (and, when it loads, compacted and opened again).
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uidstate.h"

static char dir[] = "/tmp/popfetch-fuzz-state.XXXXXX";

static int
recover(void *arg, const char *const *names, size_t n, bool *found,
    struct err *e)
{
	size_t i;

	(void)arg; (void)e;
	/* Half the pending files "reached the Maildir". */
	for (i = 0; i < n; i++)
		found[i] = strlen(names[i]) % 2 == 0;
	return 0;
}

static void
put(const char *name, const uint8_t *p, size_t n)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n == 0) {
		unlink(path);
		return;
	}
	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (fwrite(p, 1, n, f) != n)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t n1 = nul ? (size_t)(nul - data) : size;
	struct uidstate *s;
	struct err e;

	if (dir[sizeof(dir) - 2] == 'X' && mkdtemp(dir) == NULL)
		abort();
	put("a.state", data, n1);
	put("a.journal", nul ? nul + 1 : data, nul ? size - n1 - 1 : 0);
	if (uidstate_open(&s, dir, "a", recover, NULL, &e) == 0) {
		uidstate_close(s);
		/* What it wrote back must load again. */
		if (uidstate_open(&s, dir, "a", recover, NULL, &e) != 0)
			__builtin_trap();
		uidstate_close(s);
	}
	return 0;
}
