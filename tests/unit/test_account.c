/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "pop3.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "maildir.h"
#include "uidstate.h"
#include "tap.h"
#include "testutil.h"

/*
 * The account run (account.c, account_plan.c, account_commit.c) against
 * a scripted POP3 session and a temporary store, with the commit order
 * checked at each step as the run takes it:
 *   - a message is journaled as pending only once its file was synced;
 *   - it is handed to the target only once synced (a Maildir) and
 *     journaled as pending, and not yet recorded as delivered;
 *   - DELE for it is queued only once it is recorded as delivered and
 *     its file is in new/ with the bytes the server sent.
 * The DELE check wraps pop3_queue (the linker's --wrap), so it runs in
 * the run's own thread as the command is queued, not when the server
 * happens to read it. Then each case runs again against the same server
 * and store, and every message must end in new/ exactly once, with tmp/
 * empty: nothing lost, nothing twice, whatever the first run met.
 *
 * The store is real (maildir.c, uidstate.c); the target is this file's
 * deliver_ functions, which the linker takes instead of deliver.c's (the
 * test object comes before the library): a Maildir, or one message per
 * handover as an MDA takes them, whose answers each case scripts.
 */

#define MAXMSG		140
#define NAME		"t"

/* --- what each step saw ----------------------------------------------- */

static char *dir, *md_path, *state_dir;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned violations;
static char first_violation[512];
/* Steps seen in the current run; DELEs whose record was in the journal. */
static unsigned checked_sync, checked_hand, checked_dele, dele_journaled;

static void __attribute__((format(printf, 1, 2)))
violation(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&seen_mu);
	if (violations++ == 0) {
		va_start(ap, fmt);
		vsnprintf(first_violation, sizeof(first_violation), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&seen_mu);
}

/*
 * Whether the account's journal has a line "KIND A B" with field (1: A,
 * 2: B) equal to s; *other gets the other field when it does.
 */
static bool
journal_has(char kind, int field, const char *s, char *other, size_t olen)
{
	char *path = NULL, *text, *line, *save = NULL, *a, *b;
	bool found = false;

	if (asprintf(&path, "%s/%s.journal", state_dir, NAME) == -1)
		abort();
	text = tu_slurp(path, NULL);
	free(path);
	if (text == NULL)
		return false;
	for (line = strtok_r(text, "\n", &save); line != NULL && !found;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != kind || line[1] != ' ')
			continue;
		a = line + 2;
		if ((b = strchr(a, ' ')) == NULL)
			continue;
		*b++ = '\0';
		if (strcmp(field == 1 ? a : b, s) == 0) {
			found = true;
			if (other != NULL)
				snprintf(other, olen, "%s", field == 1 ? b : a);
		}
	}
	free(text);
	return found;
}

/* Whether the state (its file and journal, as a report reads it) has uid. */
static bool
recorded(const char *uid)
{
	struct uidstate *st;
	char *mailbox = uidstate_mailbox("u", "127.0.0.1");
	size_t pending;
	bool other, has;
	struct err e;

	if (uidstate_peek(&st, state_dir, NAME, mailbox, &pending, &other,
	    &e) == -1) {
		free(mailbox);
		violation("state unreadable: %s", e.msg);
		return false;
	}
	has = uidstate_has(st, uid, NULL);
	uidstate_close(st);
	free(mailbox);
	return has;
}

/* How many files in the Maildir's new/ hold exactly the n bytes at want. */
static unsigned
in_new(const char *want, size_t n)
{
	char path[4096], *text;
	struct dirent *de;
	unsigned count = 0;
	size_t len;
	DIR *d;

	snprintf(path, sizeof(path), "%s/new", md_path);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/new/%s", md_path,
		    de->d_name);
		if ((text = tu_slurp(path, &len)) == NULL)
			continue;
		if (len == n && memcmp(text, want, n) == 0)
			count++;
		free(text);
	}
	closedir(d);
	return count;
}

/* --- the target: deliver.h, scripted ---------------------------------- */

struct deliver {
	struct maildir	*md;
};

/* Scripted answers of deliver_hand besides enum deliver_result's. */
#define BROKEN		(-1)	/* delivery is broken: nothing handed over */
#define LOST_ANSWER	(-2)	/* handed over, then -1: as a crash would
				   leave it, in new/ and only pending */

static struct {
	bool	 per_message;	/* one message per handover (an MDA) */
	int	 answers[4];	/* hand's answers in call order, then TAKEN */
	size_t	 nanswers, calls;
	size_t	 sync_room;	/* > 0: sync this many, then the disk is full */
	unsigned sync_ms;	/* a slow disk: each sync takes this long */
} target;

int
deliver_open(struct deliver **dp, const struct account *a,
    const char *state, struct err *e)
{
	struct deliver *d = calloc(1, sizeof(*d));

	(void)state;
	if (d == NULL || maildir_open(&d->md, a->maildir, e) == -1) {
		free(d);
		return -1;
	}
	*dp = d;
	return 0;
}

void
deliver_close(struct deliver *d)
{
	if (d == NULL)
		return;
	maildir_close(d->md);
	free(d);
}

struct maildir *
deliver_spool(struct deliver *d)
{
	return d->md;
}

bool
deliver_is_maildir(const struct deliver *d)
{
	(void)d;
	return !target.per_message;
}

int
deliver_sync(struct deliver *d, struct maildir_msg **msgs, size_t n,
    struct err *e)
{
	size_t i;

	checked_sync++;
	for (i = 0; i < n; i++)
		if (journal_has('P', 2, maildir_msg_name(msgs[i]), NULL, 0))
			violation("journaled as pending before its file was "
			    "synced: %s", maildir_msg_name(msgs[i]));
	if (target.sync_ms > 0)
		usleep(target.sync_ms * 1000);
	if (target.sync_room > 0 && target.sync_room < n) {
		if (maildir_sync(d->md, msgs, target.sync_room, e) == -1)
			return -1;
		err_errno(e, EX_IOERR, ENOSPC, "scripted: %s",
		    strerror(ENOSPC));
		return -1;
	}
	return target.per_message ? 0 : maildir_sync(d->md, msgs, n, e);
}

int
deliver_hand(struct deliver *d, struct maildir_msg **msgs, size_t n,
    size_t *taken, struct err *e)
{
	char uid[128];
	int answer;
	size_t i;

	*taken = target.per_message ? 1 : n;
	checked_hand++;
	for (i = 0; i < *taken; i++) {
		if (!target.per_message && !maildir_msg_synced(msgs[i]))
			violation("handed over before synced: %s",
			    maildir_msg_name(msgs[i]));
		if (!journal_has('P', 2, maildir_msg_name(msgs[i]), uid,
		    sizeof(uid)))
			violation("handed over before journaled as pending: "
			    "%s", maildir_msg_name(msgs[i]));
		else if (journal_has('D', 1, uid, NULL, 0))
			violation("recorded as delivered before it was "
			    "handed over: %s", uid);
	}
	answer = target.calls < target.nanswers ?
	    target.answers[target.calls] : DELIVER_TAKEN;
	target.calls++;
	switch (answer) {
	case DELIVER_TAKEN:
		return maildir_commit(d->md, msgs, *taken, e) == -1 ? -1 :
		    DELIVER_TAKEN;
	case LOST_ANSWER:
		if (maildir_commit(d->md, msgs, *taken, e) == -1)
			return -1;
		err_set(e, EX_IOERR, "scripted: no answer after the handover");
		return -1;
	case BROKEN:
		err_set(e, EX_IOERR, "scripted: the target is broken");
		return -1;
	default:
		err_set(e, answer == DELIVER_REFUSED ? EX_UNAVAILABLE :
		    EX_TEMPFAIL, "scripted: answer %d", answer);
		return answer;
	}
}

int
deliver_recover(void *arg, const char *const *names, size_t n, bool *found,
    struct err *e)
{
	struct deliver *d = arg;

	if (!target.per_message)
		return maildir_recover(d->md, names, n, found, e);
	memset(found, 0, n * sizeof(*found));
	return 0;
}

/* --- the session: a scripted POP3 server, one connection per run ---- */

struct smsg {
	char	 uid[16];
	char	*body;		/* as it must reach the Maildir (LF) */
	size_t	 len;
	bool	 gone;		/* deleted by an earlier session */
	bool	 marked;	/* DELE in this session */
};

static struct server {
	int		 lfd;
	unsigned	 port;
	struct smsg	 msgs[MAXMSG];
	size_t		 n;
	/* The script. */
	bool		 no_pipelining;
	unsigned	 drop_after_retr;	/* close after so many RETRs */
	unsigned	 drop_in_retr;	/* close halfway through RETR n */
	unsigned	 refuse_retr;	/* -ERR to RETR n */
	bool		 refuse_dele;
	bool		 silent_quit;	/* close at QUIT, commit nothing */
	/* What the session did. */
	unsigned	 retrs, rsets, noops;
	pthread_t	 thread;
} srv;

static void
srv_send(int fd, const char *s, size_t n)
{
	ssize_t w;

	while (n > 0 && (w = write(fd, s, n)) > 0) {
		s += w;
		n -= (size_t)w;
	}
}

static void
srv_say(int fd, const char *s)
{
	srv_send(fd, s, strlen(s));
}

/* The message numbered num (1-based) that the session may see, or NULL. */
static struct smsg *
srv_msg(const char *arg)
{
	unsigned long num = strtoul(arg, NULL, 10);

	if (num == 0 || num > srv.n || srv.msgs[num - 1].gone)
		return NULL;
	return &srv.msgs[num - 1];
}

/*
 * A message on the wire: CRLF lines, a leading dot doubled, ended by a
 * lone dot; or, with half, its first half only (the link is lost there).
 */
static void
srv_retr(int fd, const struct smsg *m, bool half)
{
	const char *p = m->body, *end = m->body + m->len, *nl;
	char head[64];

	snprintf(head, sizeof(head), "+OK %zu octets\r\n", m->len);
	srv_say(fd, head);
	if (half)
		end = m->body + m->len / 2;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			srv_send(fd, p, (size_t)(end - p));
			return;
		}
		if (*p == '.')
			srv_say(fd, ".");
		srv_send(fd, p, (size_t)(nl - p));
		srv_say(fd, "\r\n");
	}
	if (!half)
		srv_say(fd, ".\r\n");
}

/* One command; false when the session ends. */
static bool
srv_command(int fd, char *line)
{
	char buf[128];
	struct smsg *m;
	size_t i, num;

	if (strcmp(line, "CAPA") == 0) {
		srv_say(fd, "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n");
		if (!srv.no_pipelining)
			srv_say(fd, "PIPELINING\r\n");
		srv_say(fd, ".\r\n");
	} else if (strncmp(line, "USER ", 5) == 0)
		srv_say(fd, "+OK\r\n");
	else if (strncmp(line, "PASS ", 5) == 0)
		srv_say(fd, strcmp(line + 5, "p") == 0 ? "+OK in\r\n" :
		    "-ERR [AUTH] no\r\n");
	else if (strcmp(line, "UIDL") == 0 || strcmp(line, "LIST") == 0) {
		srv_say(fd, "+OK\r\n");
		for (i = 0; i < srv.n; i++) {
			if (srv.msgs[i].gone)
				continue;
			if (line[0] == 'U')
				snprintf(buf, sizeof(buf), "%zu %s\r\n", i + 1,
				    srv.msgs[i].uid);
			else
				snprintf(buf, sizeof(buf), "%zu %zu\r\n", i + 1,
				    srv.msgs[i].len);
			srv_say(fd, buf);
		}
		srv_say(fd, ".\r\n");
	} else if (strncmp(line, "RETR ", 5) == 0 &&
	    (m = srv_msg(line + 5)) != NULL) {
		num = (size_t)(m - srv.msgs) + 1;
		if (num == srv.refuse_retr) {
			srv_say(fd, "-ERR scripted: cannot read it now\r\n");
			return true;
		}
		srv.retrs++;
		srv_retr(fd, m, num == srv.drop_in_retr);
		return num != srv.drop_in_retr &&
		    srv.retrs != srv.drop_after_retr;
	} else if (strncmp(line, "DELE ", 5) == 0 &&
	    (m = srv_msg(line + 5)) != NULL) {
		m->marked = !srv.refuse_dele;
		srv_say(fd, srv.refuse_dele ? "-ERR scripted: not now\r\n" :
		    "+OK marked\r\n");
	} else if (strcmp(line, "RSET") == 0) {
		srv.rsets++;
		for (i = 0; i < srv.n; i++)
			srv.msgs[i].marked = false;
		srv_say(fd, "+OK\r\n");
	} else if (strcmp(line, "NOOP") == 0) {
		srv.noops++;
		srv_say(fd, "+OK\r\n");
	} else if (strcmp(line, "QUIT") == 0) {
		if (srv.silent_quit)
			return false;
		for (i = 0; i < srv.n; i++)
			if (srv.msgs[i].marked)
				srv.msgs[i].gone = true;
		srv_say(fd, "+OK bye\r\n");
		return false;
	} else
		srv_say(fd, "-ERR scripted: unknown\r\n");
	return true;
}

static void *
srv_session(void *arg)
{
	struct pollfd pfd = { srv.lfd, POLLIN, 0 };
	char buf[4096], *nl;
	size_t have = 0;
	ssize_t r;
	bool on = true;
	int fd;

	(void)arg;
	if (poll(&pfd, 1, 20000) != 1 || (fd = accept(srv.lfd, NULL,
	    NULL)) == -1)
		return NULL;
	srv_say(fd, "+OK scripted ready\r\n");
	while (on && (r = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		have += (size_t)r;
		buf[have] = '\0';
		while (on && (nl = strstr(buf, "\r\n")) != NULL) {
			*nl = '\0';
			on = srv_command(fd, buf);
			have -= (size_t)(nl + 2 - buf);
			memmove(buf, nl + 2, have + 1);
		}
	}
	close(fd);
	for (have = 0; have < srv.n; have++)
		srv.msgs[have].marked = false;
	return NULL;
}

static void
srv_listen(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(srv.lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(srv.lfd, 4) == -1 ||
	    getsockname(srv.lfd, (struct sockaddr *)&sin, &len) == -1) {
		fprintf(stderr, "cannot listen on 127.0.0.1: %s\n",
		    strerror(errno));
		exit(99);
	}
	srv.port = ntohs(sin.sin_port);
}

/* --- the DELE check, as the run queues it ----------------------------- */

int	__real_pop3_queue(struct pop3 *, enum pop3_kind, const struct pop3_cb *,
	    void *, uint64_t, const char *, struct err *);
int	__wrap_pop3_queue(struct pop3 *, enum pop3_kind, const struct pop3_cb *,
	    void *, uint64_t, const char *, struct err *);

/*
 * Every command the account run queues passes here first: a DELE must
 * find its message recorded as delivered, and in new/ once, as sent.
 */
int
__wrap_pop3_queue(struct pop3 *p, enum pop3_kind kind,
    const struct pop3_cb *cb, void *arg, uint64_t expect, const char *cmd,
    struct err *e)
{
	unsigned long num;
	const struct smsg *m;

	if (strncmp(cmd, "DELE ", 5) == 0) {
		checked_dele++;
		num = strtoul(cmd + 5, NULL, 10);
		if (num == 0 || num > srv.n)
			violation("DELE of a message never listed: %s", cmd);
		else {
			m = &srv.msgs[num - 1];
			if (!recorded(m->uid))
				violation("DELE before %s was recorded as "
				    "delivered", m->uid);
			if (in_new(m->body, m->len) != 1)
				violation("DELE of %s, which is not in new/ "
				    "once", m->uid);
			dele_journaled += journal_has('D', 1, m->uid, NULL, 0);
		}
	}
	return __real_pop3_queue(p, kind, cb, arg, expect, cmd, e);
}

/* --- the cases -------------------------------------------------------- */

struct row {
	const char	*name;
	size_t		 nmsgs;
	bool		 keep, no_pipelining, keepalive, per_message;
	/* The target's script. */
	int		 answers[4];	/* from its first call */
	size_t		 nanswers;
	size_t		 sync_room;
	unsigned	 sync_ms;
	/* The server's script. */
	unsigned	 drop_after_retr, drop_in_retr, refuse_retr;
	bool		 refuse_dele, silent_quit;
	/* The first run: exit status, messages stored, DELEs queued (each
	 * one of a message stored in that run), RSETs, messages left on the
	 * server, NOOPs at least. */
	int		 code;
	unsigned long	 fetched;
	unsigned	 deles, rsets;
	size_t		 left;
	unsigned	 noops;
	/* The second run, with the script's faults gone: RETRs. */
	unsigned	 retrs2;
};

static const struct row rows[] = {
	{ .name = "delete mode", .nmsgs = 3,
	    .fetched = 3, .deles = 3 },
	{ .name = "keep mode", .nmsgs = 3, .keep = true,
	    .fetched = 3, .left = 3 },
	{ .name = "no pipelining", .nmsgs = 3, .no_pipelining = true,
	    .fetched = 3, .deles = 3 },
	{ .name = "two batches", .nmsgs = 130,
	    .fetched = 130, .deles = 130 },
	{ .name = "two batches, no pipelining", .nmsgs = 130,
	    .no_pipelining = true, .fetched = 130, .deles = 130 },
	{ .name = "slow disk: the commit in a thread, NOOPs meanwhile",
	    .nmsgs = 3, .keepalive = true, .sync_ms = 2500,
	    .fetched = 3, .deles = 3, .noops = 1 },
	{ .name = "one message per handover", .nmsgs = 3,
	    .per_message = true, .fetched = 3, .deles = 3 },
	{ .name = "target broken", .nmsgs = 3,
	    .answers = { BROKEN }, .nanswers = 1,
	    .code = EX_IOERR, .rsets = 1, .left = 3, .retrs2 = 3 },
	{ .name = "target silent after the handover (found in new/ next run)",
	    .nmsgs = 3, .answers = { LOST_ANSWER }, .nanswers = 1,
	    .code = EX_IOERR, .rsets = 1, .left = 3, .retrs2 = 0 },
	{ .name = "target defers message 2", .nmsgs = 3,
	    .per_message = true, .answers = { 0, DELIVER_TEMPFAIL },
	    .nanswers = 2, .code = EX_TEMPFAIL, .fetched = 2, .deles = 2,
	    .left = 1, .retrs2 = 1 },
	{ .name = "target refuses message 2", .nmsgs = 3,
	    .per_message = true, .answers = { 0, DELIVER_REFUSED },
	    .nanswers = 2, .code = EX_UNAVAILABLE, .fetched = 2, .deles = 2,
	    .left = 1, .retrs2 = 1 },
	{ .name = "target held at message 2", .nmsgs = 3,
	    .per_message = true, .answers = { 0, DELIVER_HELD },
	    .nanswers = 2, .code = EX_TEMPFAIL, .fetched = 1, .deles = 1,
	    .left = 2, .retrs2 = 2 },
	{ .name = "disk full after 1 synced", .nmsgs = 3, .sync_room = 1,
	    .code = EX_IOERR, .fetched = 1, .deles = 1, .left = 2,
	    .retrs2 = 2 },
	{ .name = "RETR 2 refused", .nmsgs = 3, .refuse_retr = 2,
	    .code = EX_TEMPFAIL, .fetched = 2, .deles = 2, .left = 1,
	    .retrs2 = 1 },
	{ .name = "link lost after RETR 2", .nmsgs = 3,
	    .drop_after_retr = 2, .code = EX_TEMPFAIL, .fetched = 2,
	    .left = 3, .retrs2 = 1 },
	{ .name = "link lost inside RETR 2", .nmsgs = 3, .drop_in_retr = 2,
	    .code = EX_TEMPFAIL, .fetched = 1, .left = 3, .retrs2 = 2 },
	{ .name = "DELE refused", .nmsgs = 3, .refuse_dele = true,
	    .fetched = 3, .deles = 3, .left = 3 },
	{ .name = "QUIT not answered", .nmsgs = 3, .silent_quit = true,
	    .code = EX_TEMPFAIL, .fetched = 3, .deles = 3, .left = 3 },
};

static void
write_config(const char *path, const struct row *row)
{
	char text[2048];

	snprintf(text, sizeof(text),
	    "state_dir = \"%s\";\n"
	    "accounts = ( {\n"
	    "  name = \"%s\"; host = \"127.0.0.1\"; port = %u;\n"
	    "  tls = \"none\"; allow_plaintext = true;\n"
	    "  user = \"u\"; password = \"p\"; timeout = 20;\n"
	    "  maildir = \"%s\"; keep = %s; keepalive = %d;\n"
	    "} );\n", state_dir, NAME, srv.port, md_path,
	    row->keep ? "true" : "false", row->keepalive ? 1 : 0);
	tu_write_file(path, text, strlen(text));
	if (chmod(path, 0600) == -1)
		abort();
}

/* One account run against a fresh session of the scripted server. */
static int
run_once(const struct config *cfg, struct account_result *res)
{
	struct account_opts o;
	int code;

	memset(&o, 0, sizeof(o));
	o.mode = ACCOUNT_FETCH;
	checked_sync = checked_hand = checked_dele = dele_journaled = 0;
	srv.retrs = srv.rsets = srv.noops = 0;
	if (pthread_create(&srv.thread, NULL, srv_session, NULL) != 0)
		abort();
	code = account_run(cfg, &cfg->accounts[0], &o, res);
	pthread_join(srv.thread, NULL);
	return code;
}

static size_t
srv_left(void)
{
	size_t i, n = 0;

	for (i = 0; i < srv.n; i++)
		n += !srv.msgs[i].gone;
	return n;
}

/* The server's mailbox for a case: a line with a leading dot in each. */
static void
srv_fill(const struct row *row)
{
	size_t i;
	int len;

	for (i = 0; i < srv.n; i++)
		free(srv.msgs[i].body);
	srv.n = row->nmsgs;
	for (i = 0; i < srv.n; i++) {
		memset(&srv.msgs[i], 0, sizeof(srv.msgs[i]));
		snprintf(srv.msgs[i].uid, sizeof(srv.msgs[i].uid), "u%zu", i);
		if ((len = asprintf(&srv.msgs[i].body, "From: a@example.org\n"
		    "Subject: %zu\n\nbody %zu of %s\n.a line with a leading "
		    "dot\n.\nend\n", i, i, row->name)) == -1)
			abort();
		srv.msgs[i].len = (size_t)len;
	}
	srv.no_pipelining = row->no_pipelining;
	srv.drop_after_retr = row->drop_after_retr;
	srv.drop_in_retr = row->drop_in_retr;
	srv.refuse_retr = row->refuse_retr;
	srv.refuse_dele = row->refuse_dele;
	srv.silent_quit = row->silent_quit;
}

static void
case_run(const struct row *row)
{
	char *cfgpath = NULL;
	struct account_result res;
	struct config *cfg;
	unsigned lost = 0, twice = 0, copies;
	struct err e;
	size_t i;
	int code;

	tu_rm_rf(md_path);
	tu_rm_rf(state_dir);
	memset(&target, 0, sizeof(target));
	target.per_message = row->per_message;
	memcpy(target.answers, row->answers, sizeof(target.answers));
	target.nanswers = row->nanswers;
	target.sync_room = row->sync_room;
	target.sync_ms = row->sync_ms;
	srv_fill(row);
	violations = 0;
	first_violation[0] = '\0';

	if (asprintf(&cfgpath, "%s/config", dir) == -1)
		abort();
	write_config(cfgpath, row);
	if (config_load(cfgpath, NULL, &cfg, &e) == -1) {
		fprintf(stderr, "%s: %s\n", cfgpath, e.msg);
		exit(99);
	}
	code = run_once(cfg, &res);
	tap_ok(code == row->code, "%s: run 1 exits %d (want %d: %s)",
	    row->name, code, row->code, res.error);
	tap_ok(res.fetched == row->fetched, "%s: run 1 stored %lu (want %lu)",
	    row->name, res.fetched, row->fetched);
	tap_ok(srv_left() == row->left, "%s: run 1 leaves %zu on the server "
	    "(want %zu)", row->name, srv_left(), row->left);
	tap_ok(srv.rsets == row->rsets, "%s: run 1 sent RSET %u times (want "
	    "%u)", row->name, srv.rsets, row->rsets);
	tap_ok(srv.noops >= row->noops, "%s: run 1 sent %u NOOPs (want at "
	    "least %u)", row->name, srv.noops, row->noops);
	/* Each step was seen, so the order was checked, not assumed; and
	 * each DELE found its delivered record where the run wrote it,
	 * so the check that none came before the handover can see one. */
	tap_ok((row->fetched == 0 || (checked_sync > 0 && checked_hand > 0)) &&
	    checked_dele == row->deles && dele_journaled == row->deles,
	    "%s: run 1 steps checked: %u syncs, %u handovers, %u DELEs "
	    "(want %u), %u of them journaled", row->name, checked_sync,
	    checked_hand, checked_dele, row->deles, dele_journaled);
	tap_ok(tu_entries(md_path, "tmp") == 0, "%s: run 1 leaves tmp/ empty "
	    "(%ld files)", row->name, tu_entries(md_path, "tmp"));

	/* The faults are over: the next run must settle everything. */
	memset(&target, 0, sizeof(target));
	target.per_message = row->per_message;
	srv.drop_after_retr = srv.drop_in_retr = srv.refuse_retr = 0;
	srv.refuse_dele = srv.silent_quit = false;
	code = run_once(cfg, &res);
	tap_ok(code == EX_OK, "%s: run 2 exits %d (%s)", row->name, code,
	    res.error);
	tap_ok(srv.retrs == row->retrs2, "%s: run 2 fetched %u (want %u)",
	    row->name, srv.retrs, row->retrs2);
	tap_ok(srv_left() == (row->keep ? row->nmsgs : 0), "%s: run 2 leaves "
	    "%zu on the server", row->name, srv_left());
	for (i = 0; i < srv.n; i++) {
		copies = in_new(srv.msgs[i].body, srv.msgs[i].len);
		lost += copies == 0;
		twice += copies > 1;
	}
	tap_ok(lost == 0 && twice == 0 && tu_entries(md_path, "tmp") == 0,
	    "%s: every message in new/ once (%u lost, %u twice), tmp/ empty",
	    row->name, lost, twice);
	tap_ok(violations == 0, "%s: commit order kept at every step (%u "
	    "broken; first: %s)", row->name, violations, first_violation);
	config_free(cfg);
	free(cfgpath);
}

int
main(void)
{
	size_t i;

	log_set_level(LL_WARN);
	dir = tu_mkdtemp();
	if (asprintf(&md_path, "%s/Maildir", dir) == -1 ||
	    asprintf(&state_dir, "%s/state", dir) == -1)
		return 99;
	srv_listen();
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		case_run(&rows[i]);
	for (i = 0; i < srv.n; i++)
		free(srv.msgs[i].body);
	close(srv.lfd);
	tu_rm_rf(dir);
	free(dir);
	free(md_path);
	free(state_dir);
	return tap_done();
}
