/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"
#include "testutil.h"

/* Says what failed with the test's own files, and ends the test. */
static void __attribute__((noreturn))
die(const char *what, const char *path)
{
	fprintf(stderr, "%s: %s %s: %s\n", program_invocation_short_name,
	    what, path, strerror(errno));
	exit(99);
}

const char *
tu_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && t[0] == '/' ? t : "/tmp";
}

char *
tu_mkdtemp(void)
{
	char *path = xasprintf("%s/%s.XXXXXX", tu_tmpdir(),
	    program_invocation_short_name);

	if (mkdtemp(path) == NULL)
		die("mkdtemp", path);
	return path;
}

char *
tu_write_temp(const void *data, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s.XXXXXX", tu_tmpdir(),
	    program_invocation_short_name);
	int fd;

	if ((fd = mkstemp(path)) == -1 || fchmod(fd, mode) == -1 ||
	    write(fd, data, len) != (ssize_t)len || close(fd) == -1)
		die("write", path);
	return path;
}

void
tu_remove_temp(char *path)
{
	if (unlink(path) == -1)
		die("unlink", path);
	free(path);
}

void
tu_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		die("write", path);
}

long
tu_entries(const char *dir, const char *sub)
{
	char *p = xasprintf("%s/%s", dir, sub);
	struct dirent *de;
	long n = 0;
	DIR *d;

	if ((d = opendir(p)) == NULL) {
		free(p);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	free(p);
	return n;
}

char *
tu_slurp(const char *path, size_t *np)
{
	char *p = NULL;
	size_t n = 0, r;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	do {
		p = xreallocarray(p, n + 4097, 1);
		r = fread(p + n, 1, 4096, f);
		n += r;
	} while (r > 0);
	if (ferror(f)) {
		(void)fclose(f);	/* read-only, and failed already */
		free(p);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	if (np != NULL)
		*np = n;
	return p;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	/* nftw(3) passes these; removal needs only the path. */
	(void)st;
	(void)flag;
	(void)f;
	if (remove(p) == -1)
		die("remove", p);
	return 0;
}

void
tu_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1 && errno == ENOENT)
		return;
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1)
		die("remove", path);
}

/* In the child: drops root for good, or says why not and exits 126. */
static void
drop_root(void)
{
	if (setgroups(0, NULL) == -1 || setgid(TU_NOBODY) == -1 ||
	    setuid(TU_NOBODY) == -1) {
		fprintf(stderr, "%s: dropping root: %s\n",
		    program_invocation_short_name, strerror(errno));
		_exit(126);
	}
	if (setuid(0) != -1 || geteuid() == 0 || getegid() == 0) {
		fprintf(stderr, "%s: root not dropped\n",
		    program_invocation_short_name);
		_exit(126);
	}
}

int
tu_unprivileged(int (*fn)(void *), void *arg)
{
	int status, r;
	pid_t pid;

	if (geteuid() != 0)
		return fn(arg);
	/* What is buffered must not be written twice. */
	(void)fflush(NULL);	/* a lost line shows in the plan */
	if ((pid = fork()) == -1) {
		fprintf(stderr, "%s: fork: %s\n",
		    program_invocation_short_name, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		drop_root();
		r = fn(arg);
		(void)fflush(NULL);	/* the status says the result */
		_exit(r >= 0 && r <= 125 ? r : 125);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			fprintf(stderr, "%s: waitpid: %s\n",
			    program_invocation_short_name, strerror(errno));
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 126) {
		fprintf(stderr, "%s: the unprivileged child failed (status "
		    "%#x)\n", program_invocation_short_name, (unsigned)status);
		return -1;
	}
	return WEXITSTATUS(status);
}
