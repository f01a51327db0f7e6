/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "deliver_impl.h"
#include "xmalloc.h"

/*
 * Delivery over LMTP (RFC 2033) to a Unix socket or a TCP port. One
 * connection per run, opened for the first message (LHLO once) and
 * opened again when the server dropped it; one transaction per message:
 * MAIL FROM, RCPT TO and DATA (sent together when the server offers
 * PIPELINING, RFC 2920), the message with CRLF line ends and
 * dot-stuffed, then the one reply of the one recipient. Every wait for
 * the server ends at the account's timeout.
 *
 * What is not known to be delivered is not: a connection lost or a
 * timeout before the final reply leaves the message on the server. Lost
 * after the final dot, the server may have delivered it: it is then
 * delivered again next run (a duplicate, never a loss).
 */
#define LINE_CAP	2048		/* a reply line (RFC 5321: 512) */
#define REPLY_LINES	100		/* lines of one reply, at most */
#define TEXT_CAP	200		/* server text kept in an error */
#define CHUNK		16384		/* message bytes read at once */
#define QUIT_WAIT	2		/* seconds QUIT waits for its answer */

/* lmtp_envelope, besides a deliver_result or -1: DATA was answered 354,
 * or the connection, kept from an earlier message, was found lost before
 * any reply (try once more on a new one). */
#define LMTP_GO		3
#define LMTP_RETRY	4

struct lmtp {
	char		*label;		/* "lmtp ADDRESS", escaped */
	char		 host[256];	/* ours, for LHLO */
	bool		 pipelining;	/* the server offers PIPELINING */
	int		 lost;		/* errno of LF_LOST; 0: closed */
	char		 in[LINE_CAP + 2];
	size_t		 inlen;
	char		 chunk[CHUNK];
	char		 out[2 * CHUNK + 8];
};

/* One reply: its code and the text of its first line, escaped. */
struct reply {
	int		 code;
	char		 text[TEXT_CAP * 4 + 8];
};

/* How a wait for the server failed. */
enum lmtp_fail {
	LF_LOST,			/* connection closed or broken */
	LF_TIMEOUT,
	LF_PROTOCOL			/* not a reply */
};

static void
lmtp_disconnect(struct deliver *d)
{
	if (d->fd != -1)
		(void)close(d->fd);	/* nothing pending can be lost */
	d->fd = -1;
	if (d->lmtp != NULL)
		d->lmtp->inlen = 0;
}

/* Waits for events on the socket; 0, or -1 at the timeout. */
static int
lmtp_wait(struct deliver *d, short events, unsigned timeout)
{
	struct pollfd p = { d->fd, events, 0 };
	int n;

	do
		n = poll(&p, 1, (int)timeout * 1000);
	while (n == -1 && errno == EINTR);
	return n > 0 ? 0 : -1;
}

static int
lmtp_send(struct deliver *d, const char *p, size_t n, enum lmtp_fail *why)
{
	ssize_t k;

	while (n > 0) {
		k = send(d->fd, p, n, MSG_NOSIGNAL);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (lmtp_wait(d, POLLOUT, d->acct->timeout) == -1) {
				*why = LF_TIMEOUT;
				return -1;
			}
			continue;
		}
		d->lmtp->lost = k == -1 ? errno : 0;
		*why = LF_LOST;
		return -1;
	}
	return 0;
}

/*
 * One line of a reply into line (NUL-terminated, CRLF or LF removed).
 * A line longer than LINE_CAP is a protocol error.
 */
static int
lmtp_line(struct deliver *d, char *line, unsigned timeout,
    enum lmtp_fail *why)
{
	struct lmtp *l = d->lmtp;
	char *nl;
	size_t n;
	ssize_t k;

	while ((nl = memchr(l->in, '\n', l->inlen)) == NULL) {
		if (l->inlen >= LINE_CAP) {
			*why = LF_PROTOCOL;
			return -1;
		}
		k = recv(d->fd, l->in + l->inlen, LINE_CAP - l->inlen, 0);
		if (k > 0) {
			l->inlen += (size_t)k;
			continue;
		}
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (lmtp_wait(d, POLLIN, timeout) == -1) {
				*why = LF_TIMEOUT;
				return -1;
			}
			continue;
		}
		l->lost = k == -1 ? errno : 0;
		*why = LF_LOST;
		return -1;
	}
	n = (size_t)(nl - l->in);
	memcpy(line, l->in, n);
	line[n > 0 && line[n - 1] == '\r' ? n - 1 : n] = '\0';
	l->inlen -= n + 1;
	memmove(l->in, nl + 1, l->inlen);
	return 0;
}

/*
 * Reads one reply ("ddd-text" lines, then "ddd text"). With lhlo set,
 * also notes whether it offers PIPELINING (the LHLO reply). Returns 0,
 * or -1 with *why set.
 */
static int
lmtp_reply(struct deliver *d, struct reply *r, bool lhlo, unsigned timeout,
    enum lmtp_fail *why)
{
	char line[LINE_CAP + 2], *t;
	int i, code;

	for (i = 0; i < REPLY_LINES; i++) {
		if (lmtp_line(d, line, timeout, why) == -1)
			return -1;
		if (!isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (line[3] != ' ' && line[3] != '-' && line[3] != '\0') ||
		    line[0] < '2' || line[0] > '5') {
			*why = LF_PROTOCOL;
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (i == 0) {
			r->code = code;
			t = buf_escape(line, strlen(line), TEXT_CAP);
			snprintf(r->text, sizeof(r->text), "%s", t);
			free(t);
		} else if (code != r->code) {
			*why = LF_PROTOCOL;
			return -1;
		}
		if (lhlo && i > 0 && line[3] != '\0' &&
		    strncasecmp(line + 4, "PIPELINING", 10) == 0 &&
		    (line[14] == '\0' || line[14] == ' '))
			d->lmtp->pipelining = true;
		if (line[3] != '-')
			return 0;
	}
	*why = LF_PROTOCOL;
	return -1;
}

/*
 * Fills e for a failed wait; what says what we waited for ("waiting for
 * the greeting"). Returns what the message's handover comes to: a
 * connection lost, DELIVER_TEMPFAIL (the next message reconnects); a
 * server that stopped answering or does not speak LMTP, -1 (the account
 * stops rather than wait again at each message).
 */
static int
lmtp_fail_err(struct deliver *d, enum lmtp_fail why, const char *what,
    struct err *e)
{
	struct lmtp *l = d->lmtp;

	if (why == LF_TIMEOUT) {
		err_set(e, EX_TEMPFAIL, "%s: timed out after %u s %s",
		    l->label, d->acct->timeout, what);
		return -1;
	}
	if (why == LF_PROTOCOL) {
		err_set(e, EX_PROTOCOL, "%s: not an LMTP reply (%s)", l->label,
		    what);
		return -1;
	}
	err_set(e, EX_TEMPFAIL, "%s: connection lost %s%s%s", l->label, what,
	    l->lost != 0 ? ": " : "", l->lost != 0 ? strerror(l->lost) : "");
	return DELIVER_TEMPFAIL;
}

/* A connected socket to a Unix socket path, or -1 (errno set). */
static int
lmtp_connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	if (errno == EAGAIN)
		errno = ECONNREFUSED;	/* its backlog is full */
	(void)close(fd);
	return -1;
}

/* Connects to one address, waiting at most timeout s; or -1 (errno). */
static int
lmtp_connect_ai(const struct addrinfo *ai, unsigned timeout)
{
	struct pollfd p;
	socklen_t len = sizeof(int);
	int fd, soerr = 0, n;

	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol)) == -1)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	p = (struct pollfd){ fd, POLLOUT, 0 };
	do
		n = poll(&p, 1, (int)timeout * 1000);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	if (n <= 0)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		goto fail;
	if (soerr == 0)
		return fd;
	errno = soerr;
fail:
	n = errno;
	(void)close(fd);
	errno = n;
	return -1;
}

/* "HOST:PORT" or "[ADDR]:PORT" (config.c checked the form). */
static int
lmtp_connect_tcp(const char *where, unsigned timeout, struct err *e,
    const char *label)
{
	struct addrinfo hints, *res = NULL, *ai;
	const char *colon = strrchr(where, ':');
	char *host = xstrndup(where, (size_t)(colon - where));
	size_t hl = strlen(host);
	int fd = -1, rc;

	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		err_set(e, EX_TEMPFAIL, "%s: cannot resolve the host: %s",
		    label, gai_strerror(rc));
		free(host);
		return -1;
	}
	errno = ECONNREFUSED;
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = lmtp_connect_ai(ai, timeout);
	if (fd == -1)
		err_set(e, EX_TEMPFAIL, "%s: cannot connect: %s", label,
		    strerror(errno));
	freeaddrinfo(res);
	free(host);
	return fd;
}

/* Greeting, then LHLO. Returns 0, or -1 (e set; disconnected). */
static int
lmtp_hello(struct deliver *d, struct err *e)
{
	struct lmtp *l = d->lmtp;
	enum lmtp_fail why;
	struct reply r;
	char *cmd;
	int rc;

	if (lmtp_reply(d, &r, false, d->acct->timeout, &why) == -1) {
		/* Not yet in a message: any failure stops the account. */
		(void)lmtp_fail_err(d, why, "waiting for the greeting", e);
		goto fail;
	}
	if (r.code != 220) {
		err_set(e, r.code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL,
		    "%s: greeted with \"%s\"", l->label, r.text);
		goto fail;
	}
	l->pipelining = false;
	cmd = xasprintf("LHLO %s\r\n", l->host);
	rc = lmtp_send(d, cmd, strlen(cmd), &why);
	free(cmd);
	if (rc == -1 || lmtp_reply(d, &r, true, d->acct->timeout, &why) ==
	    -1) {
		(void)lmtp_fail_err(d, why, "waiting for the answer to LHLO",
		    e);
		goto fail;
	}
	if (r.code != 250) {
		err_set(e, r.code >= 500 ? EX_UNAVAILABLE : EX_TEMPFAIL,
		    "%s: LHLO answered \"%s\"", l->label, r.text);
		goto fail;
	}
	return 0;
fail:
	lmtp_disconnect(d);
	return -1;
}

static int
lmtp_connect(struct deliver *d, struct err *e)
{
	const char *where = d->acct->lmtp;

	if (strncmp(where, "unix:", 5) == 0) {
		if ((d->fd = lmtp_connect_unix(where + 5)) == -1) {
			err_set(e, EX_TEMPFAIL, "%s: cannot connect: %s",
			    d->lmtp->label, strerror(errno));
			return -1;
		}
	} else if ((d->fd = lmtp_connect_tcp(where, d->acct->timeout, e,
	    d->lmtp->label)) == -1)
		return -1;
	d->lmtp->inlen = 0;
	return lmtp_hello(d, e);
}

/* A connection kept from an earlier message that the server closed (or
 * spoke on unasked, as with a 421 at its idle limit) is not reused. */
static bool
lmtp_usable(struct deliver *d)
{
	char c;
	ssize_t n;

	if (d->fd == -1 || d->lmtp->inlen > 0)
		return false;
	n = recv(d->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
deliver_lmtp_open(struct deliver *d, struct err *e)
{
	struct lmtp *l = xcalloc(1, sizeof(*l));
	char *esc, *h;

	(void)e;		/* nothing here can fail: we connect later */
	esc = buf_escape(d->acct->lmtp, strlen(d->acct->lmtp), TEXT_CAP);
	l->label = xasprintf("lmtp %s", esc);
	free(esc);
	if (gethostname(l->host, sizeof(l->host)) == -1)
		l->host[0] = '\0';
	l->host[sizeof(l->host) - 1] = '\0';
	for (h = l->host; *h != '\0'; h++)
		if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.')
			*h = '-';
	if (l->host[0] == '\0')
		snprintf(l->host, sizeof(l->host), "localhost");
	d->lmtp = l;
	return 0;
}

void
deliver_lmtp_close(struct deliver *d)
{
	enum lmtp_fail why;
	struct reply r;
	unsigned t;

	if (d->lmtp == NULL)
		return;
	if (lmtp_usable(d) && lmtp_send(d, "QUIT\r\n", 6, &why) == 0) {
		/* Politeness only: its answer changes nothing. */
		t = d->acct->timeout < QUIT_WAIT ? d->acct->timeout : QUIT_WAIT;
		(void)lmtp_reply(d, &r, false, t, &why);
	}
	lmtp_disconnect(d);
	free(d->lmtp->label);
	free(d->lmtp);
	d->lmtp = NULL;
}

/*
 * Whether s can stand in MAIL FROM:<...> as RFC 5321 writes a mailbox:
 * a dot-atom, "@", then a domain name or an [address literal]. What the
 * header gave otherwise is not sent (the null sender is).
 */
static bool
lmtp_mailbox_ok(const char *s)
{
	static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
	const char *at = strrchr(s, '@'), *p;
	size_t n;

	if (at == NULL || at == s || strlen(s) > 254 || at - s > 64)
		return false;
	for (p = s; p < at; p++)
		if (*p == '.' ? p == s || p[-1] == '.' || p + 1 == at :
		    !isalnum((unsigned char)*p) && strchr(atext, *p) == NULL)
			return false;
	p = at + 1;
	if (*p == '[') {
		n = strlen(p);
		return n > 2 && p[n - 1] == ']' &&
		    strcspn(p + 1, "[]\\") == n - 2;
	}
	for (; *p != '\0'; p++)
		if (*p == '.' ? p == at + 1 || p[-1] == '.' || p[-1] == '-' ||
		    p[1] == '\0' || p[1] == '-' :
		    !isalnum((unsigned char)*p) && (*p != '-' || p[-1] == '@'))
			return false;
	return p > at + 1 && p[-1] != '-';
}

/* What a refusal of one step means: 4xx later, 5xx never, else broken. */
static int
lmtp_verdict(struct deliver *d, const struct reply *r, const char *what,
    struct err *e)
{
	if (r->code >= 400 && r->code < 600) {
		err_set(e, EX_UNAVAILABLE, "%s: %s answered \"%s\"",
		    d->lmtp->label, what, r->text);
		return r->code < 500 ? DELIVER_TEMPFAIL : DELIVER_REFUSED;
	}
	err_set(e, EX_PROTOCOL, "%s: %s answered \"%s\", which is not an "
	    "answer to it", d->lmtp->label, what, r->text);
	lmtp_disconnect(d);
	return -1;
}

/* After a refused MAIL or RCPT: a clean slate for the next message. */
static void
lmtp_rset(struct deliver *d)
{
	enum lmtp_fail why;
	struct reply r;

	if (lmtp_send(d, "RSET\r\n", 6, &why) == -1 ||
	    lmtp_reply(d, &r, false, d->acct->timeout, &why) == -1 ||
	    r.code / 100 != 2)
		lmtp_disconnect(d);	/* the next message reconnects */
}

/*
 * The answer r to envelope command i (0 MAIL, 1 RCPT, 2 DATA; name as
 * sent), for lmtp_envelope: *failed is the first refused command or -1,
 * *rc what lmtp_envelope returns. Returns true when the envelope ends
 * here (connection closed, or a verdict of -1).
 */
static bool
lmtp_envelope_answer(struct deliver *d, const struct reply *r, int i,
    const char *name, bool reused, int *failed, int *rc, struct err *e)
{
	if (r->code == 421) {
		/* It closes the connection: at the first command
		 * on a kept one, its idle limit came first. */
		lmtp_disconnect(d);
		if (*failed == -1)
			*rc = reused && i == 0 ? LMTP_RETRY :
			    lmtp_verdict(d, r, name, e);
		return true;
	}
	if (*failed != -1 && i == 2 && r->code == 354) {
		/* DATA taken with no recipient: end it unseen. */
		lmtp_disconnect(d);
		return true;
	}
	if (*failed == -1 && (i == 2 ? r->code != 354 :
	    r->code / 100 != 2)) {
		*failed = i;
		if ((*rc = lmtp_verdict(d, r, name, e)) == -1)
			return true;
	}
	return false;
}

/*
 * MAIL FROM, RCPT TO, DATA: together with PIPELINING, else one by one.
 * Returns LMTP_GO when the message is to follow, LMTP_RETRY (reused
 * connection found lost at once; disconnected), or a deliver_result or
 * -1 (e set).
 */
static int
lmtp_envelope(struct deliver *d, const char *from, bool reused,
    struct err *e)
{
	const struct account *a = d->acct;
	char *cmd[3], *all, name[520], what[560];
	enum lmtp_fail why;
	struct reply r;
	int i = 0, failed = -1, rc = LMTP_GO, k;

	cmd[0] = xasprintf("MAIL FROM:<%s>\r\n", from);
	cmd[1] = xasprintf("RCPT TO:<%s>\r\n", a->recipient != NULL ?
	    a->recipient : a->user);
	cmd[2] = xstrdup("DATA\r\n");
	snprintf(what, sizeof(what), "waiting for the answers to the "
	    "envelope");
	if (d->lmtp->pipelining) {
		all = xasprintf("%s%s%s", cmd[0], cmd[1], cmd[2]);
		k = lmtp_send(d, all, strlen(all), &why);
		free(all);
		if (k == -1)
			goto lost;
	}
	for (i = 0; i < 3 && (d->lmtp->pipelining || failed == -1); i++) {
		snprintf(name, sizeof(name), "%.*s", (int)strlen(cmd[i]) - 2,
		    cmd[i]);
		snprintf(what, sizeof(what), "waiting for the answer to %s",
		    name);
		if (!d->lmtp->pipelining &&
		    lmtp_send(d, cmd[i], strlen(cmd[i]), &why) == -1)
			goto lost;
		if (lmtp_reply(d, &r, false, a->timeout, &why) == -1)
			goto lost;
		if (lmtp_envelope_answer(d, &r, i, name, reused, &failed,
		    &rc, e))
			goto out;
	}
	if (failed != -1)
		lmtp_rset(d);
	goto out;
lost:
	rc = lmtp_fail_err(d, why, what, e);
	if (reused && i == 0 && why == LF_LOST)
		rc = LMTP_RETRY;
	lmtp_disconnect(d);
out:
	for (i = 0; i < 3; i++)
		free(cmd[i]);
	return rc;
}

/* The answer to the message's final dot. */
static int
lmtp_final(struct deliver *d, struct err *e)
{
	enum lmtp_fail why;
	struct reply r;

	size_t n;
	int rc;

	if (lmtp_reply(d, &r, false, d->acct->timeout, &why) == -1) {
		rc = lmtp_fail_err(d, why, "waiting for the answer to the "
		    "message", e);
		n = strlen(e->msg);
		snprintf(e->msg + n, sizeof(e->msg) - n, " (if the server "
		    "delivered it, it is delivered again)");
		lmtp_disconnect(d);
		return rc;
	}
	if (r.code / 100 == 2)
		return DELIVER_TAKEN;
	if (r.code == 421)
		lmtp_disconnect(d);	/* it closes the connection */
	return lmtp_verdict(d, &r, "the message", e);
}

/*
 * Sending failed mid-DATA. A server that answered before it hung up (a
 * message too large) has its answer read; otherwise nothing was
 * delivered: the message is left for later.
 */
static int
lmtp_data_lost(struct deliver *d, enum lmtp_fail why, struct err *e)
{
	enum lmtp_fail why2;
	struct reply r;
	int rc, lost = d->lmtp->lost;

	if (why == LF_LOST && lmtp_reply(d, &r, false, 0, &why2) == 0 &&
	    r.code >= 400) {
		lmtp_disconnect(d);
		err_set(e, EX_UNAVAILABLE, "%s: the message answered \"%s\" "
		    "while it was sent", d->lmtp->label, r.text);
		return r.code < 500 ? DELIVER_TEMPFAIL : DELIVER_REFUSED;
	}
	d->lmtp->lost = lost;	/* the send's error, not the read's */
	rc = lmtp_fail_err(d, why, "while the message was sent", e);
	lmtp_disconnect(d);
	return rc;
}

/*
 * The message at msgfd: LF line ends become CRLF, a line that starts
 * with "." gets one more (RFC 5321 section 4.5.2), and a message that
 * does not end with a line end gets one; then "." ends it.
 */
static int
lmtp_data(struct deliver *d, int msgfd, struct err *e)
{
	struct lmtp *l = d->lmtp;
	enum lmtp_fail why;
	bool bol = true;
	off_t pos = 0;
	ssize_t n, i;
	size_t o;

	while ((n = pread(msgfd, l->chunk, sizeof(l->chunk), pos)) > 0) {
		pos += n;
		for (i = 0, o = 0; i < n; i++) {
			if (bol && l->chunk[i] == '.')
				l->out[o++] = '.';
			if (l->chunk[i] == '\n')
				l->out[o++] = '\r';
			l->out[o++] = l->chunk[i];
			bol = l->chunk[i] == '\n';
		}
		if (lmtp_send(d, l->out, o, &why) == -1)
			return lmtp_data_lost(d, why, e);
	}
	if (n == -1) {
		err_set(e, EX_IOERR, "cannot read the spooled message: %s",
		    strerror(errno));
		lmtp_disconnect(d);	/* the only way to abort DATA */
		return -1;
	}
	o = 0;
	if (!bol) {
		l->out[o++] = '\r';
		l->out[o++] = '\n';
	}
	memcpy(l->out + o, ".\r\n", 3);
	if (lmtp_send(d, l->out, o + 3, &why) == -1)
		return lmtp_data_lost(d, why, e);
	return lmtp_final(d, e);
}

int
deliver_lmtp_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	char *from = NULL;
	bool reused;
	int fd, rc = -1, tries;

	if ((fd = maildir_msg_open_read(m, e)) == -1)
		return -1;
	if (deliver_sender_or_null(fd, &from, e) == -1)
		goto out;
	if (from != NULL && !lmtp_mailbox_ok(from)) {
		free(from);
		from = NULL;
	}
	for (tries = 0; tries < 2; tries++) {
		if (!(reused = lmtp_usable(d))) {
			lmtp_disconnect(d);
			if (lmtp_connect(d, e) == -1)
				goto out;
		}
		if ((rc = lmtp_envelope(d, from != NULL ? from : "", reused,
		    e)) != LMTP_RETRY)
			break;
		err_clear(e);
	}
	if (rc == LMTP_GO)
		rc = lmtp_data(d, fd, e);
out:
	free(from);
	(void)close(fd);	/* read-only */
	return rc;
}
