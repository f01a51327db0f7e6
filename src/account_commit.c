/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account_impl.h"
#include "deliver.h"
#include "log.h"
#include "pop3.h"
#include "uidstate.h"
#include "xmalloc.h"

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

size_t
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

int
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

void
account_batch_free(struct run *r)
{
	account_batch_cut(r, 0);
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
		/* Fetched with a UID: new, so LIST was asked (account_scan). */
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

int
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
