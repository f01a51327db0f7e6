/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_POP3_H
#define POPFETCH_POP3_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

/*
 * A POP3 session. libcurl connects, negotiates TLS (always verified) and
 * authenticates (CURLOPT_CONNECT_ONLY); then this module's own engine
 * speaks POP3 over the authenticated connection: commands are queued,
 * sent as far ahead as the caller allows (RFC 2449 pipelining), and each
 * response is parsed as it streams in and handed to the callbacks given
 * with its command. Nothing here logs; a trace callback sees the
 * protocol with every secret replaced by "<redacted>".
 */
struct pop3;

/* Capabilities, from CAPA after login. */
#define POP3_CAP_PIPELINING	0x01
#define POP3_CAP_UIDL		0x02
#define POP3_CAP_TOP		0x04
#define POP3_CAP_RESP_CODES	0x08
#define POP3_CAP_CAPA		0x10	/* the server answered CAPA at all */

/* Trace directions. */
#define POP3_TRACE_IN	'<'	/* a line from the server */
#define POP3_TRACE_OUT	'>'	/* a line to the server */
#define POP3_TRACE_INFO	'*'	/* libcurl's own notes */
#define POP3_TRACE_NOTE	'#'	/* ours: a method refused, a reconnect */

struct pop3_login {
	const char	*host;
	unsigned	 port;
	enum tls_mode	 tls;
	const char	*ca_file;	/* the only anchor; NULL: the system's */
	const char	*fingerprint;	/* NULL or "sha256//...;..." */
	const char	*cert_fingerprint;	/* NULL or "AB:CD:...;..." */
	bool		 pin_only;	/* one of the two above is the only
					   trust: no CA, no name checked */
	enum tls_min	 tls_min;
	const char	*tls_cert;	/* client certificate, or NULL */
	const char	*tls_key;	/* its key; NULL: in tls_cert */
	const char	*proxy;		/* NULL, or a libcurl proxy URL */
	const char	*user;
	const char	*secret;	/* password or bearer token */
	enum auth_mech	 auth;
	unsigned	 timeout;	/* seconds, connect and inactivity */
	/* Optional; text is escaped, NUL-terminated, with no newline. */
	void		(*trace)(void *arg, char dir, const char *text);
	void		*trace_arg;
	/*
	 * Optional: a flag a signal handler sets to make the session give
	 * up within about a second, wherever it waits (EX_TEMPFAIL,
	 * POP3_INTERRUPTED). It must outlive the session.
	 */
	const volatile sig_atomic_t *cancel;
};

/* The whole message of the error that the cancel flag ends a session
 * with: a run stopped on purpose, not a failure. */
#define POP3_INTERRUPTED	"interrupted"

/*
 * Connects and logs in, then asks CAPA. Returns 0 with the session in
 * *pp, or -1 with e filled in: EX_TEMPFAIL (cannot connect, timeout,
 * [IN-USE], [SYS/TEMP], [LOGIN-DELAY]), EX_NOPERM (login refused, server
 * certificate or pin not trusted, client certificate refused by the
 * server), EX_PROTOCOL (no STLS where required, a TLS handshake that
 * fails, a server below tls_min, a reply that is not POP3), EX_CONFIG
 * (an unusable ca_file, tls_cert or tls_key), EX_UNAVAILABLE (libcurl
 * cannot do it at all, or cannot check a certificate fingerprint). No
 * credential is ever sent before TLS unless tls is TLS_NONE. With
 * AUTH_AUTO the method is chosen from the greeting and CAPA as
 * popfetch.conf(5) says under "auth": one that sends the password over
 * TLS; on a plaintext connection CRAM-MD5 or APOP first, and a refusal
 * of those gives way to the next method (on a new connection only if
 * the server closed this one). e is left alone on success: the error
 * of an attempt that a later one recovered from is not reported.
 * libcurl logs in only with AUTH_XOAUTH2 and AUTH_OAUTHBEARER; for every
 * other method it stops after TLS and CAPA and this engine logs in: an
 * explicit method the server does not offer (no timestamp for APOP, not
 * in the SASL capability) fails with EX_NOPERM before anything is sent.
 * When the CAPA before login lists UTF8, the engine sends UTF8 (RFC
 * 6856) just before its login; a refusal changes nothing (see
 * pop3_utf8). login->secret is not kept.
 */
int	pop3_open(struct pop3 **pp, const struct pop3_login *login,
	    struct err *e);

/*
 * Drops the connection without QUIT (the server then rolls back every
 * DELE of the session) and frees the session. NULL is a no-op.
 */
void	pop3_close(struct pop3 *);

/*
 * The POP3_CAP_ bits the server announced after login. When it announced
 * PIPELINING before login, pop3_open does not wait for the CAPA reply:
 * until the first pop3_step or pop3_drain after it, only that bit shows.
 */
unsigned pop3_caps(const struct pop3 *);

/*
 * The least number of seconds the server wants between two logins
 * (RFC 2449 LOGIN-DELAY, as announced after login), or 0; known, like
 * pop3_caps, once the CAPA reply has been read.
 */
unsigned pop3_login_delay(const struct pop3 *);

/*
 * How the login was made, for a report: "USER/PASS", "APOP" or
 * "SASL MECH", and after a refused method ", after APOP was refused".
 * The string lives as long as the session.
 */
const char *pop3_auth_used(const struct pop3 *);

/* What became of RFC 6856 UTF-8 mode, in which messages come as stored. */
enum pop3_utf8 {
	POP3_UTF8_NONE,		/* not offered before login */
	POP3_UTF8_ON,		/* enabled before login */
	POP3_UTF8_REFUSED,	/* the server answered UTF8 with -ERR */
	POP3_UTF8_LATE		/* offered, but libcurl logs in (OAuth2), and
				   UTF8 is valid only before the login */
};

/*
 * Whether UTF-8 mode is on. For POP3_UTF8_REFUSED, *reply (when reply
 * is not NULL) gets the server's -ERR line, escaped, living as long as
 * the session; else "". Known once pop3_open has returned.
 */
enum pop3_utf8 pop3_utf8(const struct pop3 *, const char **reply);

/*
 * The capabilities the server announced after login, as "A, B, C"
 * (escaped, cut at 2 KiB), known like pop3_caps. The caller frees it.
 */
char	*pop3_capa_text(const struct pop3 *);

/*
 * The TLS version, cipher, the server certificate's CN, how it was
 * trusted, its days to expiry and its public-key pin ("sha256//..."), as
 * text the caller frees; NULL without TLS.
 */
char	*pop3_tls_info(const struct pop3 *);

/*
 * Queues a NOOP and sends what the socket takes now, without reading:
 * for keeping the session alive while the caller is busy elsewhere (no
 * other pop3_ call may run meanwhile). Its reply is read, and ignored,
 * with the replies before it. To a server without PIPELINING nothing is
 * sent while it still owes a reply to another command. Returns 0, or -1
 * with e filled in.
 */
int	pop3_keepalive(struct pop3 *, struct err *e);

/* How a command's response is read. */
enum pop3_kind {
	POP3_SINGLE,		/* a status line only */
	POP3_LINES,		/* status, then lines (UIDL, LIST, CAPA) */
	POP3_STREAM		/* status, then a body streamed (RETR) */
};

/*
 * Callbacks for one command's response; any may be NULL. Each returns 0,
 * or -1 with e filled in to stop the session (pop3_step then fails).
 * status gets the status line without CRLF (ok: "+OK", else "-ERR");
 * after "-ERR" nothing more follows for that command. data gets, for
 * POP3_LINES, one line at a time (dot-unstuffed, without its CRLF, and
 * followed by a NUL byte not counted in n); for
 * POP3_STREAM, pieces of the body with dot-stuffing undone and each CRLF
 * turned into LF, in order. end comes after the terminating ".".
 */
struct pop3_cb {
	int	(*status)(void *arg, bool ok, const char *line, size_t n,
		    struct err *e);
	int	(*data)(void *arg, const char *p, size_t n, struct err *e);
	int	(*end)(void *arg, struct err *e);
};

/*
 * Queues a command (without CRLF; it must not contain CR or LF) whose
 * response is read as kind and handed to cb with arg. expect is the size
 * the caller expects the response to have, for pop3_inflight_bytes.
 * Queued commands are sent by pop3_step. Returns 0, or -1 (EX_SOFTWARE)
 * for a malformed command.
 */
int	pop3_queue(struct pop3 *, enum pop3_kind kind, const struct pop3_cb *cb,
	    void *arg, uint64_t expect, const char *cmd, struct err *e);

/* Commands queued or sent whose responses have not completed. */
size_t	pop3_inflight(const struct pop3 *);

/* The sum of expect over those commands. */
uint64_t pop3_inflight_bytes(const struct pop3 *);

/*
 * Sends what is queued and reads until at least one response has
 * completed (its callbacks have run), or until the timeout passes with
 * nothing received. Returns 0, or -1 with e filled in (EX_TEMPFAIL for a
 * closed connection or a timeout, EX_PROTOCOL for a malformed response,
 * or whatever a callback set).
 */
int	pop3_step(struct pop3 *, struct err *e);

/* Runs pop3_step until nothing is in flight. Returns 0 or -1. */
int	pop3_drain(struct pop3 *, struct err *e);

/*
 * Sends QUIT and waits for its reply. Returns 0 when the server answered
 * +OK (every DELE of the session is committed), or -1 with e filled in.
 * The session is still to be freed with pop3_close.
 */
int	pop3_quit(struct pop3 *, struct err *e);

/*
 * The sysexits code a "-ERR" line calls for, by its RFC 2449/3206
 * response code: EX_TEMPFAIL for [IN-USE], [LOGIN-DELAY], [SYS/TEMP];
 * EX_NOPERM for [AUTH]; dflt otherwise.
 */
int	pop3_err_code(const char *line, size_t n, int dflt);

/*
 * Fills e for a refused command: the code pop3_err_code gives line (dflt
 * without a response code), and "WHAT: \"escaped server text\"".
 * Returns -1, for a callback to return.
 */
int	pop3_refused(struct err *e, int dflt, const char *what,
	    const char *line, size_t n);

/*
 * Parses a LIST scan line "NUM SIZE[ ...]" (RFC 1939: more may follow
 * the size). Returns 0, or -1 when it has another form or a number
 * overflows. NUM must be positive.
 */
int	pop3_parse_list(const char *line, size_t n, unsigned long *num,
	    uint64_t *size);

/*
 * Parses a UIDL line "NUM UID": *uid points into line, *uidlen bytes.
 * Returns 0, or -1 when it has another form. The UID is NOT validated:
 * see uid_valid.
 */
int	pop3_parse_uidl(const char *line, size_t n, unsigned long *num,
	    const char **uid, size_t *uidlen);

/*
 * For tests and fuzzers: a session without a connection, into which
 * pop3_feed pushes server bytes as if they had arrived; queued commands
 * are dropped instead of sent. Free with pop3_close.
 */
struct pop3 *pop3_detached(void);

/*
 * Parses n bytes as server output for the queued commands, running
 * their callbacks. Returns 0, or -1 with e filled in.
 */
int	pop3_feed(struct pop3 *, const char *, size_t n, struct err *e);

/*
 * The body decoder, exposed for tests: undoes dot-stuffing and turns CRLF
 * into LF, fed any split of the input. Start with the struct zeroed.
 * Consumes at most n bytes of in; writes at most n + 1 bytes to out and
 * sets *outn; sets *done and stops right after the terminating
 * CRLF "." CRLF. Returns the number of bytes consumed.
 */
struct pop3_unstuff {
	int	state;
};
size_t	pop3_unstuff(struct pop3_unstuff *, const char *in, size_t n,
	    char *out, size_t *outn, bool *done);

#endif
