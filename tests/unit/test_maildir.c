/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir.h"
#include "xmalloc.h"
#include "tap.h"
#include "testutil.h"

/* As in src/maildir.c: the mark our tmp/ file names carry. */
#define MARK	"_popfetch."

static char *top;		/* the mkdtemp directory */

/* "a/b", for the caller to free. */
static char *
join(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

static bool
is_dir_mode(const char *p, mode_t mode)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == mode;
}

static bool
exists(const char *dir, const char *sub, const char *name)
{
	char *p = xasprintf("%s/%s/%s", dir, sub, name);
	struct stat st;
	bool r = lstat(p, &st) == 0;

	free(p);
	return r;
}

static void
touch(const char *dir, const char *sub, const char *name)
{
	char *p = xasprintf("%s/%s/%s", dir, sub, name);

	tu_write_file(p, "x\n", 2);
	free(p);
}

/* True when the file holds exactly n bytes equal to want. */
static bool
same_bytes(const char *path, const void *want, size_t n)
{
	char *got = xmalloc(n + 1);
	bool r = false;
	size_t have;
	FILE *f;

	if ((f = fopen(path, "r")) != NULL) {
		have = fread(got, 1, n + 1, f);
		r = have == n && memcmp(got, want, n) == 0;
		fclose(f);
	}
	free(got);
	return r;
}

/* A fresh Maildir under top, opened; exits on failure. */
static struct maildir *
open_md(const char *sub, char **pathp)
{
	struct maildir *md;
	struct err e;
	char *p = join(top, sub);

	err_clear(&e);
	if (maildir_open(&md, p, &e) == -1) {
		fprintf(stderr, "maildir_open %s: %s\n", p, e.msg);
		exit(99);
	}
	*pathp = p;
	return md;
}

/* A finished message holding text, or NULL. */
static struct maildir_msg *
new_msg(struct maildir *md, const char *text)
{
	struct maildir_msg *m;
	struct err e;

	err_clear(&e);
	if (maildir_msg_begin(md, &m, &e) == -1)
		return NULL;
	if (maildir_msg_write(m, text, strlen(text), &e) == -1 ||
	    maildir_msg_finish(m, &e) == -1) {
		maildir_msg_free(m);
		return NULL;
	}
	return m;
}

static void
test_open(void)
{
	const char *subs[] = { "cur", "new", "tmp" };
	struct maildir *md;
	struct err e;
	char *p, *q;
	size_t i;
	int rc, cwd;

	p = join(top, "a/b/c/Maildir");
	err_clear(&e);
	rc = maildir_open(&md, p, &e);
	tap_ok(rc == 0 && e.code == EX_OK, "open creates a Maildir with "
	    "missing parents (%s)", e.msg);
	for (i = 0; i < 3; i++) {
		q = join(p, subs[i]);
		tap_ok(is_dir_mode(q, 0700), "%s/ exists, mode 0700", subs[i]);
		free(q);
	}
	q = join(top, "a/b/c");
	tap_ok(is_dir_mode(p, 0700) && is_dir_mode(q, 0700),
	    "the Maildir and its created parents are directories, 0700");
	free(q);
	if (rc == 0)
		maildir_close(md);
	tap_ok(maildir_open(&md, p, &e) == 0, "open of an existing Maildir");
	maildir_close(md);
	free(p);

	p = join(top, "trailing//slash/");
	tap_ok(maildir_open(&md, p, &e) == 0, "open of a path with a "
	    "trailing and a double slash (%s)", e.msg);
	maildir_close(md);
	free(p);

	/* A relative path, created in the current directory. */
	if ((cwd = open(".", O_RDONLY | O_DIRECTORY)) == -1 ||
	    chdir(top) == -1) {
		perror(top);
		exit(99);
	}
	tap_ok(maildir_open(&md, "rel/Maildir", &e) == 0 &&
	    is_dir_mode("rel/Maildir/new", 0700), "a relative path");
	maildir_close(md);
	if (fchdir(cwd) == -1 || close(cwd) == -1)
		exit(99);
	maildir_close(NULL);
}

struct frow {
	const char	*what;
	const char	*sub;	/* under top; NULL: the empty path */
	const char	*make;	/* a regular file to create first */
	const char	*mkdir;	/* a directory to create first */
};

static const struct frow frows[] = {
	{ "empty path", NULL, NULL, NULL },
	{ "under a regular file", "file1/Maildir", "file1", NULL },
	{ "deep under a regular file", "file2/x/y/Maildir", "file2", NULL },
	{ "the path is a regular file", "file3", "file3", NULL },
	{ "tmp/ is a regular file", "md1", "md1/tmp", "md1" },
	{ "new/ is a regular file", "md2", "md2/new", "md2" },
	{ "cur/ is a regular file", "md3", "md3/cur", "md3" },
};

static void
test_open_fails(void)
{
	struct maildir *md = NULL;
	struct err e;
	char *p, *f;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(frows) / sizeof(frows[0]); i++) {
		const struct frow *r = &frows[i];

		if (r->mkdir != NULL) {
			p = join(top, r->mkdir);
			if (mkdir(p, 0700) == -1)
				exit(99);
			free(p);
		}
		if (r->make != NULL) {
			f = join(top, r->make);
			tu_write_file(f, "not a directory\n", 16);
			free(f);
		}
		p = r->sub == NULL ? xstrdup("") : join(top, r->sub);
		err_clear(&e);
		md = NULL;
		rc = maildir_open(&md, p, &e);
		tap_ok(rc == -1 && e.code == EX_CANTCREAT && e.msg[0] != '\0',
		    "open fails: %s -> %d, code %d (%s)", r->what, rc, e.code,
		    e.msg);
		if (rc == 0)
			maildir_close(md);
		free(p);
	}
}

/* Every byte value, bare CRs and LFs, dot lines, NULs. */
static size_t
payload(char **pp)
{
	size_t n = 100000, i;
	char *p = xmalloc(n);

	for (i = 0; i < n; i++)
		p[i] = (char)((i * 131 + i / 256) & 0xff);
	memcpy(p, "From: a\r\n\r\n.\r\n..\n\0\0", 20);
	*pp = p;
	return n;
}

static void
test_deliver(void)
{
	struct maildir_msg *m;
	struct maildir *md;
	struct err e;
	size_t n, off, chunk = 1;
	char *dir, *data, *p;
	const char *name;
	struct stat st;

	md = open_md("deliver", &dir);
	n = payload(&data);
	err_clear(&e);
	tap_ok(maildir_msg_begin(md, &m, &e) == 0, "begin (%s)", e.msg);
	name = maildir_msg_name(m);
	tap_ok(exists(dir, "tmp", name) && !exists(dir, "new", name),
	    "begin creates %s in tmp/ only", name);
	p = xasprintf("%s/tmp/%s", dir, name);
	if (stat(p, &st) == -1)
		st.st_mode = 0;
	tap_ok((st.st_mode & 07777) == 0600, "the tmp/ file has mode 0600 "
	    "(%o)", (unsigned)st.st_mode & 07777);
	free(p);
	tap_ok(strchr(name, '/') == NULL && strchr(name, ':') == NULL &&
	    name[0] != '.' && strstr(name, MARK) != NULL,
	    "the name has no '/' or ':', is not hidden, carries our mark");
	/* Chunks of growing, odd sizes, from 1 byte up. */
	for (off = 0; off < n; off += chunk, chunk = chunk * 3 + 1)
		if (maildir_msg_write(m, data + off, off + chunk > n ?
		    n - off : chunk, &e) == -1)
			break;
	tap_ok(off >= n, "writes in chunks (%s)", e.msg);
	tap_ok(maildir_msg_size(m) == n, "size %llu == %zu",
	    (unsigned long long)maildir_msg_size(m), n);
	tap_ok(maildir_msg_finish(m, &e) == 0, "finish");
	tap_ok(!maildir_msg_committed(m) && !exists(dir, "new", name),
	    "nothing in new/ before commit");
	tap_ok(maildir_sync(md, &m, 1, &e) == 0, "sync");
	tap_ok(!exists(dir, "new", name), "nothing in new/ after sync");
	tap_ok(maildir_commit(md, &m, 1, &e) == 0, "commit (%s)", e.msg);
	tap_ok(maildir_msg_committed(m), "committed after commit");
	p = xasprintf("%s/new/%s", dir, name);
	tap_ok(same_bytes(p, data, n), "new/%s holds exactly the bytes",
	    name);
	tap_ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "the new/ file has mode 0600");
	tap_ok(tu_entries(dir, "tmp") == 0, "nothing left in tmp/");
	maildir_msg_free(m);
	tap_ok(same_bytes(p, data, n) && tu_entries(dir, "new") == 1,
	    "freeing a committed message leaves it in new/");
	free(p);

	/* An empty message. */
	m = new_msg(md, "");
	tap_ok(m != NULL && maildir_sync(md, &m, 1, &e) == 0 &&
	    maildir_commit(md, &m, 1, &e) == 0, "an empty message commits");
	if (m != NULL) {
		p = xasprintf("%s/new/%s", dir, maildir_msg_name(m));
		tap_ok(same_bytes(p, "", 0) && maildir_msg_size(m) == 0,
		    "it is empty in new/");
		free(p);
		maildir_msg_free(m);
	}
	tap_ok(maildir_sync(md, NULL, 0, &e) == 0 &&
	    maildir_commit(md, NULL, 0, &e) == 0, "sync and commit of none");
	maildir_msg_free(NULL);
	free(data);
	maildir_close(md);
	free(dir);
}

static void
test_free_uncommitted(void)
{
	struct maildir_msg *m, *ms[3];
	struct maildir *md;
	struct err e;
	char *dir, name[512];
	size_t i;

	md = open_md("uncommitted", &dir);
	err_clear(&e);

	/* Freed while still being written. */
	tap_ok(maildir_msg_begin(md, &m, &e) == 0 &&
	    maildir_msg_write(m, "partial", 7, &e) == 0, "begin, write");
	snprintf(name, sizeof(name), "%s", maildir_msg_name(m));
	maildir_msg_free(m);
	tap_ok(!exists(dir, "tmp", name) && tu_entries(dir, "tmp") == 0 &&
	    tu_entries(dir, "new") == 0, "free while writing removes it from "
	    "tmp/, nothing in new/");

	/* Finished and synced, but never committed. */
	m = new_msg(md, "whole\n");
	tap_ok(m != NULL && maildir_sync(md, &m, 1, &e) == 0, "finish, sync");
	snprintf(name, sizeof(name), "%s", m != NULL ? maildir_msg_name(m) :
	    "");
	maildir_msg_free(m);
	tap_ok(tu_entries(dir, "tmp") == 0 && tu_entries(dir, "new") == 0,
	    "free of a synced, uncommitted message removes it");

	/* A batch where only part is committed. */
	for (i = 0; i < 3; i++)
		ms[i] = new_msg(md, "batch\n");
	tap_ok(ms[0] && ms[1] && ms[2] && maildir_sync(md, ms, 3, &e) == 0 &&
	    maildir_commit(md, ms, 2, &e) == 0, "three messages, two "
	    "committed");
	tap_ok(tu_entries(dir, "tmp") == 1 && tu_entries(dir, "new") == 2,
	    "one in tmp/, two in new/");
	for (i = 0; i < 3; i++)
		maildir_msg_free(ms[i]);
	tap_ok(tu_entries(dir, "tmp") == 0 && tu_entries(dir, "new") == 2,
	    "after free: tmp/ empty, the two committed stay in new/");

	/* Writing still works after a message was abandoned. */
	m = new_msg(md, "after\n");
	tap_ok(m != NULL, "a new message after the abandoned ones");
	maildir_msg_free(m);
	maildir_close(md);
	free(dir);
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

#define NMSG	1000
#define BATCH	50

static void
test_unique(void)
{
	struct maildir_msg *ms[BATCH];
	char *names[NMSG], *dir;
	struct maildir *md;
	size_t i, j, dup = 0, failed = 0, bad = 0;
	struct err e;

	md = open_md("unique", &dir);
	err_clear(&e);
	for (i = 0; i < NMSG; i += BATCH) {
		for (j = 0; j < BATCH; j++) {
			if ((ms[j] = new_msg(md, "x\n")) == NULL) {
				failed++;
				break;
			}
			names[i + j] = xstrdup(maildir_msg_name(ms[j]));
		}
		if (j < BATCH || maildir_sync(md, ms, BATCH, &e) == -1 ||
		    maildir_commit(md, ms, BATCH, &e) == -1)
			failed++;
		for (j = 0; j < BATCH; j++)
			maildir_msg_free(ms[j]);
		if (failed)
			break;
	}
	tap_ok(failed == 0, "1000 messages written and committed (%s)",
	    e.msg);
	if (failed == 0) {
		qsort(names, NMSG, sizeof(names[0]), cmpstr);
		for (i = 1; i < NMSG; i++)
			if (strcmp(names[i - 1], names[i]) == 0)
				dup++;
		for (i = 0; i < NMSG; i++)
			if (strchr(names[i], '/') != NULL ||
			    strchr(names[i], ':') != NULL ||
			    names[i][0] == '.')
				bad++;
		tap_ok(dup == 0, "the 1000 names are unique (%zu repeats)",
		    dup);
		tap_ok(bad == 0, "no name has '/' or ':' or a leading dot");
		tap_ok(tu_entries(dir, "new") == NMSG && tu_entries(dir, "tmp") == 0,
		    "1000 files in new/, none in tmp/");
		for (i = 0; i < NMSG; i++)
			free(names[i]);
	}
	maildir_close(md);
	free(dir);
}

static void
test_commit_fails(void)
{
	struct maildir_msg *ms[2];
	struct maildir *md;
	struct err e;
	char *dir, *p;

	/* The second message's tmp/ file vanished: the first still goes. */
	md = open_md("commitfail1", &dir);
	err_clear(&e);
	ms[0] = new_msg(md, "one\n");
	ms[1] = new_msg(md, "two\n");
	if (ms[0] == NULL || ms[1] == NULL || maildir_sync(md, ms, 2, &e)) {
		tap_ok(0, "setup of the commit failure");
		exit(99);
	}
	p = xasprintf("%s/tmp/%s", dir, maildir_msg_name(ms[1]));
	unlink(p);
	free(p);
	tap_ok(maildir_commit(md, ms, 2, &e) == -1 && e.code == EX_IOERR,
	    "commit with a vanished tmp/ file fails with EX_IOERR (%s)",
	    e.msg);
	tap_ok(maildir_msg_committed(ms[0]) && !maildir_msg_committed(ms[1]),
	    "the one renamed before the failure is marked committed, the "
	    "other not");
	tap_ok(exists(dir, "new", maildir_msg_name(ms[0])) &&
	    !exists(dir, "new", maildir_msg_name(ms[1])),
	    "only the first is in new/");
	maildir_msg_free(ms[0]);
	maildir_msg_free(ms[1]);
	maildir_close(md);
	free(dir);

	/* new/ is gone: nothing is committed, and free cleans tmp/. */
	md = open_md("commitfail2", &dir);
	ms[0] = new_msg(md, "one\n");
	ms[1] = new_msg(md, "two\n");
	p = xasprintf("%s/new", dir);
	rmdir(p);
	free(p);
	err_clear(&e);
	tap_ok(ms[0] && ms[1] && maildir_sync(md, ms, 2, &e) == 0 &&
	    maildir_commit(md, ms, 2, &e) == -1 && e.code == EX_IOERR,
	    "commit into a removed new/ fails with EX_IOERR (%s)", e.msg);
	tap_ok(ms[0] && ms[1] && !maildir_msg_committed(ms[0]) &&
	    !maildir_msg_committed(ms[1]) && tu_entries(dir, "tmp") == 2,
	    "neither is committed; both still in tmp/");
	maildir_msg_free(ms[0]);
	maildir_msg_free(ms[1]);
	tap_ok(tu_entries(dir, "tmp") == 0, "freeing them empties tmp/");
	maildir_close(md);
	free(dir);

	/* tmp/ is gone: begin fails. */
	md = open_md("beginfail", &dir);
	p = xasprintf("%s/tmp", dir);
	rmdir(p);
	free(p);
	err_clear(&e);
	ms[0] = NULL;
	tap_ok(maildir_msg_begin(md, &ms[0], &e) == -1 &&
	    e.code == EX_CANTCREAT && e.msg[0] != '\0', "begin with tmp/ "
	    "removed fails with EX_CANTCREAT (%s)", e.msg);
	maildir_close(md);
	free(dir);
}

static void
test_recover(void)
{
	struct maildir_msg *m;
	struct maildir *md;
	struct err e;
	char *dir, *names[6], *from, *to;
	bool found[6];
	size_t i;

	md = open_md("recover", &dir);
	err_clear(&e);

	/* 0: committed into new/. */
	m = new_msg(md, "in new\n");
	names[0] = xstrdup(m != NULL ? maildir_msg_name(m) : "");
	tap_ok(m && maildir_sync(md, &m, 1, &e) == 0 &&
	    maildir_commit(md, &m, 1, &e) == 0, "setup: one in new/");
	maildir_msg_free(m);

	/* 1: committed, then moved to cur/ by a reader, with flags. */
	m = new_msg(md, "in cur\n");
	names[1] = xstrdup(m != NULL ? maildir_msg_name(m) : "");
	tap_ok(m && maildir_sync(md, &m, 1, &e) == 0 &&
	    maildir_commit(md, &m, 1, &e) == 0, "setup: one for cur/");
	maildir_msg_free(m);
	from = xasprintf("%s/new/%s", dir, names[1]);
	to = xasprintf("%s/cur/%s:2,S", dir, names[1]);
	tap_ok(rename(from, to) == 0, "setup: moved to cur/ as NAME:2,S");
	free(from);
	free(to);

	/* 2: in cur/ without flags; 3: only in tmp/; 4: nowhere;
	 * 5: only a longer name that starts with it is in cur/. */
	names[2] = xstrdup("1700000000.M000002P1Q2" MARK "plain");
	touch(dir, "cur", names[2]);
	names[3] = xstrdup("1700000000.M000003P1Q3" MARK "tmp");
	touch(dir, "tmp", names[3]);
	names[4] = xstrdup("1700000000.M000004P1Q4" MARK "nowhere");
	names[5] = xstrdup("1700000000.M000005P1Q5" MARK "pre");
	to = xasprintf("%sfix:2,S", names[5]);
	touch(dir, "cur", to);
	free(to);

	for (i = 0; i < 6; i++)
		found[i] = false;
	tap_ok(maildir_recover(md, (const char *const *)names, 6, found,
	    &e) == 0, "recover (%s)", e.msg);
	tap_ok(found[0], "a name in new/ -> found");
	tap_ok(found[1], "a name in cur/ as NAME:2,S -> found");
	tap_ok(found[2], "a name in cur/ without flags -> found");
	tap_ok(!found[3], "a name only in tmp/ -> not found");
	tap_ok(!exists(dir, "tmp", names[3]), "... and removed from tmp/");
	tap_ok(!found[4], "a name nowhere -> not found");
	tap_ok(!found[5], "a name that only prefixes one in cur/ -> not "
	    "found");
	tap_ok(exists(dir, "new", names[0]) && tu_entries(dir, "cur") == 3,
	    "recover leaves new/ and cur/ alone");

	/* All found in new/ (no cur/ scan needed), and none at all. */
	found[0] = false;
	tap_ok(maildir_recover(md, (const char *const *)names, 1, found,
	    &e) == 0 && found[0], "recover of one name in new/");
	tap_ok(maildir_recover(md, (const char *const *)names, 0, found,
	    &e) == 0, "recover of no names");
	for (i = 0; i < 6; i++)
		free(names[i]);
	maildir_close(md);
	free(dir);
}

/* A tmp/ name as an earlier popfetch with that PID would have made. */
static char *
stale_name(pid_t pid, const char *host)
{
	return xasprintf("1700000000.M000001P%dQ1" MARK "%s", (int)pid,
	    host);
}

static void
test_stale(void)
{
	struct maildir_msg *m;
	struct maildir *md;
	char *dir, *host, *dead, *live, *own, *other, *nomark, *p;
	const char *foreign = "123.dovecot.host";
	pid_t deadpid, livepid;
	struct err e;
	int status;

	/* Learn this host's escaped name from a real message. */
	md = open_md("stale", &dir);
	m = new_msg(md, "x");
	p = m != NULL ? strstr(maildir_msg_name(m), MARK) : NULL;
	host = xstrdup(p != NULL ? p + strlen(MARK) : "unknown");
	tap_ok(p != NULL && host[0] != '\0' && strchr(host, '/') == NULL &&
	    strchr(host, ':') == NULL, "the host part \"%s\" has no '/' "
	    "or ':'", host);
	maildir_msg_free(m);
	maildir_close(md);

	fflush(stdout);
	if ((deadpid = fork()) == 0)
		_exit(0);
	waitpid(deadpid, &status, 0);
	if ((livepid = fork()) == 0) {
		for (;;)
			pause();
	}
	tap_ok(deadpid > 0 && livepid > 0, "a dead and a live child");

	dead = stale_name(deadpid, host);
	live = stale_name(livepid, host);
	own = stale_name(getpid(), host);
	other = stale_name(deadpid, "otherhost");
	nomark = xasprintf("1700000000.M000001P%dQ1.%s", (int)deadpid, host);
	touch(dir, "tmp", dead);
	touch(dir, "tmp", live);
	touch(dir, "tmp", own);
	touch(dir, "tmp", other);
	touch(dir, "tmp", nomark);
	touch(dir, "tmp", foreign);
	touch(dir, "new", dead);
	p = xasprintf("%s:2,S", dead);
	touch(dir, "cur", p);
	free(p);

	err_clear(&e);
	tap_ok(maildir_open(&md, dir, &e) == 0, "reopen (%s)", e.msg);
	tap_ok(!exists(dir, "tmp", dead), "ours, this host, dead PID: "
	    "removed from tmp/");
	tap_ok(exists(dir, "tmp", live), "ours, this host, live PID: stays");
	tap_ok(exists(dir, "tmp", own), "ours, this host, our own PID: "
	    "stays");
	tap_ok(exists(dir, "tmp", other), "ours, other host, dead PID: stays");
	tap_ok(exists(dir, "tmp", nomark), "no popfetch mark, dead PID: "
	    "stays");
	tap_ok(exists(dir, "tmp", foreign), "a foreign file: stays");
	tap_ok(exists(dir, "new", dead), "a file of that name in new/: "
	    "stays");
	tap_ok(tu_entries(dir, "cur") == 1, "a file of that name in cur/: "
	    "stays");
	maildir_close(md);

	kill(livepid, SIGKILL);
	waitpid(livepid, &status, 0);
	err_clear(&e);
	tap_ok(maildir_open(&md, dir, &e) == 0 && !exists(dir, "tmp", live),
	    "once the live child is gone, its file goes at the next open");
	maildir_close(md);

	free(dead);
	free(live);
	free(own);
	free(other);
	free(nomark);
	free(host);
	free(dir);
}

int
main(void)
{
	top = tu_mkdtemp();
	umask(022);
	test_open();
	test_open_fails();
	test_deliver();
	test_free_uncommitted();
	test_unique();
	test_commit_fails();
	test_recover();
	test_stale();
	if (chdir("/") == -1)
		exit(99);
	tu_rm_rf(top);
	free(top);
	return tap_done();
}
