/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "xmalloc.h"

int
fs_sync_parent(const char *path, bool created, const char *what,
    struct err *e)
{
	char *copy = xstrdup(path), *slash = strrchr(copy, '/');
	const char *dir = copy;
	int fd, rc = 0;

	if (slash == NULL)
		dir = ".";
	else if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 &&
	    !created && (errno == EACCES || errno == EPERM))
		goto out;
	if (fd == -1 || fsync(fd) == -1) {
		err_set(e, EX_IOERR, "cannot sync %s %s: %s", what, dir,
		    strerror(errno));
		rc = -1;
	}
out:
	if (fd != -1)
		close(fd);
	free(copy);
	return rc;
}

int
fs_check_private(mode_t mode, const char *what, const char *path,
    struct err *e)
{
	if ((mode & 077) == 0)
		return 0;
	err_set(e, EX_CONFIG, "%s is accessible to group or others (mode "
	    "%04o); run: chmod 600 %s", what, (unsigned)(mode & 07777), path);
	return -1;
}

static int
fs_mkdir(const char *path, const char *what, struct err *e)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return fs_sync_parent(path, true, what, e);
	/* Synced too: an earlier run may have died before it did. */
	if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return fs_sync_parent(path, false, what, e);
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

int
fs_writable(const char *dir, const char *what, struct err *e)
{
	char *p = xstrdup(dir), *slash, *probe;
	struct stat st = { 0 };
	int fd, rc = 0;

	/* A directory that is not there yet: a run makes it in the nearest
	 * one that is, which must let it. */
	while (stat(p, &st) == -1 && errno == ENOENT &&
	    (slash = strrchr(p, '/')) != NULL && slash != p)
		*slash = '\0';
	if (stat(p, &st) == -1 || !S_ISDIR(st.st_mode)) {
		err_set(e, EX_CANTCREAT, "%s %s: %s", what, p,
		    S_ISDIR(st.st_mode) ? strerror(errno) : "not a directory");
		free(p);
		return -1;
	}
	if (strcmp(p, dir) != 0) {
		if (access(p, W_OK | X_OK) == -1) {
			err_set(e, EX_CANTCREAT, "%s %s cannot be created in "
			    "%s: %s", what, dir, p, strerror(errno));
			rc = -1;
		}
		free(p);
		return rc;
	}
	/* Root passes access(2) everywhere: only a file made tells. */
	probe = xasprintf("%s/.popfetch-check.%ld", dir, (long)getpid());
	if ((fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		err_set(e, EX_CANTCREAT, "cannot create a file in %s %s: %s",
		    what, dir, strerror(errno));
		rc = -1;
	} else {
		(void)close(fd);		/* empty: nothing to lose */
		(void)unlink(probe);		/* a leftover is harmless */
	}
	free(probe);
	free(p);
	return rc;
}
