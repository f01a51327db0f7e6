/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_FSUTIL_H
#define POPFETCH_FSUTIL_H

#include "err.h"

/*
 * mkdir -p: creates path and every missing parent, mode 0700 (before the
 * umask). Returns 0 when path is a directory afterwards, or -1 with e
 * filled in: EX_CANTCREAT, "cannot create WHAT PATH: reason".
 */
int	fs_mkdirs(const char *path, const char *what, struct err *e);

#endif
