/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_CONFIG_H
#define POPFETCH_CONFIG_H

#include <stdint.h>
#include <stdbool.h>

#include "err.h"

enum tls_mode {
	TLS_IMPLICIT,		/* pop3s, port 995 (the default) */
	TLS_STARTTLS,		/* pop3 + STLS required, port 110 */
	TLS_NONE		/* cleartext: only with allow_plaintext */
};

/* The oldest TLS version accepted (tls_min_version). */
enum tls_min {
	TLS_MIN_1_2,		/* the default */
	TLS_MIN_1_3
};

enum auth_mech {
	AUTH_AUTO,		/* chosen from CAPA and the greeting */
	AUTH_USER,		/* USER/PASS */
	AUTH_APOP,
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_CRAM_MD5,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER
};

/*
 * One account, validated: every pointer member is either NULL (only where
 * the comment says it may be) or a string owned by the struct config.
 */
/* Where an account's mail goes: exactly one target per account. */
enum deliver_kind {
	DELIVER_MAILDIR,	/* maildir = "PATH" */
	DELIVER_MDA,		/* mda = ["COMMAND", "ARG", ...] */
	DELIVER_LMTP,		/* lmtp = "unix:/PATH" or "HOST:PORT" */
	DELIVER_MBOX		/* mbox = "PATH" */
};

struct account {
	char		*name;		/* [A-Za-z0-9][A-Za-z0-9._-]*, unique */
	char		*host;
	unsigned	 port;		/* resolved: 995 or 110 when unset */
	enum tls_mode	 tls;
	bool		 allow_plaintext;
	char		*ca_file;	/* may be NULL */
	/* fingerprint: public-key pins or certificate fingerprints */
	char		*fingerprint;	/* "sha256//BASE64", ";"-separated,
					   or NULL */
	char		*cert_fingerprint; /* "AB:CD:...", the SHA-256 of a
					   certificate in upper case,
					   ";"-separated, or NULL */
	bool		 pin_only;	/* verify_ca = false: one of the two
					   above is set, ca_file is not */
	enum tls_min	 tls_min;
	char		*tls_cert;	/* client certificate (PEM), or NULL */
	char		*tls_key;	/* its key (PEM); NULL: in tls_cert */
	char		*user;
	/* at most one of the next four is non-NULL; none: ~/.netrc */
	char		*password;
	char		*password_file;	/* ~ expanded */
	char		*password_command;
	char		*oauth2_token_command;	/* auth is an OAuth2 one */
	enum auth_mech	 auth;
	enum deliver_kind deliver;	/* which one of the next four is set */
	char		*maildir;	/* ~ expanded, or NULL */
	char		**mda;		/* argv, NULL-terminated, or NULL */
	char		*lmtp;		/* "unix:/PATH" or "HOST:PORT", or NULL */
	char		*mbox;		/* ~ expanded, or NULL */
	char		*recipient;	/* %T and RCPT TO; NULL: user */
	char		**on_new_mail;	/* argv, NULL-terminated, or NULL */
	bool		 keep;
	bool		 disabled;	/* enabled = false: never fetched */
	unsigned	 keep_days;	/* 0: never delete (with keep) */
	uint64_t	 max_size;	/* bytes; 0: no limit */
	unsigned	 timeout;	/* seconds of inactivity, > 0 */
	unsigned	 interval;	/* seconds between daemon polls, > 0 */
	unsigned	 max_messages;	/* fetched per run at most; 0: all */
	bool		 add_received_header;
	char		*proxy;		/* libcurl proxy URL, or NULL */
	unsigned	 keepalive;	/* NOOP after this many idle s; 0: never */
	int		 line;		/* line of the account's group */
};

struct config {
	char		*path;		/* the file it was read from */
	char		*state_dir;	/* ~ expanded */
	unsigned	 timeout;	/* top-level default */
	unsigned	 interval;	/* top-level default */
	unsigned	 max_parallel;	/* accounts fetched at once, >= 1 */
	unsigned	 max_per_host;	/* sessions to one host at once, >= 1 */
	struct account	*accounts;
	size_t		 naccounts;
};

/*
 * Reads and validates the configuration file at path. On success returns
 * 0 and stores a new struct config (free with config_free) in *cfgp. On
 * failure returns -1, leaves *cfgp untouched, and fills e with code
 * EX_CONFIG (EX_NOINPUT if the file cannot be opened, EX_USAGE if
 * state_dir is not absolute) and a message that starts "FILE:LINE: " when
 * a line is known. Every mistake is an error: unknown keys, wrong types,
 * missing required keys, duplicate names, tls = "none" without
 * allow_plaintext = true, verify_ca = false without a fingerprint, and a
 * file that holds a password or a private key (tls_key) while readable by
 * group or others.
 * The state directory is state_dir (--state-dir) if not NULL, else the
 * file's state_dir, else $STATE_DIRECTORY (systemd's StateDirectory=; the
 * first if it lists several, and it must be absolute), else
 * $XDG_STATE_HOME/popfetch, else ~/.local/state/popfetch.
 */
int	config_load(const char *path, const char *state_dir,
	    struct config **cfgp, struct err *e);

/* Frees a configuration; NULL is a no-op. */
void	config_free(struct config *);

/*
 * Returns the configuration file to use when -c is not given, newly
 * allocated: $XDG_CONFIG_HOME/popfetch/config (or ~/.config/popfetch/config)
 * if that file exists, else SYSCONFDIR/popfetch.conf if that one does.
 * With neither, returns NULL and fills e with EX_NOINPUT and a message
 * that names each path tried and what to do.
 */
char	*config_default_path(struct err *e);

/* Returns the account named name, or NULL. */
const struct account *config_find_account(const struct config *,
	    const char *name);

/*
 * Parses a size such as "50M", "512k", "1G" or "1048576" (binary units,
 * case-insensitive, optional trailing "B") into *bytes. Returns 0, or -1
 * on anything else, including overflow. Used inside config.c; exported
 * for test_config.
 */
int	config_parse_size(const char *, uint64_t *bytes);

#endif
