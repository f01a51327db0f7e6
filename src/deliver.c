/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "deliver.h"
#include "deliver_impl.h"
#include "xmalloc.h"

/* A handle for the account's target, with nothing opened yet. */
static struct deliver *
deliver_new(const struct account *a)
{
	struct deliver *d = xcalloc(1, sizeof(*d));

	d->acct = a;
	d->kind = a->deliver;
	d->fd = -1;
	return d;
}

int
deliver_open(struct deliver **dp, const struct account *a,
    const char *state_dir, struct err *e)
{
	struct deliver *d = deliver_new(a);
	char *spool;
	int rc;

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

int
deliver_open_recovery(struct deliver **dp, const struct account *a,
    struct err *e)
{
	struct deliver *d = deliver_new(a);

	/* What the other targets were handed is not checked: deliver_recover
	 * needs nothing of theirs. */
	if (d->kind == DELIVER_MAILDIR &&
	    maildir_open(&d->md, a->maildir, e) == -1) {
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

#define HEAD_MAX	65536		/* header bytes searched for a sender */
#define SENDER_MAX	512

/* The address in a field's value: <...> if there is one, else a word. */
static char *
deliver_addr(const char *v, size_t n)
{
	const char *lt = memchr(v, '<', n), *gt, *p, *end = v + n;
	char *r, *o;

	if (lt != NULL && (gt = memchr(lt, '>', (size_t)(end - lt))) != NULL) {
		v = lt + 1;
		end = gt;
	} else {
		/* "a@b (Name)": the first word with an @, else the first. */
		for (p = v; p < end; p++)
			if (*p == '@')
				break;
		if (p < end) {
			while (p > v && p[-1] != ' ' && p[-1] != '\t')
				p--;
			v = p;
		}
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		for (p = v; p < end && *p != ' ' && *p != '\t'; p++)
			;
		end = p;
	}
	r = o = xmalloc((size_t)(end - v) + 1);
	for (p = v; p < end && o - r < SENDER_MAX; p++)
		if (*p > 0x20 && *p < 0x7f)
			*o++ = *p;
	*o = '\0';
	if (*r == '\0') {
		free(r);
		return NULL;
	}
	return r;
}

/* The value of field name (unfolded) in the header h, or NULL. */
static char *
deliver_field(const char *h, size_t n, const char *name)
{
	size_t len = strlen(name), i = 0, j;
	char *v, *o, *r;

	while (i < n && h[i] != '\n') {
		if (n - i > len && strncasecmp(h + i, name, len) == 0 &&
		    h[i + len] == ':') {
			v = o = xmalloc(n - i);
			for (j = i + len + 1; j < n; j++) {
				if (h[j] == '\n' && (j + 1 >= n ||
				    (h[j + 1] != ' ' && h[j + 1] != '\t')))
					break;
				*o++ = h[j] == '\n' ? ' ' : h[j];
			}
			r = deliver_addr(v, (size_t)(o - v));
			free(v);
			return r;
		}
		while (i < n && h[i] != '\n')
			i++;
		i++;
	}
	return NULL;
}

int
deliver_sender(int fd, char **fromp, struct err *e)
{
	if (deliver_sender_or_null(fd, fromp, e) == -1)
		return -1;
	if (*fromp == NULL)
		*fromp = xstrdup("MAILER-DAEMON");
	return 0;
}

int
deliver_sender_or_null(int fd, char **fromp, struct err *e)
{
	char *h = xmalloc(HEAD_MAX), *end, *from;
	ssize_t n;

	if ((n = pread(fd, h, HEAD_MAX, 0)) == -1) {
		err_set(e, EX_IOERR, "cannot read the spooled message: %s",
		    strerror(errno));
		free(h);
		return -1;
	}
	if ((end = memmem(h, (size_t)n, "\n\n", 2)) != NULL)
		n = end - h + 1;
	if ((from = deliver_field(h, (size_t)n, "Return-Path")) == NULL)
		from = deliver_field(h, (size_t)n, "From");
	free(h);
	*fromp = from;
	return 0;
}
