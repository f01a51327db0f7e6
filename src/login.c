/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "login.h"
#include "pop3_impl.h"
#include "tlspeer.h"
#include "xmalloc.h"

#define LOGIN_LINEMAX	4096		/* a server line kept, as POP3's */
#define LOGIN_STAMPMAX	256		/* an APOP timestamp, with its <> */

/* Seconds of silence after connecting to port 995 without implicit
 * TLS before that is taken for a TLS port. */
#ifndef TLS_PORT_WAIT
#define TLS_PORT_WAIT	4
#endif

struct login {
	struct pop3	*p;		/* the session: its trace, its engine */
	CURL		*curl;		/* the connection, while there is one */
	const volatile sig_atomic_t *cancel;
	char		 errbuf[CURL_ERROR_SIZE];

	/* what the server sent during the login */
	char		 last[LOGIN_LINEMAX];
	size_t		 lastlen;
	char		 chal[LOGIN_LINEMAX];	/* the last "+ " line */
	size_t		 challen;
	unsigned long	 lines_in;	/* server lines seen during login */
	bool		 bad_greeting;	/* the first line was not POP3 */
	char		 stamp[LOGIN_STAMPMAX];	/* the greeting's APOP stamp */

	/* the CAPA before login, as libcurl saw it */
	bool		 in_capa;	/* a CAPA reply is being read */
	unsigned	 pre_caps;	/* its POP3_CAP_ bits */
	char		 sasl[256];	/* its SASL line's mechanisms */
	bool		 capa_ok;	/* that CAPA was answered +OK */
	bool		 capa_user;	/* and listed USER */
	bool		 capa_utf8;	/* and listed UTF8 (RFC 6856) */

	/* the login itself */
	bool		 stls_sent;	/* libcurl sent STLS */
	const char	*mech;		/* the SASL mechanism asked for */
	bool		 login_reply;	/* a login command was answered */
	char		 used[64];	/* how the login went: "SASL PLAIN" */
	enum pop3_utf8	 utf8;		/* what became of UTF-8 mode */
	char		 utf8_reply[128];	/* UTF8's -ERR, escaped */

	/* the way there */
	bool		 http_proxy;	/* the connection goes through one */
	bool		 tunnel;	/* its CONNECT exchange is under way */
	bool		 tls_port_guard; /* port 995 without implicit TLS */
	bool		 tls_port;	/* it stayed silent: given up */
	int64_t		 connected_ms;	/* when the guard saw TCP connected */
	struct tlspeer	 peer;		/* the server's certificate */
	bool		 pin_only;	/* trusted by its pin alone */
};

/* Follows libcurl's own CAPA exchanges (the last one counts). */
static void
login_watch_capa(struct login *lg, char type, const char *data, size_t size)
{
	char *w;

	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		size--;
	if (type == 'o') {
		if (size == 4 && strncasecmp(data, "CAPA", 4) == 0) {
			lg->in_capa = true;
			lg->pre_caps = 0;
			lg->sasl[0] = '\0';
			lg->capa_ok = lg->capa_user = lg->capa_utf8 = false;
		}
		return;
	}
	if (!lg->in_capa)
		return;
	if (size > 5 && strncasecmp(data, "SASL ", 5) == 0) {
		snprintf(lg->sasl, sizeof(lg->sasl), " %.*s ", (int)(size - 5),
		    data + 5);
		/* libcurl takes a tab for a space between mechanisms too. */
		for (w = lg->sasl; (w = strchr(w, '\t')) != NULL; w++)
			*w = ' ';
	}
	if (size == 4 && strncasecmp(data, "USER", 4) == 0)
		lg->capa_user = true;
	/* "UTF8", or "UTF8 USER": UTF-8 user names are accepted too. */
	if (size >= 4 && strncasecmp(data, "UTF8", 4) == 0 &&
	    (size == 4 || data[4] == ' '))
		lg->capa_utf8 = true;
	if (size >= 1 && data[0] == '.' && size == 1)
		lg->in_capa = false;
	else if (size >= 4 && memcmp(data, "-ERR", 4) == 0)
		lg->in_capa = false;
	else if (size >= 3 && memcmp(data, "+OK", 3) == 0)
		lg->capa_ok = true;
	else
		lg->pre_caps |= pop3_cap_bit(data, size);
}

/* Notes how libcurl logs in, for pop3_auth_used. */
static void
login_note_auth(struct login *lg, const char *data, size_t size)
{
	size_t n;

	if (size > 5 && strncasecmp(data, "AUTH ", 5) == 0) {
		n = strcspn(data + 5, " \r\n");
		snprintf(lg->used, sizeof(lg->used), "SASL %.*s", (int)(n > 20 ?
		    20 : n), data + 5);
	} else if (size > 5 && strncasecmp(data, "APOP ", 5) == 0)
		snprintf(lg->used, sizeof(lg->used), "APOP");
	else if (size > 5 && strncasecmp(data, "USER ", 5) == 0)
		snprintf(lg->used, sizeof(lg->used), "USER/PASS");
}

/*
 * Keeps the APOP timestamp of a greeting: RFC 1939 makes it a msg-id,
 * "<...@...>", printable. Anything else is no timestamp.
 */
static void
login_find_stamp(struct login *lg, const char *data, size_t size)
{
	const char *lt, *gt;
	size_t i, n;

	lg->stamp[0] = '\0';
	if (size < 3 || memcmp(data, "+OK", 3) != 0 ||
	    (lt = memchr(data, '<', size)) == NULL ||
	    (gt = memchr(lt, '>', size - (size_t)(lt - data))) == NULL)
		return;
	n = (size_t)(gt - lt) + 1;
	if (n >= sizeof(lg->stamp) || memchr(lt, '@', n) == NULL)
		return;
	for (i = 0; i < n; i++)
		if (lt[i] <= ' ' || lt[i] > '~')
			return;
	memcpy(lg->stamp, lt, n);
	lg->stamp[n] = '\0';
}

/* A line from the server (or from an HTTP proxy), as libcurl read it. */
static void
login_line_in(struct login *lg, const char *data, size_t size)
{
	if (lg->tunnel) {
		/* An HTTP proxy's CONNECT reply, up to its blank line. */
		if (size == 0 || data[0] == '\r' || data[0] == '\n')
			lg->tunnel = false;
		pop3_trace(lg->p, POP3_TRACE_INFO, data, size);
		return;
	}
	/* libcurl reads on past a greeting that is neither +OK nor -ERR,
	 * until the timeout; the progress callback stops it. */
	if (lg->lines_in == 0)
		login_find_stamp(lg, data, size);
	if (lg->lines_in++ == 0 && !(size >= 3 &&
	    memcmp(data, "+OK", 3) == 0) && !(size >= 4 &&
	    memcmp(data, "-ERR", 4) == 0))
		lg->bad_greeting = true;
	lg->lastlen = size < sizeof(lg->last) ? size : sizeof(lg->last);
	memcpy(lg->last, data, lg->lastlen);
	while (lg->lastlen > 0 && (lg->last[lg->lastlen - 1] == '\n' ||
	    lg->last[lg->lastlen - 1] == '\r'))
		lg->lastlen--;
	if (lg->lastlen >= 2 && memcmp(lg->last, "+ ", 2) == 0) {
		memcpy(lg->chal, lg->last, lg->lastlen);
		lg->challen = lg->lastlen;
	}
	login_watch_capa(lg, 'i', data, size);
	pop3_trace(lg->p, POP3_TRACE_IN, data, size);
}

/* A line libcurl sent, to the server (or to an HTTP proxy). */
static void
login_line_out(struct login *lg, const char *data, size_t size)
{
	char shown[128];

	if (lg->http_proxy && size > 8 && strncmp(data, "CONNECT ", 8) == 0)
		lg->tunnel = true;
	if (lg->tunnel) {
		/* The CONNECT request may carry the proxy's password. */
		pop3_trace(lg->p, POP3_TRACE_INFO, "(proxy request)", 15);
		return;
	}
	login_watch_capa(lg, 'o', data, size);
	login_note_auth(lg, data, size);
	if (size >= 4 && strncasecmp(data, "STLS", 4) == 0)
		lg->stls_sent = true;
	pop3_redact(data, size, shown, sizeof(shown));
	pop3_trace(lg->p, POP3_TRACE_OUT, shown, strlen(shown));
}

/* libcurl's debug stream: the exchange rebuilt, line by line. */
static int
login_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	struct login *lg = arg;

	(void)c;
	switch (type) {
	case CURLINFO_TEXT:
		pop3_trace(lg->p, POP3_TRACE_INFO, data, size);
		break;
	case CURLINFO_HEADER_IN:
		login_line_in(lg, data, size);
		break;
	case CURLINFO_HEADER_OUT:
		login_line_out(lg, data, size);
		break;
	default:
		/* Message data and TLS records are never traced. */
		break;
	}
	return 0;
}

/* The server's last line, escaped, for an error message. */
static char *
login_last(const struct login *lg)
{
	return lg->lastlen > 0 ? buf_escape(lg->last, lg->lastlen, 200) :
	    xstrdup("(nothing)");
}

/*
 * The last SASL challenge ("+ BASE64") of a refused login: OAuth2 servers
 * put their reason there, as JSON. Returns it decoded and escaped, or
 * NULL.
 */
static char *
login_sasl_reason(const struct login *lg)
{
	unsigned char out[LOGIN_LINEMAX];
	size_t n = lg->challen;
	char *esc;
	int len;

	/* Other mechanisms' challenges ("Password:") are no reason. */
	if (lg->mech == NULL || (strcmp(lg->mech, "XOAUTH2") != 0 &&
	    strcmp(lg->mech, "OAUTHBEARER") != 0))
		return NULL;
	if (n < 3 || (n - 2) % 4 != 0 || (n - 2) / 4 * 3 > sizeof(out))
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)lg->chal + 2,
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
login_mech_missing(struct login *lg)
{
	const char *w;
	size_t n;
	char *esc;

	if (lg->mech == NULL || lg->lines_in == 0)
		return false;
	n = strlen(lg->mech);
	for (w = lg->sasl; (w = strchr(w, ' ')) != NULL; w++)
		if (strncasecmp(w + 1, lg->mech, n) == 0 &&
		    (w[1 + n] == ' ' || w[1 + n] == '\0'))
			return false;
	/* It is shown: make it printable, without the spaces around. */
	n = strlen(lg->sasl);
	esc = n < 2 ? xstrdup("") : buf_escape(lg->sasl + 1, n - 2,
	    sizeof(lg->sasl) / 4);
	snprintf(lg->sasl, sizeof(lg->sasl), "%s", esc);
	free(esc);
	return true;
}

/*
 * How a refused login is said: [IN-USE], [LOGIN-DELAY] and [SYS/TEMP]
 * (EX_TEMPFAIL) are no refusal of the credentials.
 */
static const char *
login_word(int code)
{
	return code == EX_TEMPFAIL ? "login put off, try again later" :
	    "login refused";
}

/* A connection that failed, said as what it means to a user. */
static void
login_connect_error(struct login *lg, const struct pop3_login *l,
    const char *why, struct err *e)
{
	long oserr = 0;

	if (curl_easy_getinfo(lg->curl, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK)
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
login_untrusted(const struct login *lg, const char *why, struct err *e)
{
	if (lg->peer.mismatch)
		err_set(e, EX_NOPERM, "server certificate not trusted: its "
		    "SHA-256 fingerprint %s is not one of fingerprint",
		    lg->peer.fp);
	else if (lg->peer.pin[0] != '\0')
		err_set(e, EX_NOPERM, "server certificate not trusted: %s "
		    "(the server's key pin: %s; see fingerprint in "
		    "popfetch.conf(5))", why, lg->peer.pin);
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
login_client_cert_refused(const struct login *lg, const struct pop3_login *l,
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
		if (strstr(lg->errbuf, alerts[i]) != NULL)
			return i == 0 || l->tls_cert != NULL;
	return false;
}

static void
login_client_cert_error(const struct pop3_login *l, const char *why,
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

/* A refused login, with what the server said of it. */
static void
login_denied(struct login *lg, const char *last, struct err *e)
{
	int code = pop3_err_code(lg->last, lg->lastlen, EX_NOPERM);
	char *reason;

	if (login_mech_missing(lg)) {
		err_set(e, EX_NOPERM, "the server does not offer SASL %s (it "
		    "offers: %s)", lg->mech, lg->sasl[0] != '\0' ? lg->sasl :
		    "none");
		return;
	}
	reason = login_sasl_reason(lg);
	if (reason != NULL && lg->last[0] == '+')
		/* Refused at the challenge: its text is the reason. */
		err_set(e, EX_NOPERM, "login refused: server said \"%s\"",
		    reason);
	else if (reason != NULL)
		/* A -ERR, perhaps with a response code, after it. */
		err_set(e, code, "%s: server said \"%s\" (\"%s\")",
		    login_word(code), last, reason);
	else
		err_set(e, code, "%s: server said \"%s\"", login_word(code),
		    last);
	free(reason);
}

/* No STLS where tls = "starttls" asks for it. */
static void
login_no_stls(const struct login *lg, const char *last, struct err *e)
{
	/* The last line is STLS's -ERR, CAPA's, or the end of the CAPA
	 * list. */
	if (lg->stls_sent && lg->lastlen >= 4 &&
	    memcmp(lg->last, "-ERR", 4) == 0)
		err_set(e, EX_PROTOCOL, "server refused STLS (\"%s\"); "
		    "nothing was sent in cleartext", last);
	else if (!lg->capa_ok)
		err_set(e, EX_PROTOCOL, "server does not offer STLS: it "
		    "refused CAPA, where STLS is announced (\"%s\"); "
		    "nothing was sent in cleartext", last);
	else
		err_set(e, EX_PROTOCOL, "server does not offer STLS; "
		    "nothing was sent in cleartext");
}

/* A TLS handshake that failed for another reason than trust. */
static void
login_handshake_error(const struct login *lg, const struct pop3_login *l,
    const char *why, struct err *e)
{
	if (l->tls == TLS_IMPLICIT && l->proxy == NULL &&
	    strstr(lg->errbuf, "wrong version number") != NULL)
		/* A POP3 greeting where a TLS record belongs. */
		err_set(e, EX_PROTOCOL, "%s port %u answered in plaintext, "
		    "not TLS: a port that greets first (as 110 does) takes "
		    "tls = \"starttls\" (%s)", l->host, l->port, why);
	else if (strstr(lg->errbuf, "protocol version") != NULL ||
	    strstr(lg->errbuf, "unsupported protocol") != NULL)
		err_set(e, EX_PROTOCOL, "TLS handshake failed: the server's "
		    "TLS version is below tls_min_version = \"%s\" (%s)",
		    l->tls_min == TLS_MIN_1_3 ? "1.3" : "1.2", why);
	else
		err_set(e, EX_PROTOCOL, "TLS handshake failed: %s", why);
}

/* libcurl's timeout, which covers everything up to the login. */
static void
login_timeout(const struct login *lg, const struct pop3_login *l,
    const char *why, struct err *e)
{
	if (l->tls != TLS_IMPLICIT && l->proxy == NULL &&
	    lg->lines_in == 0 && !lg->tunnel)
		/* A TLS port waits, silent, for a client hello. */
		err_set(e, EX_TEMPFAIL, "timed out after %u s waiting for the "
		    "greeting of %s port %u: %s: use tls = \"implicit\"",
		    l->timeout, l->host, l->port, l->port == 995 ?
		    "port 995 speaks implicit TLS" : "if the port speaks TLS "
		    "at once (as 995 does)");
	else
		err_set(e, EX_TEMPFAIL, "%s", why);
}

/* What made the progress callback stop libcurl. */
static void
login_aborted(const struct login *lg, const struct pop3_login *l,
    const char *last, struct err *e)
{
	if (lg->bad_greeting)
		err_set(e, EX_PROTOCOL, "not a POP3 server: it greeted with "
		    "\"%s\"", last);
	else if (lg->tls_port)
		err_set(e, EX_CONFIG, "no greeting from %s port 995 within "
		    "%d s: port 995 speaks implicit TLS: use tls = "
		    "\"implicit\"", l->host, TLS_PORT_WAIT);
	else
		err_set(e, EX_TEMPFAIL, POP3_INTERRUPTED);
}

/* A connection that ended, or a line that did not, during the login. */
static void
login_recv_error(const struct login *lg, const char *why, struct err *e)
{
	if (strncmp(lg->errbuf, "CONNECT tunnel failed", 21) == 0)
		/* 407: the proxy wants other credentials. */
		err_set(e, strstr(lg->errbuf, " 407") != NULL ? EX_NOPERM :
		    EX_TEMPFAIL, "proxy: %s", why);
	/* libcurl 7.88 says only "Too large response headers" when a
	 * server line has no end in sight: a protocol violation. */
	else if (strncmp(lg->errbuf, "Too large response", 18) == 0)
		err_set(e, EX_PROTOCOL, "server line too long: %s", why);
	else if (lg->lines_in == 0)
		err_set(e, EX_TEMPFAIL, "connection closed before the "
		    "server's greeting (%s)", why);
	else
		err_set(e, EX_TEMPFAIL, "connection lost during login (%s)",
		    why);
}

/* The failures said in libcurl's words, after a word of ours. */
static const struct {
	CURLcode	 rc;
	int		 ex;
	const char	*what;
} login_plain_errors[] = {
	{ CURLE_SSL_CACERT_BADFILE, EX_CONFIG, "TLS setup: " },
	{ CURLE_SSL_CERTPROBLEM, EX_CONFIG, "TLS setup: " },
	{ CURLE_SSL_CRL_BADFILE, EX_CONFIG, "TLS setup: " },
	{ CURLE_PROXY, EX_TEMPFAIL, "proxy: " },
	{ CURLE_UNSUPPORTED_PROTOCOL, EX_UNAVAILABLE,
	    "libcurl cannot do this: " },
	{ CURLE_NOT_BUILT_IN, EX_UNAVAILABLE, "libcurl cannot do this: " },
};

static void
login_plain_error(CURLcode rc, const char *why, struct err *e)
{
	size_t i;

	for (i = 0; i < sizeof(login_plain_errors) /
	    sizeof(login_plain_errors[0]); i++)
		if (login_plain_errors[i].rc == rc) {
			err_set(e, login_plain_errors[i].ex, "%s%s",
			    login_plain_errors[i].what, why);
			return;
		}
	err_set(e, EX_TEMPFAIL, "%s", why);
}

/* What a failed curl_easy_perform means, by the family of its code. */
static void
login_curl_error(struct login *lg, const struct pop3_login *l, CURLcode rc,
    struct err *e)
{
	/* libcurl's text may quote the server (a certificate's name). */
	char *why = lg->errbuf[0] != '\0' ?
	    buf_escape(lg->errbuf, strlen(lg->errbuf), 300) :
	    xstrdup(curl_easy_strerror(rc));
	char *last = login_last(lg);

	if (login_client_cert_refused(lg, l, rc))
		rc = CURLE_SSL_CLIENTCERT;
	switch (rc) {
	case CURLE_SSL_CLIENTCERT:
		login_client_cert_error(l, why, e);
		break;
	case CURLE_LOGIN_DENIED:
		login_denied(lg, last, e);
		break;
	case CURLE_USE_SSL_FAILED:
		login_no_stls(lg, last, e);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		login_untrusted(lg, why, e);
		break;
	case CURLE_SSL_CONNECT_ERROR:
		login_handshake_error(lg, l, why, e);
		break;
	case CURLE_COULDNT_CONNECT:
		login_connect_error(lg, l, why, e);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		login_timeout(lg, l, why, e);
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		err_set(e, pop3_err_code(lg->last, lg->lastlen, EX_PROTOCOL),
		    "unexpected reply from server: \"%s\"", last);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		login_aborted(lg, l, last, e);
		break;
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		login_recv_error(lg, why, e);
		break;
	default:
		login_plain_error(rc, why, e);
		break;
	}
	free(why);
	free(last);
}

/*
 * Whether libcurl logs in: only for OAuth2, which our engine does not
 * speak. Every other method goes over our engine, so that UTF8 can go before
 * it (RFC 6856) and a refused method can give way to another.
 */
static bool
login_curl_logs_in(enum auth_mech auth)
{
	return auth == AUTH_XOAUTH2 || auth == AUTH_OAUTHBEARER;
}

/* The libcurl login option for a method libcurl uses, else NULL. */
static const char *
login_options(enum auth_mech auth)
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
login_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct login *lg = arg;
	curl_off_t ct = 0;
	int64_t now;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	/* Port 995 is POP3S: silent after connecting, it waits for a TLS
	 * hello, and no timeout need be waited out to say so. */
	if (lg->tls_port_guard && lg->lines_in == 0 &&
	    curl_easy_getinfo(lg->curl, CURLINFO_CONNECT_TIME_T, &ct) ==
	    CURLE_OK && ct > 0) {
		now = clock_ms();
		if (lg->connected_ms == 0)
			lg->connected_ms = now;
		else if (now - lg->connected_ms >= TLS_PORT_WAIT * 1000)
			lg->tls_port = true;
	}
	return lg->bad_greeting || lg->tls_port ||
	    (lg->cancel != NULL && *lg->cancel) ? 1 : 0;
}

/*
 * Whether tlspeer sees the handshake: only with libcurl on our OpenSSL,
 * and never through an https:// proxy, whose own handshake it would see.
 */
static bool
login_hook_tls(const struct pop3_login *l)
{
	return tlspeer_usable() && (l->proxy == NULL ||
	    strncasecmp(l->proxy, "https://", 8) != 0);
}

#define SET(opt, val) \
	do { if (rc == CURLE_OK) rc = curl_easy_setopt(lg->curl, opt, val); } \
	while (0)

/* The options of TLS: when, how verified, with what certificates. */
static CURLcode
login_setopts_tls(struct login *lg, const struct pop3_login *l)
{
	CURLcode rc = CURLE_OK;

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
	if (l->tls != TLS_NONE && login_hook_tls(l)) {
		SET(CURLOPT_SSL_CTX_FUNCTION, tlspeer_ssl_ctx);
		SET(CURLOPT_SSL_CTX_DATA, &lg->peer);
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
	return rc;
}

/* Every option that keeps the connection safe; see LIBCURL-POP3.md. */
static CURLcode
login_setopts(struct login *lg, const struct pop3_login *l, enum auth_mech auth,
    const char *url)
{
	CURLcode rc = CURLE_OK;
	const char *opts = login_options(auth);

	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, l->tls == TLS_IMPLICIT ? "pop3s" : "pop3");
	SET(CURLOPT_CONNECT_ONLY, 1L);
	if (rc == CURLE_OK)
		rc = login_setopts_tls(lg, l);
	/* Only the configured proxy: never one from the environment. */
	SET(CURLOPT_PROXY, l->proxy != NULL ? l->proxy : "");
	/* "": NO_PROXY in the environment must not bypass it either. */
	SET(CURLOPT_NOPROXY, "");
	if (l->proxy != NULL && strncasecmp(l->proxy, "http", 4) == 0)
		SET(CURLOPT_HTTPPROXYTUNNEL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, (long)l->timeout);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, lg->errbuf);
	SET(CURLOPT_VERBOSE, 1L);
	SET(CURLOPT_DEBUGFUNCTION, login_debug);
	SET(CURLOPT_DEBUGDATA, lg);
	SET(CURLOPT_SASL_IR, 1L);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, login_progress);
	SET(CURLOPT_XFERINFODATA, lg);
	/* Without a user name libcurl stops after TLS and CAPA and our
	 * engine logs in: libcurl would use APOP whenever the greeting
	 * allows it, could not fall back, and leaves no room for UTF8. */
	if (login_curl_logs_in(auth)) {
		SET(CURLOPT_USERNAME, l->user);
		SET(CURLOPT_XOAUTH2_BEARER, l->secret);
		SET(CURLOPT_LOGIN_OPTIONS, opts);
	}
#undef SET
	return rc;
}

static int
login_status_ok(void *arg, bool ok, const char *line, size_t n, struct err *e)
{
	struct login *lg = arg;
	char *esc;
	int code;

	lg->login_reply = true;
	if (ok)
		return 0;
	/* Worded as when libcurl logs in. */
	esc = buf_escape(line, n, 200);
	code = pop3_err_code(line, n, EX_NOPERM);
	err_set(e, code, "%s: server said \"%s\"", login_word(code),
	    esc);
	free(esc);
	return -1;
}

/* USER and PASS, one at a time (pipelining them slows some servers). */
static int
login_userpass(struct login *lg, const struct pop3_login *l, struct err *e)
{
	static const struct pop3_cb cb = { login_status_ok, NULL, NULL };
	char *cmd;
	int rc;

	cmd = xasprintf("USER %s", l->user);
	rc = pop3_queue(lg->p, POP3_SINGLE, &cb, lg, 0, cmd, e);
	free(cmd);
	if (rc == -1 || pop3_drain(lg->p, e) == -1)
		return -1;
	return pop3_send_secret(lg->p, &cb, lg, xasprintf("PASS %s",
	    l->secret), false, e);
}

/* The ways auth = "auto" logs in, all spoken over our engine. */
enum login_meth {
	METH_USER,
	METH_PLAIN,
	METH_LOGIN,
	METH_CRAM,		/* SASL CRAM-MD5 */
	METH_APOP
};

static const char *const login_meth_names[] = {
	"USER/PASS", "SASL PLAIN", "SASL LOGIN", "SASL CRAM-MD5", "APOP"
};

/* One login attempt: what its callbacks share. */
struct login_try {
	struct login		*lg;
	const struct pop3_login	*l;
	enum login_meth		 m;
	unsigned		 step;		/* challenges answered */
};

/* Base64 of n bytes, NUL-terminated; the caller frees it. */
static char *
login_b64(const void *in, size_t n)
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
login_unb64(const char *in, size_t n, unsigned char *out, size_t outsize)
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
login_hex(const unsigned char *md, unsigned n, char *out)
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
login_apop_cmd(const struct login *lg, const struct pop3_login *l)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], *in;
	unsigned mdlen = 0;

	in = xasprintf("%s%s", lg->stamp, l->secret);
	if (EVP_Digest(in, strlen(in), md, &mdlen, EVP_md5(), NULL) != 1)
		mdlen = 0;	/* an empty digest the server refuses */
	xfree_secret(in);
	login_hex(md, mdlen, hex);
	return xasprintf("APOP %s %s", l->user, hex);
}

/* RFC 2195: "user hmac-md5-hex" of the decoded challenge, in base64. */
static char *
login_cram_reply(const struct pop3_login *l, const char *chal, size_t n)
{
	unsigned char c[LOGIN_LINEMAX], md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1], *resp, *b64;
	unsigned mdlen = 0;
	int len;

	if ((len = login_unb64(chal, n, c, sizeof(c))) == -1 ||
	    HMAC(EVP_md5(), l->secret, (int)strlen(l->secret), c,
	    (size_t)len, md, &mdlen) == NULL)
		return xstrdup("*");	/* cancels: the server says -ERR */
	login_hex(md, mdlen, hex);
	resp = xasprintf("%s %s", l->user, hex);
	b64 = login_b64(resp, strlen(resp));
	free(resp);
	return b64;
}

/* "\0user\0secret" in base64, for SASL PLAIN; the caller wipes it. */
static char *
login_plain_msg(const struct pop3_login *l)
{
	size_t ul = strlen(l->user), sl = strlen(l->secret);
	char *msg = xmalloc(ul + sl + 2), *b64;

	msg[0] = '\0';
	memcpy(msg + 1, l->user, ul);
	msg[ul + 1] = '\0';
	memcpy(msg + ul + 2, l->secret, sl);
	b64 = login_b64(msg, ul + sl + 2);
	xwipe(msg, ul + sl + 2);
	free(msg);
	return b64;
}

static int
login_try_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct login_try *t = arg;

	return login_status_ok(t->lg, ok, line, n, e);
}

/* Answers one "+ " challenge of a SASL exchange. */
static int
login_try_challenge(void *arg, const char *chal, size_t n, struct err *e)
{
	struct login_try *t = arg;
	const char *user = t->l->user, *secret = t->l->secret;
	char *resp;
	int rc;

	if (t->m == METH_PLAIN && t->step == 0)
		resp = login_plain_msg(t->l);
	else if (t->m == METH_LOGIN && t->step < 2)
		resp = t->step == 0 ? login_b64(user, strlen(user)) :
		    login_b64(secret, strlen(secret));
	else if (t->m == METH_CRAM && t->step == 0)
		resp = login_cram_reply(t->l, chal, n);
	else
		resp = xstrdup("*");	/* a challenge too many: cancel */
	t->step++;
	rc = pop3_sasl_reply(t->lg->p, resp, e);
	xfree_secret(resp);
	return rc;
}

/* The first line of a method; for SASL PLAIN with its initial response. */
static char *
login_try_cmd(const struct login_try *t)
{
	char *msg, *cmd;

	switch (t->m) {
	case METH_PLAIN:
		/* RFC 5034: the AUTH line is 255 octets at most, CRLF too. */
		msg = login_plain_msg(t->l);
		cmd = strlen(msg) + 13 <= 255 ? xasprintf("AUTH PLAIN %s",
		    msg) : xstrdup("AUTH PLAIN");
		xfree_secret(msg);
		return cmd;
	case METH_LOGIN:
		return xstrdup("AUTH LOGIN");
	case METH_CRAM:
		return xstrdup("AUTH CRAM-MD5");
	case METH_APOP:
		return login_apop_cmd(t->lg, t->l);
	default:
		return NULL;
	}
}

/*
 * One login attempt with method m on the connection libcurl opened.
 * Returns 0, or -1 with e filled in; lg->login_reply says whether the
 * server answered (a refusal) or not (a lost connection).
 */
static int
login_try(struct login *lg, const struct pop3_login *l, enum login_meth m,
    struct err *e)
{
	static const struct pop3_cb cb = {
		login_try_status, login_try_challenge, NULL
	};
	struct login_try t = { lg, l, m, 0 };

	lg->login_reply = false;
	if (m == METH_USER)
		return login_userpass(lg, l, e);
	/* The callbacks see t, which lives until the reply is read. */
	return pop3_send_secret(lg->p, &cb, &t, login_try_cmd(&t), true, e);
}

/* Whether the server's SASL line (as libcurl saw it) lists mech. */
static bool
login_offers(const struct login *lg, const char *mech)
{
	char word[32];

	snprintf(word, sizeof(word), " %s ", mech);
	return strcasestr(lg->sasl, word) != NULL;
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
login_auto_plan(const struct login *lg, bool tls, enum login_meth m[4])
{
	bool plain = login_offers(lg, "PLAIN");
	bool login = login_offers(lg, "LOGIN");
	bool user = lg->capa_user || !lg->capa_ok;
	enum login_meth pw = plain ? METH_PLAIN : login ? METH_LOGIN :
	    METH_USER;
	size_t n = 0;

	if (tls && (plain || login || user))
		m[n++] = pw;
	else {
		if (login_offers(lg, "CRAM-MD5"))
			m[n++] = METH_CRAM;
		if (lg->stamp[0] != '\0')
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
login_explicit_plan(struct login *lg, enum auth_mech auth, enum login_meth *m,
    struct err *e)
{
	switch (auth) {
	case AUTH_APOP:
		*m = METH_APOP;
		if (lg->stamp[0] != '\0')
			return 1;
		err_set(e, EX_NOPERM, "the server does not offer APOP (its "
		    "greeting has no timestamp)");
		return 0;
	case AUTH_PLAIN:
		*m = METH_PLAIN;
		lg->mech = "PLAIN";
		break;
	case AUTH_LOGIN:
		*m = METH_LOGIN;
		lg->mech = "LOGIN";
		break;
	case AUTH_CRAM_MD5:
		*m = METH_CRAM;
		lg->mech = "CRAM-MD5";
		break;
	default:
		*m = METH_USER;
		return 1;
	}
	if (!login_mech_missing(lg))
		return 1;
	err_set(e, EX_NOPERM, "the server does not offer SASL %s (it offers: "
	    "%s)", lg->mech, lg->sasl[0] != '\0' ? lg->sasl : "none");
	return 0;
}

/*
 * The login over the engine, from method number from of the plan on: auth =
 * "auto"'s plan, or the one method of an explicit setting. A refused
 * challenge-response method (the server may hold no secret for it) gives
 * way to the next one on the same connection. Returns 0; -1 with e
 * filled in; or 1, with e filled in and *from set, when the server
 * dropped the connection after such a refusal: the caller connects
 * again and resumes there.
 */
static int
login_methods(struct login *lg, const struct pop3_login *l, size_t *from,
    struct err *e)
{
	enum login_meth m[4];
	size_t n, i;
	char note[128];

	n = l->auth == AUTH_AUTO ? login_auto_plan(lg, l->tls != TLS_NONE, m) :
	    login_explicit_plan(lg, l->auth, m, e);

	for (i = *from; i < n; i++) {
		if (i > 0) {
			snprintf(note, sizeof(note), "%s refused; trying %s",
			    login_meth_names[m[i - 1]], login_meth_names[m[i]]);
			pop3_trace(lg->p, POP3_TRACE_NOTE, note, strlen(note));
		}
		if (login_try(lg, l, m[i], e) == 0) {
			snprintf(lg->used, sizeof(lg->used), "%s%s%s%s",
			    login_meth_names[m[i]], i > 0 ? ", after " : "",
			    i > 0 ? login_meth_names[m[i - 1]] : "",
			    i > 0 ? " was refused" : "");
			return 0;
		}
		if (!lg->login_reply && i > *from) {
			*from = i;
			return 1;
		}
		if (!lg->login_reply || e->code != EX_NOPERM ||
		    (m[i] != METH_CRAM && m[i] != METH_APOP))
			return -1;
		/* The engine stopped at the refusal, the last line the
		 * server sent: forget it and the command it answered. */
		pop3_forget(lg->p);
	}
	return -1;
}

static int
login_utf8_status(void *arg, bool ok, const char *line, size_t n,
    struct err *e)
{
	struct login *lg = arg;
	char *esc;

	(void)e;
	/* RFC 6856 2.1: "The server MAY respond to the "UTF8" command with
	 * an -ERR response": the session goes on as before. */
	lg->utf8 = ok ? POP3_UTF8_ON : POP3_UTF8_REFUSED;
	if (!ok) {
		esc = buf_escape(line, n, sizeof(lg->utf8_reply) / 4);
		snprintf(lg->utf8_reply, sizeof(lg->utf8_reply), "%s", esc);
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
login_utf8_enable(struct login *lg, struct err *e)
{
	static const struct pop3_cb cb = { login_utf8_status, NULL, NULL };

	if (!lg->capa_utf8)
		return 0;
	if (pop3_queue(lg->p, POP3_SINGLE, &cb, lg, 0, "UTF8", e) == -1)
		return -1;
	return lg->pre_caps & POP3_CAP_PIPELINING ? 0 : pop3_drain(lg->p, e);
}

/*
 * A new connection's start: what the last one showed is forgotten, and
 * what l says of this one is taken.
 */
static void
login_start(struct login *lg, const struct pop3_login *l)
{
	const char *opts = login_options(l->auth);

	lg->cancel = l->cancel;
	lg->errbuf[0] = '\0';
	lg->lastlen = 0;
	lg->challen = 0;
	lg->sasl[0] = '\0';
	lg->used[0] = '\0';
	lg->tunnel = false;
	lg->stls_sent = false;
	lg->http_proxy = l->proxy != NULL &&
	    strncasecmp(l->proxy, "http", 4) == 0;
	lg->mech = opts != NULL ? opts + 5 : NULL;
	lg->lines_in = 0;
	lg->pre_caps = 0;
	lg->in_capa = false;
	lg->capa_ok = lg->capa_user = lg->capa_utf8 = false;
	lg->utf8 = POP3_UTF8_NONE;
	lg->utf8_reply[0] = '\0';
	lg->stamp[0] = '\0';
	lg->bad_greeting = false;
	lg->tls_port_guard = l->port == 995 && l->tls != TLS_IMPLICIT &&
	    l->proxy == NULL && l->timeout > TLS_PORT_WAIT;
	lg->tls_port = false;
	lg->connected_ms = 0;
}

int
login_connect(struct login *lg, const struct pop3_login *l, CURL **curlp,
    curl_socket_t *fdp, struct err *e)
{
	curl_socket_t fd = CURL_SOCKET_BAD;
	enum auth_mech auth = l->auth;
	const char *sv = curl_version_info(CURLVERSION_NOW)->ssl_version;
	CURLcode rc;
	char *url;

	memset(&lg->peer, 0, sizeof(lg->peer));
	lg->peer.cert_fps = l->cert_fingerprint;
	lg->peer.pin_only = lg->pin_only = l->pin_only;
	if (l->cert_fingerprint != NULL && !login_hook_tls(l)) {
		err_set(e, EX_UNAVAILABLE, "a certificate fingerprint cannot "
		    "be checked: libcurl's TLS library (%s) is not the OpenSSL "
		    "popfetch was built with; pin the server's public key "
		    "instead (sha256//...)", sv != NULL ? sv : "none");
		return -1;
	}
	if ((lg->curl = curl_easy_init()) == NULL) {
		err_set(e, EX_SOFTWARE, "curl_easy_init failed");
		return -1;
	}
	login_start(lg, l);
	url = xasprintf(strchr(l->host, ':') != NULL ? "%s://[%s]:%u/" :
	    "%s://%s:%u/", l->tls == TLS_IMPLICIT ? "pop3s" : "pop3",
	    l->host, l->port);
	rc = login_setopts(lg, l, auth, url);
	free(url);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(lg->curl);
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(lg->curl, CURLINFO_ACTIVESOCKET, &fd);
	if (rc == CURLE_OK && fd == CURL_SOCKET_BAD)
		rc = CURLE_GOT_NOTHING;
	/* libcurl keeps copies of the secret: drop them now. */
	(void)curl_easy_setopt(lg->curl, CURLOPT_PASSWORD, (char *)NULL);
	(void)curl_easy_setopt(lg->curl, CURLOPT_XOAUTH2_BEARER, (char *)NULL);
	if (rc != CURLE_OK) {
		login_curl_error(lg, l, rc, e);
		return -1;
	}
	if (login_curl_logs_in(auth) && lg->capa_utf8)
		lg->utf8 = POP3_UTF8_LATE;
	*curlp = lg->curl;
	*fdp = fd;
	return 0;
}

/*
 * "CN=name" of a certificate, how it was trusted, in how many days it
 * expires, and its key's pin: the value fingerprint takes.
 */
static void
login_cert_info(const struct login *lg, X509 *cert, char *out, size_t size)
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
	    lg->pin_only ? "trusted by its fingerprint alone (CA and name not "
	    "checked)" : "verified", days_left, pin[0] != '\0' ? pin :
	    "unknown");
	free(esc);
}

char *
login_tls_info(const struct login *lg)
{
	struct curl_tlssessioninfo *ti = NULL;
	char cert[512] = "";
	X509 *x;
	SSL *ssl;

	/* libcurl's SSL object is ours to read only when its TLS library
	 * is the very OpenSSL we link (LibreSSL says OPENSSL too). */
	if (!tlspeer_usable() || lg->curl == NULL || curl_easy_getinfo(lg->curl,
	    CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK ||
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
		login_cert_info(lg, x, cert, sizeof(cert));
		X509_free(x);
	}
	return xasprintf("%s, %s%s%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl), cert[0] != '\0' ? "; " : "", cert);
}

struct login *
login_new(struct pop3 *p)
{
	struct login *lg = xcalloc(1, sizeof(*lg));

	lg->p = p;
	return lg;
}

void
login_disconnect(struct login *lg)
{
	if (lg->curl != NULL)
		curl_easy_cleanup(lg->curl);
	lg->curl = NULL;
}

void
login_free(struct login *lg)
{
	if (lg == NULL)
		return;
	login_disconnect(lg);
	free(lg);
}

int
login_auth(struct login *lg, const struct pop3_login *l, size_t *from,
    struct err *e)
{
	if (login_curl_logs_in(l->auth))
		return 0;
	if (login_utf8_enable(lg, e) == -1)
		return -1;
	return login_methods(lg, l, from, e);
}

unsigned
login_pre_caps(const struct login *lg)
{
	return lg->pre_caps;
}

const char *
login_used(const struct login *lg)
{
	return lg->used[0] != '\0' ? lg->used : "libcurl's choice";
}

enum pop3_utf8
login_utf8(const struct login *lg, const char **reply)
{
	if (reply != NULL)
		*reply = lg->utf8_reply;
	return lg->utf8;
}
