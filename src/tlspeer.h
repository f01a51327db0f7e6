/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_TLSPEER_H
#define POPFETCH_TLSPEER_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#define TLSPEER_PINLEN	53	/* "sha256//" + 44 of base64 + NUL */
#define TLSPEER_FPLEN	96	/* 32 bytes "AB:" ... "EF" + NUL */

/*
 * What a TLS handshake showed of the server's certificate, filled in by
 * tlspeer_ssl_ctx's hook while libcurl connects: its public-key pin and
 * its SHA-256 fingerprint ("" until a certificate was seen).
 */
struct tlspeer {
	/* set by the caller: */
	const char	*cert_fps;	/* borrowed: the pinned certificate
					   fingerprints, "AB:CD:...;...",
					   or NULL */
	bool		 pin_only;	/* with cert_fps: a listed one is
					   trusted without its CA */
	/* set by the hook: */
	bool		 mismatch;	/* a certificate was refused: its
					   fingerprint is not in cert_fps */
	char		 pin[TLSPEER_PINLEN];	/* "sha256//BASE64" */
	char		 fp[TLSPEER_FPLEN];	/* "AB:CD:...", upper case */
};

/*
 * Whether libcurl's TLS library is the very OpenSSL this program links,
 * so that its SSL objects are ours to read and hook.
 */
bool	tlspeer_usable(void);

/*
 * A CURLOPT_SSL_CTX_FUNCTION, its CURLOPT_SSL_CTX_DATA a struct tlspeer
 * that outlives the connection; only when tlspeer_usable(). It records
 * the server certificate of every handshake; with cert_fps set, it ends
 * the handshake (CURLE_PEER_FAILED_VERIFICATION, and mismatch set) unless
 * the certificate's fingerprint is one of them, even with
 * CURLOPT_SSL_VERIFYPEER off; a listed one must also pass the CA check
 * unless pin_only (set it with CURLOPT_SSL_VERIFYPEER off). Not
 * for a connection through an https:// proxy: the proxy's handshake
 * would come through it too. Returns CURLE_OK.
 */
CURLcode tlspeer_ssl_ctx(CURL *, void *sslctx, void *peer);

/* The "sha256//BASE64" pin of x's public key into out ("" on failure). */
void	tlspeer_key_pin(X509 *x, char out[TLSPEER_PINLEN]);

#endif
