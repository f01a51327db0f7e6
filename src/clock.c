/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <time.h>

#include "clock.h"

int64_t
clock_ms(void)
{
	struct timespec ts;

	/* Cannot fail with CLOCK_MONOTONIC and a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
