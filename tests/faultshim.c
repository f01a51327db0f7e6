/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * faultshim: an LD_PRELOAD library for popfetch's fault tests. It sees
 * every call that moves data to disk or to the network, and can stop
 * the process dead before one of them or make it fail, at a point the
 * test chooses. Settings, all from the environment:
 *
 *   FAULTSHIM_LOG=FILE       append one line per event ("N name") to FILE
 *   FAULTSHIM_KILL_AT=N      SIGKILL just before the Nth event
 *   FAULTSHIM_KILL_ON=NAME:N SIGKILL just before the Nth event named NAME
 *   FAULTSHIM_FAIL_ON=NAME:N the Nth rename or renameat fails (ENOSPC)
 *   FAULTSHIM_DIR=DIR        the directory the faults below apply to
 *   FAULTSHIM_ENOSPC_AFTER=B writes to files under DIR fail with ENOSPC
 *                            once B bytes were written there in all
 *   FAULTSHIM_ENOSPC_WRITE=N the Nth write to a file under DIR, and every
 *                            one after it, fails with ENOSPC
 *   FAULTSHIM_EIO_SYNC=1     fsync and fdatasync of files under DIR, and
 *                            syncfs of a directory under DIR, fail with EIO
 *   FAULTSHIM_ENOSPC_SYNC=B  fsync and fdatasync of a file under DIR of
 *                            more than B bytes fail with ENOSPC (NFS and
 *                            FUSE may find out at the sync that the disk
 *                            is full)
 *   FAULTSHIM_SLOW_SYNC=MS   the same calls take MS milliseconds longer
 *                            (a slow disk)
 *
 * Events: write and send to a regular file or a socket, fsync,
 * fdatasync, syncfs, rename, renameat, unlink, unlinkat. Test code only.
 */
#define _GNU_SOURCE
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

/* Counted atomically: popfetch syncs a batch's files from several
 * threads. */
static unsigned long events, named_events, fail_events;
static unsigned long long dir_bytes;
static __thread int in_shim;	/* the shim's own log writes are not events */

static void *
next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL)
		abort();
	return f;
}

static void
event(const char *name)
{
	const char *log = getenv("FAULTSHIM_LOG"), *at, *on;
	char line[64];
	size_t len;
	int fd, n;

	unsigned long ev = __atomic_add_fetch(&events, 1, __ATOMIC_SEQ_CST);

	if (log != NULL) {
		n = snprintf(line, sizeof(line), "%lu %s\n", ev, name);
		fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd != -1) {
			in_shim = 1;
			if (write(fd, line, (size_t)n) != n)
				abort();
			in_shim = 0;
			close(fd);
		}
	}
	if ((at = getenv("FAULTSHIM_KILL_AT")) != NULL &&
	    strtoul(at, NULL, 10) == ev)
		raise(SIGKILL);
	if ((on = getenv("FAULTSHIM_KILL_ON")) != NULL) {
		len = strcspn(on, ":");
		if (len == strlen(name) && strncmp(on, name, len) == 0 &&
		    on[len] == ':' &&
		    strtoul(on + len + 1, NULL, 10) ==
		    __atomic_add_fetch(&named_events, 1, __ATOMIC_SEQ_CST))
			raise(SIGKILL);
	}
}

/* Is fd a regular file or socket (an event), and is it under DIR? */
static int
classify(int fd, int *under_dir)
{
	char link[64], path[PATH_MAX];
	const char *dir = getenv("FAULTSHIM_DIR");
	struct stat st;
	ssize_t n;

	*under_dir = 0;
	if (fstat(fd, &st) == -1 || !(S_ISREG(st.st_mode) ||
	    S_ISSOCK(st.st_mode)))
		return 0;
	if (dir != NULL && S_ISREG(st.st_mode)) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0) {
			path[n] = '\0';
			*under_dir = strncmp(path, dir, strlen(dir)) == 0;
		}
	}
	return 1;
}

ssize_t
write(int fd, const void *buf, size_t count)
{
	static ssize_t (*real)(int, const void *, size_t);
	const char *lim = getenv("FAULTSHIM_ENOSPC_AFTER");
	const char *nth = getenv("FAULTSHIM_ENOSPC_WRITE");
	static unsigned long dir_writes;
	unsigned long long max;
	int under;

	if (real == NULL)
		real = next("write");
	if (!in_shim && classify(fd, &under)) {
		event("write");
		if (under && nth != NULL && __atomic_add_fetch(&dir_writes, 1,
		    __ATOMIC_SEQ_CST) >= strtoul(nth, NULL, 10)) {
			errno = ENOSPC;
			return -1;
		}
		if (under && lim != NULL) {
			max = strtoull(lim, NULL, 10);
			if (dir_bytes >= max) {
				errno = ENOSPC;
				return -1;
			}
			if (count > max - dir_bytes)
				count = (size_t)(max - dir_bytes);
			dir_bytes += count;
		}
	}
	return real(fd, buf, count);
}

ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
	static ssize_t (*real)(int, const void *, size_t, int);

	if (real == NULL)
		real = next("send");
	event("send");
	return real(fd, buf, len, flags);
}

static void slow_sync(void);

static int
sync_fault(int fd)
{
	const char *big = getenv("FAULTSHIM_ENOSPC_SYNC");
	struct stat st;
	int under;

	(void)classify(fd, &under);
	if (under)
		slow_sync();
	if (under && getenv("FAULTSHIM_EIO_SYNC") != NULL) {
		errno = EIO;
		return -1;
	}
	if (under && big != NULL && fstat(fd, &st) == 0 &&
	    (unsigned long long)st.st_size > strtoull(big, NULL, 10)) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

/* Is the directory fd under DIR? */
static int
dir_under(int fd)
{
	const char *dir = getenv("FAULTSHIM_DIR");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (dir == NULL)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return 0;
	path[n] = '\0';
	return strncmp(path, dir, strlen(dir)) == 0;
}

/* FAULTSHIM_SLOW_SYNC: a disk that takes its time. */
static void
slow_sync(void)
{
	const char *ms = getenv("FAULTSHIM_SLOW_SYNC");
	struct timespec ts;
	long v;

	if (ms == NULL || (v = atol(ms)) <= 0)
		return;
	ts.tv_sec = v / 1000;
	ts.tv_nsec = (v % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
syncfs(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = next("syncfs");
	event("syncfs");
	if (dir_under(fd))
		slow_sync();
	if (getenv("FAULTSHIM_EIO_SYNC") != NULL && dir_under(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}

int
fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = next("fsync");
	event("fsync");
	return sync_fault(fd) == -1 ? -1 : real(fd);
}

int
fdatasync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = next("fdatasync");
	event("fdatasync");
	return sync_fault(fd) == -1 ? -1 : real(fd);
}

/* Should this call, the next event named name, fail? */
static int
fail_on(const char *name)
{
	const char *on = getenv("FAULTSHIM_FAIL_ON");
	size_t len;

	if (on == NULL)
		return 0;
	len = strcspn(on, ":");
	return len == strlen(name) && strncmp(on, name, len) == 0 &&
	    on[len] == ':' && strtoul(on + len + 1, NULL, 10) == ++fail_events;
}

int
rename(const char *a, const char *b)
{
	static int (*real)(const char *, const char *);

	if (real == NULL)
		real = next("rename");
	event("rename");
	if (fail_on("rename")) {
		errno = ENOSPC;
		return -1;
	}
	return real(a, b);
}

int
renameat(int fa, const char *a, int fb, const char *b)
{
	static int (*real)(int, const char *, int, const char *);

	if (real == NULL)
		real = next("renameat");
	event("renameat");
	if (fail_on("renameat")) {
		errno = ENOSPC;
		return -1;
	}
	return real(fa, a, fb, b);
}

int
unlink(const char *p)
{
	static int (*real)(const char *);

	if (real == NULL)
		real = next("unlink");
	event("unlink");
	return real(p);
}

int
unlinkat(int fd, const char *p, int flags)
{
	static int (*real)(int, const char *, int);

	if (real == NULL)
		real = next("unlinkat");
	event("unlinkat");
	return real(fd, p, flags);
}
