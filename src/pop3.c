/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "pop3.h"
#include "tlspeer.h"
#include "xmalloc.h"

#define POP3_INBUF	(256 * 1024)	/* bytes read per recv at most */
#define POP3_OUTMAX	(1024 * 1024)	/* queued command bytes at most */
#define POP3_STATUSMAX	4096		/* RFC 2449 says 512; be lenient */
#define POP3_LINEMAX	4096		/* a UIDL/LIST/CAPA line */
#define POP3_CAPAMAX	2048		/* CAPA text kept for pop3_capa_text */
#define POP3_STAMPMAX	256		/* an APOP timestamp, with its <> */
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

/* Seconds of silence after connecting to port 995 without implicit
 * TLS before that is taken for a TLS port. */
#ifndef TLS_PORT_WAIT
#define TLS_PORT_WAIT	4
#endif

struct pop3 {
	CURL		*curl;
	curl_socket_t	 fd;
	unsigned	 timeout;
	unsigned	 caps;
	unsigned	 login_delay;
	const volatile sig_atomic_t *cancel;
	void		(*trace)(void *, char, const char *);
	void		*trace_arg;
	char		 errbuf[CURL_ERROR_SIZE];

	/* login: the last line the server sent, and whether APOP was used */
	char		 last[POP3_STATUSMAX];
	size_t		 lastlen;
	char		 chal[POP3_STATUSMAX];	/* the last "+ " line */
	size_t		 challen;
	unsigned long	 lines_in;	/* server lines seen during login */
	unsigned	 pre_caps;	/* CAPA as libcurl saw it, pre-login */
	char		 sasl[256];	/* its SASL line's mechanisms */
	bool		 capa_ok;	/* that CAPA was answered +OK */
	bool		 capa_user;	/* and listed USER */
	bool		 capa_utf8;	/* and listed UTF8 (RFC 6856) */
	enum pop3_utf8	 utf8;		/* what became of UTF-8 mode */
	char		 utf8_reply[128];	/* UTF8's -ERR, escaped */
	char		 stamp[POP3_STAMPMAX];	/* the greeting's APOP stamp */
	const char	*mech;		/* the SASL mechanism asked for */
	char		 used[64];	/* how the login went: "SASL PLAIN" */
	size_t		 noops;		/* keepalive NOOPs not yet answered */
	bool		 http_proxy;	/* the connection goes through one */
	bool		 tunnel;	/* its CONNECT exchange is under way */
	struct buf	 capa_text;	/* CAPA after login, "A, B, C" */
	bool		 in_capa;	/* a CAPA reply is being read */
	bool		 stls_sent;	/* libcurl sent STLS */
	bool		 login_reply;	/* a login command was answered */
	bool		 bad_greeting;	/* the first line was not POP3 */
	bool		 tls_port_guard; /* port 995 without implicit TLS */
	bool		 tls_port;	/* it stayed silent: given up */
	int64_t		 connected_ms;	/* when the guard saw TCP connected */
	struct tlspeer	 peer;		/* the server's certificate */
	bool		 pin_only;	/* trusted by its pin alone */

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

static void
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
static void
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

static unsigned pop3_cap_bit(const char *line, size_t n);
static int	pop3_flush(struct pop3 *p, struct err *e);
static int	pop3_enqueue(struct pop3 *p, enum pop3_kind kind,
		    const struct pop3_cb *cb, void *arg, uint64_t expect,
		    const char *cmd, bool sasl, struct err *e);
static int	pop3_sasl_reply(struct pop3 *p, const char *line,
		    struct err *e);

/* Follows libcurl's own CAPA exchanges (the last one counts). */
static void
pop3_watch_capa(struct pop3 *p, char type, const char *data, size_t size)
{
	char *w;

	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		size--;
	if (type == 'o') {
		if (size == 4 && strncasecmp(data, "CAPA", 4) == 0) {
			p->in_capa = true;
			p->pre_caps = 0;
			p->sasl[0] = '\0';
			p->capa_ok = p->capa_user = p->capa_utf8 = false;
		}
		return;
	}
	if (!p->in_capa)
		return;
	if (size > 5 && strncasecmp(data, "SASL ", 5) == 0) {
		snprintf(p->sasl, sizeof(p->sasl), " %.*s ", (int)(size - 5),
		    data + 5);
		/* libcurl takes a tab for a space between mechanisms too. */
		for (w = p->sasl; (w = strchr(w, '\t')) != NULL; w++)
			*w = ' ';
	}
	if (size == 4 && strncasecmp(data, "USER", 4) == 0)
		p->capa_user = true;
	/* "UTF8", or "UTF8 USER": UTF-8 user names are accepted too. */
	if (size >= 4 && strncasecmp(data, "UTF8", 4) == 0 &&
	    (size == 4 || data[4] == ' '))
		p->capa_utf8 = true;
	if (size >= 1 && data[0] == '.' && size == 1)
		p->in_capa = false;
	else if (size >= 4 && memcmp(data, "-ERR", 4) == 0)
		p->in_capa = false;
	else if (size >= 3 && memcmp(data, "+OK", 3) == 0)
		p->capa_ok = true;
	else
		p->pre_caps |= pop3_cap_bit(data, size);
}

/* Notes how libcurl logs in, for pop3_auth_used. */
static void
pop3_note_auth(struct pop3 *p, const char *data, size_t size)
{
	size_t n;

	if (size > 5 && strncasecmp(data, "AUTH ", 5) == 0) {
		n = strcspn(data + 5, " \r\n");
		snprintf(p->used, sizeof(p->used), "SASL %.*s", (int)(n > 20 ?
		    20 : n), data + 5);
	} else if (size > 5 && strncasecmp(data, "APOP ", 5) == 0)
		snprintf(p->used, sizeof(p->used), "APOP");
	else if (size > 5 && strncasecmp(data, "USER ", 5) == 0)
		snprintf(p->used, sizeof(p->used), "USER/PASS");
}

/*
 * Keeps the APOP timestamp of a greeting: RFC 1939 makes it a msg-id,
 * "<...@...>", printable. Anything else is no timestamp.
 */
static void
pop3_find_stamp(struct pop3 *p, const char *data, size_t size)
{
	const char *lt, *gt;
	size_t i, n;

	p->stamp[0] = '\0';
	if (size < 3 || memcmp(data, "+OK", 3) != 0 ||
	    (lt = memchr(data, '<', size)) == NULL ||
	    (gt = memchr(lt, '>', size - (size_t)(lt - data))) == NULL)
		return;
	n = (size_t)(gt - lt) + 1;
	if (n >= sizeof(p->stamp) || memchr(lt, '@', n) == NULL)
		return;
	for (i = 0; i < n; i++)
		if (lt[i] <= ' ' || lt[i] > '~')
			return;
	memcpy(p->stamp, lt, n);
	p->stamp[n] = '\0';
}

static int
pop3_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	struct pop3 *p = arg;
	char shown[128];

	(void)c;
	switch (type) {
	case CURLINFO_TEXT:
		pop3_trace(p, POP3_TRACE_INFO, data, size);
		break;
	case CURLINFO_HEADER_IN:
		if (p->tunnel) {
			/* An HTTP proxy's CONNECT reply, up to its blank line. */
			if (size == 0 || data[0] == '\r' || data[0] == '\n')
				p->tunnel = false;
			pop3_trace(p, POP3_TRACE_INFO, data, size);
			break;
		}
		/* libcurl reads on past a greeting that is neither +OK nor
		 * -ERR, until the timeout; the progress callback stops it. */
		if (p->lines_in == 0)
			pop3_find_stamp(p, data, size);
		if (p->lines_in++ == 0 && !(size >= 3 &&
		    memcmp(data, "+OK", 3) == 0) && !(size >= 4 &&
		    memcmp(data, "-ERR", 4) == 0))
			p->bad_greeting = true;
		p->lastlen = size < sizeof(p->last) ? size : sizeof(p->last);
		memcpy(p->last, data, p->lastlen);
		while (p->lastlen > 0 && (p->last[p->lastlen - 1] == '\n' ||
		    p->last[p->lastlen - 1] == '\r'))
			p->lastlen--;
		if (p->lastlen >= 2 && memcmp(p->last, "+ ", 2) == 0) {
			memcpy(p->chal, p->last, p->lastlen);
			p->challen = p->lastlen;
		}
		pop3_watch_capa(p, 'i', data, size);
		pop3_trace(p, POP3_TRACE_IN, data, size);
		break;
	case CURLINFO_HEADER_OUT:
		if (p->http_proxy && size > 8 &&
		    strncmp(data, "CONNECT ", 8) == 0)
			p->tunnel = true;
		if (p->tunnel) {
			/* The CONNECT request may carry the proxy's password. */
			pop3_trace(p, POP3_TRACE_INFO, "(proxy request)", 15);
			break;
		}
		pop3_watch_capa(p, 'o', data, size);
		pop3_note_auth(p, data, size);
		if (size >= 4 && strncasecmp(data, "STLS", 4) == 0)
			p->stls_sent = true;
		pop3_redact(data, size, shown, sizeof(shown));
		pop3_trace(p, POP3_TRACE_OUT, shown, strlen(shown));
		break;
	default:
		/* Message data and TLS records are never traced. */
		break;
	}
	return 0;
}

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

/* The server's last line, escaped, for an error message. */
static char *
pop3_last(const struct pop3 *p)
{
	return p->lastlen > 0 ? buf_escape(p->last, p->lastlen, 200) :
	    xstrdup("(nothing)");
}

/*
 * The last SASL challenge ("+ BASE64") of a refused login: OAuth2 servers
 * put their reason there, as JSON. Returns it decoded and escaped, or
 * NULL.
 */
static char *
pop3_sasl_reason(const struct pop3 *p)
{
	unsigned char out[POP3_STATUSMAX];
	size_t n = p->challen;
	char *esc;
	int len;

	/* Other mechanisms' challenges ("Password:") are no reason. */
	if (p->mech == NULL || (strcmp(p->mech, "XOAUTH2") != 0 &&
	    strcmp(p->mech, "OAUTHBEARER") != 0))
		return NULL;
	if (n < 3 || (n - 2) % 4 != 0 || (n - 2) / 4 * 3 > sizeof(out))
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)p->chal + 2,
	    (int)(n - 2));
	if (len <= 0)
		return NULL;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	while (len > 0 && out[len - 1] == '\0')
		len--;
	esc = buf_escape((const char *)out, (size_t)len, 300);
	return esc;
}

/* Whether the SASL mechanism asked for was missing from CAPA. */
static bool
pop3_mech_missing(struct pop3 *p)
{
	const char *w;
	size_t n;
	char *esc;

	if (p->mech == NULL || p->lines_in == 0)
		return false;
	n = strlen(p->mech);
	for (w = p->sasl; (w = strchr(w, ' ')) != NULL; w++)
		if (strncasecmp(w + 1, p->mech, n) == 0 &&
		    (w[1 + n] == ' ' || w[1 + n] == '\0'))
			return false;
	/* It is shown: make it printable, without the spaces around. */
	n = strlen(p->sasl);
	esc = n < 2 ? xstrdup("") : buf_escape(p->sasl + 1, n - 2,
	    sizeof(p->sasl) / 4);
	snprintf(p->sasl, sizeof(p->sasl), "%s", esc);
	free(esc);
	return true;
}

/*
 * How a refused login is said: [IN-USE], [LOGIN-DELAY] and [SYS/TEMP]
 * (EX_TEMPFAIL) are no refusal of the credentials.
 */
static const char *
pop3_login_word(int code)
{
	return code == EX_TEMPFAIL ? "login put off, try again later" :
	    "login refused";
}

/* A connection that failed, said as what it means to a user. */
static void
pop3_connect_error(struct pop3 *p, const struct pop3_login *l,
    const char *why, struct err *e)
{
	long oserr = 0;

	if (curl_easy_getinfo(p->curl, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK)
		oserr = 0;
	if (l->proxy != NULL)
		err_set(e, EX_TEMPFAIL, "cannot connect through the proxy: %s",
		    why);
	else if (oserr == ECONNREFUSED)
		err_set(e, EX_TEMPFAIL, "connection refused by %s port %u: is "
		    "the server running, and is %u its POP3 port?", l->host,
		    l->port, l->port);
	else if (oserr != 0)
		err_set(e, EX_TEMPFAIL, "cannot connect to %s port %u: %s",
		    l->host, l->port, strerror((int)oserr));
	else
		err_set(e, EX_TEMPFAIL, "cannot connect to %s port %u: %s",
		    l->host, l->port, why);
}

/* A refused server certificate, with its pin to compare if we saw it. */
static void
pop3_untrusted(const struct pop3 *p, const char *why, struct err *e)
{
	if (p->peer.mismatch)
		err_set(e, EX_NOPERM, "server certificate not trusted: its "
		    "SHA-256 fingerprint %s is not one of fingerprint",
		    p->peer.fp);
	else if (p->peer.pin[0] != '\0')
		err_set(e, EX_NOPERM, "server certificate not trusted: %s "
		    "(the server's key pin: %s; see fingerprint in "
		    "popfetch.conf(5))", why, p->peer.pin);
	else
		err_set(e, EX_NOPERM, "server certificate not trusted: %s",
		    why);
}

/*
 * Whether the server's TLS alert refuses our client certificate, or the
 * lack of one. Only a server sends these about a certificate that is
 * not its own; TLS 1.3 sends them after the handshake, as we first read.
 */
static bool
pop3_client_cert_refused(const struct pop3 *p, const struct pop3_login *l,
    CURLcode rc)
{
	static const char *const alerts[] = {
		"alert certificate required", "alert bad certificate",
		"alert unknown ca", "alert certificate unknown",
		"alert certificate expired", "alert certificate revoked",
		"alert unsupported certificate"
	};
	size_t i;

	if (rc == CURLE_SSL_CLIENTCERT)
		return true;
	if (rc != CURLE_SSL_CONNECT_ERROR && rc != CURLE_RECV_ERROR &&
	    rc != CURLE_GOT_NOTHING)
		return false;
	for (i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
		if (strstr(p->errbuf, alerts[i]) != NULL)
			return i == 0 || l->tls_cert != NULL;
	return false;
}

static void
pop3_client_cert_error(const struct pop3_login *l, const char *why,
    struct err *e)
{
	char *ep;

	if (l->tls_cert == NULL) {
		err_set(e, EX_NOPERM, "the server wants a client certificate, "
		    "and the account has none (tls_cert): %s", why);
		return;
	}
	ep = buf_escape(l->tls_cert, strlen(l->tls_cert), 256);
	err_set(e, EX_NOPERM, "the server refused the client certificate "
	    "(tls_cert %s): %s", ep, why);
	free(ep);
}

static void
pop3_curl_error(struct pop3 *p, const struct pop3_login *l, CURLcode rc,
    struct err *e)
{
	/* libcurl's text may quote the server (a certificate's name). */
	char *why = p->errbuf[0] != '\0' ?
	    buf_escape(p->errbuf, strlen(p->errbuf), 300) :
	    xstrdup(curl_easy_strerror(rc));
	char *last = pop3_last(p), *reason = NULL;
	int code;

	switch (pop3_client_cert_refused(p, l, rc) ? CURLE_SSL_CLIENTCERT : rc) {
	case CURLE_SSL_CLIENTCERT:
		pop3_client_cert_error(l, why, e);
		break;
	case CURLE_LOGIN_DENIED:
		code = pop3_err_code(p->last, p->lastlen, EX_NOPERM);
		if (pop3_mech_missing(p)) {
			err_set(e, EX_NOPERM, "the server does not offer SASL "
			    "%s (it offers: %s)", p->mech, p->sasl[0] != '\0' ?
			    p->sasl : "none");
			break;
		}
		reason = pop3_sasl_reason(p);
		if (reason != NULL && p->last[0] == '+')
			/* Refused at the challenge: its text is the reason. */
			err_set(e, EX_NOPERM, "login refused: server said "
			    "\"%s\"", reason);
		else if (reason != NULL)
			/* A -ERR, perhaps with a response code, after it. */
			err_set(e, code, "%s: server said \"%s\" (\"%s\")",
			    pop3_login_word(code), last, reason);
		else
			err_set(e, code, "%s: server said \"%s\"",
			    pop3_login_word(code), last);
		free(reason);
		break;
	case CURLE_USE_SSL_FAILED:
		/* The last line is STLS's -ERR, CAPA's, or the end of the
		 * CAPA list. */
		if (p->stls_sent && p->lastlen >= 4 &&
		    memcmp(p->last, "-ERR", 4) == 0)
			err_set(e, EX_PROTOCOL, "server refused STLS (\"%s\"); "
			    "nothing was sent in cleartext", last);
		else if (!p->capa_ok)
			err_set(e, EX_PROTOCOL, "server does not offer STLS: it "
			    "refused CAPA, where STLS is announced (\"%s\"); "
			    "nothing was sent in cleartext", last);
		else
			err_set(e, EX_PROTOCOL, "server does not offer STLS; "
			    "nothing was sent in cleartext");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		pop3_untrusted(p, why, e);
		break;
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CRL_BADFILE:
		err_set(e, EX_CONFIG, "TLS setup: %s", why);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		if (l->tls == TLS_IMPLICIT && l->proxy == NULL &&
		    strstr(p->errbuf, "wrong version number") != NULL)
			/* A POP3 greeting where a TLS record belongs. */
			err_set(e, EX_PROTOCOL, "%s port %u answered in "
			    "plaintext, not TLS: a port that greets first "
			    "(as 110 does) takes tls = \"starttls\" (%s)",
			    l->host, l->port, why);
		else if (strstr(p->errbuf, "protocol version") != NULL ||
		    strstr(p->errbuf, "unsupported protocol") != NULL)
			err_set(e, EX_PROTOCOL, "TLS handshake failed: the "
			    "server's TLS version is below tls_min_version = "
			    "\"%s\" (%s)", l->tls_min == TLS_MIN_1_3 ? "1.3" :
			    "1.2", why);
		else
			err_set(e, EX_PROTOCOL, "TLS handshake failed: %s",
			    why);
		break;
	case CURLE_COULDNT_CONNECT:
		pop3_connect_error(p, l, why, e);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		if (l->tls != TLS_IMPLICIT && l->proxy == NULL &&
		    p->lines_in == 0 && !p->tunnel)
			/* A TLS port waits, silent, for a client hello. */
			err_set(e, EX_TEMPFAIL, "timed out after %u s waiting "
			    "for the greeting of %s port %u: %s: use tls = "
			    "\"implicit\"", l->timeout, l->host, l->port,
			    l->port == 995 ? "port 995 speaks implicit TLS" :
			    "if the port speaks TLS at once (as 995 does)");
		else
			err_set(e, EX_TEMPFAIL, "%s", why);
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		err_set(e, pop3_err_code(p->last, p->lastlen, EX_PROTOCOL),
		    "unexpected reply from server: \"%s\"", last);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		if (p->bad_greeting)
			err_set(e, EX_PROTOCOL, "not a POP3 server: it greeted "
			    "with \"%s\"", last);
		else if (p->tls_port)
			err_set(e, EX_CONFIG, "no greeting from %s port 995 "
			    "within %d s: port 995 speaks implicit TLS: use tls "
			    "= \"implicit\"", l->host, TLS_PORT_WAIT);
		else
			err_set(e, EX_TEMPFAIL, "interrupted");
		break;
	case CURLE_PROXY:
		err_set(e, EX_TEMPFAIL, "proxy: %s", why);
		break;
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		if (strncmp(p->errbuf, "CONNECT tunnel failed", 21) == 0) {
			/* 407: the proxy wants other credentials. */
			err_set(e, strstr(p->errbuf, " 407") != NULL ?
			    EX_NOPERM : EX_TEMPFAIL, "proxy: %s", why);
			break;
		}
		/* libcurl 7.88 says only "Too large response headers" when a
		 * server line has no end in sight: a protocol violation. */
		if (strncmp(p->errbuf, "Too large response", 18) == 0)
			err_set(e, EX_PROTOCOL, "server line too long: %s",
			    why);
		else if (p->lines_in == 0)
			err_set(e, EX_TEMPFAIL, "connection closed before the "
			    "server's greeting (%s)", why);
		else
			err_set(e, EX_TEMPFAIL, "connection lost during "
			    "login (%s)", why);
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_NOT_BUILT_IN:
		err_set(e, EX_UNAVAILABLE, "libcurl cannot do this: %s", why);
		break;
	default:
		err_set(e, EX_TEMPFAIL, "%s", why);
		break;
	}
	free(why);
	free(last);
}

/*
 * Whether libcurl logs in: only for OAuth2, which this engine does not
 * speak. Every other method is this engine's, so that UTF8 can go before
 * it (RFC 6856) and a refused method can give way to another.
 */
static bool
pop3_curl_logs_in(enum auth_mech auth)
{
	return auth == AUTH_XOAUTH2 || auth == AUTH_OAUTHBEARER;
}

/* The libcurl login option for a method libcurl uses, else NULL. */
static const char *
pop3_login_options(enum auth_mech auth)
{
	switch (auth) {
	case AUTH_XOAUTH2:
		return "AUTH=XOAUTH2";
	case AUTH_OAUTHBEARER:
		return "AUTH=OAUTHBEARER";
	default:
		return NULL;
	}
}

/* Lets a cancel flag end libcurl's connect phase (it calls this often). */
static int
pop3_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct pop3 *p = arg;
	curl_off_t ct = 0;
	int64_t now;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	/* Port 995 is POP3S: silent after connecting, it waits for a TLS
	 * hello, and no timeout need be waited out to say so. */
	if (p->tls_port_guard && p->lines_in == 0 &&
	    curl_easy_getinfo(p->curl, CURLINFO_CONNECT_TIME_T, &ct) ==
	    CURLE_OK && ct > 0) {
		now = clock_ms();
		if (p->connected_ms == 0)
			p->connected_ms = now;
		else if (now - p->connected_ms >= TLS_PORT_WAIT * 1000)
			p->tls_port = true;
	}
	return p->bad_greeting || p->tls_port ||
	    (p->cancel != NULL && *p->cancel) ? 1 : 0;
}

/*
 * Whether tlspeer sees the handshake: only with libcurl on our OpenSSL,
 * and never through an https:// proxy, whose own handshake it would see.
 */
static bool
pop3_hook_tls(const struct pop3_login *l)
{
	return tlspeer_usable() && (l->proxy == NULL ||
	    strncasecmp(l->proxy, "https://", 8) != 0);
}

/* Every option that keeps the connection safe; see LIBCURL-POP3.md. */
static CURLcode
pop3_setopts(struct pop3 *p, const struct pop3_login *l, enum auth_mech auth,
    const char *url)
{
	CURLcode rc = CURLE_OK;
	const char *opts = pop3_login_options(auth);

#define SET(opt, val) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(p->curl, opt, val); } \
	while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, l->tls == TLS_IMPLICIT ? "pop3s" : "pop3");
	SET(CURLOPT_CONNECT_ONLY, 1L);
	/* Never CURLUSESSL_TRY: it sends the password in cleartext when
	 * the server does not offer STLS. */
	SET(CURLOPT_USE_SSL, (long)(l->tls == TLS_NONE ? CURLUSESSL_NONE :
	    CURLUSESSL_ALL));
	/* verify_ca = false: a pinned key is the server's identity, which
	 * no name and no CA can add to; libcurl checks the pin all the
	 * same (lib/vtls/openssl.c, servercert()), and tlspeer_ssl_ctx a
	 * pinned certificate. */
	SET(CURLOPT_SSL_VERIFYPEER, l->pin_only ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, l->pin_only ? 0L : 2L);
	SET(CURLOPT_SSLVERSION, (long)(l->tls_min == TLS_MIN_1_3 ?
	    CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2));
	if (l->tls != TLS_NONE && pop3_hook_tls(l)) {
		SET(CURLOPT_SSL_CTX_FUNCTION, tlspeer_ssl_ctx);
		SET(CURLOPT_SSL_CTX_DATA, &p->peer);
	}
	if (l->tls_cert != NULL) {
		SET(CURLOPT_SSLCERT, l->tls_cert);
		SET(CURLOPT_SSLKEY, l->tls_key);
	}
	if (l->ca_file != NULL) {
		/*
		 * ca_file is the only anchor. libcurl also searches the CA
		 * path it was built with (Debian: /etc/ssl/certs) for an
		 * issuer the file lacks; NULL turns that off. It loads no
		 * other store here: OpenSSL's defaults only when built with
		 * --with-ca-fallback and given neither file nor path, the
		 * native store (CURLSSLOPT_NATIVE_CA, not set) only on
		 * Windows. An HTTPS proxy's own certificate is still
		 * checked against the system's store (CURLOPT_PROXY_CA*).
		 */
		SET(CURLOPT_CAINFO, l->ca_file);
		SET(CURLOPT_CAPATH, (char *)NULL);
	}
	if (l->fingerprint != NULL)
		SET(CURLOPT_PINNEDPUBLICKEY, l->fingerprint);
	/* Only the configured proxy: never one from the environment. */
	SET(CURLOPT_PROXY, l->proxy != NULL ? l->proxy : "");
	/* "": NO_PROXY in the environment must not bypass it either. */
	SET(CURLOPT_NOPROXY, "");
	if (l->proxy != NULL && strncasecmp(l->proxy, "http", 4) == 0)
		SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, (long)l->timeout);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, p->errbuf);
	SET(CURLOPT_VERBOSE, 1L);
	SET(CURLOPT_DEBUGFUNCTION, pop3_debug);
	SET(CURLOPT_DEBUGDATA, p);
	SET(CURLOPT_SASL_IR, 1L);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, pop3_progress);
	SET(CURLOPT_XFERINFODATA, p);
	/* Without a user name libcurl stops after TLS and CAPA and our
	 * engine logs in: libcurl would use APOP whenever the greeting
	 * allows it, could not fall back, and leaves no room for UTF8. */
	if (pop3_curl_logs_in(auth)) {
		SET(CURLOPT_USERNAME, l->user);
		SET(CURLOPT_XOAUTH2_BEARER, l->secret);
		SET(CURLOPT_LOGIN_OPTIONS, opts);
	}
#undef SET
	return rc;
}

static int
pop3_status_ok(void *arg, bool ok, const char *line, size_t n, struct err *e)
{
	struct pop3 *p = arg;
	char *esc;
	int code;

	p->login_reply = true;
	if (ok)
		return 0;
	/* Worded as when libcurl logs in. */
	esc = buf_escape(line, n, 200);
	code = pop3_err_code(line, n, EX_NOPERM);
	err_set(e, code, "%s: server said \"%s\"", pop3_login_word(code),
	    esc);
	free(esc);
	return -1;
}

/*
 * Sends cmd, a line that may carry a secret (taken: wiped and freed),
 * and waits for its reply; sasl as for pop3_enqueue. The command buffer
 * that held it is wiped too. Returns 0 or -1 as pop3_drain.
 */
static int
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

/* USER and PASS, one at a time (pipelining them slows some servers). */
static int
pop3_userpass(struct pop3 *p, const struct pop3_login *l, struct err *e)
{
	static const struct pop3_cb cb = { pop3_status_ok, NULL, NULL };
	char *cmd;
	int rc;

	cmd = xasprintf("USER %s", l->user);
	rc = pop3_queue(p, POP3_SINGLE, &cb, p, 0, cmd, e);
	free(cmd);
	if (rc == -1 || pop3_drain(p, e) == -1)
		return -1;
	return pop3_send_secret(p, &cb, p, xasprintf("PASS %s", l->secret),
	    false, e);
}

/* The ways auth = "auto" logs in, all spoken by this engine. */
enum pop3_meth {
	METH_USER,
	METH_PLAIN,
	METH_LOGIN,
	METH_CRAM,		/* SASL CRAM-MD5 */
	METH_APOP
};

static const char *const pop3_meth_names[] = {
	"USER/PASS", "SASL PLAIN", "SASL LOGIN", "SASL CRAM-MD5", "APOP"
};

/* One login attempt: what its callbacks share. */
struct pop3_try {
	struct pop3		*p;
	const struct pop3_login	*l;
	enum pop3_meth		 m;
	unsigned		 step;		/* challenges answered */
};

/* Base64 of n bytes, NUL-terminated; the caller frees it. */
static char *
pop3_b64(const void *in, size_t n)
{
	char *out;

	/* Inputs are a user name and a password; one past INT_MAX would
	 * make no command anyway: encoded as nothing, the server refuses. */
	if (n > INT_MAX / 2)
		n = 0;
	out = xmalloc((n + 2) / 3 * 4 + 1);
	(void)EVP_EncodeBlock((unsigned char *)out, in, (int)n); /* fits */
	return out;
}

/* Decodes base64 into out; returns its length, or -1. */
static int
pop3_unb64(const char *in, size_t n, unsigned char *out, size_t outsize)
{
	size_t pad = 0;
	int len;

	if (n % 4 != 0 || n / 4 * 3 > outsize)
		return -1;
	if (n == 0)
		return 0;
	pad = (in[n - 1] == '=') + (in[n - 2] == '=');
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	return len < 0 || (size_t)len < pad ? -1 : len - (int)pad;
}

static void
pop3_hex(const unsigned char *md, unsigned n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * n] = '\0';
}

/* "APOP user digest" (RFC 1939 section 7); the caller frees it. */
static char *
pop3_apop_cmd(const struct pop3 *p, const struct pop3_login *l)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], *in;
	unsigned mdlen = 0;

	in = xasprintf("%s%s", p->stamp, l->secret);
	if (EVP_Digest(in, strlen(in), md, &mdlen, EVP_md5(), NULL) != 1)
		mdlen = 0;	/* an empty digest the server refuses */
	xfree_secret(in);
	pop3_hex(md, mdlen, hex);
	return xasprintf("APOP %s %s", l->user, hex);
}

/* RFC 2195: "user hmac-md5-hex" of the decoded challenge, in base64. */
static char *
pop3_cram_reply(const struct pop3_login *l, const char *chal, size_t n)
{
	unsigned char c[POP3_STATUSMAX], md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], *resp, *b64;
	unsigned mdlen = 0;
	int len;

	if ((len = pop3_unb64(chal, n, c, sizeof(c))) == -1 ||
	    HMAC(EVP_md5(), l->secret, (int)strlen(l->secret), c,
	    (size_t)len, md, &mdlen) == NULL)
		return xstrdup("*");	/* cancels: the server says -ERR */
	pop3_hex(md, mdlen, hex);
	resp = xasprintf("%s %s", l->user, hex);
	b64 = pop3_b64(resp, strlen(resp));
	free(resp);
	return b64;
}

/* "\0user\0secret" in base64, for SASL PLAIN; the caller wipes it. */
static char *
pop3_plain_msg(const struct pop3_login *l)
{
	size_t ul = strlen(l->user), sl = strlen(l->secret);
	char *msg = xmalloc(ul + sl + 2), *b64;

	msg[0] = '\0';
	memcpy(msg + 1, l->user, ul);
	msg[ul + 1] = '\0';
	memcpy(msg + ul + 2, l->secret, sl);
	b64 = pop3_b64(msg, ul + sl + 2);
	xwipe(msg, ul + sl + 2);
	free(msg);
	return b64;
}

static int
pop3_try_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct pop3_try *t = arg;

	return pop3_status_ok(t->p, ok, line, n, e);
}

/* Answers one "+ " challenge of a SASL exchange. */
static int
pop3_try_challenge(void *arg, const char *chal, size_t n, struct err *e)
{
	struct pop3_try *t = arg;
	const char *user = t->l->user, *secret = t->l->secret;
	char *resp;
	int rc;

	if (t->m == METH_PLAIN && t->step == 0)
		resp = pop3_plain_msg(t->l);
	else if (t->m == METH_LOGIN && t->step < 2)
		resp = t->step == 0 ? pop3_b64(user, strlen(user)) :
		    pop3_b64(secret, strlen(secret));
	else if (t->m == METH_CRAM && t->step == 0)
		resp = pop3_cram_reply(t->l, chal, n);
	else
		resp = xstrdup("*");	/* a challenge too many: cancel */
	t->step++;
	rc = pop3_sasl_reply(t->p, resp, e);
	xfree_secret(resp);
	return rc;
}

/* The first line of a method; for SASL PLAIN with its initial response. */
static char *
pop3_try_cmd(const struct pop3_try *t)
{
	char *msg, *cmd;

	switch (t->m) {
	case METH_PLAIN:
		/* RFC 5034: the AUTH line is 255 octets at most, CRLF too. */
		msg = pop3_plain_msg(t->l);
		cmd = strlen(msg) + 13 <= 255 ? xasprintf("AUTH PLAIN %s",
		    msg) : xstrdup("AUTH PLAIN");
		xfree_secret(msg);
		return cmd;
	case METH_LOGIN:
		return xstrdup("AUTH LOGIN");
	case METH_CRAM:
		return xstrdup("AUTH CRAM-MD5");
	case METH_APOP:
		return pop3_apop_cmd(t->p, t->l);
	default:
		return NULL;
	}
}

/*
 * One login attempt with method m on the connection libcurl opened.
 * Returns 0, or -1 with e filled in; p->login_reply says whether the
 * server answered (a refusal) or not (a lost connection).
 */
static int
pop3_try(struct pop3 *p, const struct pop3_login *l, enum pop3_meth m,
    struct err *e)
{
	static const struct pop3_cb cb = {
		pop3_try_status, pop3_try_challenge, NULL
	};
	struct pop3_try t = { p, l, m, 0 };

	p->login_reply = false;
	if (m == METH_USER)
		return pop3_userpass(p, l, e);
	/* The callbacks see t, which lives until the reply is read. */
	return pop3_send_secret(p, &cb, &t, pop3_try_cmd(&t), true, e);
}

/* Whether the server's SASL line (as libcurl saw it) lists mech. */
static bool
pop3_offers(const struct pop3 *p, const char *mech)
{
	char word[32];

	snprintf(word, sizeof(word), " %s ", mech);
	return strcasestr(p->sasl, word) != NULL;
}

/*
 * What auth = "auto" tries, in order, from what the server showed before
 * login; see "auth" in popfetch.conf(5). Over TLS, every method that
 * sends the password is as safe as another, and a refused password is
 * not tried again another way: the first the server offers, SASL before
 * USER. On a plaintext connection (allow_plaintext), the password stays
 * off the wire where the server allows: CRAM-MD5, then APOP, then one
 * method that sends it. Returns how many went into m.
 */
static size_t
pop3_auto_plan(const struct pop3 *p, bool tls, enum pop3_meth m[4])
{
	bool plain = pop3_offers(p, "PLAIN"), login = pop3_offers(p, "LOGIN");
	bool user = p->capa_user || !p->capa_ok;
	enum pop3_meth pw = plain ? METH_PLAIN : login ? METH_LOGIN :
	    METH_USER;
	size_t n = 0;

	if (tls && (plain || login || user))
		m[n++] = pw;
	else {
		if (pop3_offers(p, "CRAM-MD5"))
			m[n++] = METH_CRAM;
		if (p->stamp[0] != '\0')
			m[n++] = METH_APOP;
		if (!tls && (plain || login || user))
			m[n++] = pw;
	}
	if (n == 0)
		m[n++] = METH_USER;	/* nothing offered: the RFC 1939 way */
	return n;
}

/*
 * What an explicit auth setting tries: its one method, when the server
 * offers it. Returns 1 with *m set, or 0 with e filled in (EX_NOPERM)
 * when it does not: then nothing is sent, as libcurl would not either.
 */
static size_t
pop3_explicit_plan(struct pop3 *p, enum auth_mech auth, enum pop3_meth *m,
    struct err *e)
{
	switch (auth) {
	case AUTH_APOP:
		*m = METH_APOP;
		if (p->stamp[0] != '\0')
			return 1;
		err_set(e, EX_NOPERM, "the server does not offer APOP (its "
		    "greeting has no timestamp)");
		return 0;
	case AUTH_PLAIN:
		*m = METH_PLAIN;
		p->mech = "PLAIN";
		break;
	case AUTH_LOGIN:
		*m = METH_LOGIN;
		p->mech = "LOGIN";
		break;
	case AUTH_CRAM_MD5:
		*m = METH_CRAM;
		p->mech = "CRAM-MD5";
		break;
	default:
		*m = METH_USER;
		return 1;
	}
	if (!pop3_mech_missing(p))
		return 1;
	err_set(e, EX_NOPERM, "the server does not offer SASL %s (it offers: "
	    "%s)", p->mech, p->sasl[0] != '\0' ? p->sasl : "none");
	return 0;
}

/*
 * The engine's login, from method number from of the plan on: auth =
 * "auto"'s plan, or the one method of an explicit setting. A refused
 * challenge-response method (the server may hold no secret for it) gives
 * way to the next one on the same connection. Returns 0; -1 with e
 * filled in; or 1, with e filled in and *from set, when the server
 * dropped the connection after such a refusal: the caller connects
 * again and resumes there.
 */
static int
pop3_login_engine(struct pop3 *p, const struct pop3_login *l, size_t *from,
    struct err *e)
{
	enum pop3_meth m[4];
	size_t n, i;
	char note[128];

	n = l->auth == AUTH_AUTO ? pop3_auto_plan(p, l->tls != TLS_NONE, m) :
	    pop3_explicit_plan(p, l->auth, m, e);

	for (i = *from; i < n; i++) {
		if (i > 0) {
			snprintf(note, sizeof(note), "%s refused; trying %s",
			    pop3_meth_names[m[i - 1]], pop3_meth_names[m[i]]);
			pop3_trace(p, POP3_TRACE_NOTE, note, strlen(note));
		}
		if (pop3_try(p, l, m[i], e) == 0) {
			snprintf(p->used, sizeof(p->used), "%s%s%s%s",
			    pop3_meth_names[m[i]], i > 0 ? ", after " : "",
			    i > 0 ? pop3_meth_names[m[i - 1]] : "",
			    i > 0 ? " was refused" : "");
			return 0;
		}
		if (!p->login_reply && i > *from) {
			*from = i;
			return 1;
		}
		if (!p->login_reply || e->code != EX_NOPERM ||
		    (m[i] != METH_CRAM && m[i] != METH_APOP))
			return -1;
		/* The engine stopped at the refusal, the last line the
		 * server sent: forget it and the command it answered. */
		p->rhead = p->rcount = 0;
		p->inflight_bytes = 0;
		p->inlen = 0;
		buf_reset(&p->out);
	}
	return -1;
}

static int
pop3_utf8_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct pop3 *p = arg;
	char *esc;

	(void)e;
	/* RFC 6856 2.1: "The server MAY respond to the "UTF8" command with
	 * an -ERR response": the session goes on as before. */
	p->utf8 = ok ? POP3_UTF8_ON : POP3_UTF8_REFUSED;
	if (!ok) {
		esc = buf_escape(line, n, sizeof(p->utf8_reply) / 4);
		snprintf(p->utf8_reply, sizeof(p->utf8_reply), "%s", esc);
		free(esc);
	}
	return 0;
}

/*
 * UTF8, when the CAPA before login lists it. RFC 6856 makes it valid in
 * the AUTHORIZATION state only, and forbids STLS after it: so it goes
 * here, after libcurl's TLS and CAPA, just before the engine's login.
 * With PIPELINING the login's first command follows without waiting.
 */
static int
pop3_utf8_enable(struct pop3 *p, struct err *e)
{
	static const struct pop3_cb cb = { pop3_utf8_status, NULL, NULL };

	if (!p->capa_utf8)
		return 0;
	if (pop3_queue(p, POP3_SINGLE, &cb, p, 0, "UTF8", e) == -1)
		return -1;
	return p->pre_caps & POP3_CAP_PIPELINING ? 0 : pop3_drain(p, e);
}

/*
 * Connects: greeting, TLS, CAPA, and for OAuth2 libcurl's login; for any
 * other method, UTF8 if offered, the engine's login being the caller's.
 */
static int
pop3_login_once(struct pop3 *p, const struct pop3_login *l, struct err *e)
{
	curl_socket_t fd = CURL_SOCKET_BAD;
	enum auth_mech auth = l->auth;
	const char *opts = pop3_login_options(auth);
	const char *sv = curl_version_info(CURLVERSION_NOW)->ssl_version;
	CURLcode rc;
	char *url;

	memset(&p->peer, 0, sizeof(p->peer));
	p->peer.cert_fps = l->cert_fingerprint;
	p->peer.pin_only = p->pin_only = l->pin_only;
	if (l->cert_fingerprint != NULL && !pop3_hook_tls(l)) {
		err_set(e, EX_UNAVAILABLE, "a certificate fingerprint cannot "
		    "be checked: libcurl's TLS library (%s) is not the OpenSSL "
		    "popfetch was built with; pin the server's public key "
		    "instead (sha256//...)", sv != NULL ? sv : "none");
		return -1;
	}
	if ((p->curl = curl_easy_init()) == NULL) {
		err_set(e, EX_SOFTWARE, "curl_easy_init failed");
		return -1;
	}
	p->errbuf[0] = '\0';
	p->lastlen = 0;
	p->challen = 0;
	p->sasl[0] = '\0';
	p->used[0] = '\0';
	p->tunnel = false;
	p->stls_sent = false;
	p->http_proxy = l->proxy != NULL &&
	    strncasecmp(l->proxy, "http", 4) == 0;
	p->mech = opts != NULL ? opts + 5 : NULL;
	p->lines_in = 0;
	p->pre_caps = 0;
	p->in_capa = false;
	p->capa_ok = p->capa_user = p->capa_utf8 = false;
	p->utf8 = POP3_UTF8_NONE;
	p->utf8_reply[0] = '\0';
	p->stamp[0] = '\0';
	p->bad_greeting = false;
	p->tls_port_guard = l->port == 995 && l->tls != TLS_IMPLICIT &&
	    l->proxy == NULL && l->timeout > TLS_PORT_WAIT;
	p->tls_port = false;
	p->connected_ms = 0;
	url = xasprintf(strchr(l->host, ':') != NULL ? "%s://[%s]:%u/" :
	    "%s://%s:%u/", l->tls == TLS_IMPLICIT ? "pop3s" : "pop3",
	    l->host, l->port);
	rc = pop3_setopts(p, l, auth, url);
	free(url);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(p->curl);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(p->curl, CURLINFO_ACTIVESOCKET, &fd);
	if (rc == CURLE_OK && fd == CURL_SOCKET_BAD)
		rc = CURLE_GOT_NOTHING;
	/* libcurl keeps copies of the secret: drop them now. */
	(void)curl_easy_setopt(p->curl, CURLOPT_PASSWORD, (char *)NULL);
	(void)curl_easy_setopt(p->curl, CURLOPT_XOAUTH2_BEARER, (char *)NULL);
	if (rc != CURLE_OK) {
		pop3_curl_error(p, l, rc, e);
		return -1;
	}
	p->fd = fd;
	if (!pop3_curl_logs_in(auth))
		return pop3_utf8_enable(p, e);
	if (p->capa_utf8)
		p->utf8 = POP3_UTF8_LATE;
	return 0;
}

static void
pop3_reset(struct pop3 *p)
{
	if (p->curl != NULL)
		curl_easy_cleanup(p->curl);
	p->curl = NULL;
	p->fd = CURL_SOCKET_BAD;
	p->rhead = p->rcount = 0;
	p->inflight_bytes = 0;
	p->inlen = 0;
	p->in_body = false;
	buf_reset(&p->out);
	buf_reset(&p->line);
}

static unsigned
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

	p->caps = p->pre_caps & POP3_CAP_PIPELINING;
	p->login_delay = 0;
	if (pop3_queue(p, POP3_LINES, &cb, p, 0, "CAPA", e) == -1)
		return -1;
	return p->caps & POP3_CAP_PIPELINING ? 0 : pop3_drain(p, e);
}

static void
pop3_free(struct pop3 *p)
{
	pop3_reset(p);
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
	rc = pop3_login_once(p, l, &le);
	if (rc == 0 && !pop3_curl_logs_in(l->auth))
		rc = pop3_login_engine(p, l, &from, &le);
	if (rc == 1) {
		static const char again[] = "the server closed the "
		    "connection; connecting again";

		pop3_trace(p, POP3_TRACE_NOTE, again, sizeof(again) - 1);
		pop3_reset(p);
		rc = pop3_login_once(p, l, &le);
		if (rc == 0 && pop3_login_engine(p, l, &from, &le) != 0)
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
	if (reply != NULL)
		*reply = p->utf8_reply;
	return p->utf8;
}

const char *
pop3_auth_used(const struct pop3 *p)
{
	return p->used[0] != '\0' ? p->used : "libcurl's choice";
}

char *
pop3_capa_text(const struct pop3 *p)
{
	return p->capa_text.len > 0 ? xstrndup(p->capa_text.data,
	    p->capa_text.len) : xstrdup(p->caps & POP3_CAP_CAPA ? "(none)" :
	    "(CAPA not supported)");
}

/*
 * "CN=name" of a certificate, how it was trusted, in how many days it
 * expires, and its key's pin: the value fingerprint takes.
 */
static void
pop3_cert_info(const struct pop3 *p, X509 *cert, char *out, size_t size)
{
	char cn[256], pin[TLSPEER_PINLEN], days_left[32] = "";
	int days = 0, secs = 0;
	char *esc;

	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, cn, sizeof(cn)) < 0)
		snprintf(cn, sizeof(cn), "(no CN)");
	/* The server chose this text: it is escaped. */
	esc = buf_escape(cn, strlen(cn), 100);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1)
		snprintf(days_left, sizeof(days_left), ", expires in %d days",
		    days);
	tlspeer_key_pin(cert, pin);
	snprintf(out, size, "certificate CN=%s, %s%s, key pin %s", esc,
	    p->pin_only ? "trusted by its fingerprint alone (CA and name not "
	    "checked)" : "verified", days_left, pin[0] != '\0' ? pin :
	    "unknown");
	free(esc);
}

char *
pop3_tls_info(const struct pop3 *p)
{
	struct curl_tlssessioninfo *ti = NULL;
	char cert[512] = "";
	X509 *x;
	SSL *ssl;

	/* libcurl's SSL object is ours to read only when its TLS library
	 * is the very OpenSSL we link (LibreSSL says OPENSSL too). */
	if (!tlspeer_usable() || p->curl == NULL ||
	    curl_easy_getinfo(p->curl, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK ||
	    ti == NULL || ti->backend != CURLSSLBACKEND_OPENSSL ||
	    ti->internals == NULL)
		return NULL;
	ssl = ti->internals;
#if OPENSSL_VERSION_NUMBER < 0x30000000L
	x = SSL_get_peer_certificate(ssl);
#else
	x = SSL_get1_peer_certificate(ssl);
#endif
	if (x != NULL) {
		pop3_cert_info(p, x, cert, sizeof(cert));
		X509_free(x);
	}
	return xasprintf("%s, %s%s%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl), cert[0] != '\0' ? "; " : "", cert);
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

/*
 * Sends a line that answers a SASL challenge: no command of its own, so
 * no reply of its own; the AUTH it belongs to is still being answered.
 */
static int
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
			err_set(e, EX_TEMPFAIL, "interrupted");
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
