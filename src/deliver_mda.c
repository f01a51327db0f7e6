/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "deliver_impl.h"
#include "xmalloc.h"

/* From an MDA (sysexits.h): "try again later", "cannot create the
 * output" (procmail, maildrop, dovecot-lda and others, on a full disk or
 * quota, or when a lock cannot be had). */
#define MDA_TEMPFAIL	75
#define MDA_CANTCREAT	73

/*
 * One argument with %F (sender), %T (recipient) and %% expanded. The
 * result stays one argument: no shell ever splits or interprets it.
 */
static char *
mda_expand(const char *arg, const char *from, const char *to)
{
	size_t n = strlen(arg) + 1, o = 0;
	const char *p;
	char *r;

	for (p = arg; *p != '\0'; p++)
		if (p[0] == '%' && (p[1] == 'F' || p[1] == 'T'))
			n += strlen(p[1] == 'F' ? from : to);
	r = xmalloc(n);
	for (p = arg; *p != '\0'; p++) {
		if (p[0] == '%' && (p[1] == 'F' || p[1] == 'T' || p[1] == '%')) {
			const char *v = p[1] == 'F' ? from : p[1] == 'T' ? to :
			    "%";

			memcpy(r + o, v, strlen(v));
			o += strlen(v);
			p++;
		} else
			r[o++] = *p;
	}
	r[o] = '\0';
	return r;
}

static int
mda_result(const struct agent_result *ar, const struct account *a,
    struct err *e)
{
	char how[768];

	if (ar->spawned && !ar->timed_out && WIFEXITED(ar->status) &&
	    WEXITSTATUS(ar->status) == 0) {
		if (ar->unread == 0)
			return DELIVER_TAKEN;
		/* Not proof that it kept the message: see popfetch.conf(5). */
		err_set(e, EX_UNAVAILABLE, "mda %s exited 0 without reading "
		    "the whole message (%llu bytes unread), so it is not "
		    "counted as delivered", a->mda[0],
		    (unsigned long long)ar->unread);
		return DELIVER_REFUSED;
	}
	agent_describe(ar, a->timeout, how, sizeof(how));
	err_set(e, EX_UNAVAILABLE, "mda %s: %s", a->mda[0], how);
	if (ar->timed_out)
		return DELIVER_TEMPFAIL;
	/* Not about this message: the next would fare no better now. */
	if (ar->spawned && WIFEXITED(ar->status) &&
	    (WEXITSTATUS(ar->status) == MDA_TEMPFAIL ||
	    WEXITSTATUS(ar->status) == MDA_CANTCREAT)) {
		e->code = WEXITSTATUS(ar->status) == MDA_TEMPFAIL ?
		    EX_TEMPFAIL : EX_CANTCREAT;
		return DELIVER_HELD;
	}
	return DELIVER_REFUSED;
}

int
deliver_mda_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	const struct account *a = d->acct;
	struct agent_result ar;
	char **argv, *from = NULL;
	size_t i, n;
	int fd, rc = -1;

	if ((fd = maildir_msg_open_read(m, e)) == -1)
		return -1;
	if (deliver_sender(fd, &from, e) == -1)
		goto out;
	for (n = 0; a->mda[n] != NULL; n++)
		;
	argv = xcalloc(n + 1, sizeof(*argv));
	for (i = 0; i < n; i++)
		argv[i] = mda_expand(a->mda[i], from, a->recipient != NULL ?
		    a->recipient : a->user);
	if (agent_run(argv, NULL, fd, a->timeout, &ar, e) == 0)
		rc = mda_result(&ar, a, e);
	for (i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
out:
	free(from);
	(void)close(fd);	/* read-only */
	return rc;
}
