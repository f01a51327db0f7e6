/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account_impl.h"
#include "fsutil.h"
#include "log.h"
#include "pop3.h"
#include "uidstate.h"
#include "xmalloc.h"

void __attribute__((format(printf, 2, 3)))
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

void
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
