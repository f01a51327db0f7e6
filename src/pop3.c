/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <curl/curl.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "login.h"
#include "pop3.h"
#include "pop3_impl.h"
#include "xmalloc.h"

#define POP3_INBUF	(256 * 1024)	/* bytes read per recv at most */
#define POP3_OUTMAX	(1024 * 1024)	/* queued command bytes at most */
#define POP3_STATUSMAX	4096		/* RFC 2449 says 512; be lenient */
#define POP3_LINEMAX	4096		/* a UIDL/LIST/CAPA line */
#define POP3_CAPAMAX	2048		/* CAPA text kept for pop3_capa_text */
#define POP3_AUTHMAX	4096		/* a SASL response line */

struct pop3_req {
	enum pop3_kind	 kind;
	struct pop3_cb	 cb;
	void		*arg;
	uint64_t	 expect;
	char		 cmd[48];	/* for messages; secrets redacted */
	bool		 sasl;		/* "+ " lines go to cb.data */
	bool		 lenient;	/* overlong lines are left out (CAPA) */
};

struct pop3 {
	struct login	*login;		/* which owns the connection */
	CURL		*curl;		/* borrowed from the login */
	curl_socket_t	 fd;
	unsigned	 timeout;
	unsigned	 caps;
	unsigned	 login_delay;
	const volatile sig_atomic_t *cancel;
	void		(*trace)(void *, char, const char *);
	void		*trace_arg;
	size_t		 noops;		/* keepalive NOOPs not yet answered */
	struct buf	 capa_text;	/* CAPA after login, "A, B, C" */

	/* the engine: a FIFO of commands awaiting their responses */
	struct pop3_req	*reqs;
	size_t		 rhead, rcount, rsize;
	uint64_t	 inflight_bytes;
	unsigned long	 completed;
	struct buf	 out;		/* commands not yet sent */
	char		*in;		/* received, not yet parsed */
	size_t		 inlen;
	char		*dec;		/* decoded body bytes */
	bool		 in_body;
	struct pop3_unstuff u;
	struct buf	 line;		/* a POP3_LINES line being built */
	bool		 line_skip;	/* the rest of an overlong line is dropped */
};

void
pop3_trace(struct pop3 *p, char dir, const char *text, size_t n)
{
	char *esc;

	if (p->trace == NULL)
		return;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	esc = buf_escape(text, n, 512);
	p->trace(p->trace_arg, dir, esc);
	free(esc);
}

/*
 * What may be shown of a command we send: a secret can stand in PASS,
 * APOP, the initial response of AUTH, and every SASL continuation line,
 * so only known harmless commands are shown whole.
 */
void
pop3_redact(const char *cmd, size_t n, char *out, size_t outsize)
{
	static const char *const shown[] = {
		"CAPA", "STLS", "USER", "UIDL", "LIST", "RETR", "DELE",
		"TOP", "STAT", "NOOP", "RSET", "QUIT", "UTF8"
	};
	const char *sp;
	size_t i, verb, keep;

	while (n > 0 && (cmd[n - 1] == '\n' || cmd[n - 1] == '\r'))
		n--;
	sp = memchr(cmd, ' ', n);
	verb = sp != NULL ? (size_t)(sp - cmd) : n;
	for (i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		if (verb == strlen(shown[i]) &&
		    strncasecmp(cmd, shown[i], verb) == 0) {
			snprintf(out, outsize, "%.*s", (int)n, cmd);
			return;
		}
	}
	if (sp != NULL && verb == 4 && (strncasecmp(cmd, "AUTH", 4) == 0 ||
	    strncasecmp(cmd, "APOP", 4) == 0)) {
		/* Keep the mechanism or user name, hide what follows. */
		sp = memchr(sp + 1, ' ', n - verb - 1);
		keep = sp != NULL ? (size_t)(sp - cmd) : n;
		snprintf(out, outsize, "%.*s%s", (int)keep, cmd,
		    sp != NULL ? " <redacted>" : "");
	} else if (verb == 4 && strncasecmp(cmd, "PASS", 4) == 0)
		snprintf(out, outsize, "PASS <redacted>");
	else
		snprintf(out, outsize, "<redacted>");
}

static int	pop3_flush(struct pop3 *p, struct err *e);
static int	pop3_enqueue(struct pop3 *p, enum pop3_kind kind,
		    const struct pop3_cb *cb, void *arg, uint64_t expect,
		    const char *cmd, bool sasl, struct err *e);

int
pop3_refused(struct err *e, int dflt, const char *what, const char *line,
    size_t n)
{
	char *esc = buf_escape(line, n, 200);

	err_set(e, pop3_err_code(line, n, dflt), "%s: \"%s\"", what, esc);
	free(esc);
	return -1;
}

int
pop3_err_code(const char *line, size_t n, int dflt)
{
	static const struct {
		const char	*code;
		int		 ex;
	} codes[] = {
		{ "[IN-USE]", EX_TEMPFAIL },
		{ "[LOGIN-DELAY]", EX_TEMPFAIL },
		{ "[SYS/TEMP]", EX_TEMPFAIL },
		{ "[AUTH]", EX_NOPERM },
	};
	size_t i, len;

	if (n < 5 || strncmp(line, "-ERR ", 5) != 0)
		return dflt;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		len = strlen(codes[i].code);
		if (n - 5 >= len && strncasecmp(line + 5, codes[i].code,
		    len) == 0)
			return codes[i].ex;
	}
	return dflt;
}

int
pop3_send_secret(struct pop3 *p, const struct pop3_cb *cb, void *arg,
    char *cmd, bool sasl, struct err *e)
{
	int rc = pop3_enqueue(p, POP3_SINGLE, cb, arg, 0, cmd, sasl, e);

	xfree_secret(cmd);
	if (rc == 0)
		rc = pop3_drain(p, e);
	if (p->out.data != NULL)
		xwipe(p->out.data, p->out.size);
	return rc;
}

void
pop3_forget(struct pop3 *p)
{
	p->rhead = p->rcount = 0;
	p->inflight_bytes = 0;
	p->inlen = 0;
	p->in_body = false;
	buf_reset(&p->out);
	buf_reset(&p->line);
}

/* Drops the connection and what the engine held of it. */
static void
pop3_reset(struct pop3 *p)
{
	login_disconnect(p->login);
	p->curl = NULL;
	p->fd = CURL_SOCKET_BAD;
	pop3_forget(p);
}

unsigned
pop3_cap_bit(const char *line, size_t n)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} caps[] = {
		{ "PIPELINING", POP3_CAP_PIPELINING },
		{ "UIDL", POP3_CAP_UIDL },
		{ "TOP", POP3_CAP_TOP },
		{ "RESP-CODES", POP3_CAP_RESP_CODES },
	};
	size_t i, len;

	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		len = strlen(caps[i].name);
		if (n >= len && strncasecmp(line, caps[i].name, len) == 0 &&
		    (n == len || line[len] == ' '))
			return caps[i].bit;
	}
	return 0;
}

static int
pop3_capa_line(void *arg, const char *line, size_t n, struct err *e)
{
	struct pop3 *p = arg;
	unsigned long v = 0;
	char *esc;
	size_t i;

	(void)e;
	if (n > 12 && strncasecmp(line, "LOGIN-DELAY ", 12) == 0) {
		/* "LOGIN-DELAY 900" or, before login, "... USER" */
		for (i = 12; i < n && line[i] >= '0' && line[i] <= '9' &&
		    v < 86400; i++)
			v = v * 10 + (unsigned long)(line[i] - '0');
		p->login_delay = v > 86400 ? 86400 : (unsigned)v;
	}
	p->caps |= pop3_cap_bit(line, n);
	if (n == 0)
		return 0;
	/* Kept for --check, within its cap; what does not fit is left out. */
	esc = buf_escape(line, n, 200);
	if (p->capa_text.len + strlen(esc) + 2 < POP3_CAPAMAX) {
		if (p->capa_text.len > 0)
			(void)buf_append(&p->capa_text, ", ", 2);  /* fits */
		(void)buf_append(&p->capa_text, esc, strlen(esc));
	}
	free(esc);
	return 0;
}

static int
pop3_capa_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct pop3 *p = arg;

	(void)line;
	(void)n;
	(void)e;
	/* The capabilities after login replace what was known before. A
	 * server without CAPA answers -ERR: it then has no extensions, but
	 * may still support UIDL, which is tried anyway. */
	p->caps = ok ? POP3_CAP_CAPA : 0;
	p->login_delay = 0;
	buf_reset(&p->capa_text);
	return 0;
}

/*
 * CAPA again after login: some servers only then list what they do. When
 * the server announced PIPELINING before login, the reply is not waited
 * for: the caller's next commands go out with it, and the reply (which
 * comes first) updates the capabilities before theirs are read.
 */
static int
pop3_capa(struct pop3 *p, struct err *e)
{
	static const struct pop3_cb cb = {
		pop3_capa_status, pop3_capa_line, NULL
	};

	p->caps = login_pre_caps(p->login) & POP3_CAP_PIPELINING;
	p->login_delay = 0;
	if (pop3_queue(p, POP3_LINES, &cb, p, 0, "CAPA", e) == -1)
		return -1;
	return p->caps & POP3_CAP_PIPELINING ? 0 : pop3_drain(p, e);
}

static void
pop3_free(struct pop3 *p)
{
	pop3_reset(p);
	login_free(p->login);
	buf_free(&p->out);
	buf_free(&p->line);
	buf_free(&p->capa_text);
	free(p->reqs);
	free(p->in);
	free(p->dec);
	free(p);
}

int
pop3_open(struct pop3 **pp, const struct pop3_login *l, struct err *e)
{
	struct pop3 *p = xcalloc(1, sizeof(*p));
	struct err le;
	size_t from = 0;
	int rc;

	p->login = login_new(p);
	p->fd = CURL_SOCKET_BAD;
	p->timeout = l->timeout > 0 ? l->timeout : 60;
	p->trace = l->trace;
	p->trace_arg = l->trace_arg;
	p->cancel = l->cancel;
	buf_init(&p->out, POP3_OUTMAX);
	buf_init(&p->line, POP3_LINEMAX);
	buf_init(&p->capa_text, POP3_CAPAMAX);
	p->in = xmalloc(POP3_INBUF);
	p->dec = xmalloc(POP3_INBUF + 1);
	/* Errors go to le, and into e only if the login fails at last:
	 * what a later attempt recovered from must not be reported. */
	err_clear(&le);
	rc = login_connect(p->login, l, &p->curl, &p->fd, &le);
	if (rc == 0)
		rc = login_auth(p->login, l, &from, &le);
	if (rc == 1) {
		static const char again[] = "the server closed the "
		    "connection; connecting again";

		pop3_trace(p, POP3_TRACE_NOTE, again, sizeof(again) - 1);
		pop3_reset(p);
		rc = login_connect(p->login, l, &p->curl, &p->fd, &le);
		if (rc == 0 && login_auth(p->login, l, &from, &le) != 0)
			rc = -1;
	}
	if (rc == 0)
		rc = pop3_capa(p, &le);
	if (rc == -1) {
		*e = le;
		pop3_free(p);
		return -1;
	}
	*pp = p;
	return 0;
}

void
pop3_close(struct pop3 *p)
{
	if (p != NULL)
		pop3_free(p);
}

unsigned
pop3_caps(const struct pop3 *p)
{
	return p->caps;
}

enum pop3_utf8
pop3_utf8(const struct pop3 *p, const char **reply)
{
	return login_utf8(p->login, reply);
}

const char *
pop3_auth_used(const struct pop3 *p)
{
	return login_used(p->login);
}

char *
pop3_capa_text(const struct pop3 *p)
{
	return p->capa_text.len > 0 ? xstrndup(p->capa_text.data,
	    p->capa_text.len) : xstrdup(p->caps & POP3_CAP_CAPA ? "(none)" :
	    "(CAPA not supported)");
}

char *
pop3_tls_info(const struct pop3 *p)
{
	return login_tls_info(p->login);
}

static int
pop3_noop_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct pop3 *p = arg;

	(void)ok;	/* a NOOP refused is harmless */
	(void)line;
	(void)n;
	(void)e;
	p->noops--;
	return 0;
}

int
pop3_keepalive(struct pop3 *p, struct err *e)
{
	static const struct pop3_cb cb = { pop3_noop_status, NULL, NULL };

	/* A server that cannot pipeline gets no command while it is still
	 * answering another one (other NOOPs aside). */
	if (!(p->caps & POP3_CAP_PIPELINING) && p->rcount > p->noops)
		return 0;
	if (pop3_queue(p, POP3_SINGLE, &cb, p, 0, "NOOP", e) == -1)
		return -1;
	p->noops++;
	return pop3_flush(p, e);
}

unsigned
pop3_login_delay(const struct pop3 *p)
{
	return p->login_delay;
}

/* pop3_queue, and for a SASL exchange (sasl: "+ " lines to cb->data). */
static int
pop3_enqueue(struct pop3 *p, enum pop3_kind kind, const struct pop3_cb *cb,
    void *arg, uint64_t expect, const char *cmd, bool sasl, struct err *e)
{
	struct pop3_req *r;
	size_t n = strlen(cmd);

	if (n == 0 || n > 255 || strpbrk(cmd, "\r\n") != NULL) {
		err_set(e, EX_SOFTWARE, "malformed POP3 command");
		return -1;
	}
	if (buf_append(&p->out, cmd, n) == -1 ||
	    buf_append(&p->out, "\r\n", 2) == -1) {
		err_set(e, EX_SOFTWARE, "too many POP3 commands queued");
		return -1;
	}
	if (p->rcount == p->rsize) {
		/* Grow the ring, unrolling it so rhead becomes 0. */
		struct pop3_req *nr = xreallocarray(NULL,
		    p->rsize ? p->rsize * 2 : 64, sizeof(*nr));
		size_t i;

		for (i = 0; i < p->rcount; i++)
			nr[i] = p->reqs[(p->rhead + i) % p->rsize];
		free(p->reqs);
		p->reqs = nr;
		p->rhead = 0;
		p->rsize = p->rsize ? p->rsize * 2 : 64;
	}
	r = &p->reqs[(p->rhead + p->rcount++) % p->rsize];
	r->kind = kind;
	r->cb = *cb;
	r->arg = arg;
	r->expect = expect;
	r->sasl = sasl;
	/* A capability line too long to be one is no reason to fail. */
	r->lenient = kind == POP3_LINES && strcmp(cmd, "CAPA") == 0;
	pop3_redact(cmd, n, r->cmd, sizeof(r->cmd));
	p->inflight_bytes += expect;
	pop3_trace(p, POP3_TRACE_OUT, r->cmd, strlen(r->cmd));
	return 0;
}

int
pop3_queue(struct pop3 *p, enum pop3_kind kind, const struct pop3_cb *cb,
    void *arg, uint64_t expect, const char *cmd, struct err *e)
{
	return pop3_enqueue(p, kind, cb, arg, expect, cmd, false, e);
}

/* The AUTH the line belongs to is still being answered. */
int
pop3_sasl_reply(struct pop3 *p, const char *line, struct err *e)
{
	size_t n = strlen(line);

	if (n > POP3_AUTHMAX || strpbrk(line, "\r\n") != NULL ||
	    buf_append(&p->out, line, n) == -1 ||
	    buf_append(&p->out, "\r\n", 2) == -1) {
		err_set(e, EX_SOFTWARE, "SASL response too long");
		return -1;
	}
	pop3_trace(p, POP3_TRACE_OUT, "<redacted>", 10);
	return 0;
}

size_t
pop3_inflight(const struct pop3 *p)
{
	return p->rcount;
}

uint64_t
pop3_inflight_bytes(const struct pop3 *p)
{
	return p->inflight_bytes;
}

enum {
	U_BOL,		/* at the start of a line */
	U_DOT,		/* a '.' at the start of a line */
	U_DOTCR,	/* ".\r" at the start of a line */
	U_MID,		/* inside a line */
	U_CR		/* a '\r' held back: LF follows, or it was data */
};

size_t
pop3_unstuff(struct pop3_unstuff *u, const char *in, size_t n, char *out,
    size_t *outn, bool *done)
{
	const char *cr;
	size_t i = 0, o = 0, run;
	unsigned char c;

	*done = false;
	while (i < n) {
		c = (unsigned char)in[i];
		switch (u->state) {
		case U_BOL:
			if (c == '.') {
				u->state = U_DOT;
				i++;
				continue;
			}
			u->state = U_MID;
			continue;
		case U_DOT:
			/* The stuffed dot is dropped, unless it ends the body. */
			if (c == '\r') {
				u->state = U_DOTCR;
				i++;
			} else
				u->state = U_MID;
			continue;
		case U_DOTCR:
			if (c == '\n') {
				*outn = o;
				*done = true;
				return i + 1;
			}
			u->state = U_CR;	/* ".\r" then data: CR is data */
			continue;
		case U_MID:
			/* The hot path: copy up to the next CR at once. */
			cr = memchr(in + i, '\r', n - i);
			run = cr != NULL ? (size_t)(cr - (in + i)) : n - i;
			memcpy(out + o, in + i, run);
			o += run;
			i += run;
			if (cr != NULL) {
				u->state = U_CR;
				i++;
			}
			continue;
		case U_CR:
			if (c == '\n') {
				out[o++] = '\n';
				u->state = U_BOL;
				i++;
			} else if (c == '\r') {
				out[o++] = '\r';	/* a bare CR */
				i++;
			} else {
				out[o++] = '\r';
				u->state = U_MID;
			}
			continue;
		}
	}
	*outn = o;
	return i;
}

static void
pop3_complete(struct pop3 *p)
{
	struct pop3_req *r = &p->reqs[p->rhead];

	p->inflight_bytes -= r->expect;
	p->rhead = (p->rhead + 1) % p->rsize;
	p->rcount--;
	p->completed++;
	p->in_body = false;
}

static int
pop3_protocol_error(const char *what, const struct pop3_req *r,
    const char *text, size_t n, struct err *e)
{
	char *esc = buf_escape(text, n, 120);

	err_set(e, EX_PROTOCOL, "%s%s%s: \"%s\"", what, r ? " to " : "",
	    r ? r->cmd : "", esc);
	free(esc);
	return -1;
}

/* Parses one status line at in[0..]; returns bytes used, 0 need more. */
static ssize_t
pop3_parse_status(struct pop3 *p, struct pop3_req *r, const char *in,
    size_t n, struct err *e)
{
	const char *nl = memchr(in, '\n', n);
	size_t len;
	bool ok;

	if (nl == NULL) {
		if (n > POP3_STATUSMAX)
			return pop3_protocol_error("overlong reply", r, in, 80,
			    e);
		return 0;
	}
	len = (size_t)(nl - in);
	if (len > 0 && in[len - 1] == '\r')
		len--;
	pop3_trace(p, POP3_TRACE_IN, in, len);
	if (r->sasl && len >= 1 && in[0] == '+' && (len == 1 || in[1] == ' ')) {
		/* A challenge: the callback answers it; the reply to the
		 * AUTH itself is still to come. */
		if (r->cb.data(r->arg, in + (len > 1 ? 2 : 1),
		    len > 1 ? len - 2 : 0, e) == -1)
			return -1;
		return (ssize_t)(nl + 1 - in);
	}
	ok = len >= 3 && memcmp(in, "+OK", 3) == 0 &&
	    (len == 3 || in[3] == ' ');
	if (!ok && !(len >= 4 && memcmp(in, "-ERR", 4) == 0 &&
	    (len == 4 || in[4] == ' ')))
		return pop3_protocol_error("unexpected reply", r, in, len, e);
	if (r->cb.status != NULL && r->cb.status(r->arg, ok, in, len, e) == -1)
		return -1;
	if (!ok || r->kind == POP3_SINGLE)
		pop3_complete(p);
	else {
		p->in_body = true;
		memset(&p->u, 0, sizeof(p->u));
		buf_reset(&p->line);
		p->line_skip = false;
	}
	return (ssize_t)(nl + 1 - in);
}

/* Hands decoded body bytes to the callback, as lines for POP3_LINES. */
static int
pop3_deliver(struct pop3 *p, struct pop3_req *r, const char *d, size_t n,
    struct err *e)
{
	const char *nl;
	size_t len;

	if (r->kind == POP3_STREAM)
		return r->cb.data != NULL ? r->cb.data(r->arg, d, n, e) : 0;
	while (n > 0) {
		nl = memchr(d, '\n', n);
		len = nl != NULL ? (size_t)(nl - d) : n;
		if (!p->line_skip && buf_append(&p->line, d, len) == -1) {
			/* Show its start, wherever it was cut. */
			if (!r->lenient)
				return pop3_protocol_error("overlong line in "
				    "reply", r, p->line.len > 0 ? p->line.data :
				    d, p->line.len > 0 ? p->line.len : len, e);
			p->line_skip = true;
		}
		if (nl == NULL)
			break;
		if (!p->line_skip && r->cb.data != NULL &&
		    r->cb.data(r->arg, p->line.data, p->line.len, e) == -1)
			return -1;
		buf_reset(&p->line);
		p->line_skip = false;
		d += len + 1;
		n -= len + 1;
	}
	return 0;
}

/* Parses everything buffered; keeps only an incomplete status line. */
static int
pop3_parse(struct pop3 *p, struct err *e)
{
	struct pop3_req req, *r = &req;
	size_t off = 0, used, outn;
	ssize_t s;
	bool done;

	while (off < p->inlen) {
		if (p->rcount == 0)
			return pop3_protocol_error("unsolicited data from "
			    "server", NULL, p->in + off, p->inlen - off, e);
		/* A copy: a callback may queue commands and move the ring. */
		req = p->reqs[p->rhead];
		if (!p->in_body) {
			s = pop3_parse_status(p, r, p->in + off,
			    p->inlen - off, e);
			if (s == -1)
				return -1;
			if (s == 0)
				break;
			off += (size_t)s;
			continue;
		}
		used = pop3_unstuff(&p->u, p->in + off, p->inlen - off,
		    p->dec, &outn, &done);
		off += used;
		if (pop3_deliver(p, r, p->dec, outn, e) == -1)
			return -1;
		if (done) {
			if (r->cb.end != NULL && r->cb.end(r->arg, e) == -1)
				return -1;
			pop3_complete(p);
		}
	}
	memmove(p->in, p->in + off, p->inlen - off);
	p->inlen -= off;
	return 0;
}

static int
pop3_flush(struct pop3 *p, struct err *e)
{
	size_t sent;
	CURLcode rc;

	if (p->curl == NULL) {
		buf_reset(&p->out);	/* detached: nowhere to send */
		return 0;
	}
	while (p->out.len > 0) {
		rc = curl_easy_send(p->curl, p->out.data, p->out.len, &sent);
		if (rc == CURLE_AGAIN)
			return 0;
		if (rc != CURLE_OK) {
			err_set(e, EX_TEMPFAIL, "cannot send to server: %s",
			    curl_easy_strerror(rc));
			return -1;
		}
		buf_consume(&p->out, sent);
	}
	return 0;
}

/* Reads what is ready: 1 got bytes, 0 nothing ready, -1 error. */
static int
pop3_fill(struct pop3 *p, struct err *e)
{
	size_t got = 0;
	CURLcode rc;

	rc = curl_easy_recv(p->curl, p->in + p->inlen, POP3_INBUF - p->inlen,
	    &got);
	if (rc == CURLE_AGAIN)
		return 0;
	if (rc != CURLE_OK) {
		err_set(e, EX_TEMPFAIL, "cannot read from server: %s%s",
		    curl_easy_strerror(rc), p->rcount > 0 && p->in_body ?
		    " (in the middle of a reply; nothing of it was kept)" : "");
		return -1;
	}
	if (got == 0) {
		err_set(e, EX_TEMPFAIL, "server closed the connection%s%s",
		    p->rcount > 0 ? " while answering " : "",
		    p->rcount > 0 ? p->reqs[p->rhead].cmd : "");
		return -1;
	}
	p->inlen += got;
	return 1;
}

int
pop3_step(struct pop3 *p, struct err *e)
{
	unsigned long before = p->completed;
	int64_t deadline = clock_ms() + (int64_t)p->timeout * 1000, left;
	struct pollfd pfd;
	int r;

	for (;;) {
		if (p->cancel != NULL && *p->cancel) {
			err_set(e, EX_TEMPFAIL, POP3_INTERRUPTED);
			return -1;
		}
		if (pop3_flush(p, e) == -1)
			return -1;
		/* Drain libcurl before polling: TLS may hold bytes that the
		 * socket no longer shows. */
		if ((r = pop3_fill(p, e)) == -1)
			return -1;
		if (r == 1) {
			if (pop3_parse(p, e) == -1)
				return -1;
			if (p->completed != before || p->rcount == 0)
				return 0;
			deadline = clock_ms() + (int64_t)p->timeout * 1000;
			continue;
		}
		if (p->rcount == 0 && p->out.len == 0)
			return 0;
		if ((left = deadline - clock_ms()) <= 0) {
			err_set(e, EX_TEMPFAIL, "timed out after %u s waiting "
			    "for the server%s%s", p->timeout, p->rcount > 0 ?
			    " to answer " : "", p->rcount > 0 ?
			    p->reqs[p->rhead].cmd : "");
			return -1;
		}
		pfd.fd = p->fd;
		pfd.events = POLLIN | (p->out.len > 0 ? POLLOUT : 0);
		pfd.revents = 0;
		/* At most a second at a time: a cancel flag set just before
		 * poll() is still seen promptly. */
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) == -1 &&
		    errno != EINTR) {
			err_set(e, EX_OSERR, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

int
pop3_drain(struct pop3 *p, struct err *e)
{
	while (p->rcount > 0)
		if (pop3_step(p, e) == -1)
			return -1;
	return 0;
}

static int
pop3_quit_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	(void)arg;
	return ok ? 0 : pop3_refused(e, EX_TEMPFAIL, "QUIT refused, so the "
	    "server deleted nothing", line, n);
}

int
pop3_quit(struct pop3 *p, struct err *e)
{
	static const struct pop3_cb cb = { pop3_quit_status, NULL, NULL };

	if (pop3_queue(p, POP3_SINGLE, &cb, p, 0, "QUIT", e) == -1)
		return -1;
	return pop3_drain(p, e);
}

struct pop3 *
pop3_detached(void)
{
	struct pop3 *p = xcalloc(1, sizeof(*p));

	p->login = login_new(p);
	p->fd = CURL_SOCKET_BAD;
	p->timeout = 1;
	buf_init(&p->out, POP3_OUTMAX);
	buf_init(&p->line, POP3_LINEMAX);
	buf_init(&p->capa_text, POP3_CAPAMAX);
	p->in = xmalloc(POP3_INBUF);
	p->dec = xmalloc(POP3_INBUF + 1);
	return p;
}

int
pop3_feed(struct pop3 *p, const char *data, size_t n, struct err *e)
{
	size_t room;

	buf_reset(&p->out);
	while (n > 0) {
		room = POP3_INBUF - p->inlen;
		if (room > n)
			room = n;
		memcpy(p->in + p->inlen, data, room);
		p->inlen += room;
		data += room;
		n -= room;
		if (pop3_parse(p, e) == -1)
			return -1;
	}
	return 0;
}

/* A positive decimal number, at most max; *end after its digits. */
static bool
pop3_parse_number(const char *s, size_t n, uint64_t max, uint64_t *v,
    size_t *end)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (*v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	*end = i;
	return i > 0;
}

int
pop3_parse_list(const char *line, size_t n, unsigned long *num,
    uint64_t *size)
{
	uint64_t v;
	size_t i, j;

	if (!pop3_parse_number(line, n, ULONG_MAX, &v, &i) || v == 0 ||
	    i + 1 >= n || line[i] != ' ' ||
	    !pop3_parse_number(line + i + 1, n - i - 1, UINT64_MAX, size,
	    &j) || (i + 1 + j < n && line[i + 1 + j] != ' '))
		return -1;
	*num = (unsigned long)v;
	return 0;
}

int
pop3_parse_uidl(const char *line, size_t n, unsigned long *num,
    const char **uid, size_t *uidlen)
{
	uint64_t v;
	size_t i;

	if (!pop3_parse_number(line, n, ULONG_MAX, &v, &i) || v == 0 ||
	    i + 1 >= n || line[i] != ' ')
		return -1;
	*num = (unsigned long)v;
	*uid = line + i + 1;
	*uidlen = n - i - 1;
	return 0;
}
