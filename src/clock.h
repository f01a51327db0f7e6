/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_CLOCK_H
#define POPFETCH_CLOCK_H

#include <stdint.h>

/*
 * Milliseconds on CLOCK_MONOTONIC, from an arbitrary start: for
 * deadlines, intervals and rates, never for dates (time(3) is for those).
 */
int64_t	clock_ms(void);

#endif
