/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <string.h>

#include "tlspeer.h"

bool
tlspeer_usable(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	const char *ours = OpenSSL_version(OPENSSL_VERSION), *sp;
	char want[64];

	/* libcurl says "OpenSSL/3.0.17"; OpenSSL "OpenSSL 3.0.17 1 Jul..." */
	if (cv->ssl_version == NULL || (sp = strchr(ours, ' ')) == NULL)
		return false;
	snprintf(want, sizeof(want), "OpenSSL/%.*s", (int)strcspn(sp + 1,
	    " "), sp + 1);
	return strcmp(cv->ssl_version, want) == 0;
}

void
tlspeer_key_pin(X509 *x, char out[TLSPEER_PINLEN])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE], b64[48];
	unsigned int mdlen = 0;
	int n;

	out[0] = '\0';
	if ((n = i2d_PUBKEY(X509_get0_pubkey(x), &der)) <= 0)
		return;
	if (EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32 && EVP_EncodeBlock(b64, md, 32) == 44)
		snprintf(out, TLSPEER_PINLEN, "sha256//%.44s", (char *)b64);
	OPENSSL_free(der);
}

/* x's SHA-256 fingerprint, "AB:CD:...", into out ("" on failure). */
static void
tlspeer_cert_fp(X509 *x, char out[TLSPEER_FPLEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	out[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
		return;
	for (i = 0; i < n; i++)
		snprintf(out + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

/* Whether fp is one of the ";"-separated fingerprints of list. */
static bool
tlspeer_listed(const char *list, const char *fp)
{
	size_t n, len = strlen(fp);

	for (; *list != '\0'; list += n + (list[n] == ';')) {
		n = strcspn(list, ";");
		if (len > 0 && n == len && memcmp(list, fp, n) == 0)
			return true;
	}
	return false;
}

/*
 * Stands in for OpenSSL's own chain check (X509_verify_cert, which it
 * still does) to see the server's certificate, and to refuse one whose
 * fingerprint is not pinned.
 */
static int
tlspeer_verify(X509_STORE_CTX *x, void *arg)
{
	struct tlspeer *peer = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	int ok = X509_verify_cert(x) > 0;

	if (leaf != NULL) {
		tlspeer_key_pin(leaf, peer->pin);
		tlspeer_cert_fp(leaf, peer->fp);
	}
	if (peer->cert_fps == NULL)
		return ok;
	if (tlspeer_listed(peer->cert_fps, peer->fp))
		return ok || peer->pin_only;
	peer->mismatch = true;
	X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

CURLcode
tlspeer_ssl_ctx(CURL *curl, void *sslctx, void *arg)
{
	struct tlspeer *peer = arg;
	SSL_CTX *ctx = sslctx;

	(void)curl;
	SSL_CTX_set_cert_verify_callback(ctx, tlspeer_verify, peer);
	/* Without SSL_VERIFY_PEER a refusal would not end the handshake;
	 * libcurl then judges the CA check by CURLOPT_SSL_VERIFYPEER. */
	if (peer->cert_fps != NULL)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return CURLE_OK;
}
