/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_LOGIN_H
#define POPFETCH_LOGIN_H

#include <curl/curl.h>

#include <stddef.h>

#include "err.h"
#include "pop3.h"

/*
 * The login of a POP3 session, inside the pop3 module (pop3_open is its
 * only caller). libcurl connects, negotiates TLS and reads the greeting
 * and CAPA (CURLOPT_CONNECT_ONLY); this module sets libcurl up, rebuilds
 * the exchange from libcurl's debug stream (for the trace, for what the
 * server offered before login, and for the errors), turns a libcurl
 * failure into a message a user can act on, and then logs in over the
 * session's engine (pop3_impl.h) with the method auth asks for, falling
 * back as auth = "auto" allows. Like the engine, it does not log.
 */
struct login;

/*
 * A login for session p, which it traces to and speaks through; it
 * lives as long as p. Never NULL. Free with login_free.
 */
struct login *login_new(struct pop3 *p);

/* Drops the connection, if any, and frees. NULL is a no-op. */
void	login_free(struct login *);

/*
 * Connects as l says: TCP (through l->proxy), TLS, greeting, CAPA, and
 * for OAuth2 libcurl's own login. Returns 0 with the connection in
 * *curlp and *fdp, for the engine to speak over; it stays the login's
 * (login_disconnect). Returns -1 with e filled in as pop3_open says
 * (pop3.h). Once more after login_disconnect, for a new connection.
 */
int	login_connect(struct login *, const struct pop3_login *l,
	    CURL **curlp, curl_socket_t *fdp, struct err *e);

/*
 * Drops the connection without QUIT (curl_easy_cleanup). What the
 * server said before is kept for the getters below.
 */
void	login_disconnect(struct login *);

/*
 * Logs in over the engine, once login_connect has succeeded and the
 * engine has taken over the connection: UTF8 when offered (RFC 6856),
 * then the methods of l->auth from number *from of its plan on (0 at
 * first). Nothing to do when libcurl logged in (OAuth2). Returns 0; -1
 * with e filled in; or 1, with e filled in and *from set, when the
 * server dropped the connection after a refused challenge-response
 * method: connect again and call this again with the same *from.
 */
int	login_auth(struct login *, const struct pop3_login *l, size_t *from,
	    struct err *e);

/*
 * The POP3_CAP_ bits of the CAPA before login (as libcurl saw it), for
 * the engine to know whether it may pipeline at once.
 */
unsigned login_pre_caps(const struct login *);

/* As pop3_auth_used, pop3_utf8 and pop3_tls_info (pop3.h). */
const char *login_used(const struct login *);
enum pop3_utf8 login_utf8(const struct login *, const char **reply);
char	*login_tls_info(const struct login *);

#endif
