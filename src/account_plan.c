/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account_impl.h"
#include "buf.h"
#include "log.h"
#include "pop3.h"
#include "uid.h"
#include "uidstate.h"
#include "xmalloc.h"

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

int
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

int
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
