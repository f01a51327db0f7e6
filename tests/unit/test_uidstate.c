/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir.h"
#include "uidstate.h"
#include "xmalloc.h"
#include "tap.h"
#include "testutil.h"

#define ACCT	"acct"
#define MAGIC	"popfetch-uidstate 1\n"
#define MAGIC2	"popfetch-uidstate 2\n"
#define JMAGIC	"popfetch-journal 1\n"
/* Version 2's second line when the state names no mailbox. */
#define MB0	"mailbox -\n"
/* The state file's last line, with the number of records. */
#define END(n)	"end:" #n "\n"
#define X10	"xxxxxxxxxx"
#define X70	X10 X10 X10 X10 X10 X10 X10

static char *top;		/* the mkdtemp directory */
static char *sdir;		/* the state directory under it */
static char *state_path, *journal_path;

/* What the recover callback was asked, and what it answers. */
struct rec {
	struct maildir	*md;	/* NULL: answer from found_names */
	const char	*found_names[4];
	int		 fail;	/* answer -1 */
	int		 calls;
	size_t		 asked;
	char		*names[8];
};

static int
recover_cb(void *arg, const char *const *names, size_t n, bool *found,
    struct err *e)
{
	struct rec *r = arg;
	size_t i, j;

	r->calls++;
	for (i = 0; i < n; i++) {
		if (r->asked < 8)
			r->names[r->asked++] = xstrdup(names[i]);
		found[i] = false;
		for (j = 0; j < 4 && r->found_names[j] != NULL; j++)
			if (strcmp(names[i], r->found_names[j]) == 0)
				found[i] = true;
	}
	if (r->fail) {
		err_set(e, EX_IOERR, "recover failed on purpose");
		return -1;
	}
	if (r->md != NULL)
		return maildir_recover(r->md, names, n, found, e);
	return 0;
}

static void
rec_free(struct rec *r)
{
	size_t i;

	for (i = 0; i < r->asked; i++)
		free(r->names[i]);
	r->asked = 0;
	r->calls = 0;
}

static bool
rec_asked(const struct rec *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->asked; i++)
		if (strcmp(r->names[i], name) == 0)
			return true;
	return false;
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static unsigned
mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (unsigned)st.st_mode & 07777 : 01;
}

static void
reset_files(void)
{
	char *p = xasprintf("%s.new", state_path);

	unlink(state_path);
	unlink(journal_path);
	unlink(p);
	free(p);
}

/* Opens the account, or records a failed check and returns NULL. */
static struct uidstate *
open_ok(const char *what, struct rec *r)
{
	struct uidstate *s = NULL;
	struct err e;

	err_clear(&e);
	if (uidstate_open(&s, sdir, ACCT, recover_cb, r, &e) != 0) {
		tap_ok(0, "%s: open failed: %s", what, e.msg);
		return NULL;
	}
	return s;
}

static bool
has_at(const struct uidstate *s, const char *uid, time_t when)
{
	time_t t = -1;

	return uidstate_has(s, uid, &t) && t == when;
}

static void
test_basics(void)
{
	const char *uids[] = { "412", "a/b", X70 };
	struct uidstate *s;
	struct rec r = { 0 };
	struct err e;
	time_t t = 0;
	char *p;

	s = open_ok("first open", &r);
	if (s == NULL)
		exit(99);
	tap_ok(mode_of(sdir) == 0700, "open creates the state directory "
	    "and its parents, mode 0700 (%o)", mode_of(sdir));
	tap_ok(uidstate_count(s) == 0 && !uidstate_has(s, "412", &t),
	    "a new account has no UIDs");
	tap_ok(r.calls == 0, "no recovery without a journal");
	err_clear(&e);
	tap_ok(uidstate_delivered(s, uids, NULL, 3, 1000, &e) == 0,
	    "delivered (%s)", e.msg);
	tap_ok(mode_of(journal_path) == 0600, "the journal has mode 0600 "
	    "(%o)", mode_of(journal_path));
	tap_ok(has_at(s, "412", 1000) && has_at(s, "a/b", 1000) &&
	    has_at(s, X70, 1000), "has() after delivered, with first_seen");
	tap_ok(!uidstate_has(s, "12", &t) && !uidstate_has(s, "41", &t) &&
	    !uidstate_has(s, "4120", &t), "\"412\" does not make \"12\", "
	    "\"41\" or \"4120\" look delivered");
	tap_ok(uidstate_delivered(s, uids, NULL, 1, 2000, &e) == 0 &&
	    has_at(s, "412", 1000) && uidstate_count(s) == 3,
	    "delivered again keeps the first time and the count");
	tap_ok(uidstate_delivered(s, NULL, NULL, 0, 3000, &e) == 0,
	    "delivered of none");
	tap_ok(uidstate_commit(s, &e) == 0, "commit (%s)", e.msg);
	tap_ok(!exists(journal_path), "commit removes the journal");
	tap_ok(mode_of(state_path) == 0600, "the state file has mode 0600 "
	    "(%o)", mode_of(state_path));
	p = xasprintf("%s.new", state_path);
	tap_ok(!exists(p), "no temporary state file is left");
	free(p);
	tap_ok(uidstate_commit(s, &e) == 0, "a second commit with nothing "
	    "new");
	uidstate_close(s);
	uidstate_close(NULL);

	s = open_ok("reopen", &r);
	if (s == NULL)
		exit(99);
	tap_ok(uidstate_count(s) == 3 && has_at(s, "412", 1000) &&
	    has_at(s, "a/b", 1000) && has_at(s, X70, 1000),
	    "reopen keeps the UIDs and their times");
	tap_ok(!uidstate_has(s, "12", &t), "reopen: \"12\" still not "
	    "delivered");
	tap_ok(r.calls == 0, "no recovery after a clean commit");
	uidstate_close(s);

	/* A second account in the same directory is separate. */
	err_clear(&e);
	s = NULL;
	tap_ok(uidstate_open(&s, sdir, "other", recover_cb, &r, &e) == 0 &&
	    uidstate_count(s) == 0, "another account in the same "
	    "directory starts empty (%s)", e.msg);
	uidstate_close(s);
	reset_files();
}

static void
test_retain(void)
{
	const char *uids[] = { "412", "12", "b", "c" };
	struct uidmap *present = uidmap_new();
	struct uidstate *s;
	struct rec r = { 0 };
	struct err e;
	time_t t;

	err_clear(&e);
	s = open_ok("retain", &r);
	if (s == NULL)
		exit(99);
	tap_ok(uidstate_delivered(s, uids, NULL, 4, 500, &e) == 0 &&
	    uidstate_commit(s, &e) == 0, "four UIDs committed");
	uidstate_close(s);

	/* The server now lists 12, c and one we never fetched. */
	uidmap_put(present, "12", 0);
	uidmap_put(present, "c", 0);
	uidmap_put(present, "new", 0);
	s = open_ok("retain reopen", &r);
	if (s == NULL)
		exit(99);
	uidstate_retain(s, present);
	tap_ok(uidstate_commit(s, &e) == 0, "commit after retain");
	uidstate_close(s);
	s = open_ok("retain reopen 2", &r);
	if (s == NULL)
		exit(99);
	tap_ok(uidstate_count(s) == 2 && has_at(s, "12", 500) &&
	    has_at(s, "c", 500), "after retain, commit, reopen: the listed "
	    "ones stay with their times");
	tap_ok(!uidstate_has(s, "412", &t) && !uidstate_has(s, "b", &t),
	    "the unlisted ones are forgotten (\"12\" listed does not keep "
	    "\"412\")");
	tap_ok(!uidstate_has(s, "new", &t), "a listed UID never delivered "
	    "is not recorded");

	/* An empty listing forgets everything. */
	uidmap_free(present);
	present = uidmap_new();
	uidstate_retain(s, present);
	tap_ok(uidstate_commit(s, &e) == 0, "commit after retain of none");
	uidstate_close(s);
	s = open_ok("retain reopen 3", &r);
	if (s == NULL)
		exit(99);
	tap_ok(uidstate_count(s) == 0, "an empty listing forgets all");
	uidstate_close(s);
	uidmap_free(present);
	reset_files();
}

/* A UID that looks like part of the state file's syntax. */
static void
test_tricky_uids(void)
{
	const char *uids[] = { "end", "popfetch-uidstate", "P", "D", "#",
	    "end0", "-1" };
	struct uidstate *s;
	struct rec r = { 0 };
	struct err e;
	size_t i;
	bool all = true;

	s = open_ok("tricky", &r);
	if (s == NULL)
		exit(99);
	err_clear(&e);
	tap_ok(uidstate_delivered(s, uids, NULL, 7, 7, &e) == 0 &&
	    uidstate_commit(s, &e) == 0, "UIDs like keywords committed");
	uidstate_close(s);
	err_clear(&e);
	s = NULL;
	tap_ok(uidstate_open(&s, sdir, ACCT, recover_cb, &r, &e) == 0,
	    "reopen after delivering UIDs \"end\", \"P\", \"D\"... (%s)",
	    e.msg);
	for (i = 0; s != NULL && i < 7; i++)
		all = all && has_at(s, uids[i], 7);
	tap_ok(s != NULL && all && uidstate_count(s) == 7,
	    "all seven are recorded after reopen");
	uidstate_close(s);
	reset_files();
}

/*
 * Opens the account in a child process, which then closes its copy of
 * held (if not NULL). Returns the child's exit status: 0 if it opened
 * the account, else the error's code (EX_TEMPFAIL for UIDSTATE_BUSY); -1
 * if it did not exit.
 */
static int
open_in_child(struct uidstate *held, struct rec *r)
{
	pid_t pid;
	int status = -1;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct uidstate *c = NULL;
		struct err e;
		int rc;

		err_clear(&e);
		rc = uidstate_open(&c, sdir, ACCT, recover_cb, r, &e);
		if (rc == 0)
			uidstate_close(c);
		/* Our copy only: the parent's descriptor keeps the lock. */
		if (held != NULL)
			uidstate_close(held);
		_exit(rc == 0 ? 0 : e.code != 0 ? e.code : 1);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_lock(void)
{
	struct uidstate *s, *s2 = NULL;
	struct rec r = { 0 };
	struct err e;
	int status;

	s = open_ok("lock holder", &r);
	if (s == NULL)
		exit(99);
	status = open_in_child(s, &r);
	tap_ok(status == EX_TEMPFAIL,
	    "a second process cannot open a held account: UIDSTATE_BUSY, "
	    "EX_TEMPFAIL "
	    "(exit %d)", status);

	err_clear(&e);
	tap_ok(uidstate_open(&s2, sdir, ACCT, recover_cb, &r, &e) ==
	    UIDSTATE_BUSY && e.code == EX_TEMPFAIL && e.msg[0] != '\0', "nor a second open in "
	    "the same process (%s)", e.msg);
	tap_ok(uidstate_count(s) == 0, "the holder is unaffected");

	uidstate_close(s);
	status = open_in_child(NULL, &r);
	tap_ok(status == 0,
	    "after close another process can open it (exit %d)", status);
	s = open_ok("reopen after the lock tests", &r);
	tap_ok(s != NULL, "and so can this one");
	uidstate_close(s);
	reset_files();
}

/* Finished and synced messages in md, or exits. */
static struct maildir_msg *
make_msg(struct maildir *md, const char *text)
{
	struct maildir_msg *m;
	struct err e;

	err_clear(&e);
	if (maildir_msg_begin(md, &m, &e) == -1 ||
	    maildir_msg_write(m, text, strlen(text), &e) == -1 ||
	    maildir_msg_finish(m, &e) == -1 ||
	    maildir_sync(md, &m, 1, &e) == -1) {
		fprintf(stderr, "make_msg: %s\n", e.msg);
		exit(99);
	}
	return m;
}

/*
 * A run that journals four messages as pending and dies before
 * recording any as delivered: one reached new/, one was already moved
 * to cur/ by a reader, one was left in tmp/, and one is gone.
 */
static void
test_crash_recovery(void)
{
	const char *uids[] = { "u-new", "u-cur", "u-tmp", "u-gone" };
	char *names[4], *mdpath, *from, *to;
	struct maildir_msg *ms[4];
	struct uidstate *s;
	struct maildir *md;
	struct rec r = { 0 };
	time_t before, after, t = 0;
	struct err e;
	size_t i;

	mdpath = xasprintf("%s/Maildir", top);
	err_clear(&e);
	if (maildir_open(&md, mdpath, &e) == -1) {
		fprintf(stderr, "%s\n", e.msg);
		exit(99);
	}
	r.md = md;
	s = open_ok("crash: first run", &r);
	if (s == NULL)
		exit(99);
	for (i = 0; i < 4; i++) {
		ms[i] = make_msg(md, uids[i]);
		names[i] = xstrdup(maildir_msg_name(ms[i]));
	}
	tap_ok(uidstate_pending(s, uids, (const char *const *)names, 4,
	    &e) == 0, "pending for four (%s)", e.msg);
	tap_ok(mode_of(journal_path) == 0600, "the journal exists, mode "
	    "0600");
	tap_ok(maildir_commit(md, ms, 2, &e) == 0, "two moved into new/");
	from = xasprintf("%s/new/%s", mdpath, names[1]);
	to = xasprintf("%s/cur/%s:2,S", mdpath, names[1]);
	tap_ok(rename(from, to) == 0, "one of them moved on to cur/ as "
	    "NAME:2,S");
	free(from);
	free(to);
	for (i = 0; i < 4; i++)
		maildir_msg_free(ms[i]);
	/* A crash would have left the third in tmp/. */
	to = xasprintf("%s/tmp/%s", mdpath, names[2]);
	tu_write_file(to, "u-tmp", 5);
	/* The crash: no delivered, no commit. */
	uidstate_close(s);
	tap_ok(exists(journal_path), "the journal survives close");

	before = time(NULL);
	s = open_ok("crash: reopen", &r);
	after = time(NULL);
	if (s == NULL)
		exit(99);
	tap_ok(r.calls == 1 && r.asked == 4 && rec_asked(&r, names[0]) &&
	    rec_asked(&r, names[1]) && rec_asked(&r, names[2]) &&
	    rec_asked(&r, names[3]), "recover asked once about the four "
	    "pending names");
	tap_ok(uidstate_has(s, "u-new", &t) && t >= before && t <= after,
	    "the one found in new/ is recorded, first seen now");
	tap_ok(uidstate_has(s, "u-cur", &t), "the one found in cur/ is "
	    "recorded");
	tap_ok(!uidstate_has(s, "u-tmp", &t), "the one left in tmp/ is not");
	tap_ok(!exists(to), "... and it was removed from tmp/");
	tap_ok(!uidstate_has(s, "u-gone", &t), "the one found nowhere is "
	    "not");
	tap_ok(uidstate_count(s) == 2, "count 2");
	tap_ok(!exists(journal_path) && exists(state_path),
	    "the result is compacted: state file written, journal gone");
	uidstate_close(s);
	free(to);
	rec_free(&r);

	s = open_ok("crash: third open", &r);
	tap_ok(s != NULL && r.calls == 0 && uidstate_count(s) == 2 &&
	    uidstate_has(s, "u-new", &t) && uidstate_has(s, "u-cur", &t),
	    "the recovered state persists, with no second recovery");

	/* Pending, then delivered for one of two, then a crash. */
	for (i = 0; i < 2; i++) {
		free(names[i]);
		ms[i] = make_msg(md, "again");
		names[i] = xstrdup(maildir_msg_name(ms[i]));
		maildir_msg_free(ms[i]);
	}
	tap_ok(s != NULL && uidstate_pending(s, (const char *[]){ "p1",
	    "p2" }, (const char *const *)names, 2, &e) == 0 &&
	    uidstate_delivered(s, (const char *[]){ "p1" }, NULL, 1, 4242,
	    &e) == 0, "pending two, delivered one (%s)", e.msg);
	uidstate_close(s);
	rec_free(&r);
	s = open_ok("crash: after a partial batch", &r);
	tap_ok(s != NULL && has_at(s, "p1", 4242), "the delivered one is "
	    "recorded with its time, though its file is gone");
	tap_ok(s != NULL && !uidstate_has(s, "p2", &t), "the other, found "
	    "nowhere, is not");
	tap_ok(r.calls == 1 && !rec_asked(&r, names[0]) &&
	    rec_asked(&r, names[1]), "recover was asked only about the "
	    "undelivered one");
	uidstate_close(s);
	rec_free(&r);

	for (i = 0; i < 4; i++)
		free(names[i]);
	maildir_close(md);
	free(mdpath);
	reset_files();
}

/* A failing recover callback fails the open and changes nothing. */
static void
test_recover_fails(void)
{
	const char *state = MAGIC "a 1\n" END(1);
	const char *journal = "P b 1700000000.M1P1Q1_popfetch.h\n";
	struct uidstate *s = NULL;
	struct rec r = { 0 };
	struct err e;
	char *st, *jo;
	time_t t;

	tu_write_file(state_path, state, strlen(state));
	tu_write_file(journal_path, journal, strlen(journal));
	r.fail = 1;
	err_clear(&e);
	tap_ok(uidstate_open(&s, sdir, ACCT, recover_cb, &r, &e) == -1 &&
	    e.code == EX_IOERR && strstr(e.msg, "on purpose") != NULL,
	    "a failing recover fails the open with its error (%s)", e.msg);
	st = tu_slurp(state_path, NULL);
	jo = tu_slurp(journal_path, NULL);
	tap_ok(st != NULL && jo != NULL && strcmp(st, state) == 0 &&
	    strcmp(jo, journal) == 0, "state and journal are untouched");
	free(st);
	free(jo);
	rec_free(&r);
	r.fail = 0;
	r.found_names[0] = "1700000000.M1P1Q1_popfetch.h";
	s = open_ok("recover works on the next try", &r);
	tap_ok(s != NULL && uidstate_count(s) == 2 && has_at(s, "a", 1) &&
	    uidstate_has(s, "b", &t), "the next open recovers");
	uidstate_close(s);
	rec_free(&r);
	reset_files();
}

struct jrow {
	const char	*what;
	const char	*text;
	const char	*has;		/* must be recorded after open */
	const char	*hasnot;	/* must not be */
};

static const struct jrow torn[] = {
	{ "torn D line", "D a 100\nD b 2", "a", "b" },
	{ "torn P line", "D a 100\nP b 1700000000.M1P1Q1_popfetch.h", "a",
	    "b" },
	{ "torn garbage", "D a 100\nX", "a", "X" },
	{ "torn after a P line", "P b n1\nD a 100\nD b 1", "a", "b" },
	{ "only a torn line", "D b 1", NULL, "b" },
	{ "empty journal", "", NULL, "b" },
	/* The version line is read past; a journal of popfetch 0.1 has
	 * none (the rows above); torn, it is a journal of nothing. */
	{ "version line, then a torn one", JMAGIC "D a 100\nD b 2", "a",
	    "b" },
	{ "only a torn version line", "popfetch-jour", NULL, "b" },
};

/* A journal of another version is refused, and left untouched. */
static void
test_journal_version(void)
{
	struct uidstate *s = NULL;
	struct rec r = { 0 };
	struct err e;
	char *jo;
	int rc;

	tu_write_file(journal_path, "popfetch-journal 2\nD a 100\n", 27);
	err_clear(&e);
	s = NULL;
	rc = uidstate_open(&s, sdir, ACCT, recover_cb, &r, &e);
	jo = tu_slurp(journal_path, NULL);
	tap_ok(rc == -1 && e.code == EX_IOERR && strstr(e.msg,
	    "a journal of another version of popfetch (\"popfetch-journal "
	    "2\")") != NULL && jo != NULL && strcmp(jo,
	    "popfetch-journal 2\nD a 100\n") == 0, "a journal of another "
	    "version is refused and left as it was (%s)", e.msg);
	free(jo);
	if (rc == 0)
		uidstate_close(s);
	rec_free(&r);
	reset_files();
}

static void
test_torn(void)
{
	struct uidstate *s;
	struct rec r = { 0 };
	size_t i;
	time_t t;

	for (i = 0; i < sizeof(torn) / sizeof(torn[0]); i++) {
		tu_write_file(journal_path, torn[i].text, strlen(torn[i].text));
		s = open_ok(torn[i].what, &r);
		if (s == NULL)
			continue;
		if (torn[i].has != NULL)
			tap_ok(has_at(s, torn[i].has, 100), "%s: accepted, "
			    "the complete record is kept", torn[i].what);
		else
			tap_ok(uidstate_count(s) == 0, "%s: accepted, "
			    "nothing recorded", torn[i].what);
		tap_ok(!uidstate_has(s, torn[i].hasnot, &t),
		    "%s: the torn record is ignored", torn[i].what);
		tap_ok(!exists(journal_path), "%s: journal folded in",
		    torn[i].what);
		uidstate_close(s);
		rec_free(&r);
		reset_files();
	}
}

struct crow {
	const char	*what;
	const char	*text;
	int		 line;
};

/* State files that must be refused, and the line to blame. */
static const struct crow bad_states[] = {
	{ "bad magic line", "popfetch-uidstate 3\na 1\n" END(1), 1 },
	{ "bad mailbox line", "popfetch-uidstate 2\nmailbox a b\n" END(0),
	    2 },
	{ "mailbox line in version 1", "popfetch-uidstate 1\nmailbox a@b\n"
	    END(0), 2 },
	{ "no magic line", "a 1\n" END(1), 1 },
	{ "empty file", "", 1 },
	{ "magic only", MAGIC, 2 },
	{ "missing end line", MAGIC "a 1\nb 2\n", 4 },
	{ "end line without a newline", MAGIC "a 1\nend 1", 3 },
	{ "record without a newline", MAGIC "a 1", 2 },
	{ "end count too high", MAGIC "a 1\n" END(2), 3 },
	{ "end count too low", MAGIC "a 1\nb 1\n" END(1), 4 },
	{ "end count negative", MAGIC END(-1), 2 },
	{ "end count not a number", MAGIC END(x), 2 },
	{ "end without a count", MAGIC "a 1\nend\n", 3 },
	{ "invalid UID with a space", MAGIC "a b 1\n" END(1), 2 },
	{ "line with three fields", MAGIC "a 1 2\n" END(1), 2 },
	{ "UID with a tab", MAGIC "a\tb 1\n" END(1), 2 },
	{ "UID with 0x7f", MAGIC "a\x7f 1\n" END(1), 2 },
	{ "UID with 0x80", MAGIC "a\x80 1\n" END(1), 2 },
	{ "UID of 71 characters", MAGIC X70 "x 1\n" END(1), 2 },
	{ "negative time", MAGIC "a -1\n" END(1), 2 },
	{ "time with a plus sign", MAGIC "a +1\n" END(1), 2 },
	{ "time not a number", MAGIC "a x\n" END(1), 2 },
	{ "time with trailing junk", MAGIC "a 1x\n" END(1), 2 },
	{ "time out of range", MAGIC "a 99999999999999999999\n" END(1), 2 },
	{ "UID without a time", MAGIC "a\n" END(1), 2 },
	{ "UID and an empty time", MAGIC "a \n" END(1), 2 },
	{ "leading space", MAGIC " a 1\n" END(1), 2 },
	{ "empty line", MAGIC "a 1\n\n" END(1), 3 },
	{ "duplicate UID", MAGIC "a 1\nb 2\na 3\n" END(3), 4 },
	{ "garbage after end", MAGIC "a 1\n" END(1) "x 2\n", 4 },
	{ "a second end", MAGIC "a 1\n" END(1) END(1), 4 },
	{ "an empty line after end", MAGIC END(0) "\n", 3 },
	{ "CRLF line ends", "popfetch-uidstate 1\r\nend 0\r\n", 1 },
	{ "overlong line", MAGIC X70 X70 X70 X70 " 1\n" END(1), 2 },
	{ "a deleted mark in version 1", MAGIC "a 1 2 d\n" END(1), 2 },
	{ "size not a number", MAGIC2 MB0 "a 1 x\n" END(1), 3 },
	{ "negative size", MAGIC2 MB0 "a 1 -1\n" END(1), 3 },
	{ "size with a plus sign", MAGIC2 MB0 "a 1 +1\n" END(1), 3 },
	{ "size out of range", MAGIC2 MB0 "a 1 18446744073709551616\n" END(1),
	    3 },
	{ "size with trailing junk", MAGIC2 MB0 "a 1 2x\n" END(1), 3 },
	{ "empty size", MAGIC2 MB0 "a 1 \n" END(1), 3 },
	{ "deleted mark without a size", MAGIC2 MB0 "a 1 d\n" END(1), 3 },
	{ "unknown mark", MAGIC2 MB0 "a 1 2 x\n" END(1), 3 },
	{ "upper-case mark", MAGIC2 MB0 "a 1 2 D\n" END(1), 3 },
	{ "mark and more", MAGIC2 MB0 "a 1 2 dd\n" END(1), 3 },
	{ "five fields", MAGIC2 MB0 "a 1 2 d d\n" END(1), 3 },
	{ "trailing space after the mark", MAGIC2 MB0 "a 1 2 d \n" END(1), 3 },
	{ "two spaces before the mark", MAGIC2 MB0 "a 1 2  d\n" END(1), 3 },
	{ "bad size after a mailbox line and good records",
	    MAGIC2 "mailbox a@b\na 1\nb 1 2\nc 1 2 d\nd 1 2 e\n" END(4), 6 },
	{ "version 2 without its mailbox line", MAGIC2 "a 1\n" END(1), 2 },
	{ "a mailbox line without an @", MAGIC2 "mailbox 0\n" END(0), 2 },
	{ "duplicate UID, one deleted", MAGIC2 MB0 "a 1 2 d\na 3 4\n" END(2), 4 },
};

/* Journals that must be refused, after a valid state file. */
static const struct crow bad_journals[] = {
	{ "unknown record type", "X foo\n", 1 },
	{ "unknown record after good ones", "D a 1\nP b n\nX foo\n", 3 },
	{ "D without a time", "D a\n", 1 },
	{ "D with a negative time", "D a -1\n", 1 },
	{ "D with four fields", "D a 1 2 d\n", 1 },
	{ "D with a negative size", "D a 1 -1\n", 1 },
	{ "D with a size not a number", "D a 1 x\n", 1 },
	{ "D with an empty size", "D a 1 \n", 1 },
	{ "D with a size out of range", "D a 1 99999999999999999999\n", 1 },
	{ "D with a size after good ones", "D a 1 2\nD b 1\nD c 1 +2\n", 3 },
	{ "P with a third field", "P a n 1\n", 1 },
	{ "D with an invalid UID", "D a\x7f 1\n", 1 },
	{ "D with a 71-character UID", "D " X70 "x 1\n", 1 },
	{ "P without a name", "P a\n", 1 },
	{ "P with a name with a slash", "P a ../new/x\n", 1 },
	{ "P with a hidden name", "P a .x\n", 1 },
	{ "type without a space", "Da 1\n", 1 },
	{ "two spaces", "D  a 1\n", 1 },
	{ "lower-case type", "d a 1\n", 1 },
	{ "empty line", "D a 1\n\nD b 1\n", 2 },
	{ "a complete line after a bad one", "D a 1\nD b\nD c 1\n", 2 },
	{ "overlong line", "D a 1\nP b " X70 X70 X70 X70 X70 X70 X70 X70 X70
	    X70 X70 X70 "\nD c 1\n", 2 },
};

static void
check_refused(const char *kind, const struct crow *c, const char *path,
    const char *state, size_t statelen, const char *journal,
    size_t journallen)
{
	struct uidstate *s = NULL;
	struct rec r = { 0 };
	struct err e;
	char *st, *jo, *at, *p;
	size_t n1 = 0, n2 = 0;
	int rc;

	err_clear(&e);
	rc = uidstate_open(&s, sdir, ACCT, recover_cb, &r, &e);
	tap_ok(rc == -1 && e.code == EX_IOERR, "%s: %s: refused with "
	    "EX_IOERR (rc %d, code %d)", kind, c->what, rc, e.code);
	at = xasprintf("%s:%d:", path, c->line);
	tap_ok(strstr(e.msg, at) != NULL, "%s: %s: the message names "
	    "\"FILE:%d:\" (%s)", kind, c->what, c->line, e.msg);
	free(at);
	st = tu_slurp(state_path, &n1);
	jo = tu_slurp(journal_path, &n2);
	tap_ok(state == NULL ? st == NULL : st != NULL && n1 == statelen &&
	    memcmp(st, state, n1) == 0, "%s: %s: the state file is "
	    "untouched", kind, c->what);
	tap_ok(journal == NULL ? jo == NULL : jo != NULL &&
	    n2 == journallen && memcmp(jo, journal, n2) == 0,
	    "%s: %s: the journal is untouched", kind, c->what);
	p = xasprintf("%s.new", state_path);
	tap_ok(!exists(p) && r.calls == 0, "%s: %s: no new state file, no "
	    "recovery", kind, c->what);
	free(p);
	free(st);
	free(jo);
	if (rc == 0)
		uidstate_close(s);
	rec_free(&r);
}

static void
test_corrupt(void)
{
	const char *good = MAGIC "a 1\n" END(1);
	struct uidstate *s;
	struct rec r = { 0 };
	size_t i, n;

	for (i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++) {
		n = strlen(bad_states[i].text);
		tu_write_file(state_path, bad_states[i].text, n);
		check_refused("state", &bad_states[i], state_path,
		    bad_states[i].text, n, NULL, 0);
		reset_files();
	}
	for (i = 0; i < sizeof(bad_journals) / sizeof(bad_journals[0]);
	    i++) {
		n = strlen(bad_journals[i].text);
		tu_write_file(state_path, good, strlen(good));
		tu_write_file(journal_path, bad_journals[i].text, n);
		check_refused("journal", &bad_journals[i], journal_path,
		    good, strlen(good), bad_journals[i].text, n);
		reset_files();
	}

	/* A corrupt journal with no state file at all. */
	tu_write_file(journal_path, "X foo\n", 6);
	check_refused("journal without state", &bad_journals[0],
	    journal_path, NULL, 0, "X foo\n", 6);
	reset_files();

	/* Valid files are read, and a failed open left no lock behind. */
	tu_write_file(state_path, MAGIC END(0), strlen(MAGIC END(0)));
	s = open_ok("state with no UIDs", &r);
	tap_ok(s != NULL && uidstate_count(s) == 0, "a state file with "
	    "\"end 0\" loads empty");
	uidstate_close(s);
	tu_write_file(state_path, MAGIC "a 1\n" X70 " 0\n" END(2),
	    strlen(MAGIC "a 1\n" X70 " 0\n" END(2)));
	s = open_ok("state with two UIDs", &r);
	tap_ok(s != NULL && uidstate_count(s) == 2 && has_at(s, "a", 1) &&
	    has_at(s, X70, 0), "a state file with a 70-character UID and "
	    "time 0 loads");
	uidstate_close(s);
	reset_files();
}

/* Whether the file at path holds exactly text. */
static bool
file_is(const char *path, const char *text)
{
	size_t n;
	char *p = tu_slurp(path, &n);
	bool same = p != NULL && n == strlen(text) &&
	    memcmp(p, text, n) == 0;

	if (!same)
		printf("# %s holds: %s\n", path, p != NULL ? p : "(nothing)");
	free(p);
	return same;
}

static bool
deleted_size(const struct uidstate *s, const char *uid, uint64_t want)
{
	uint64_t size = 0;

	return uidstate_was_deleted(s, uid, &size) && size == want;
}

/* Sizes and deletion marks: journaled, written, read back. */
static void
test_sizes(void)
{
	const char *uids[] = { "a", "b", "c" };
	const uint64_t sizes[] = { 10, 20, UINT64_MAX };
	struct uidstate *s;
	struct rec r = { 0 };
	struct err e;

	err_clear(&e);
	s = open_ok("sizes", &r);
	if (s == NULL)
		exit(99);
	tap_ok(uidstate_delivered(s, uids, sizes, 3, 100, &e) == 0 &&
	    file_is(journal_path, JMAGIC "D a 100 10\nD b 100 20\n"
	    "D c 100 18446744073709551615\n"), "delivered with sizes: "
	    "\"D UID TIME SIZE\" in the journal (%s)", e.msg);
	tap_ok(!uidstate_was_deleted(s, "a", NULL), "delivered is not "
	    "deleted");
	/* The size LIST gave when deleting is the one kept. */
	uidstate_deleted(s, "a", 10);
	uidstate_deleted(s, "b", 25);
	uidstate_deleted(s, "zz", 5);
	tap_ok(deleted_size(s, "a", 10) && deleted_size(s, "b", 25) &&
	    !uidstate_was_deleted(s, "c", NULL) &&
	    !uidstate_was_deleted(s, "zz", NULL) && uidstate_count(s) == 3,
	    "deleted marks a and b with the sizes given, an unknown UID not");
	tap_ok(uidstate_commit(s, &e) == 0 && file_is(state_path, MAGIC2
	    MB0 "a 100 10 d\nb 100 25 d\nc 100 18446744073709551615\nend:3\n"),
	    "the state file has \"UID TIME SIZE\" and \"UID TIME SIZE d\"");
	uidstate_close(s);

	s = open_ok("sizes reopen", &r);
	if (s == NULL)
		exit(99);
	tap_ok(has_at(s, "a", 100) && deleted_size(s, "a", 10) &&
	    deleted_size(s, "b", 25) && has_at(s, "c", 100) &&
	    !uidstate_was_deleted(s, "c", NULL), "reopen keeps sizes and "
	    "marks");
	/* A reused UID: the new message replaces the deleted one. */
	tap_ok(uidstate_delivered(s, (const char *[]){ "a", "c" },
	    (const uint64_t[]){ 11, 99 }, 2, 200, &e) == 0 &&
	    has_at(s, "a", 200) && !uidstate_was_deleted(s, "a", NULL) &&
	    has_at(s, "c", 100), "delivered again: a deleted UID takes the "
	    "new message's time, one not deleted keeps its record");
	uidstate_deleted(s, "a", 11);
	tap_ok(deleted_size(s, "a", 11), "and is marked deleted again");
	tap_ok(uidstate_commit(s, &e) == 0 && file_is(state_path, MAGIC2
	    MB0 "a 200 11 d\nb 100 25 d\nc 100 18446744073709551615\nend:3\n"),
	    "written with the new time and size");
	/* The same mark again changes nothing: no rewrite. */
	unlink(state_path);
	uidstate_deleted(s, "b", 25);
	tap_ok(uidstate_commit(s, &e) == 0 && !exists(state_path),
	    "marking deleted what is already, with its size, is no change");
	uidstate_deleted(s, "b", 26);
	tap_ok(uidstate_commit(s, &e) == 0 && exists(state_path),
	    "another size is");
	uidstate_close(s);
	reset_files();
}

/* Older forms read as before, and a journal's sizes applied. */
static void
test_old_forms(void)
{
	const char *v2 = MAGIC2 "mailbox x@y\na 1\nb 2 30\nc 3 40 d\n"
	    "m 4 18446744073709551615 d\n" END(4);
	struct uidstate *s;
	struct rec r = { 0 };
	struct err e;
	time_t t = 0;

	err_clear(&e);
	tu_write_file(state_path, MAGIC "a 1\nb 2\n" END(2),
	    strlen(MAGIC "a 1\nb 2\n" END(2)));
	s = open_ok("version 1", &r);
	tap_ok(s != NULL && has_at(s, "a", 1) && has_at(s, "b", 2) &&
	    !uidstate_was_deleted(s, "a", NULL), "version 1 records load, "
	    "no size, not deleted");
	uidstate_close(s);
	tap_ok(file_is(state_path, MAGIC "a 1\nb 2\n" END(2)), "and are "
	    "left as they are when nothing changes");

	tu_write_file(state_path, v2, strlen(v2));
	s = open_ok("version 2, every form", &r);
	if (s == NULL)
		exit(99);
	tap_ok(has_at(s, "a", 1) && has_at(s, "b", 2) && has_at(s, "c", 3) &&
	    !uidstate_was_deleted(s, "a", NULL) &&
	    !uidstate_was_deleted(s, "b", NULL) && deleted_size(s, "c", 40) &&
	    deleted_size(s, "m", UINT64_MAX), "version 2: \"UID TIME\", "
	    "\"UID TIME SIZE\" and \"UID TIME SIZE d\" load");
	uidstate_deleted(s, "a", 7);
	tap_ok(uidstate_commit(s, &e) == 0 && file_is(state_path, MAGIC2
	    "mailbox x@y\na 1 7 d\nb 2 30\nc 3 40 d\n"
	    "m 4 18446744073709551615 d\n" END(4)), "a record without a "
	    "size takes one when marked deleted; the rest round-trips");
	uidstate_close(s);

	/* A journal of sizes, and old "D UID TIME" lines. */
	tu_write_file(journal_path, "D c 9 41\nD e 5 6\nD f 7\nD b 8 31\n",
	    strlen("D c 9 41\nD e 5 6\nD f 7\nD b 8 31\n"));
	s = open_ok("journal with sizes", &r);
	tap_ok(s != NULL && has_at(s, "c", 9) &&
	    !uidstate_was_deleted(s, "c", NULL) && has_at(s, "e", 5) &&
	    has_at(s, "f", 7) && has_at(s, "b", 2), "replay: a deleted UID "
	    "delivered again is the new message's, others as before");
	uidstate_close(s);
	tap_ok(!exists(journal_path) && file_is(state_path, MAGIC2
	    "mailbox x@y\na 1 7 d\nb 2 30\nc 9 41\n"
	    "m 4 18446744073709551615 d\ne 5 6\nf 7\n" END(6)),
	    "and folded in, byte for byte");

	/* A reused UID pending at a crash, found in the Maildir. */
	tu_write_file(journal_path, "P m 1700000000.M1P1Q1_popfetch.h\n",
	    strlen("P m 1700000000.M1P1Q1_popfetch.h\n"));
	r.found_names[0] = "1700000000.M1P1Q1_popfetch.h";
	s = open_ok("pending reused UID", &r);
	tap_ok(s != NULL && uidstate_has(s, "m", &t) && t > 4 &&
	    !uidstate_was_deleted(s, "m", NULL), "a recovered message under "
	    "a deleted UID replaces it (size unknown: not compared)");
	uidstate_close(s);
	rec_free(&r);
	r.found_names[0] = NULL;
	reset_files();
}

static void
test_cantcreate(void)
{
	struct uidstate *s = NULL;
	struct rec r = { 0 };
	struct err e;
	char *file = xasprintf("%s/regular", top);
	char *dir = xasprintf("%s/sub/state", file);

	tu_write_file(file, "x", 1);
	err_clear(&e);
	tap_ok(uidstate_open(&s, dir, ACCT, recover_cb, &r, &e) == -1 &&
	    e.code == EX_CANTCREAT && e.msg[0] != '\0', "a state directory "
	    "under a regular file: EX_CANTCREAT (%s)", e.msg);
	err_clear(&e);
	tap_ok(uidstate_open(&s, file, ACCT, recover_cb, &r, &e) == -1 &&
	    e.code == EX_CANTCREAT, "a state directory that is a regular "
	    "file: EX_CANTCREAT (%s)", e.msg);
	free(dir);
	free(file);
}

/* Opens the account tied to mailbox; *was as uidstate_use_mailbox says. */
static struct uidstate *
open_mailbox(const char *what, const char *mailbox, int *rc, char **was)
{
	struct rec r = { 0 };
	struct uidstate *s = open_ok(what, &r);
	struct err e;

	err_clear(&e);
	*was = NULL;
	if (s == NULL)
		return NULL;
	if ((*rc = uidstate_use_mailbox(s, mailbox, was, &e)) == -1)
		tap_ok(0, "%s: use_mailbox failed: %s", what, e.msg);
	return s;
}

static void
test_mailbox(void)
{
	const char *a[] = { "1", "2", "3" }, *b[] = { "1" };
	char *alice = uidstate_mailbox("alice", "Pop.Example.COM");
	char *bob = uidstate_mailbox("bob", "pop.example.com");
	char *odd = uidstate_mailbox("a b%c\n", "h"), *was, *p, *text;
	char longuser[400];
	struct uidstate *s;
	struct err e;
	time_t t;
	int rc;

	reset_files();
	err_clear(&e);
	tap_ok(strcmp(alice, "alice@pop.example.com") == 0, "a mailbox is "
	    "user@host, the host's case folded (%s)", alice);
	tap_ok(strcmp(odd, "a%20b%25c%0A@h") == 0, "spaces, %% and controls "
	    "are %%-escaped (%s)", odd);
	memset(longuser, 'u', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	p = uidstate_mailbox(longuser, "h");
	tap_ok(strlen(p) == 160 && strchr(p, '~') != NULL, "a long one is "
	    "cut to 160 characters with a hash (%zu)", strlen(p));
	free(p);
	longuser[100] = 'v';
	p = uidstate_mailbox(longuser, "h");
	text = uidstate_mailbox(longuser + 1, "h");
	tap_ok(strcmp(p, text) != 0, "two long ones that differ past the "
	    "cut stay apart");
	free(p);
	free(text);

	/* A UID "mailbox" first in a version 1 state is a UID, and stays
	 * one when written back (found by fuzz_state). */
	text = MAGIC "mailbox 7\n" END(1);
	tu_write_file(state_path, text, strlen(text));
	s = open_mailbox("UID mailbox", alice, &rc, &was);
	uidstate_close(s);
	s = open_mailbox("UID mailbox, again", alice, &rc, &was);
	tap_ok(s != NULL && rc == 0 && uidstate_count(s) == 1 &&
	    has_at(s, "mailbox", 7), "a UID named \"mailbox\" survives");
	uidstate_close(s);
	reset_files();

	/* A state written by popfetch 0.1 is adopted, UIDs and all. */
	text = MAGIC "1 5\n2 5\n" END(2);
	tu_write_file(state_path, text, strlen(text));
	s = open_mailbox("v1 state", alice, &rc, &was);
	tap_ok(s != NULL && rc == 0 && was == NULL && uidstate_count(s) == 2,
	    "a version 1 state is adopted for the mailbox");
	uidstate_close(s);
	text = tu_slurp(state_path, NULL);
	tap_ok(text != NULL && strncmp(text, "popfetch-uidstate 2\nmailbox "
	    "alice@pop.example.com\n", 50) == 0, "and rewritten naming it");
	free(text);

	s = open_mailbox("same mailbox", alice, &rc, &was);
	tap_ok(s != NULL && rc == 0 && uidstate_count(s) == 2 &&
	    uidstate_delivered(s, a, NULL, 3, 7, &e) == 0 &&
	    uidstate_commit(s, &e) == 0, "the same mailbox: its UIDs apply");
	uidstate_close(s);

	/* Pointed at bob: alice's UIDs must not apply (numbered alike). */
	s = open_mailbox("switch to bob", bob, &rc, &was);
	tap_ok(s != NULL && rc == 1 && was != NULL && strcmp(was, alice) ==
	    0 && uidstate_count(s) == 0 && !uidstate_has(s, "1", &t),
	    "another mailbox starts empty, and says which it was");
	free(was);
	tap_ok(s != NULL && uidstate_delivered(s, b, NULL, 1, 9, &e) == 0 &&
	    uidstate_commit(s, &e) == 0, "bob's UID recorded");
	uidstate_close(s);
	s = open_mailbox("bob again", bob, &rc, &was);
	tap_ok(s != NULL && rc == 0 && uidstate_count(s) == 1 &&
	    has_at(s, "1", 9), "bob's state is kept across runs");
	uidstate_close(s);

	/* And back: alice's three come back, bob's one is kept aside. */
	s = open_mailbox("back to alice", alice, &rc, &was);
	tap_ok(s != NULL && rc == 1 && uidstate_count(s) == 3 &&
	    has_at(s, "3", 7) && has_at(s, "1", 5), "switching back restores "
	    "the old mailbox's state");
	free(was);
	uidstate_close(s);
	s = open_mailbox("to bob once more", bob, &rc, &was);
	tap_ok(s != NULL && rc == 1 && uidstate_count(s) == 1 &&
	    has_at(s, "1", 9), "and bob's comes back too");
	free(was);
	uidstate_close(s);

	/* A run that died between the two renames left no state file. */
	unlink(state_path);
	s = open_mailbox("lost current", alice, &rc, &was);
	tap_ok(s != NULL && rc == 0 && uidstate_count(s) == 3,
	    "with no state file, the one kept aside for the mailbox is used");
	uidstate_close(s);

	/* A first run that died: a journal and no state. What it recorded
	 * is this mailbox's, not dropped by the tie. */
	reset_files();
	tu_rm_rf(sdir);
	if (mkdir(sdir, 0700) == -1)
		exit(99);
	tu_write_file(journal_path, "D j1 5\n", 7);
	s = open_mailbox("journal only", alice, &rc, &was);
	tap_ok(s != NULL && rc == 0 && uidstate_count(s) == 1 &&
	    has_at(s, "j1", 5), "a journal without a state is kept");
	uidstate_close(s);
	free(alice);
	free(bob);
	free(odd);
	reset_files();
}

int
main(void)
{
	top = tu_mkdtemp();
	umask(022);
	sdir = xasprintf("%s/state/popfetch", top);
	state_path = xasprintf("%s/%s.state", sdir, ACCT);
	journal_path = xasprintf("%s/%s.journal", sdir, ACCT);
	test_basics();
	test_retain();
	test_tricky_uids();
	test_lock();
	test_crash_recovery();
	test_recover_fails();
	test_torn();
	test_journal_version();
	test_corrupt();
	test_sizes();
	test_old_forms();
	test_cantcreate();
	test_mailbox();
	tu_rm_rf(top);
	free(sdir);
	free(state_path);
	free(journal_path);
	free(top);
	return tap_done();
}
