/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "maildir.h"
#include "xmalloc.h"

/* Our tmp/ files carry this mark, so stale ones can be told apart. */
#define MAILDIR_MARK	"_popfetch"

/* Threads that fdatasync one batch together; overridable at build time
 * (-D) to measure what each count costs. */
#ifndef SYNC_THREADS
#define SYNC_THREADS	8
#endif

struct maildir {
	char		*path;
	int		 tmpfd;		/* O_DIRECTORY descriptors */
	int		 newfd;
	int		 curfd;
	char		 host[256];	/* escaped per the Maildir spec */
	unsigned long	 seq;
	bool		 writing;	/* a message is open for writing */
};

struct maildir_msg {
	struct maildir	*md;
	char		 name[384];
	int		 fd;
	uint64_t	 size;
	bool		 finished;
	bool		 synced;	/* its fdatasync succeeded */
	bool		 committed;
};

static int
maildir_opendir(struct maildir *md, const char *sub, struct err *e)
{
	char *p = xasprintf("%s/%s", md->path, sub);
	int fd = -1;

	if (fs_mkdirs(p, "directory", e) == 0 &&
	    (fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		err_set(e, EX_CANTCREAT, "cannot open %s: %s", p,
		    strerror(errno));
	free(p);
	return fd;
}

/* The spec's escapes for '/' and ':'; anything unprintable is dropped. */
static void
maildir_set_host(struct maildir *md)
{
	char h[128];
	size_t i, o = 0;

	if (gethostname(h, sizeof(h)) != 0)
		strcpy(h, "localhost");
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0' && o + 5 < sizeof(md->host); i++) {
		if (h[i] == '/' || h[i] == ':') {
			o += (size_t)snprintf(md->host + o,
			    sizeof(md->host) - o, "\\%03o",
			    (unsigned char)h[i]);
		} else if (h[i] > 0x20 && h[i] < 0x7f)
			md->host[o++] = h[i];
	}
	md->host[o] = '\0';
	if (o == 0)
		strcpy(md->host, "localhost");
}

/*
 * Removes tmp/ files of ours whose writer is gone: our mark, this host,
 * and a PID that no longer exists. A file of a live process is left.
 */
static void
maildir_clean_stale(struct maildir *md)
{
	struct dirent *de;
	long long sec;
	long usec;
	int pid, n, fd;
	unsigned long seq;
	DIR *d;

	if ((fd = dup(md->tmpfd)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		n = 0;
		if (sscanf(de->d_name, "%lld.M%ldP%dQ%lu" MAILDIR_MARK ".%n",
		    &sec, &usec, &pid, &seq, &n) != 4 || n == 0 ||
		    strcmp(de->d_name + n, md->host) != 0 || pid <= 0 ||
		    pid == getpid())
			continue;
		if (kill(pid, 0) == -1 && errno == ESRCH)
			/* Best effort: a file we fail to remove is harmless. */
			(void)unlinkat(md->tmpfd, de->d_name, 0);
	}
	closedir(d);
}

int
maildir_open(struct maildir **mdp, const char *path, struct err *e)
{
	struct maildir *md;

	if (path[0] == '\0') {
		err_set(e, EX_CANTCREAT, "empty Maildir path");
		return -1;
	}
	md = xcalloc(1, sizeof(*md));
	md->path = xstrdup(path);
	md->tmpfd = md->newfd = md->curfd = -1;
	maildir_set_host(md);
	if (fs_mkdirs(path, "directory", e) == -1 ||
	    (md->tmpfd = maildir_opendir(md, "tmp", e)) == -1 ||
	    (md->newfd = maildir_opendir(md, "new", e)) == -1 ||
	    (md->curfd = maildir_opendir(md, "cur", e)) == -1) {
		maildir_close(md);
		return -1;
	}
	maildir_clean_stale(md);
	*mdp = md;
	return 0;
}

void
maildir_close(struct maildir *md)
{
	if (md == NULL)
		return;
	if (md->tmpfd != -1)
		close(md->tmpfd);
	if (md->newfd != -1)
		close(md->newfd);
	if (md->curfd != -1)
		close(md->curfd);
	free(md->path);
	free(md);
}

const char *
maildir_path(const struct maildir *md)
{
	return md->path;
}

int
maildir_msg_begin(struct maildir *md, struct maildir_msg **msgp,
    struct err *e)
{
	struct maildir_msg *m;
	struct timeval tv;
	int tries;

	m = xcalloc(1, sizeof(*m));
	m->md = md;
	for (tries = 0; tries < 100; tries++) {
		gettimeofday(&tv, NULL);
		snprintf(m->name, sizeof(m->name),
		    "%lld.M%06ldP%dQ%lu" MAILDIR_MARK ".%s",
		    (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(),
		    ++md->seq, md->host);
		m->fd = openat(md->tmpfd, m->name,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd != -1 || errno != EEXIST)
			break;
	}
	if (m->fd == -1) {
		err_errno(e, EX_CANTCREAT, errno, "cannot create %s/tmp/%s: %s",
		    md->path, m->name, strerror(errno));
		free(m);
		return -1;
	}
	md->writing = true;
	*msgp = m;
	return 0;
}

int
maildir_msg_write(struct maildir_msg *m, const void *p, size_t n,
    struct err *e)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(m->fd, s, n)) == -1) {
			if (errno == EINTR)
				continue;
			err_errno(e, EX_IOERR, errno, "cannot write %s/tmp/%s: "
			    "%s", m->md->path, m->name, strerror(errno));
			return -1;
		}
		s += w;
		n -= (size_t)w;
		m->size += (uint64_t)w;
	}
	return 0;
}

int
maildir_msg_finish(struct maildir_msg *m, struct err *e)
{
	(void)e;	/* writes are unbuffered: nothing left to fail here */
#ifdef HAVE_SYNC_FILE_RANGE
	/* Start writing it out now, while the next message arrives, so the
	 * batch's sync has little left to wait for. Only a hint: errors
	 * surface at that sync. */
	(void)sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	m->finished = true;
	m->md->writing = false;
	return 0;
}

const char *
maildir_msg_name(const struct maildir_msg *m)
{
	return m->name;
}

int
maildir_msg_open_read(const struct maildir_msg *m, struct err *e)
{
	int fd = openat(m->md->tmpfd, m->name, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		err_set(e, EX_IOERR, "cannot open %s/tmp/%s: %s", m->md->path,
		    m->name, strerror(errno));
	return fd;
}

uint64_t
maildir_msg_size(const struct maildir_msg *m)
{
	return m->size;
}

bool
maildir_msg_synced(const struct maildir_msg *m)
{
	return m->synced;
}

bool
maildir_msg_committed(const struct maildir_msg *m)
{
	return m->committed;
}

void
maildir_msg_free(struct maildir_msg *m)
{
	if (m == NULL)
		return;
	if (!m->finished)
		m->md->writing = false;
	if (m->fd != -1)
		close(m->fd);
	if (!m->committed)
		/* Nothing else names this file; a failure leaves a stale
		 * tmp/ file that the next run removes. */
		(void)unlinkat(m->md->tmpfd, m->name, 0);
	free(m);
}

/* One batch's fdatasyncs, shared by the threads that do them. */
struct maildir_sync_job {
	struct maildir_msg	**msgs;
	size_t			 n;
	atomic_size_t		 next;		/* the next index to take */
	atomic_bool		 stop;		/* a sync failed */
	pthread_mutex_t		 mu;		/* guards the two below */
	size_t			 failed;	/* lowest failed index, or n */
	int			 errnum;	/* its errno */
};

/* Takes indexes until none is left; the first failure stops the rest. */
static void *
maildir_sync_some(void *arg)
{
	struct maildir_sync_job *j = arg;
	size_t i;
	int errnum;

	while (!atomic_load(&j->stop) &&
	    (i = atomic_fetch_add(&j->next, 1)) < j->n) {
		if (fdatasync(j->msgs[i]->fd) == 0) {
			/* Only this thread took i; read after the join. */
			j->msgs[i]->synced = true;
			continue;
		}
		errnum = errno;
		pthread_mutex_lock(&j->mu);
		if (i < j->failed) {
			j->failed = i;
			j->errnum = errnum;
		}
		pthread_mutex_unlock(&j->mu);
		atomic_store(&j->stop, true);
	}
	return NULL;
}

int
maildir_sync(struct maildir *md, struct maildir_msg **msgs, size_t n,
    struct err *e)
{
	struct maildir_sync_job j = { .mu = PTHREAD_MUTEX_INITIALIZER };
	pthread_t threads[SYNC_THREADS];
	size_t nt = 0, i;

	/*
	 * Each file on its own, not syncfs(2): that is a no-op on FUSE and
	 * stacked file systems, and waits for every other writer's data.
	 * Several at once, so that ext4 and xfs fold them into a few
	 * journal commits; maildir_msg_finish already started the writes.
	 */
	j.msgs = msgs;
	j.n = j.failed = n;
	j.errnum = 0;
	atomic_init(&j.next, 0);
	atomic_init(&j.stop, false);
	/* A thread that cannot start leaves its share to the others. */
	while (nt + 1 < SYNC_THREADS && nt + 1 < n &&
	    pthread_create(&threads[nt], NULL, maildir_sync_some, &j) == 0)
		nt++;
	(void)maildir_sync_some(&j);	/* always NULL */
	for (i = 0; i < nt; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&j.mu);
	if (j.failed == n)
		return 0;
	err_errno(e, EX_IOERR, j.errnum, "cannot sync %s/tmp/%s: %s",
	    md->path, msgs[j.failed]->name, strerror(j.errnum));
	return -1;
}

int
maildir_commit(struct maildir *md, struct maildir_msg **msgs, size_t n,
    struct err *e)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (renameat(md->tmpfd, msgs[i]->name, md->newfd,
		    msgs[i]->name) == -1) {
			err_errno(e, EX_IOERR, errno, "cannot move %s into "
			    "%s/new: %s", msgs[i]->name, md->path,
			    strerror(errno));
			return -1;
		}
		msgs[i]->committed = true;
	}
	if (n > 0 && fsync(md->newfd) == -1) {
		err_set(e, EX_IOERR, "cannot sync %s/new: %s", md->path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* True when a cur/ entry is the message base, with or without flags. */
static bool
maildir_same_base(const char *entry, const char *base)
{
	size_t n = strlen(base);

	return strncmp(entry, base, n) == 0 && (entry[n] == '\0' ||
	    entry[n] == ':' || entry[n] == ';' || entry[n] == '!');
}

static int
maildir_scan_cur(struct maildir *md, const char *const *names, size_t n,
    bool *found, struct err *e)
{
	struct dirent *de;
	size_t i;
	DIR *d;
	int fd;

	if ((fd = dup(md->curfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		err_set(e, EX_IOERR, "cannot read %s/cur: %s", md->path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		for (i = 0; i < n; i++)
			if (!found[i] && maildir_same_base(de->d_name, names[i]))
				found[i] = true;
	closedir(d);
	return 0;
}

int
maildir_recover(struct maildir *md, const char *const *names, size_t n,
    bool *found, struct err *e)
{
	struct stat st;
	bool need_cur = false;
	size_t i;

	for (i = 0; i < n; i++) {
		/* A name with a '/' is none of ours: never look it up. */
		found[i] = strchr(names[i], '/') == NULL &&
		    fstatat(md->newfd, names[i], &st, 0) == 0;
		if (!found[i])
			need_cur = true;
	}
	if (need_cur && maildir_scan_cur(md, names, n, found, e) == -1)
		return -1;
	/* A crash may have come between the renames and the sync of new/:
	 * what is seen there now must be durable before it counts. */
	if (fsync(md->newfd) == -1 || fsync(md->curfd) == -1) {
		err_set(e, EX_IOERR, "cannot sync %s: %s", md->path,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (found[i] || strchr(names[i], '/') != NULL)
			continue;
		if (unlinkat(md->tmpfd, names[i], 0) == -1 && errno != ENOENT) {
			err_set(e, EX_IOERR, "cannot remove %s/tmp/%s: %s",
			    md->path, names[i], strerror(errno));
			return -1;
		}
	}
	return 0;
}
