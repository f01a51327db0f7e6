/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "clock.h"
#include "agent.h"
#include "cred.h"
#include "deliver.h"
#include "fsutil.h"
#include "header.h"
#include "log.h"
#include "maildir.h"
#include "pop3.h"
#include "status.h"
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
	bool		 skipped:1;	/* counted in res->skipped */
	bool		 deleted:1;	/* DELE answered +OK */
	bool		 oversize:1;	/* over max_size: skipped */
};

struct run {
	const struct config	*cfg;
	const struct account	*acct;
	struct account_result	*res;
	const struct account_opts *opts;
	struct account_progress	 noprogress;	/* when opts has none */
	struct account_progress	*prog;
	struct pop3		*pop;
	struct deliver		*dl;		/* the account's target */
	struct maildir		*md;		/* its spool (deliver.h) */
	struct uidstate		*st;
	int			 told;		/* a failure said to -q now */
	struct status		 status;	/* what earlier runs said */
	bool			 busy;		/* another process has it */
	struct msg		*msgs;
	size_t			 nmsgs, msgsize;
	struct uidmap		*present;	/* UID -> index, as listed */
	bool			 have_uidl;
	bool			 listed_all;	/* LIST was asked */
	unsigned		 misplaced;	/* numbers out of order */
	bool			 any_new;	/* a UID not yet recorded,
						   or marked deleted */

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
	bool			 commit_due;	/* a full batch, not pipelining */
	struct err		 local_err;

	/* The target takes nothing more (out of room, an MDA's 73 or 75):
	 * what came before is committed; the rest stays on the server. */
	bool			 held;
	const struct msg	*held_msg;	/* the first message left */
	bool			 full;		/* held for want of room */
	struct err		 full_err;	/* the first such error */
	const char		*full_dir;	/* where room is lacking */

	uint64_t		 sizes_done;	/* LIST sizes of those received */
	unsigned long		 left_over;	/* new, held back by max_messages */
	struct top_slot		*tops;		/* TOPs in flight */
	char			 stat[96];	/* --check: what STAT said */
};

/* One TOP n 0 in flight; replies come in order. */
struct top_slot {
	struct run		*r;
	size_t			 mi;	/* index into r->msgs */
	/* Called once the reply is in: why is NULL, or the escaped -ERR. */
	void			(*done)(struct top_slot *, const char *why);
	struct header_pick	 h;
};

static void
account_trace(void *arg, char dir, const char *text)
{
	const struct account *a = arg;

	log_msg(dir == POP3_TRACE_INFO ? LL_TRACE : LL_DEBUG, "%s: %c %s",
	    a->name, dir, text);
}

int
account_use_mailbox(struct uidstate *st, const struct account *a,
    struct err *e)
{
	char *mailbox = uidstate_mailbox(a->user, a->host), *was;
	int rc = uidstate_use_mailbox(st, mailbox, &was, e);

	if (rc == 1)
		log_msg(LL_WARN, "%s: the account now names mailbox %s (it "
		    "was %s): %s; the old state is kept for a switch back",
		    a->name, mailbox, was, uidstate_count(st) > 0 ?
		    "using the state kept for it" : "its mail is all new");
	free(mailbox);
	free(was);
	return rc == -1 ? -1 : 0;
}

/*
 * What became of UTF-8 mode (RFC 6856), as a sentence, or NULL when the
 * server did not offer it. The caller frees it.
 */
static char *
account_utf8_text(const struct run *r)
{
	const char *reply;

	switch (pop3_utf8(r->pop, &reply)) {
	case POP3_UTF8_ON:
		return xstrdup("UTF-8 mode enabled (RFC 6856)");
	case POP3_UTF8_REFUSED:
		return xasprintf("the server refused UTF8 (\"%s\"); going on "
		    "without UTF-8 mode", reply);
	case POP3_UTF8_LATE:
		return xasprintf("the server offers UTF8, which is valid only "
		    "before the login; libcurl logs in for %s, so UTF-8 mode "
		    "is not enabled", r->acct->auth == AUTH_XOAUTH2 ?
		    "SASL XOAUTH2" : "SASL OAUTHBEARER");
	default:
		return NULL;
	}
}

static int
account_login(struct run *r, struct err *e)
{
	const struct account *a = r->acct;
	struct pop3_login l;
	char *secret = NULL, *utf8;
	int rc;

	if (cred_password(a, a->timeout, &secret, e) == -1)
		return -1;
	memset(&l, 0, sizeof(l));
	l.host = a->host;
	l.port = a->port;
	l.tls = a->tls;
	l.ca_file = a->ca_file;
	l.fingerprint = a->fingerprint;
	l.cert_fingerprint = a->cert_fingerprint;
	l.pin_only = a->pin_only;
	l.tls_min = a->tls_min;
	l.tls_cert = a->tls_cert;
	l.tls_key = a->tls_key;
	l.user = a->user;
	l.secret = secret;
	l.auth = a->auth;
	l.timeout = a->timeout;
	l.trace = account_trace;
	l.trace_arg = (void *)a;
	l.proxy = a->proxy;
	l.cancel = r->opts->cancel;
	rc = pop3_open(&r->pop, &l, e);
	xfree_secret(secret);
	if (rc == 0 && (utf8 = account_utf8_text(r)) != NULL) {
		/* Not worth more: a refusal leaves the session as it was. */
		account_trace((void *)a, POP3_TRACE_NOTE, utf8);
		free(utf8);
	}
	return rc;
}

/*
 * A message left on the server for a reason that may last: said once
 * (shown with -q too), noted for --status, and at later runs only with
 * -v. One without a UID cannot be noted: it is said at every run.
 */
static void __attribute__((format(printf, 4, 5)))
account_stuck(struct run *r, const char *uid, uint64_t size,
    const char *fmt, ...)
{
	char text[512];
	bool before;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	before = uid != NULL &&
	    status_note_find(&r->status, uid, NOTE_STUCK) != NULL;
	log_msg(before ? LL_DEBUG : LL_NOTICE, "%s: %s%s", r->acct->name,
	    text, before ? " (reported before)" : "");
	if (!before && uid != NULL && r->opts->mode == ACCOUNT_FETCH)
		status_note_add(&r->status, uid, NOTE_STUCK, size,
		    (int64_t)time(NULL), text);
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
		/* A deleted one's size tells whether it is new: LIST. */
		if (!uidstate_has(r->st, m->uid, NULL) ||
		    uidstate_was_deleted(r->st, m->uid, NULL))
			r->any_new = true;
		return 0;
	}
	/* Messages that share a UID cannot be tracked apart: leave them. */
	esc = buf_escape(rest, len, 80);
	account_stuck(r, en->uid, m->size, "the server gives UID \"%s\" to "
	    "more than one message; leaving them on the server", esc);
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

/*
 * Whether m, listed under a UID whose deletion the server committed in
 * an earlier run, is a new message: servers that make UIDs from the
 * content (popa3d: the headers) give a new message the UID of one gone.
 * Another size tells it apart; the same size is the same message, kept
 * by a server that answered DELE and QUIT with +OK. Kept messages are
 * never marked deleted, so their sizes (GNU Mailutils rewrites headers)
 * are never compared.
 */
static bool
account_reused(const struct run *r, const struct msg *m)
{
	uint64_t size;
	char *esc;

	if (!m->listed || !uidstate_was_deleted(r->st, m->uid, &size) ||
	    size == m->size)
		return false;
	esc = buf_escape(m->uid, strlen(m->uid), 80);
	log_msg(LL_WARN, "%s: message %lu has the UID \"%s\" of a message "
	    "deleted earlier, but another size (%" PRIu64 " bytes, not %"
	    PRIu64 "): the server reused the UID; taken as new mail",
	    r->acct->name, (unsigned long)m->num, esc, m->size, size);
	free(esc);
	return true;
}

static enum action
account_decide(struct run *r, struct msg *m, time_t now)
{
	const struct account *a = r->acct;
	time_t first;

	if (m->uid != NULL && uidstate_has(r->st, m->uid, &first) &&
	    !account_reused(r, m)) {
		if (!a->keep)
			return A_DELETE;
		if (a->keep_days > 0 &&
		    now - first >= (time_t)a->keep_days * 86400)
			return A_DELETE;
		return A_KEEP;
	}
	if (a->max_size > 0 && m->size > a->max_size) {
		/* Said by account_oversize, with its From and Subject. */
		m->oversize = true;
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
		if (m->action == A_FETCH && r->acct->max_messages > 0 &&
		    r->nqueue >= r->acct->max_messages)
			/* Left, untouched and still new, for the next run. */
			r->left_over++;
		else if (m->action == A_FETCH) {
			r->queue[r->nqueue++] = (uint32_t)i;
			r->prog->msgs_total++;
			r->prog->bytes_total = m->size > UINT64_MAX -
			    r->prog->bytes_total ? UINT64_MAX :
			    r->prog->bytes_total + m->size;
		}
		else if (m->action == A_DELETE)
			r->deles[r->ndeles++] = (uint32_t)i;
		else if (m->action == A_KEEP)
			r->res->kept++;
		else
			r->res->skipped++;
	}
	if (r->left_over > 0 && r->opts->mode == ACCOUNT_FETCH)
		log_msg(LL_INFO, "%s: %lu more new messages left on the server "
		    "for the next run (max_messages = %u)", r->acct->name,
		    r->left_over, r->acct->max_messages);
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

/*
 * The target takes nothing more in this run, from message m on: m and
 * every message after it stay on the server, not recorded; those stored
 * before it are committed, recorded and deleted as usual, so the session
 * goes on without RSET, but fetches nothing more.
 */
static void
account_hold(struct run *r, const struct msg *m)
{
	r->held = true;
	/* r->msgs is in server order, as the queue is. */
	if (r->held_msg == NULL || m < r->held_msg)
		r->held_msg = m;
}

/*
 * How many messages of the queue were held back, and their size (LIST's)
 * in *bytes; each is counted as skipped.
 */
static size_t
account_held_back(struct run *r, uint64_t *bytes)
{
	struct msg *m;
	size_t n = 0, i;

	*bytes = 0;
	for (i = 0; r->held && i < r->nqueue; i++) {
		m = &r->msgs[r->queue[i]];
		if (m < r->held_msg || m->stored)
			continue;
		n++;
		*bytes += m->size;
		if (!m->skipped)
			r->res->skipped++;
		m->skipped = true;
	}
	return n;
}

/*
 * No room for message m (e says why: err_no_space) in dir: the run is
 * held from m on (account_hold). Takes the error out of e. Returns 0.
 */
static int
account_no_room(struct run *r, const struct msg *m, const char *dir,
    struct err *e)
{
	if (!r->full) {
		r->full = true;
		r->full_err = *e;
		r->full_dir = dir;
	}
	account_hold(r, m);
	log_msg(LL_DEBUG, "%s: %s", r->acct->name, e->msg);
	err_clear(e);
	return 0;
}

/* The message being received could not be spooled. Returns 0. */
static int
account_spool_fail(struct run *r, const struct msg *m, struct err *e)
{
	if (!err_no_space(e))
		return account_local_fail(r, e);
	/* Its partial file goes now, and with it the room it took. */
	maildir_msg_free(r->cur);
	r->cur = NULL;
	return account_no_room(r, m, maildir_path(r->md), e);
}

/* Leaves the batch's messages from i on: removed, not committed. */
static void
account_batch_cut(struct run *r, size_t i)
{
	size_t j;

	for (j = i; j < r->nbatch; j++) {
		r->batch_bytes -= maildir_msg_size(r->batch[j]);
		maildir_msg_free(r->batch[j]);
	}
	if (i < r->nbatch)
		r->nbatch = i;
}

static void
account_batch_free(struct run *r)
{
	account_batch_cut(r, 0);
}

static void
account_tick(struct run *r)
{
	if (r->opts->tick != NULL)
		r->opts->tick(r->opts->tick_arg);
}

/* Marks n messages of the batch, from i on, as delivered and recorded. */
static void
account_stored(struct run *r, size_t i, size_t n)
{
	struct msg *m;

	for (; n > 0; i++, n--) {
		m = &r->msgs[r->batch_idx[i]];
		m->stored = true;
		/* Whatever kept it on the server is over. */
		if (m->uid != NULL)
			(void)status_note_forget(&r->status, m->uid);
		r->res->fetched++;
		r->res->bytes += maildir_msg_size(r->batch[i]);
		if (!r->acct->keep)
			r->deles[r->ndeles++] = (uint32_t)r->batch_idx[i];
		else
			r->res->kept++;
	}
}

/*
 * One message the target did not take: it stays on the server, is not
 * recorded, and is tried again next run.
 */
static void
account_not_taken(struct run *r, size_t i, int result, const struct err *e)
{
	struct msg *m = &r->msgs[r->batch_idx[i]];
	bool before;

	r->res->skipped++;
	m->skipped = true;
	if (result == DELIVER_TEMPFAIL) {
		log_msg(LL_WARN, "%s: message %lu: %s; left on the server for "
		    "the next run", r->acct->name, (unsigned long)m->num,
		    e->msg);
		r->res->code = err_worse(r->res->code, EX_TEMPFAIL);
		return;
	}
	/* Reported once per message, not at every poll; it is still
	 * tried at each, so a mended agent delivers it. */
	before = m->uid != NULL &&
	    status_note_find(&r->status, m->uid, NOTE_REFUSED) != NULL;
	log_msg(before ? LL_DEBUG : LL_NOTICE, "%s: message %lu%s%s%s: %s; "
	    "left on the server%s", r->acct->name, (unsigned long)m->num,
	    m->uid != NULL ? " (UID " : "", m->uid != NULL ? m->uid : "",
	    m->uid != NULL ? ")" : "", e->msg, before ? " (reported before)" :
	    "");
	if (before)
		return;
	r->res->code = err_worse(r->res->code, EX_UNAVAILABLE);
	if (m->uid != NULL)
		status_note_add(&r->status, m->uid, NOTE_REFUSED, m->size,
		    (int64_t)time(NULL), e->msg);
}

/*
 * The target takes nothing more now (DELIVER_HELD, e says why): message
 * i of the batch and every one after it are left for the next run.
 */
static void
account_target_held(struct run *r, size_t i, const struct err *e)
{
	const struct msg *m = &r->msgs[r->batch_idx[i]];
	uint64_t bytes;
	size_t left;

	account_hold(r, m);
	left = account_held_back(r, &bytes);
	if (left > 1)
		log_msg(LL_WARN, "%s: message %lu: %s; it and the %zu after it "
		    "are left on the server for the next run", r->acct->name,
		    (unsigned long)m->num, e->msg, left - 1);
	else
		log_msg(LL_WARN, "%s: message %lu: %s; left on the server for "
		    "the next run", r->acct->name, (unsigned long)m->num,
		    e->msg);
	r->res->code = err_worse(r->res->code, e->code);
}

/*
 * The first steps of a commit: the batch's files synced, then journaled
 * as pending. Out of room, the batch is cut to what is ready: the files
 * synced before the failure; then, when the journal shares the full
 * disk, as many as leave it room for their records. *np gets the length
 * of the batch that goes on (0: none). Returns 0 or -1 (e filled in).
 */
static int
account_commit_ready(struct run *r, const char **uids, const char **names,
    size_t *np, struct err *e)
{
	size_t n = *np, k;

	if (deliver_sync(r->dl, r->batch, n, e) == -1) {
		if (!err_no_space(e))
			return -1;
		for (k = 0; k < n && maildir_msg_synced(r->batch[k]); k++)
			;
		(void)account_no_room(r, &r->msgs[r->batch_idx[k]],
		    maildir_path(r->md), e);
		account_batch_cut(r, k);
		n = k;
	}
	while (n > 0 && r->have_uidl &&
	    uidstate_pending(r->st, uids, names, n, e) == -1) {
		if (!err_no_space(e))
			return -1;
		/* The message files may share the disk: each one left
		 * makes room for the records of those before it. */
		n--;
		(void)account_no_room(r, &r->msgs[r->batch_idx[n]],
		    r->cfg->state_dir, e);
		account_batch_cut(r, n);
	}
	*np = n;
	return 0;
}

/*
 * Records n messages of the batch, from i on, as delivered. Out of room,
 * the messages after them are left (for the other targets their spool is
 * in the state directory: that makes room), and it is tried once more.
 * Returns 0, 1 when they stay unrecorded (see below), or -1 (e filled
 * in).
 */
static int
account_record(struct run *r, const char **uids, const uint64_t *sizes,
    size_t i, size_t n, struct err *e)
{
	if (uidstate_delivered(r->st, uids, sizes, n, time(NULL), e) == 0)
		return 0;
	if (!err_no_space(e))
		return -1;
	if (i + n >= r->nbatch && deliver_is_maildir(r->dl)) {
		/* In new/ already, with no room to say so: their pending
		 * records stand, the next run finds them there and records
		 * them. None is deleted now; the run stops here. */
		(void)account_no_room(r, &r->msgs[r->batch_idx[i]],
		    r->cfg->state_dir, e);
		return 1;
	}
	if (i + n >= r->nbatch)
		return -1;
	(void)account_no_room(r, &r->msgs[r->batch_idx[i + n]],
	    r->cfg->state_dir, e);
	account_batch_cut(r, i + n);
	return uidstate_delivered(r->st, uids, sizes, n, time(NULL), e);
}

/*
 * Makes a batch durable, in the order that loses nothing: files ready
 * (a Maildir's synced), journaled as pending, handed to the target
 * (renamed into new/ and new/ synced, or piped into the agent...), then
 * recorded as delivered, right after each handover. Only then are they
 * queued for DELE.
 */
static int
account_commit_work(struct run *r, struct err *e)
{
	const char **uids = NULL, **names = NULL;
	uint64_t *sizes = NULL;
	size_t i, n = r->nbatch, taken;
	int rc = -1, res;

	if (n == 0)
		return 0;
	uids = xreallocarray(NULL, n, sizeof(*uids));
	names = xreallocarray(NULL, n, sizeof(*names));
	sizes = xreallocarray(NULL, n, sizeof(*sizes));
	for (i = 0; i < n; i++) {
		uids[i] = r->msgs[r->batch_idx[i]].uid;
		/* Fetched with a UID: new, so LIST was asked (scan). */
		sizes[i] = r->msgs[r->batch_idx[i]].size;
		names[i] = maildir_msg_name(r->batch[i]);
	}
	if (account_commit_ready(r, uids, names, &n, e) == -1)
		goto out;
	/* Out of room, the batch (r->nbatch) may be cut as it goes. */
	for (i = 0; i < r->nbatch; i += taken) {
		if ((res = deliver_hand(r->dl, r->batch + i, r->nbatch - i,
		    &taken, e)) == -1) {
			if (!err_no_space(e) || deliver_is_maildir(r->dl))
				goto out;
			/* An mbox append cut back: this one and the rest. */
			(void)account_no_room(r, &r->msgs[r->batch_idx[i]],
			    r->acct->mbox != NULL ? r->acct->mbox :
			    maildir_path(r->md), e);
			break;
		}
		if (res == DELIVER_HELD) {
			account_target_held(r, i, e);
			err_clear(e);
			break;
		}
		if (res != DELIVER_TAKEN) {
			account_not_taken(r, i, res, e);
			err_clear(e);
			continue;
		}
		if (r->have_uidl && (res = account_record(r, uids + i,
		    sizes + i, i, taken, e)) != 0) {
			if (res == -1)
				goto out;
			break;
		}
		account_stored(r, i, taken);
	}
	rc = 0;
out:
	account_batch_free(r);
	free(uids);
	free(names);
	free(sizes);
	return rc;
}

/* Whether s can stand as an atom in a Received field (RFC 5322). */
static bool
account_atom(const char *s)
{
	for (; *s != '\0'; s++)
		if (strchr("()<>[]:;@\\,\".", *s) != NULL)
			return false;
	return true;
}

/*
 * The trace field add_received_header asks for, before the message's
 * first byte (RFC 5321 section 4.4, with POP3 for the protocol).
 */
static int
account_received(struct run *r, const struct msg *m, struct err *e)
{
	const struct account *a = r->acct;
	char host[256], from[300], date[64], id[96] = "";
	time_t now = time(NULL);
	struct tm tm;
	char *f, *h;
	int rc;

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (h = host; *h != '\0'; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		    (*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
			*h = '-';
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
	/* The configured host, as a domain or an address literal. */
	if (strchr(a->host, ':') != NULL)
		snprintf(from, sizeof(from), "[IPv6:%s]", a->host);
	else
		snprintf(from, sizeof(from), "%s", a->host);
	for (h = from; *h != '\0'; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		    (*h >= '0' && *h <= '9') || strchr("-.:[]", *h) != NULL))
			*h = '-';
	if (m->uid != NULL && account_atom(m->uid))
		snprintf(id, sizeof(id), " id %s", m->uid);
	/* Always four lines: "tail -n +5" gives the message as it was. */
	f = xasprintf("Received: from %s\n\tby %s (popfetch %s, account %s)\n"
	    "\twith %s%s;\n\t%s\n", from, host, PACKAGE_VERSION, a->name,
	    a->tls == TLS_NONE ? "POP3" : "POP3S", id, date);
	rc = maildir_msg_write(r->cur, f, strlen(f), e);
	free(f);
	return rc;
}

/* A commit running beside the session's keepalive. */
struct commit_job {
	struct run	*r;
	struct err	 e;
	int		 rc;
	bool		 done;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
};

static void *
account_commit_thread(void *arg)
{
	struct commit_job *j = arg;
	int rc = account_commit_work(j->r, &j->e);

	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->done = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Sends a NOOP, unless that would break a server that cannot pipeline. */
static void
account_noop(struct run *r)
{
	struct err e;

	log_msg(LL_DEBUG, "%s: the disk is slow; NOOP keeps the session "
	    "alive", r->acct->name);
	/* A dead connection shows at the next read, where it is handled. */
	if (pop3_keepalive(r->pop, &e) == -1)
		log_msg(LL_DEBUG, "%s: %s", r->acct->name, e.msg);
}

/*
 * account_commit_work, in a thread when the account has a keepalive: a
 * slow disk (the commit waits for it) must not let the server time the
 * session out, so every keepalive seconds of waiting sends a NOOP. The
 * session is touched by this thread only.
 */
static int
account_commit(struct run *r, struct err *e)
{
	struct commit_job j;
	pthread_condattr_t ca;
	bool mu_ok;
	struct timespec ts;
	pthread_t t;

	if (r->acct->keepalive == 0 || r->pop == NULL || r->nbatch == 0) {
		j.rc = account_commit_work(r, e);
		account_tick(r);
		return j.rc;
	}
	memset(&j, 0, sizeof(j));
	j.r = r;
	err_clear(&j.e);
	if (pthread_condattr_init(&ca) != 0) {
		j.rc = account_commit_work(r, e);
		account_tick(r);
		return j.rc;
	}
	/* Any failure to set up: commit without keepalive, as with 0. */
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&j.cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		j.rc = account_commit_work(r, e);
		account_tick(r);
		return j.rc;
	}
	pthread_condattr_destroy(&ca);
	if ((mu_ok = pthread_mutex_init(&j.mu, NULL) == 0) == false ||
	    pthread_create(&t, NULL, account_commit_thread, &j) != 0) {
		j.rc = account_commit_work(r, &j.e);
		j.done = true;
	} else {
		pthread_mutex_lock(&j.mu);
		while (!j.done) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += r->acct->keepalive;
			if (pthread_cond_timedwait(&j.cv, &j.mu, &ts) ==
			    ETIMEDOUT && !j.done) {
				pthread_mutex_unlock(&j.mu);
				account_noop(r);
				pthread_mutex_lock(&j.mu);
			}
		}
		pthread_mutex_unlock(&j.mu);
		pthread_join(t, NULL);
	}
	if (mu_ok)
		pthread_mutex_destroy(&j.mu);
	pthread_cond_destroy(&j.cv);
	if (j.rc == -1)
		*e = j.e;
	account_tick(r);
	return j.rc;
}

static int
account_retr_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;
	char *esc;

	/* Out of room, the replies still in flight are read, not kept. */
	if (r->local_failed || r->held)
		return 0;
	if (!ok) {
		esc = buf_escape(line, n, 200);
		account_stuck(r, m->uid, m->size, "RETR %lu refused: \"%s\"; "
		    "left on the server", (unsigned long)m->num, esc);
		free(esc);
		r->res->skipped++;
		m->skipped = true;
		r->res->code = err_worse(r->res->code, EX_TEMPFAIL);
		return 0;
	}
	if (maildir_msg_begin(r->md, &r->cur, e) == -1 ||
	    (r->acct->add_received_header && account_received(r, m, e) == -1))
		return account_spool_fail(r, m, e);
	return 0;
}

static int
account_retr_data(void *arg, const char *p, size_t n, struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;

	if (r->cur != NULL && maildir_msg_write(r->cur, p, n, e) == -1)
		return account_spool_fail(r, m, e);
	/* Decoded bytes (LF for CRLF): close enough to LIST's octets. */
	if (r->prog->bytes_done - r->sizes_done < m->size)
		r->prog->bytes_done += n;
	account_tick(r);
	return 0;
}

static int
account_retr_end(void *arg, struct err *e)
{
	struct msg *m = arg;
	struct run *r = m->run;

	r->sizes_done = m->size > UINT64_MAX - r->sizes_done ? UINT64_MAX :
	    r->sizes_done + m->size;
	r->prog->bytes_done = r->sizes_done;
	r->prog->msgs_done++;
	account_tick(r);
	if (r->cur == NULL)
		return 0;
	if (maildir_msg_finish(r->cur, e) == -1)
		return account_spool_fail(r, m, e);
	r->batch[r->nbatch] = r->cur;
	r->batch_idx[r->nbatch++] = (size_t)(m - r->msgs);
	r->batch_bytes += maildir_msg_size(r->cur);
	r->cur = NULL;
	if (r->nbatch < BATCH_MSGS && r->batch_bytes < BATCH_BYTES)
		return 0;
	/* Without pipelining, nothing else is in flight: the commit waits
	 * until this reply is done, so a keepalive NOOP may go out. */
	if (!(pop3_caps(r->pop) & POP3_CAP_PIPELINING))
		r->commit_due = true;
	else if (account_commit(r, e) == -1)
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
	if (r->held || r->next_fetch >= r->nqueue)
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
	r->prog->started_ms = clock_ms();
	r->prog->state = PROGRESS_RUNNING;
	account_tick(r);
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
		if (r->commit_due) {
			r->commit_due = false;
			if (!r->local_failed && account_commit(r, e) == -1)
				/* Only records e; always returns 0. */
				(void)account_local_fail(r, e);
		}
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
	struct msg *m;
	size_t i;

	if (r->local_failed &&
	    (pop3_queue(r->pop, POP3_SINGLE, &rset_cb, r, 0, "RSET", e) == -1 ||
	    pop3_drain(r->pop, e) == -1))
		return -1;
	if (pop3_quit(r->pop, e) == -1)
		return -1;
	if (r->local_failed)
		return 0;
	/*
	 * QUIT +OK: the deletions are committed. Each is marked in the
	 * state, with the size LIST gave, so that a message listed under
	 * its UID again can be told apart (account_reused). The marks are
	 * not journaled: account_save_state writes them, and one lost in a
	 * crash only leaves the UID as before (deleted again if listed).
	 */
	for (i = 0; i < r->nmsgs; i++) {
		m = &r->msgs[i];
		if (!m->deleted)
			continue;
		r->res->deleted++;
		if (m->uid != NULL && m->listed)
			uidstate_deleted(r->st, m->uid, m->size);
	}
	return 0;
}

static void	account_report(struct run *, const struct err *);
static int	account_oversize(struct run *, struct err *);

/*
 * Folds the run into the state. When the server's full list is known
 * (scanned), forgets the UIDs it no longer has.
 */
static int
account_save_state(struct run *r, bool scanned, struct err *e)
{
	/* A UID deleted now is forgotten only once a later listing no
	 * longer shows it: some servers answer DELE and QUIT with +OK and
	 * keep the message, and it must not then look new. It is marked
	 * deleted (account_quit), so that a new message that a server
	 * gives the same UID is not taken for it (account_reused). */
	if (scanned && r->have_uidl) {
		uidstate_retain(r->st, r->present);
		/* Problems of messages no longer there are over. */
		(void)status_note_retain(&r->status, r->present);
	}
	return uidstate_commit(r->st, e);
}

/*
 * How loud a failure is. Without -q, an error. With -q (cron), a failure
 * is said once: a lasting one is not said again while it lasts with the
 * same exit status, and a temporary one (the network, a busy server)
 * only once it has lasted QUIET_GRACE. --status always shows it.
 */
static enum log_level
account_error_level(struct run *r, const struct err *e, int64_t *since)
{
	const struct status *st = &r->status;
	int64_t now = (int64_t)time(NULL);

	*since = 0;
	if (!r->opts->quiet || r->opts->mode != ACCOUNT_FETCH)
		return LL_ERROR;
	if (st->failing_since != 0 && st->told == e->code)
		return LL_WARN;
	if (e->code == EX_TEMPFAIL && (st->failing_since == 0 ||
	    now - st->failing_since < QUIET_GRACE))
		return LL_WARN;
	r->told = e->code;
	*since = st->failing_since;
	return LL_ERROR;
}

static void
account_report(struct run *r, const struct err *e)
{
	char when[32] = "";
	int64_t since;
	enum log_level lv;
	struct tm tm;
	time_t t;

	if (e->code == EX_OK)
		return;
	lv = account_error_level(r, e, &since);
	t = (time_t)since;
	if (since != 0 && localtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	log_msg(lv, "%s: %s%s%s%s", r->acct->name, e->msg, when[0] != '\0' ?
	    " (failing since " : "", when, when[0] != '\0' ? ")" : "");
	if (r->res->error[0] == '\0')
		/* Cut short if need be: it is a summary for the daemon. */
		snprintf(r->res->error, sizeof(r->res->error), "%.*s",
		    (int)sizeof(r->res->error) - 1, e->msg);
	r->res->code = err_worse(r->res->code, e->code);
}

/* n bytes as one reads them: KiB below a MiB, else MiB or GiB. */
static void
account_size_text(uint64_t n, char *buf, size_t size)
{
	if (n < (1u << 20))
		snprintf(buf, size, "%" PRIu64 " KiB", (n + 1023) / 1024);
	else if (n < (1u << 30))
		snprintf(buf, size, "%.1f MiB", (double)n / (1u << 20));
	else
		snprintf(buf, size, "%.1f GiB", (double)n / (1u << 30));
}

/*
 * The one line that says the run stopped for want of room: where, how
 * much is free there, what was stored, and what the rest needs.
 */
static void
account_no_room_report(struct run *r)
{
	struct statvfs sv;
	char where[PATH_MAX + 64], free_s[32], next_s[32], all_s[32];
	uint64_t bytes;
	size_t left = account_held_back(r, &bytes);
	struct err e;

	if (r->full_err.errnum == EDQUOT)
		snprintf(where, sizeof(where), "the disk quota is used up (%s)",
		    r->full_dir);
	else if (r->full_err.errnum == EFBIG)
		snprintf(where, sizeof(where), "a file would grow past its "
		    "limit in %s (%s)", r->full_dir, strerror(EFBIG));
	else if (statvfs(r->full_dir, &sv) == 0) {
		account_size_text((uint64_t)sv.f_bavail * sv.f_frsize, free_s,
		    sizeof(free_s));
		snprintf(where, sizeof(where), "the disk is full (%s: %s "
		    "free)", r->full_dir, free_s);
	} else
		snprintf(where, sizeof(where), "the disk is full (%s)",
		    r->full_dir);
	account_size_text(r->held_msg->size, next_s, sizeof(next_s));
	account_size_text(bytes, all_s, sizeof(all_s));
	if (left == 1)
		err_set(&e, EX_IOERR, "%s: stored %lu of %zu new messages; 1 "
		    "is left on the server for the next run: it needs %s",
		    where, r->res->fetched, r->nqueue, next_s);
	else
		err_set(&e, EX_IOERR, "%s: stored %lu of %zu new messages; %zu "
		    "are left on the server for the next run: the next needs "
		    "%s, all %zu need %s", where, r->res->fetched, r->nqueue,
		    left, next_s, left, all_s);
	account_report(r, &e);
}

static void
account_free(struct run *r)
{
	size_t i;

	maildir_msg_free(r->cur);
	account_batch_free(r);
	pop3_close(r->pop);
	uidstate_close(r->st);
	status_free(&r->status);
	deliver_close(r->dl);
	uidmap_free(r->present);
	free(r->msgs);
	free(r->queue);
	free(r->deles);
	free(r->batch);
	free(r->batch_idx);
	for (i = 0; r->tops != NULL && i < WINDOW_CMDS; i++)
		header_pick_free(&r->tops[i].h);
	free(r->tops);
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
	if (account_oversize(r, e) == -1 || account_fetch(r, e) == -1) {
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

/* --- --check and --dry-run ------------------------------------------ */

static void __attribute__((format(printf, 2, 3)))
account_say(const struct run *r, const char *fmt, ...)
{
	va_list ap;

	printf("popfetch: %s: ", r->acct->name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int
account_stat_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct run *r = arg;
	unsigned long count;
	uint64_t size;

	if (!ok)
		return pop3_refused(e, EX_PROTOCOL, "STAT refused", line, n);
	/* "+OK nn mm" */
	if (n < 4 || pop3_parse_list(line + 4, n - 4, &count, &size) == -1) {
		if (n >= 5 && line[4] == '0' && (n == 5 || line[5] == ' ')) {
			snprintf(r->stat, sizeof(r->stat), "STAT: no messages");
			return 0;
		}
		return account_bad_line("STAT", line, n, e);
	}
	snprintf(r->stat, sizeof(r->stat), "STAT: %lu messages, %" PRIu64
	    " bytes", count, size);
	return 0;
}

/* What the session is: where, how secured, how logged in, what it can. */
static void
account_describe(struct run *r)
{
	const struct account *a = r->acct;
	char *tls = pop3_tls_info(r->pop), *caps;
	struct err e;

	account_say(r, "connected to %s port %u%s%s, %s", a->host, a->port,
	    a->proxy != NULL ? " through a proxy" : "", a->tls == TLS_IMPLICIT ?
	    " with TLS" : a->tls == TLS_STARTTLS ? " with STARTTLS" :
	    " in CLEARTEXT", tls != NULL ? tls : "no TLS");
	account_say(r, "logged in as %s with %s", a->user,
	    pop3_auth_used(r->pop));
	free(tls);
	tls = account_utf8_text(r);
	account_say(r, "%s", tls != NULL ? tls : "UTF-8 mode (RFC 6856) not "
	    "offered");
	free(tls);
	/* The capabilities after login: the CAPA reply must be in. */
	if (pop3_drain(r->pop, &e) == -1) {
		log_msg(LL_DEBUG, "%s: %s", a->name, e.msg);
		return;
	}
	caps = pop3_capa_text(r->pop);
	account_say(r, "capabilities: %s", caps);
	free(caps);
}

/*
 * What the headers say, "From: ..., Subject: ...", or why there are none;
 * newly allocated. The slot is emptied for its next use.
 */
static char *
account_top_text(struct top_slot *t, const char *why)
{
	char *from, *subj, *text;

	if (why != NULL) {
		header_pick_free(&t->h);
		return xasprintf("headers not available: TOP said \"%s\"",
		    why);
	}
	if (!t->h.done)
		header_pick_line(&t->h, "", 0);	/* a header without end */
	from = t->h.from != NULL ? header_display(t->h.from,
	    strlen(t->h.from), 60) : xstrdup("(none)");
	subj = t->h.subject != NULL ? header_display(t->h.subject,
	    strlen(t->h.subject), 80) : xstrdup("(none)");
	text = xasprintf("From: %s, Subject: %s", from, subj);
	free(from);
	free(subj);
	header_pick_free(&t->h);
	return text;
}

/* --dry-run: a message a run would fetch. */
static void
account_fetch_line(struct top_slot *t, const char *why)
{
	struct run *r = t->r;
	const struct msg *m = &r->msgs[t->mi];
	char *text = account_top_text(t, why);

	account_say(r, "  fetch%s #%lu, %" PRIu64 " bytes%s%s%s",
	    r->acct->keep ? "" : " and delete", (unsigned long)m->num,
	    m->size, why != NULL ? " (" : ", ", text, why != NULL ? ")" : "");
	free(text);
}

/*
 * A message over max_size, said once: listed by --check and --dry-run;
 * a run logs it (shown with -q too) and notes it, so that later runs
 * and polls stay quiet about it while --status keeps showing it.
 */
static void
account_oversize_line(struct top_slot *t, const char *why)
{
	struct run *r = t->r;
	const struct msg *m = &r->msgs[t->mi];
	char *text = account_top_text(t, why);

	if (r->opts->mode != ACCOUNT_FETCH)
		account_say(r, "  skip #%lu, %" PRIu64 " bytes, over max_size "
		    "(%" PRIu64 "): %s", (unsigned long)m->num, m->size,
		    r->acct->max_size, text);
	else {
		log_msg(LL_NOTICE, "%s: message %lu%s%s%s is %" PRIu64 " bytes, "
		    "over max_size (%" PRIu64 "): left on the server; %s",
		    r->acct->name, (unsigned long)m->num, m->uid != NULL ?
		    " (UID " : "", m->uid != NULL ? m->uid : "", m->uid != NULL ?
		    ")" : "", m->size, r->acct->max_size, text);
		if (m->uid != NULL)
			status_note_add(&r->status, m->uid, NOTE_OVERSIZE,
			    m->size, (int64_t)time(NULL), text);
	}
	free(text);
}

static int
account_top_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	char *esc;

	(void)e;
	if (!ok) {
		struct top_slot *t = arg;

		esc = buf_escape(line, n, 100);
		t->done(t, esc);
		free(esc);
	}
	return 0;
}

static int
account_top_line(void *arg, const char *line, size_t n, struct err *e)
{
	struct top_slot *t = arg;

	(void)e;
	header_pick_line(&t->h, line, n);
	return 0;
}

static int
account_top_end(void *arg, struct err *e)
{
	struct top_slot *t = arg;

	(void)e;
	t->done(t, NULL);
	return 0;
}

/*
 * The headers of the n messages idx names, by TOP n 0, pipelined; done
 * is called for each as its reply ends, so memory stays that of the
 * window.
 */
static int
account_tops(struct run *r, const uint32_t *idx, size_t n,
    void (*done)(struct top_slot *, const char *), struct err *e)
{
	static const struct pop3_cb cb = {
		account_top_status, account_top_line, account_top_end
	};
	size_t window = pop3_caps(r->pop) & POP3_CAP_PIPELINING ?
	    WINDOW_CMDS : 1, next = 0;
	struct top_slot *t;
	char cmd[32];

	if (r->tops == NULL)
		r->tops = xcalloc(WINDOW_CMDS, sizeof(*r->tops));
	while (next < n || pop3_inflight(r->pop) > 0) {
		while (next < n && pop3_inflight(r->pop) < window) {
			/* The window keeps a slot's reply from being read
			 * after it is taken again. */
			t = &r->tops[next % WINDOW_CMDS];
			t->r = r;
			t->mi = idx[next];
			t->done = done;
			snprintf(cmd, sizeof(cmd), "TOP %lu 0",
			    (unsigned long)r->msgs[idx[next]].num);
			if (pop3_queue(r->pop, POP3_LINES, &cb, t, 0, cmd,
			    e) == -1)
				return -1;
			next++;
		}
		if (pop3_step(r->pop, e) == -1)
			return -1;
	}
	return 0;
}

/*
 * The messages over max_size, each said once with its From and Subject
 * (a run: those not noted by an earlier one; one without a UID cannot
 * be noted, and is said at every run).
 */
static int
account_oversize(struct run *r, struct err *e)
{
	uint32_t *idx;
	size_t i, n = 0;
	int rc;
	const struct msg *m;

	idx = xreallocarray(NULL, r->nmsgs ? r->nmsgs : 1, sizeof(*idx));
	for (i = 0; i < r->nmsgs; i++) {
		m = &r->msgs[i];
		if (!m->oversize)
			continue;
		if (r->opts->mode == ACCOUNT_FETCH && m->uid != NULL &&
		    status_note_find(&r->status, m->uid, NOTE_OVERSIZE) != NULL)
			log_msg(LL_DEBUG, "%s: message %lu (UID %s) is %" PRIu64
			    " bytes, over max_size; left on the server "
			    "(reported before)", r->acct->name,
			    (unsigned long)m->num, m->uid, m->size);
		else
			idx[n++] = (uint32_t)i;
	}
	rc = n > 0 ? account_tops(r, idx, n, account_oversize_line, e) : 0;
	free(idx);
	return rc;
}

static void
account_list_deletes(struct run *r)
{
	const struct msg *m;
	size_t i;

	for (i = 0; i < r->ndeles; i++) {
		m = &r->msgs[r->deles[i]];
		account_say(r, "  delete #%lu (fetched earlier%s)",
		    (unsigned long)m->num, r->acct->keep_days > 0 ?
		    ", kept past keep_days" : "");
	}
}

static void
account_counts(struct run *r)
{
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < r->nqueue; i++)
		bytes += r->msgs[r->queue[i]].size;
	account_say(r, "%s %zu new (%" PRIu64 " bytes)%s, delete %zu fetched "
	    "earlier, keep %lu, skip %lu", r->opts->mode == ACCOUNT_CHECK ?
	    "a run would: fetch" : "would fetch", r->nqueue, bytes,
	    r->acct->keep ? " and keep them" : " and delete them", r->ndeles,
	    r->res->kept, r->res->skipped);
	if (r->left_over > 0)
		account_say(r, "%lu more new messages wait for later runs "
		    "(max_messages = %u)", r->left_over, r->acct->max_messages);
}

/*
 * Whether a run could store mail and record it: a read-only mount or a
 * directory of another owner fails the check, as it would fail the run.
 */
static int
account_check_writable(struct run *r, struct err *e)
{
	const struct account *a = r->acct;
	char *dir, *slash;
	struct stat st;
	int rc = 0;

	if (a->maildir != NULL) {
		dir = xasprintf("%s/tmp", a->maildir);
		rc = fs_writable(stat(dir, &st) == 0 ? dir : a->maildir,
		    "maildir", e);
		free(dir);
	}
	if (rc == 0 && a->mbox != NULL) {
		dir = xstrdup(a->mbox);
		if ((slash = strrchr(dir, '/')) != NULL)
			*(slash == dir ? slash + 1 : slash) = '\0';
		rc = fs_writable(slash != NULL ? dir : ".", "the mbox's "
		    "directory", e);
		free(dir);
	}
	if (rc == 0)
		rc = fs_writable(r->cfg->state_dir, "state directory", e);
	return rc;
}

/*
 * --check and --dry-run: log in, report, and QUIT having changed
 * nothing on the server or in the state (a recovery at open aside).
 */
static void
account_inspect(struct run *r, struct err *e)
{
	static const struct pop3_cb stat_cb = {
		account_stat_status, NULL, NULL
	};
	char *mailbox = uidstate_mailbox(r->acct->user, r->acct->host);
	struct stat st;
	size_t pending = 0;
	bool other;
	int rc;

	/* Nothing is created, locked or recovered: a report only. */
	if (r->acct->maildir != NULL && stat(r->acct->maildir, &st) == -1)
		account_say(r, "maildir %s: %s (a run creates it)",
		    r->acct->maildir, strerror(errno));
	if (account_check_writable(r, e) == -1) {
		free(mailbox);
		return;
	}
	rc = uidstate_peek(&r->st, r->cfg->state_dir, r->acct->name, mailbox,
	    &pending, &other, e);
	if (rc == 0 && other)
		account_say(r, "the account's state is of another mailbox: a "
		    "run keeps it aside and uses %s that of %s", uidstate_count(
		    r->st) > 0 ? "the one kept for" : "a new state for",
		    mailbox);
	free(mailbox);
	if (rc == -1)
		return;
	if (pending > 0)
		account_say(r, "a run that was interrupted, or is running, has "
		    "%zu messages in flight; the next run settles them first",
		    pending);
	if (account_login(r, e) == -1)
		return;
	/* libcurl shows the TLS session once the connection is used. */
	if (pop3_queue(r->pop, POP3_SINGLE, &stat_cb, r, 0, "STAT",
	    e) == -1 || pop3_drain(r->pop, e) == -1)
		return;
	account_describe(r);
	account_say(r, "%s", r->stat);
	if (account_list(r, e) == -1 || account_plan(r, e) == -1)
		return;
	if (r->opts->mode == ACCOUNT_DRY_RUN) {
		if (account_tops(r, r->queue, r->nqueue, account_fetch_line,
		    e) == -1)
			return;
		account_list_deletes(r);
	}
	if (account_oversize(r, e) == -1)
		return;
	account_counts(r);
	if (pop3_quit(r->pop, e) == -1)
		return;
	account_say(r, "%s", r->opts->mode == ACCOUNT_CHECK ? "check passed" :
	    "dry run done: nothing was fetched, deleted or recorded");
}

/*
 * on_new_mail, after a run that stored mail: its failure is reported and
 * changes nothing about the mail (nor the run's exit status).
 */
static void
account_on_new_mail(struct run *r)
{
	char *env[3], how[768];
	struct agent_result ar;
	struct err e;

	if (r->acct->on_new_mail == NULL || r->res->fetched == 0)
		return;
	env[0] = xasprintf("POPFETCH_ACCOUNT=%s", r->acct->name);
	env[1] = xasprintf("POPFETCH_NEW=%lu", r->res->fetched);
	env[2] = NULL;
	err_clear(&e);
	if (agent_run(r->acct->on_new_mail, env, -1, r->acct->timeout, &ar,
	    &e) == -1)
		log_msg(LL_WARN, "%s: on_new_mail: %s", r->acct->name, e.msg);
	else if (!ar.spawned || ar.timed_out || !WIFEXITED(ar.status) ||
	    WEXITSTATUS(ar.status) != 0)
		log_msg(LL_WARN, "%s: on_new_mail %s: %s", r->acct->name,
		    r->acct->on_new_mail[0], agent_describe(&ar,
		    r->acct->timeout, how, sizeof(how)));
	free(env[0]);
	free(env[1]);
}

/* What the run leaves for --status, and for the next run to go by. */
static void
account_status_save(struct run *r)
{
	struct status *st = &r->status;
	const struct account_result *res = r->res;
	int64_t now = (int64_t)time(NULL);
	struct err e;

	st->last_run = now;
	st->code = res->code;
	st->fetched = res->fetched;
	st->bytes = res->bytes;
	st->deleted = res->deleted;
	st->kept = res->kept;
	st->skipped = res->skipped;
	if (res->fetched > 0)
		st->last_mail = now;
	if (res->error[0] == '\0') {
		st->last_ok = now;
		st->failing_since = 0;
		st->told = 0;
		st->error[0] = '\0';
	} else {
		if (st->failing_since == 0) {
			st->failing_since = now;
			st->told = 0;
		}
		if (r->told != 0)
			st->told = r->told;
		snprintf(st->error, sizeof(st->error), "%s", res->error);
	}
	err_clear(&e);
	/* A run that failed before making the state directory has nothing
	 * to add to the error it reported. */
	if (status_save(st, r->cfg->state_dir, r->acct->name, &e) == -1 &&
	    access(r->cfg->state_dir, F_OK) == 0)
		log_msg(LL_WARN, "%s: %s (--status does not show this run)",
		    r->acct->name, e.msg);
}

void
account_summary(const char *name, const struct account_result *res,
    char *buf, size_t len)
{
	size_t why = 0;
	int depth = 0;
	bool quoted = false;

	if (res->busy) {
		snprintf(buf, len, "%s: another popfetch is fetching it; left "
		    "to that one", name);
		return;
	}
	/* The error's first part says what failed (up to a colon outside
	 * parentheses and quotes); the whole was logged. */
	for (; res->error[why] != '\0'; why++) {
		if (res->error[why] == '"')
			quoted = !quoted;
		else if (!quoted && res->error[why] == '(')
			depth++;
		else if (!quoted && res->error[why] == ')' && depth > 0)
			depth--;
		else if (!quoted && depth == 0 && res->error[why] == ':')
			break;
	}
	while (why > 0 && res->error[why - 1] == ' ')
		why--;
	snprintf(buf, len, "%s: %s%.*s%s%lu fetched (%" PRIu64 " bytes), %lu "
	    "deleted, %lu kept, %lu skipped", name, why > 0 ? "failed (" : "",
	    (int)why, res->error, why > 0 ? "); " : "",
	    res->fetched, res->bytes, res->deleted, res->kept, res->skipped);
}

int
account_run(const struct config *cfg, const struct account *a,
    const struct account_opts *opts, struct account_result *res)
{
	struct run r;
	bool scanned = false;
	struct err e, se;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	r.cfg = cfg;
	r.acct = a;
	r.res = res;
	r.opts = opts;
	r.prog = opts->progress != NULL ? opts->progress : &r.noprogress;
	r.present = uidmap_new();
	err_clear(&e);
	err_clear(&se);
	if (opts->mode == ACCOUNT_FETCH)
		/* Read again once the lock is held; now for errors before. */
		(void)status_load(&r.status, cfg->state_dir, a->name);
	if (opts->mode != ACCOUNT_FETCH)
		account_inspect(&r, &e);
	else if (deliver_open(&r.dl, a, cfg->state_dir, &e) == 0 &&
	    (r.md = deliver_spool(r.dl)) != NULL &&
	    (rc = uidstate_open(&r.st, cfg->state_dir, a->name,
	    deliver_recover, r.dl, &e)) == 0 &&
	    account_use_mailbox(r.st, a, &e) == 0) {
		status_free(&r.status);
		(void)status_load(&r.status, cfg->state_dir, a->name);
		account_session(&r, &e, &scanned);
		if (r.full && !r.local_failed)
			account_no_room_report(&r);
		/* Whatever happened, what was delivered is recorded. Out of
		 * room, the state may not be rewritten now; its journal
		 * holds every record, and the next run folds it in. */
		if (account_save_state(&r, scanned, &se) == -1 &&
		    !(r.full && err_no_space(&se)))
			account_report(&r, &se);
		else if (se.code != EX_OK)
			log_msg(LL_DEBUG, "%s: %s", a->name, se.msg);
		account_on_new_mail(&r);
	}
	if (rc == UIDSTATE_BUSY) {
		/* Overlapping runs (cron, a timer, the daemon): not an
		 * error, and nothing of this run to record. */
		log_msg(LL_INFO, "%s: another popfetch is fetching this "
		    "account; left to that one", a->name);
		res->busy = true;
		err_clear(&e);
	}
	account_report(&r, &e);
	if (opts->mode == ACCOUNT_FETCH && !res->busy)
		account_status_save(&r);
	r.prog->state = PROGRESS_DONE;
	account_tick(&r);
	account_free(&r);
	return res->code;
}
