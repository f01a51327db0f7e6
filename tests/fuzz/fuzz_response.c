/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Fuzzes the response engine: a detached session with one command of
 * each kind in flight, fed the input as server output in pieces whose
 * sizes the input's first byte chooses.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "pop3.h"

static int
on_status(void *arg, bool ok, const char *line, size_t n, struct err *e)
{
	(void)arg; (void)ok; (void)line; (void)n; (void)e;
	return 0;
}

static int
on_data(void *arg, const char *p, size_t n, struct err *e)
{
	size_t *total = arg;

	(void)p; (void)e;
	*total += n;
	return 0;
}

static int
on_end(void *arg, struct err *e)
{
	(void)arg; (void)e;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pop3_cb cb = { on_status, on_data, on_end };
	struct pop3 *p;
	struct err e;
	size_t total = 0, step, off = 1, len;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	p = pop3_detached();
	if (pop3_queue(p, POP3_LINES, &cb, &total, 0, "CAPA", &e) == 0 &&
	    pop3_queue(p, POP3_STREAM, &cb, &total, 100, "RETR 1", &e) == 0 &&
	    pop3_queue(p, POP3_SINGLE, &cb, &total, 0, "DELE 1", &e) == 0 &&
	    pop3_queue(p, POP3_LINES, &cb, &total, 0, "UIDL", &e) == 0) {
		while (off < size) {
			len = size - off < step ? size - off : step;
			if (pop3_feed(p, (const char *)data + off, len, &e) == -1)
				break;
			off += len;
		}
	}
	pop3_close(p);
	return 0;
}
