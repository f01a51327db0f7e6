/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/statvfs.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "account_impl.h"
#include "agent.h"
#include "buf.h"
#include "clock.h"
#include "cred.h"
#include "deliver.h"
#include "log.h"
#include "pop3.h"
#include "uidstate.h"
#include "xmalloc.h"

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

char *
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

int
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

void __attribute__((format(printf, 4, 5)))
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

int
account_bad_line(const char *what, const char *line, size_t n, struct err *e)
{
	char *esc = buf_escape(line, n, 120);

	err_set(e, EX_PROTOCOL, "malformed %s line from server: \"%s\"", what,
	    esc);
	free(esc);
	return -1;
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

void
account_tick(struct run *r)
{
	if (r->opts->tick != NULL)
		r->opts->tick(r->opts->tick_arg);
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

char *
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

int
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

int
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

/* A failure begins or goes on, or a success ends it. */
static void
account_status_streak(struct run *r, struct status *st, int64_t now)
{
	if (r->res->error[0] == '\0') {
		st->last_ok = now;
		st->failing_since = 0;
		st->told = 0;
		st->error[0] = '\0';
		return;
	}
	if (st->failing_since == 0) {
		st->failing_since = now;
		st->told = 0;
	}
	if (r->told != 0)
		st->told = r->told;
	snprintf(st->error, sizeof(st->error), "%s", r->res->error);
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
	/* Stopped by a signal (Ctrl-C, a shutdown) before anything else
	 * went wrong: no failure begins, no success ends one; what was
	 * stored counts all the same. A failure the signal only followed
	 * is a failure. */
	st->interrupted = strcmp(res->error, POP3_INTERRUPTED) == 0;
	if (!st->interrupted)
		account_status_streak(r, st, now);
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
