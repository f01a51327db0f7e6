/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver_impl.h"
#include "fsutil.h"
#include "xmalloc.h"

/*
 * Appending to an mbox (mboxrd: every line that matches ^>*From  gets
 * one more '>'), locked as mutt and Debian's MTAs lock it: a dot-lock
 * (PATH.lock, made with O_EXCL; one older than LOCK_STALE seconds is
 * taken to be left by a crash and removed) and an fcntl lock on the
 * file. A failed append is cut back to the old length.
 */
#define LOCK_STALE	300		/* seconds: a dot-lock left by a crash */
#define OUT_SIZE	65536

struct mbox_out {
	int		 fd;
	char		 buf[OUT_SIZE];
	size_t		 len;
	/* The quoting state at a line's start: '>'s seen, then how much of
	 * "From " matched; bol is false inside a line. */
	bool		 bol;
	uint64_t	 gts;
	size_t		 from;
	char		 last;		/* the last byte of the message */
};

static int
mbox_flush(struct mbox_out *o)
{
	size_t off = 0;
	ssize_t n;

	while (off < o->len) {
		if ((n = write(o->fd, o->buf + off, o->len - off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	o->len = 0;
	return 0;
}

static int
mbox_put(struct mbox_out *o, const char *p, size_t n)
{
	size_t k;

	while (n > 0) {
		if (o->len == sizeof(o->buf) && mbox_flush(o) == -1)
			return -1;
		k = sizeof(o->buf) - o->len < n ? sizeof(o->buf) - o->len : n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

/* The undecided start of a line: its '>'s and part of "From ". */
static int
mbox_put_pending(struct mbox_out *o, bool quote)
{
	if (quote && mbox_put(o, ">", 1) == -1)
		return -1;
	for (; o->gts > 0; o->gts--)
		if (mbox_put(o, ">", 1) == -1)
			return -1;
	if (mbox_put(o, "From ", o->from) == -1)
		return -1;
	o->from = 0;
	return 0;
}

/* Copies message bytes, quoting ^>*From  lines (mboxrd). */
static int
mbox_quote(struct mbox_out *o, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = p[i];

		if (o->bol) {
			if (c == '>' && o->from == 0) {
				o->gts++;
				continue;
			}
			if (c == "From "[o->from]) {
				if (++o->from < 5)
					continue;
				o->bol = false;
				if (mbox_put_pending(o, true) == -1)
					return -1;
				continue;
			}
			o->bol = false;
			if (mbox_put_pending(o, false) == -1)
				return -1;
		}
		if (mbox_put(o, &c, 1) == -1)
			return -1;
		o->bol = c == '\n';
	}
	return 0;
}

/* Takes the dot-lock. Returns 0, or -1 with errno set. */
static int
mbox_dotlock(const char *lock, unsigned timeout)
{
	time_t end = time(NULL) + (time_t)timeout;
	struct stat st;
	int fd;

	for (;;) {
		fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd != -1)
			return close(fd);
		if (errno != EEXIST)
			return -1;
		if (stat(lock, &st) == 0 && time(NULL) - st.st_mtime >
		    LOCK_STALE)
			(void)unlink(lock);	/* stale: retried below */
		if (time(NULL) >= end) {
			errno = EWOULDBLOCK;
			return -1;
		}
		usleep(100000);
	}
}

static int
mbox_fcntl_lock(int fd, short type, unsigned timeout)
{
	struct flock fl;
	time_t end = time(NULL) + (time_t)timeout;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLK, &fl) == -1) {
		if ((errno != EAGAIN && errno != EACCES) || time(NULL) >= end)
			return -1;
		usleep(100000);
	}
	return 0;
}

int
deliver_mbox_open(struct deliver *d, struct err *e)
{
	const char *path = d->acct->mbox;
	int flags = O_RDWR | O_CLOEXEC | O_NOCTTY;
	bool created = true;

	d->fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	if (d->fd == -1 && errno == EEXIST) {
		created = false;
		d->fd = open(path, flags | O_CREAT, 0600);
	}
	if (d->fd == -1) {
		err_set(e, EX_CANTCREAT, "cannot open mbox %s: %s", path,
		    strerror(errno));
		return -1;
	}
	/* Its name durable before mail is appended to it (also when it
	 * was there: a run that died may have created it unsynced). */
	return fs_sync_parent(path, created, "the directory of mbox", e);
}

void
deliver_mbox_close(struct deliver *d)
{
	if (d->fd != -1)
		(void)close(d->fd);	/* every append was fsynced */
	d->fd = -1;
}

/* The separator line: "From SENDER DATE" (asctime's form, UTC). */
static int
mbox_separator(struct mbox_out *o, int msgfd, off_t old, struct err *e)
{
	char *from, date[64], tail[2];
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	if (deliver_sender(msgfd, &from, e) == -1)
		return -1;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	/* Messages are parted by a blank line; an mbox another program
	 * left without one gets it first. */
	rc = 0;
	if (old >= 2 && pread(o->fd, tail, 2, old - 2) == 2 &&
	    (tail[0] != '\n' || tail[1] != '\n'))
		rc = mbox_put(o, tail[1] == '\n' ? "\n" : "\n\n",
		    tail[1] == '\n' ? 1 : 2);
	else if (old == 1)
		rc = mbox_put(o, "\n", 1);
	if (rc == 0)
		rc = mbox_put(o, "From ", 5) == -1 ||
		    mbox_put(o, from, strlen(from)) == -1 ||
		    mbox_put(o, " ", 1) == -1 ||
		    mbox_put(o, date, strlen(date)) == -1 ||
		    mbox_put(o, "\n", 1) == -1 ? -1 : 0;
	free(from);
	if (rc == -1)
		err_set(e, EX_IOERR, "cannot write mbox %s: %s",
		    "(separator)", strerror(errno));
	return rc;
}

/* Appends the message at msgfd at old, the file's end. */
static int
mbox_append(struct deliver *d, struct mbox_out *o, int msgfd, off_t old,
    struct err *e)
{
	char buf[65536];
	ssize_t n;
	off_t pos = 0;

	o->fd = d->fd;
	o->bol = true;
	if (lseek(d->fd, old, SEEK_SET) == -1 ||
	    mbox_separator(o, msgfd, old, e) == -1)
		goto fail;
	while ((n = pread(msgfd, buf, sizeof(buf), pos)) > 0) {
		if (mbox_quote(o, buf, (size_t)n) == -1)
			goto fail;
		o->last = buf[n - 1];
		pos += n;
	}
	if (n == -1 || (o->bol && mbox_put_pending(o, false) == -1) ||
	    (o->last != '\n' && mbox_put(o, "\n", 1) == -1) ||
	    mbox_put(o, "\n", 1) == -1 || mbox_flush(o) == -1 ||
	    fsync(d->fd) == -1)
		goto fail;
	return 0;
fail:
	err_errno(e, EX_IOERR, errno, "cannot append to mbox %s: %s; cut "
	    "back to its old length", d->acct->mbox, strerror(errno));
	/* No half message stays behind (nor is it left unsynced). */
	if (ftruncate(d->fd, old) == -1 || fsync(d->fd) == -1)
		err_set(e, EX_IOERR, "cannot append to mbox %s, nor cut it "
		    "back to %lld bytes: %s", d->acct->mbox, (long long)old,
		    strerror(errno));
	return -1;
}

int
deliver_mbox_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	char *lock = xasprintf("%s.lock", d->acct->mbox);
	struct mbox_out *o = xcalloc(1, sizeof(*o));
	bool dotlocked = false;
	struct stat st;
	int msgfd, rc = -1;

	if ((msgfd = maildir_msg_open_read(m, e)) == -1)
		goto out;
	/* A directory we may not write to (/var/mail) gets the fcntl lock
	 * only; anything else that stops the dot-lock stops us. */
	if (mbox_dotlock(lock, d->acct->timeout) == 0)
		dotlocked = true;
	else if (errno != EACCES) {
		err_set(e, EX_TEMPFAIL, "cannot lock mbox %s (%s): %s",
		    d->acct->mbox, lock, strerror(errno));
		goto out;
	}
	if (mbox_fcntl_lock(d->fd, F_WRLCK, d->acct->timeout) == -1) {
		err_set(e, EX_TEMPFAIL, "cannot lock mbox %s: %s",
		    d->acct->mbox, strerror(errno));
		goto out;
	}
	if (fstat(d->fd, &st) == -1)
		err_set(e, EX_IOERR, "mbox %s: %s", d->acct->mbox,
		    strerror(errno));
	else if (mbox_append(d, o, msgfd, st.st_size, e) == 0)
		rc = DELIVER_TAKEN;
	(void)mbox_fcntl_lock(d->fd, F_UNLCK, 0);	/* close would too */
out:
	if (dotlocked)
		(void)unlink(lock);	/* a stale lock is taken over later */
	if (msgfd != -1)
		(void)close(msgfd);	/* read-only */
	free(o);
	free(lock);
	return rc;
}
