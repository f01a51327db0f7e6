/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "xmalloc.h"

static int
fs_mkdir(const char *path, const char *what, struct err *e)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	err_set(e, EX_CANTCREAT, "cannot create %s %s: %s", what, path,
	    strerror(errno == EEXIST ? ENOTDIR : errno));
	return -1;
}

int
fs_mkdirs(const char *path, const char *what, struct err *e)
{
	char *p = xstrdup(path), *s;
	int rc = 0;

	/* Each parent in turn ("a//b" has no empty one), then path. */
	for (s = p + 1; rc == 0 && (s = strchr(s, '/')) != NULL; s++) {
		if (s[-1] == '/')
			continue;
		*s = '\0';
		rc = fs_mkdir(p, what, e);
		*s = '/';
	}
	if (rc == 0)
		rc = fs_mkdir(p, what, e);
	free(p);
	return rc;
}
