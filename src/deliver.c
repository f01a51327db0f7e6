/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "deliver_impl.h"
#include "xmalloc.h"

int
deliver_open(struct deliver **dp, const struct account *a,
    const char *state_dir, struct err *e)
{
	struct deliver *d = xcalloc(1, sizeof(*d));
	char *spool;
	int rc;

	d->acct = a;
	d->kind = a->deliver;
	if (d->kind == DELIVER_MAILDIR)
		rc = maildir_open(&d->md, a->maildir, e);
	else {
		spool = xasprintf("%s/%s.spool", state_dir, a->name);
		rc = maildir_open(&d->md, spool, e);
		free(spool);
	}
	if (rc == 0 && d->kind == DELIVER_MBOX)
		rc = deliver_mbox_open(d, e);
	else if (rc == 0 && d->kind == DELIVER_LMTP)
		rc = deliver_lmtp_open(d, e);
	if (rc == -1) {
		deliver_close(d);
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
	if (d->kind == DELIVER_LMTP)
		deliver_lmtp_close(d);
	if (d->kind == DELIVER_MBOX)
		deliver_mbox_close(d);
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
	return d->kind == DELIVER_MAILDIR;
}

int
deliver_sync(struct deliver *d, struct maildir_msg **msgs, size_t n,
    struct err *e)
{
	if (d->kind != DELIVER_MAILDIR)
		return 0;
	return maildir_sync(d->md, msgs, n, e);
}

int
deliver_hand(struct deliver *d, struct maildir_msg **msgs, size_t n,
    size_t *taken, struct err *e)
{
	*taken = d->kind == DELIVER_MAILDIR ? n : 1;
	switch (d->kind) {
	case DELIVER_MAILDIR:
		return maildir_commit(d->md, msgs, n, e) == -1 ? -1 :
		    DELIVER_TAKEN;
	case DELIVER_MDA:
		return deliver_mda_hand(d, msgs[0], e);
	case DELIVER_MBOX:
		return deliver_mbox_hand(d, msgs[0], e);
	case DELIVER_LMTP:
		return deliver_lmtp_hand(d, msgs[0], e);
	}
	err_set(e, EX_SOFTWARE, "unknown delivery target");
	return -1;
}

int
deliver_recover(void *arg, const char *const *names, size_t n, bool *found,
    struct err *e)
{
	struct deliver *d = arg;

	if (d->kind == DELIVER_MAILDIR)
		return maildir_recover(d->md, names, n, found, e);
	memset(found, 0, n * sizeof(*found));
	return 0;
}
