/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_TESTUTIL_H
#define POPFETCH_TESTUTIL_H

/*
 * Files and processes for the unit tests, in one place instead of a copy
 * in each test. testutil.c is linked into the tests that use it. What
 * goes wrong with a test's own files (a temporary file that cannot be
 * written, a directory that cannot be removed) is no result of the code
 * under test: these functions say it on stderr and exit with 99, which
 * make check reports as an ERROR. Returned strings belong to the caller.
 */
#include <sys/types.h>

#include <stddef.h>

/* The uid and gid tu_unprivileged() takes: nobody, on Linux. */
#define TU_NOBODY	65534

/* $TMPDIR if it is an absolute path, else "/tmp". */
const char	*tu_tmpdir(void);

/*
 * A new directory, mode 0700, under tu_tmpdir(), named after the test
 * program; exits with 99 on failure. The caller frees the path and
 * removes the directory (tu_rm_rf).
 */
char	*tu_mkdtemp(void);

/*
 * A new file under tu_tmpdir() holding the len bytes at data, with mode
 * mode (0 for none at all); exits with 99 on failure. The caller frees
 * the path, or removes the file and frees it with tu_remove_temp().
 */
char	*tu_write_temp(const void *data, size_t len, mode_t mode);

/* Unlinks the file at path and frees path; exits with 99 on failure. */
void	 tu_remove_temp(char *path);

/*
 * Creates or truncates the file at path, mode 0666 less the umask, to
 * hold the n bytes at data; exits with 99 on failure.
 */
void	 tu_write_file(const char *path, const void *data, size_t n);

/*
 * The whole file at path with a NUL after it, and its length in *np
 * (np may be NULL); NULL if it cannot be opened or read. The caller
 * frees the result.
 */
char	*tu_slurp(const char *path, size_t *np);

/*
 * The number of entries in dir/sub other than . and .. (a Maildir's
 * tmp/, new/ or cur/), or -1 if it cannot be opened.
 */
long	 tu_entries(const char *dir, const char *sub);

/*
 * Removes path and everything under it, not following symbolic links;
 * a path that does not exist is no error. Exits with 99 on failure.
 */
void	 tu_rm_rf(const char *path);

/*
 * Runs fn(arg) as an ordinary user, for checks that file permissions
 * must decide: root may read a file of mode 000, and CI runs as root.
 * Not root: fn runs in this process. Root: in a child that drops every
 * supplementary group and takes gid and uid TU_NOBODY (and checks that
 * it cannot take uid 0 back) before it calls fn, whose return value is
 * its exit status; such an fn must return 0 to 125, and must not call
 * tap_ok() (the child's count is lost): it returns what it found, and
 * the caller checks that. Files fn needs must be where TU_NOBODY can
 * reach them. Returns what fn returned, or -1 if the child could not
 * be started, could not drop root or did not exit (said on stderr).
 */
int	 tu_unprivileged(int (*fn)(void *), void *arg);

#endif
