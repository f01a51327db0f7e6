/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "buf.h"
#include "cred.h"
#include "log.h"
#include "maildir.h"
#include "pop3.h"
#include "uid.h"
#include "uidstate.h"
#include "xmalloc.h"

/* Tuning; overridable at build time (-D) to measure what each costs. */
#ifndef WINDOW_CMDS
#define WINDOW_CMDS	256		/* commands in flight, pipelined */
#endif
#ifndef WINDOW_BYTES
#define WINDOW_BYTES	(16u << 20)	/* expected reply bytes in flight */
#endif
#ifndef BATCH_MSGS
#define BATCH_MSGS	128		/* messages per durable commit */
#endif
#ifndef BATCH_BYTES
#define BATCH_BYTES	(32u << 20)
#endif

enum action {
	A_FETCH,	/* new: retrieve, store, then delete unless keep */
	A_DELETE,	/* already stored in an earlier run: delete only */
	A_KEEP,		/* already stored, kept on the server */
	A_SKIP		/* left on the server, with a warning */
};

struct run;

struct msg {
	struct run	*run;
	const char	*uid;		/* a key of run->present, or NULL */
	uint64_t	 size;		/* as LIST says; may lie */
	uint32_t	 num;		/* valid only in this session */
	unsigned	 action:2;	/* enum action */
	bool		 listed:1;	/* LIST had a line for it */
	bool		 uid_listed:1;	/* UIDL had a line for it */
	bool		 stored:1;	/* durably in the Maildir */
	bool		 deleted:1;	/* DELE answered +OK */
};

struct run {
	const struct config	*cfg;
	const struct account	*acct;
	struct account_result	*res;
	const volatile sig_atomic_t *cancel;
	struct pop3		*pop;
	struct maildir		*md;
	struct uidstate		*st;
	struct msg		*msgs;
	size_t			 nmsgs, msgsize;
	struct uidmap		*present;	/* UID -> index, as listed */
	bool			 have_uidl;
	bool			 listed_all;	/* LIST was asked */
	unsigned		 misplaced;	/* numbers out of order */
	bool			 any_new;	/* a UID not yet recorded */

	uint32_t		*queue;		/* A_FETCH indexes, in order */
	size_t			 nqueue, next_fetch;
	uint32_t		*deles;		/* indexes to DELE */
	size_t			 ndeles, next_dele;

	struct maildir_msg	*cur;		/* the message being received */
	struct maildir_msg	**batch;	/* received, not yet committed */
	size_t			*batch_idx;
	size_t			 nbatch;
	uint64_t		 batch_bytes;

	bool			 local_failed;	/* delivery failed: stop */
	struct err		 local_err;
};

static void
account_trace(void *arg, char dir, const char *text)
{
	const struct account *a = arg;

	log_msg(dir == POP3_TRACE_INFO ? LL_TRACE : LL_DEBUG, "%s: %c %s",
	    a->name, dir, text);
}

static int
account_recover(void *arg, const char *const *names, size_t n, bool *found,
    struct err *e)
{
	return maildir_recover(arg, names, n, found, e);
}

static int
account_login(struct run *r, struct err *e)
{
	const struct account *a = r->acct;
	struct pop3_login l;
	char *secret = NULL;
	int rc;

	if (cred_password(a, a->timeout, &secret, e) == -1)
		return -1;
	memset(&l, 0, sizeof(l));
	l.host = a->host;
	l.port = a->port;
	l.tls = a->tls;
	l.ca_file = a->ca_file;
	l.fingerprint = a->fingerprint;
	l.user = a->user;
	l.secret = secret;
	l.auth = a->auth;
	l.timeout = a->timeout;
	l.trace = account_trace;
	l.trace_arg = (void *)a;
	l.cancel = r->cancel;
	rc = pop3_open(&r->pop, &l, e);
	xfree_secret(secret);
	return rc;
}

static int
account_bad_line(const char *what, const char *line, size_t n, struct err *e)
{
	char *esc = buf_escape(line, n, 120);

	err_set(e, EX_PROTOCOL, "malformed %s line from server: \"%s\"", what,
	    esc);
	free(esc);
	return -1;
}

/* The message numbered num, or NULL. */
static struct msg *
account_msg_find(struct run *r, unsigned long num, size_t *pos)
{
	size_t lo = 0, hi = r->nmsgs, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->msgs[mid].num == num)
			return &r->msgs[mid];
		if (r->msgs[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

/*
 * The message numbered num, made when new. Listings come in rising
 * order, so it is nearly always appended; a number that only one listing
 * has is put in its place (at most a thousand times per session: a
 * server sending everything backwards is refused). NULL past that, or
 * for a number beyond 32 bits.
 */
static struct msg *
account_msg_at(struct run *r, unsigned long num)
{
	size_t pos = r->nmsgs;
	struct msg *m;

	if (num > UINT32_MAX)
		return NULL;
	if (r->nmsgs > 0 && num <= r->msgs[r->nmsgs - 1].num) {
		if ((m = account_msg_find(r, num, &pos)) != NULL)
			return m;
		if (++r->misplaced > 1000)
			return NULL;
	}
	if (r->nmsgs == r->msgsize) {
		r->msgsize = r->msgsize ? r->msgsize * 2 : 64;
		r->msgs = xreallocarray(r->msgs, r->msgsize, sizeof(*r->msgs));
	}
	memmove(&r->msgs[pos + 1], &r->msgs[pos],
	    (r->nmsgs - pos) * sizeof(*r->msgs));
	r->nmsgs++;
	m = &r->msgs[pos];
	memset(m, 0, sizeof(*m));
	m->num = (uint32_t)num;
	return m;
}

static int
account_list_line(void *arg, const char *line, size_t n, struct err *e)
{
	struct run *r = arg;
	unsigned long num;
	uint64_t size;
	struct msg *m;

	if (pop3_parse_list(line, n, &num, &size) == -1)
		return account_bad_line("LIST", line, n, e);
	if ((m = account_msg_at(r, num)) == NULL || m->listed)
		return account_bad_line("LIST (number repeated, or out of "
		    "order)", line, n, e);
	m->listed = true;
	m->size = size;
	return 0;
}

static int
account_uidl_line(void *arg, const char *line, size_t n, struct err *e)
{
	struct run *r = arg;
	const char *rest;
	struct uidmap_entry *en;
	unsigned long num;
	size_t len, pos;
	struct msg *m;
	char *esc;

	if (pop3_parse_uidl(line, n, &num, &rest, &len) == -1)
		return account_bad_line("UIDL", line, n, e);
	if ((m = account_msg_at(r, num)) == NULL || m->uid_listed)
		return account_bad_line("UIDL (number repeated, or out of "
		    "order)", line, n, e);
	m->uid_listed = true;
	if (!uid_valid(rest, len)) {
		/* Never a path, never a key we could confuse: leave it. */
		esc = buf_escape(rest, len, 100);
		log_msg(LL_WARN, "%s: message %lu has an invalid UID \"%s\" "
		    "(RFC 1939: 1 to 70 printable characters); left on the "
		    "server", r->acct->name, num, esc);
		free(esc);
		m->action = A_SKIP;
		return 0;
	}
	/* The line is NUL-terminated (pop3.h), so rest is a string. */
	if ((en = uidmap_get(r->present, rest)) == NULL) {
		/* By number: a record may still move (account_msg_at). */
		en = uidmap_put(r->present, rest, (int64_t)m->num);
		m->uid = en->uid;
		if (!uidstate_has(r->st, m->uid, NULL))
			r->any_new = true;
		return 0;
	}
	/* Messages that share a UID cannot be tracked apart: leave them. */
	esc = buf_escape(rest, len, 80);
	log_msg(LL_WARN, "%s: the server gives UID \"%s\" to more than one "
	    "message; leaving them on the server", r->acct->name, esc);
	free(esc);
	m->action = A_SKIP;
	m->uid = en->uid;
	if ((m = account_msg_find(r, (unsigned long)en->value, &pos)) != NULL)
		m->action = A_SKIP;
	return 0;
}

static int
account_uidl_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct run *r = arg;

	r->have_uidl = ok;
	/* Without UIDs nothing recorded can be recognised, so going on would
	 * deliver it again. Only a server that never offered UIDL, for an
	 * account with nothing recorded, is fetched without them. */
	if (!ok && (uidstate_count(r->st) > 0 ||
	    (pop3_caps(r->pop) & POP3_CAP_UIDL) || (n > 5 && line[5] == '[')))
		return pop3_refused(e, EX_TEMPFAIL, "UIDL refused, and without "
		    "it mail already fetched would be fetched again", line, n);
	return 0;
}

static int
account_list_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	(void)arg;
	return ok ? 0 : pop3_refused(e, EX_PROTOCOL, "LIST refused", line, n);
}

/*
 * What is on the server, by number, UID and size. Delete mode nearly
 * always has new mail: LIST and UIDL go together. Keep mode asks UIDL
 * first, and LIST only when something is new (a poll of a large mailbox
 * with nothing new then reads half as much).
 */
static int
account_scan(struct run *r, struct err *e)
{
	static const struct pop3_cb list_cb = {
		account_list_status, account_list_line, NULL
	};
	static const struct pop3_cb uidl_cb = {
		account_uidl_status, account_uidl_line, NULL
	};
	bool pipelined = pop3_caps(r->pop) & POP3_CAP_PIPELINING;

	if (r->acct->keep) {
		if (pop3_queue(r->pop, POP3_LINES, &uidl_cb, r, 0, "UIDL",
		    e) == -1 || pop3_drain(r->pop, e) == -1)
			return -1;
		if (!r->have_uidl || !r->any_new)
			return 0;
	}
	r->listed_all = true;
	if (pop3_queue(r->pop, POP3_LINES, &list_cb, r, 0, "LIST", e) == -1 ||
	    (!pipelined && pop3_drain(r->pop, e) == -1) ||
	    (!r->acct->keep && pop3_queue(r->pop, POP3_LINES, &uidl_cb, r, 0,
	    "UIDL", e) == -1) ||
	    pop3_drain(r->pop, e) == -1)
		return -1;
	return 0;
}

/* The session's listing, with the capabilities read after login. */
static int
account_list(struct run *r, struct err *e)
{
	int rc = account_scan(r, e);

	/* Known once CAPA's reply was read, even when the listing failed. */
	r->res->login_delay = pop3_login_delay(r->pop);
	return rc;
}

static enum action
account_decide(struct run *r, struct msg *m, time_t now)
{
	const struct account *a = r->acct;
	time_t first;

	if (m->uid != NULL && uidstate_has(r->st, m->uid, &first)) {
		if (!a->keep)
			return A_DELETE;
		if (a->keep_days > 0 &&
		    now - first >= (time_t)a->keep_days * 86400)
			return A_DELETE;
		return A_KEEP;
	}
	if (a->max_size > 0 && m->size > a->max_size) {
		log_msg(LL_WARN, "%s: message %lu is %" PRIu64 " bytes, over "
		    "max_size; left on the server", a->name, (unsigned long)m->num,
		    m->size);
		return A_SKIP;
	}
	return A_FETCH;
}

static int
account_plan(struct run *r, struct err *e)
{
	time_t now = time(NULL);
	struct msg *m;
	size_t i;

	if (!r->have_uidl && r->acct->keep) {
		err_set(e, EX_PROTOCOL, "the server does not support UIDL, "
		    "which keep = true needs to tell new mail from old");
		return -1;
	}
	r->queue = xreallocarray(NULL, r->nmsgs, sizeof(*r->queue));
	r->deles = xreallocarray(NULL, r->nmsgs, sizeof(*r->deles));
	for (i = 0; i < r->nmsgs; i++) {
		m = &r->msgs[i];
		m->run = r;
		if (r->have_uidl && !m->uid_listed) {
			log_msg(LL_WARN, "%s: UIDL gave message %lu no UID; "
			    "left on the server", r->acct->name,
			    (unsigned long)m->num);
			m->action = A_SKIP;
		} else if (r->listed_all && !m->listed) {
			log_msg(LL_WARN, "%s: LIST gave message %lu no size; "
			    "left on the server", r->acct->name,
			    (unsigned long)m->num);
			m->action = A_SKIP;
		}
		if (m->action != A_SKIP)
			m->action = account_decide(r, m, now);
		if (m->action == A_FETCH)
			r->queue[r->nqueue++] = (uint32_t)i;
		else if (m->action == A_DELETE)
			r->deles[r->ndeles++] = (uint32_t)i;
		else if (m->action == A_KEEP)
			r->res->kept++;
		else
			r->res->skipped++;
	}
	return 0;
}

/*
 * A local failure: take the error out of e (the session goes on, to stay
 * in sync with the server's replies), stop asking for more. Returns 0.
 */
static int
account_local_fail(struct run *r, struct err *e)
{
	if (!r->local_failed) {
		r->local_failed = true;
		r->local_err = *e;
	}
	err_clear(e);
	maildir_msg_free(r->cur);
	r->cur = NULL;
	return 0;
}

static void
account_batch_free(struct run *r)
{
	size_t i;

	for (i = 0; i < r->nbatch; i++)
		maildir_msg_free(r->batch[i]);
	r->nbatch = 0;
	r->batch_bytes = 0;
}

/*
 * Makes a batch durable, in the order that loses nothing: files synced,
 * then journaled as pending, then moved into new/ (and new/ synced),
 * then recorded as delivered. Only then are they queued for DELE.
 */
static int
account_commit(struct run *r, struct err *e)
{
	const char **uids = NULL, **names = NULL;
	size_t i, n = r->nbatch;
	struct msg *m;
	int rc = -1;

	if (n == 0)
		return 0;
	uids = xreallocarray(NULL, n, sizeof(*uids));
	names = xreallocarray(NULL, n, sizeof(*names));
	for (i = 0; i < n; i++) {
		uids[i] = r->msgs[r->batch_idx[i]].uid;
		names[i] = maildir_msg_name(r->batch[i]);
	}
	if (maildir_sync(r->md, r->batch, n, e) == -1 ||
	    (r->have_uidl && uidstate_pending(r->st, uids, names, n, e) == -1) ||
	    maildir_commit(r->md, r->batch, n, e) == -1 ||
	    (r->have_uidl && uidstate_delivered(r->st, uids, n, time(NULL),
	    e) == -1))
		goto out;
	for (i = 0; i < n; i++) {
		m = &r->msgs[r->batch_idx[i]];
		m->stored = true;
		r->res->fetched++;
		r->res->bytes += maildir_msg_size(r->batch[i]);
		if (!r->acct->keep)
			r->deles[r->ndeles++] = (uint32_t)r->batch_idx[i];
		else
			r->res->kept++;
	}
	rc = 0;
out:
	account_batch_free(r);
	free(uids);
	free(names);
	return rc;
}

static int
account_retr_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;
	char *esc;

	if (r->local_failed)
		return 0;
	if (!ok) {
		esc = buf_escape(line, n, 200);
		log_msg(LL_WARN, "%s: RETR %lu refused: \"%s\"; left on the "
		    "server", r->acct->name, (unsigned long)m->num, esc);
		free(esc);
		r->res->skipped++;
		r->res->code = err_worse(r->res->code, EX_TEMPFAIL);
		return 0;
	}
	if (maildir_msg_begin(r->md, &r->cur, e) == -1)
		return account_local_fail(r, e);
	return 0;
}

static int
account_retr_data(void *arg, const char *p, size_t n, struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;

	if (r->cur != NULL && maildir_msg_write(r->cur, p, n, e) == -1)
		return account_local_fail(r, e);
	return 0;
}

static int
account_retr_end(void *arg, struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;

	if (r->cur == NULL)
		return 0;
	if (maildir_msg_finish(r->cur, e) == -1)
		return account_local_fail(r, e);
	r->batch[r->nbatch] = r->cur;
	r->batch_idx[r->nbatch++] = (size_t)(m - r->msgs);
	r->batch_bytes += maildir_msg_size(r->cur);
	r->cur = NULL;
	if ((r->nbatch >= BATCH_MSGS || r->batch_bytes >= BATCH_BYTES) &&
	    account_commit(r, e) == -1)
		return account_local_fail(r, e);
	return 0;
}

static int
account_dele_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct msg *m = arg;
	char *esc;

	(void)e;
	if (ok) {
		m->deleted = true;
		return 0;
	}
	/* Stored and recorded: the next run deletes it again. */
	esc = buf_escape(line, n, 200);
	log_msg(LL_WARN, "%s: DELE %lu refused: \"%s\"", m->run->acct->name,
	    (unsigned long)m->num, esc);
	free(esc);
	return 0;
}

/* Queues the next command the windows allow; false when none is due. */
static bool
account_queue_next(struct run *r, size_t window, struct err *e, int *rc)
{
	static const struct pop3_cb retr_cb = {
		account_retr_status, account_retr_data, account_retr_end
	};
	static const struct pop3_cb dele_cb = {
		account_dele_status, NULL, NULL
	};
	struct msg *m;
	char cmd[32];

	if (r->local_failed || pop3_inflight(r->pop) >= window)
		return false;
	if (r->next_dele < r->ndeles) {
		m = &r->msgs[r->deles[r->next_dele++]];
		snprintf(cmd, sizeof(cmd), "DELE %lu", (unsigned long)m->num);
		*rc = pop3_queue(r->pop, POP3_SINGLE, &dele_cb, m, 0, cmd, e);
		return *rc == 0;
	}
	if (r->next_fetch >= r->nqueue)
		return false;
	m = &r->msgs[r->queue[r->next_fetch]];
	if (pop3_inflight(r->pop) > 0 &&
	    pop3_inflight_bytes(r->pop) + m->size > WINDOW_BYTES)
		return false;
	r->next_fetch++;
	snprintf(cmd, sizeof(cmd), "RETR %lu", (unsigned long)m->num);
	*rc = pop3_queue(r->pop, POP3_STREAM, &retr_cb, m, m->size, cmd, e);
	return *rc == 0;
}

/* RETR and DELE, pipelined when the server allows it. */
static int
account_fetch(struct run *r, struct err *e)
{
	size_t window = pop3_caps(r->pop) & POP3_CAP_PIPELINING ?
	    WINDOW_CMDS : 1;
	int rc = 0;

	r->batch = xreallocarray(NULL, BATCH_MSGS, sizeof(*r->batch));
	r->batch_idx = xreallocarray(NULL, BATCH_MSGS, sizeof(*r->batch_idx));
	for (;;) {
		while (account_queue_next(r, window, e, &rc))
			;
		if (rc == -1)
			return -1;
		if (pop3_inflight(r->pop) == 0) {
			/* The last batch; its DELEs go out next round. */
			if (r->nbatch > 0 && !r->local_failed) {
				if (account_commit(r, e) == -1)
					/* Only records e; always returns 0. */
					(void)account_local_fail(r, e);
				continue;
			}
			return 0;
		}
		if (pop3_step(r->pop, e) == -1)
			return -1;
	}
}

static int
account_rset_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	(void)arg;
	return ok ? 0 : pop3_refused(e, EX_PROTOCOL, "RSET refused", line, n);
}

/*
 * Ends a healthy session. After a local failure RSET first undoes every
 * DELE of the session (they are redone next run, from the state).
 * Returns 0 when QUIT was answered +OK.
 */
static int
account_quit(struct run *r, struct err *e)
{
	static const struct pop3_cb rset_cb = {
		account_rset_status, NULL, NULL
	};
	size_t i;

	if (r->local_failed &&
	    (pop3_queue(r->pop, POP3_SINGLE, &rset_cb, r, 0, "RSET", e) == -1 ||
	    pop3_drain(r->pop, e) == -1))
		return -1;
	if (pop3_quit(r->pop, e) == -1)
		return -1;
	if (r->local_failed)
		return 0;
	for (i = 0; i < r->nmsgs; i++)
		if (r->msgs[i].deleted)
			r->res->deleted++;
	return 0;
}

/*
 * Folds the run into the state. When the server's full list is known
 * (scanned), forgets the UIDs it no longer has.
 */
static int
account_save_state(struct run *r, bool scanned, struct err *e)
{
	/* A UID deleted now is forgotten only once a later listing no
	 * longer shows it: some servers answer DELE and QUIT with +OK and
	 * keep the message, and it must not then look new. */
	if (scanned && r->have_uidl)
		uidstate_retain(r->st, r->present);
	return uidstate_commit(r->st, e);
}

static void
account_report(struct run *r, const struct err *e)
{
	if (e->code == EX_OK)
		return;
	log_msg(LL_ERROR, "%s: %s", r->acct->name, e->msg);
	if (r->res->error[0] == '\0')
		/* Cut short if need be: it is a summary for the daemon. */
		snprintf(r->res->error, sizeof(r->res->error), "%.*s",
		    (int)sizeof(r->res->error) - 1, e->msg);
	r->res->code = err_worse(r->res->code, e->code);
}

static void
account_free(struct run *r)
{
	maildir_msg_free(r->cur);
	account_batch_free(r);
	pop3_close(r->pop);
	uidstate_close(r->st);
	maildir_close(r->md);
	uidmap_free(r->present);
	free(r->msgs);
	free(r->queue);
	free(r->deles);
	free(r->batch);
	free(r->batch_idx);
}

/* The session, from login to QUIT. *scanned: the server's list is whole. */
static void
account_session(struct run *r, struct err *e, bool *scanned)
{
	int rc;

	if (account_login(r, e) == -1 || account_list(r, e) == -1)
		return;
	if (account_plan(r, e) == -1) {
		struct err qe;

		/* Nothing was asked of the server: leave it politely. */
		if (pop3_quit(r->pop, &qe) == -1)
			log_msg(LL_DEBUG, "%s: %s", r->acct->name, qe.msg);
		return;
	}
	*scanned = true;
	if (account_fetch(r, e) == -1) {
		struct err ce;

		/* Dropped without QUIT: the server keeps everything. The
		 * complete messages already received are stored, so a flaky
		 * link still makes progress; no DELE follows them now. */
		if (!r->local_failed && r->nbatch > 0 &&
		    account_commit(r, &ce) == -1)
			account_report(r, &ce);
		return;
	}
	rc = account_quit(r, e);
	if (r->local_failed) {
		/* The delivery error is the one to report, QUIT's too. */
		if (rc == 0)
			*e = r->local_err;
		else
			account_report(r, &r->local_err);
	}
}

int
account_run(const struct config *cfg, const struct account *a,
    const volatile sig_atomic_t *cancel, struct account_result *res)
{
	struct run r;
	bool scanned = false;
	struct err e, se;

	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	r.cfg = cfg;
	r.acct = a;
	r.res = res;
	r.cancel = cancel;
	r.present = uidmap_new();
	err_clear(&e);
	err_clear(&se);
	if (maildir_open(&r.md, a->maildir, &e) == 0 &&
	    uidstate_open(&r.st, cfg->state_dir, a->name, account_recover,
	    r.md, &e) == 0) {
		account_session(&r, &e, &scanned);
		/* Whatever happened, what was delivered is recorded. */
		if (account_save_state(&r, scanned, &se) == -1)
			account_report(&r, &se);
	}
	account_report(&r, &e);
	account_free(&r);
	return res->code;
}
