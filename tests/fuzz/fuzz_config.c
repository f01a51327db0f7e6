/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzzes the configuration loader with the input as a 0600 file. */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char path[] = "/tmp/popfetch-fuzz-config.XXXXXX";
static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg;
	struct err e;

	/* libconfig ends the process on an @include it cannot read as a
	 * file (a directory, say): not ours to fuzz. */
	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if (fd == -1 && (fd = mkstemp(path)) == -1)
		abort();
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	setenv("HOME", "/tmp", 1);
	if (config_load(path, NULL, &cfg, &e) == 0)
		config_free(cfg);
	else {
		/* Messages are one printable line, whatever the input. */
		for (const char *c = e.msg; *c != '\0'; c++)
			if (*c < 0x20 || *c > 0x7e)
				__builtin_trap();
	}
	return 0;
}
