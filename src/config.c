/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif
#ifndef DOCDIR
#define DOCDIR		"/usr/share/doc/popfetch"
#endif
#define SYSTEM_CONFIG	SYSCONFDIR "/popfetch.conf"
#define EXAMPLE_CONFIG	DOCDIR "/popfetch.conf.example"

#define NAME_MAXLEN	64
#define HOST_MAXLEN	255
#define KEEP_DAYS_MAX	36500
#define DEF_TIMEOUT	60
#define DEF_INTERVAL	300
#define DEF_KEEPALIVE	60
#define DEF_MAX_PARALLEL	8
#define DEF_MAX_PER_HOST	4

/* Keys that stand only at the top level, each read on its own. */
static const char *const top_only[] = {
	"state_dir", "accounts", "max_parallel", "max_per_host"
};
#define ESC_MAX		128		/* bytes of a value echoed in errors */

enum key {
	K_NAME, K_HOST, K_PORT, K_TLS, K_ALLOW_PLAINTEXT, K_CA_FILE,
	K_FINGERPRINT, K_USER, K_PASSWORD, K_PASSWORD_FILE, K_PASSWORD_COMMAND,
	K_AUTH, K_MAILDIR, K_KEEP, K_KEEP_DAYS, K_MAX_SIZE, K_TIMEOUT,
	K_INTERVAL, K_OAUTH2_TOKEN_COMMAND, K_MAX_MESSAGES,
	K_ADD_RECEIVED_HEADER, K_PROXY, K_KEEPALIVE, K_MDA, K_LMTP, K_MBOX,
	K_RECIPIENT, K_ON_NEW_MAIL, K_ENABLED, K_VERIFY_CA, K_TLS_MIN_VERSION,
	K_TLS_CERT, K_TLS_KEY, K_COUNT
};
_Static_assert(K_COUNT <= 64, "a key set (struct acfg) holds a bit per key");

#define BIT(k)		((uint64_t)1 << (k))
#define PW_KEYS		(BIT(K_PASSWORD) | BIT(K_PASSWORD_FILE) | \
			    BIT(K_PASSWORD_COMMAND) | \
			    BIT(K_OAUTH2_TOKEN_COMMAND))
#define TARGET_KEYS	(BIT(K_MAILDIR) | BIT(K_MDA) | BIT(K_LMTP) | \
			    BIT(K_MBOX))
#define ARGV_MAX	256		/* arguments of a command */
#define PEM_MAX		(1024 * 1024)	/* bytes of a PEM file read */

/* What one config_load needs to know while it walks the file. */
struct ctx {
	const char	*path;		/* as given to config_load */
	const char	*state_dir;	/* --state-dir, or NULL */
	char		*dir;		/* its directory, for @include */
	mode_t		 mode;		/* its permission bits */
	struct err	*e;		/* receives the first error */
	int		 nerr;
};

/* An account being assembled, with where each key came from. */
struct acfg {
	struct account		 a;
	uint64_t		 own;	/* keys set in the account's group */
	uint64_t		 inh;	/* keys inherited from the top level */
	const config_setting_t	*src[K_COUNT];
};

typedef int (*key_fn)(struct ctx *, const config_setting_t *,
    struct account *);

/* How a key's value is read and where it is stored (struct keydef). */
enum kind {
	KIND_UINT,	/* an integer in [min, max], into an unsigned */
	KIND_BOOL,	/* a boolean, into a bool */
	KIND_NOT,	/* a boolean kept negated: enabled = false sets
			   disabled */
	KIND_STR,	/* a non-empty string, into a char * */
	KIND_PATH,	/* a path (config_get_path), into a char * */
	KIND_ARGV,	/* a command (config_get_argv), into a char ** */
	KIND_ENUM,	/* one of names, into an enum */
	KIND_FN		/* a key with rules of its own: fn */
};

/* A key of an account (or of the top level, as its default). */
struct keydef {
	const char		*name;
	enum kind		 kind;
	size_t			 off;	/* its member of struct account */
	long long		 min, max;	/* KIND_UINT */
	const char *const	*names;		/* KIND_ENUM */
	size_t			 nnames;
	key_fn			 fn;		/* KIND_FN */
};

static const char *const tls_names[] = { "implicit", "starttls", "none" };
static const char *const tls_min_names[] = { "1.2", "1.3" };
static const char *const auth_names[] = {
	"auto", "user", "apop", "plain", "login", "cram-md5", "xoauth2",
	"oauthbearer"
};

/*
 * Copies a printable rendering of untrusted text s into dst, for error
 * messages, and returns dst.
 */
static const char *
config_esc(char *dst, size_t size, const char *s)
{
	char *q;

	q = buf_escape(s, strlen(s), ESC_MAX);
	snprintf(dst, size, "%s", q);
	free(q);
	return dst;
}

/* Returns the path of the file a setting came from, newly allocated. */
static char *
config_src_path(const struct ctx *c, const char *file)
{
	/* libconfig gives include files as written, relative to dir. */
	if (file == NULL)
		return xstrdup(c->path);
	return xasprintf("%s/%s", c->dir, file);
}

static void
config_error_at(struct ctx *c, const char *file, unsigned line,
    const char *msg)
{
	char *path, *p;

	if (c->nerr++ > 0)
		return;
	path = config_src_path(c, file);
	p = buf_escape(path, strlen(path), 256);
	if (line > 0)
		err_set(c->e, EX_CONFIG, "%s:%u: %s", p, line, msg);
	else
		err_set(c->e, EX_CONFIG, "%s: %s", p, msg);
	free(p);
	free(path);
}

/* Records an error about setting s (NULL: the file as a whole). */
static void __attribute__((format(printf, 3, 4)))
config_error(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s == NULL)
		config_error_at(c, NULL, 0, msg);
	else
		config_error_at(c, config_setting_source_file(s),
		    config_setting_source_line(s), msg);
}

static const char *
config_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/* Checks that s has the wanted type (INT accepts INT64 too). */
static int
config_want_type(struct ctx *c, const config_setting_t *s, int want)
{
	int type = config_setting_type(s);

	if (type == want ||
	    (want == CONFIG_TYPE_INT && type == CONFIG_TYPE_INT64))
		return 0;
	config_error(c, s, "%s: expected %s, got %s", config_setting_name(s),
	    config_type_name(want), config_type_name(type));
	return -1;
}

static int
config_get_string(struct ctx *c, const config_setting_t *s, const char **vp)
{
	if (config_want_type(c, s, CONFIG_TYPE_STRING) == -1)
		return -1;
	*vp = config_setting_get_string(s);
	if (*vp == NULL || **vp == '\0') {
		config_error(c, s, "%s: must not be empty",
		    config_setting_name(s));
		return -1;
	}
	return 0;
}

/* An integer in [min, max]. libconfig 1.5 itself wraps values >= 2^31. */
static int
config_get_int(struct ctx *c, const config_setting_t *s, long long min,
    long long max, long long *vp)
{
	long long v;

	if (config_want_type(c, s, CONFIG_TYPE_INT) == -1)
		return -1;
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		config_error(c, s, "%s: %lld is out of range (%lld to %lld)",
		    config_setting_name(s), v, min, max);
		return -1;
	}
	*vp = v;
	return 0;
}

static int
config_get_bool(struct ctx *c, const config_setting_t *s, bool *vp)
{
	if (config_want_type(c, s, CONFIG_TYPE_BOOL) == -1)
		return -1;
	*vp = config_setting_get_bool(s) != 0;
	return 0;
}

/* Returns the index of string s in names, or -1 after an error. */
static int
config_get_enum(struct ctx *c, const config_setting_t *s,
    const char *const *names, size_t n)
{
	char e1[512], list[128];
	const char *v;
	size_t i;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0)
			return (int)i;
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%s\"%s\"", i == 0 ? "" : ", ", names[i]);
	}
	config_error(c, s, "%s: unknown value \"%s\" (expected one of %s)",
	    config_setting_name(s), config_esc(e1, sizeof(e1), v), list);
	return -1;
}

/*
 * Expands a leading "~" or "~/" from $HOME into *out (newly allocated).
 * The result must be absolute: a daemon's working directory is "/".
 */
static int
config_get_path(struct ctx *c, const config_setting_t *s, char **out)
{
	const char *v, *home, *name = config_setting_name(s);
	char e1[512];

	if (config_get_string(c, s, &v) == -1)
		return -1;
	if (v[0] == '~' && v[1] != '\0' && v[1] != '/') {
		config_error(c, s, "%s: \"%s\": only ~ and ~/ are expanded, "
		    "not ~user", name, config_esc(e1, sizeof(e1), v));
		return -1;
	}
	if (v[0] == '~') {
		home = getenv("HOME");
		if (home == NULL || home[0] != '/') {
			config_error(c, s, "%s: cannot expand ~: HOME is not "
			    "set to an absolute path", name);
			return -1;
		}
		*out = xasprintf("%s%s", home, v + 1);
		return 0;
	}
	if (v[0] != '/') {
		config_error(c, s, "%s: \"%s\" must be an absolute path or "
		    "start with ~/", name, config_esc(e1, sizeof(e1), v));
		return -1;
	}
	*out = xstrdup(v);
	return 0;
}

static void
config_set_str(char **dst, char *v)
{
	free(*dst);
	*dst = v;
}

static int
config_name_char(char ch, int first)
{
	if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9'))
		return 1;
	return !first && (ch == '.' || ch == '_' || ch == '-');
}

/* Names become file names: no "/", and neither "." nor "..". */
static int
config_valid_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > NAME_MAXLEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!config_name_char(s[i], i == 0))
			return 0;
	return 1;
}

static int
config_key_name(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const char *v = "";
	char e1[512];

	if (config_want_type(c, s, CONFIG_TYPE_STRING) == -1)
		return -1;
	if (config_setting_get_string(s) != NULL)
		v = config_setting_get_string(s);
	if (!config_valid_name(v)) {
		config_error(c, s, "name: \"%s\" is not a valid account name "
		    "(1 to %d of A-Z a-z 0-9 . _ -, starting with a letter or "
		    "digit)", config_esc(e1, sizeof(e1), v), NAME_MAXLEN);
		return -1;
	}
	config_set_str(&a->name, xstrdup(v));
	return 0;
}

static int
config_key_host(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const unsigned char *p;
	const char *v;
	char e1[512];

	if (config_get_string(c, s, &v) == -1)
		return -1;
	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || strchr("/@?#\\", *p) != NULL)
			break;
	if (*p != '\0' || strlen(v) > HOST_MAXLEN) {
		config_error(c, s, "host: \"%s\" is not a host name or address",
		    config_esc(e1, sizeof(e1), v));
		return -1;
	}
	config_set_str(&a->host, xstrdup(v));
	return 0;
}

/* One pin: "sha256//" and the base64 of 32 bytes (43 digits and "="). */
static int
config_valid_pin(const char *p, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	if (n != 8 + 44 || strncmp(p, "sha256//", 8) != 0 || p[n - 1] != '=')
		return 0;
	for (i = 8; i < n - 1; i++)
		if (p[i] == '\0' || strchr(b64, p[i]) == NULL)
			return 0;
	/* The last digit holds 4 bits of the digest; its low 2 are 0. */
	return strchr("AEIMQUYcgkosw048", p[n - 2]) != NULL;
}

/*
 * How many bytes of hex, in pairs separated by ":", p holds in its n
 * characters (as "AB:CD:..."), or 0 when it is not of that form.
 */
static size_t
config_hex_colon_bytes(const char *p, size_t n)
{
	size_t i;

	if (n < 2 || (n + 1) % 3 != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (i % 3 == 2 ? p[i] != ':' : !isxdigit((unsigned char)p[i]))
			return 0;
	return (n + 1) / 3;
}

/*
 * A certificate fingerprint as mpop's tls_fingerprint and "openssl x509
 * -fingerprint -sha256" give it: 32 bytes. Shorter ones are SHA-1 or MD5.
 * p and n: the one to check; v: the whole value, for the error.
 */
static int
config_check_cert_fp(struct ctx *c, const config_setting_t *s, const char *v,
    const char *p, size_t n)
{
	char e1[512], *one;
	size_t bytes = config_hex_colon_bytes(p, n);

	if (bytes == 32)
		return 0;
	one = xstrndup(p, n);
	if (bytes == 20 || bytes == 16)
		config_error(c, s, "fingerprint: \"%s\" is %s fingerprint, "
		    "too weak to trust a server by; give its SHA-256 one "
		    "(openssl x509 -noout -fingerprint -sha256)",
		    config_esc(e1, sizeof(e1), one), bytes == 20 ? "a SHA-1" :
		    "an MD5");
	else
		config_error(c, s, "fingerprint: \"%s\" is neither a "
		    "public-key pin sha256//BASE64 (44 characters of base64 "
		    "of a SHA-256 digest) nor a certificate's SHA-256 "
		    "fingerprint AB:CD:... (32 bytes in hex, separated by "
		    "\":\"); several of one kind are separated by \";\"",
		    config_esc(e1, sizeof(e1), v));
	free(one);
	return -1;
}

/*
 * Public-key pins go to libcurl as they are; certificate fingerprints
 * are ours to check (upper case, compared as text). The two kinds would
 * be checked one after the other, so a list holds one kind only.
 */
static int
config_key_fingerprint(struct ctx *c, const config_setting_t *s,
    struct account *a)
{
	const char *v, *p;
	size_t n, i, pins = 0, fps = 0;
	char *up;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	for (p = v;; p += n + 1) {
		n = strcspn(p, ";");
		if (config_valid_pin(p, n))
			pins++;
		else if (config_check_cert_fp(c, s, v, p, n) == 0)
			fps++;
		else
			return -1;
		if (p[n] == '\0')
			break;
	}
	if (pins > 0 && fps > 0) {
		config_error(c, s, "fingerprint: give public-key pins "
		    "(sha256//...) or certificate fingerprints (AB:CD:...), "
		    "not both");
		return -1;
	}
	up = xstrdup(v);
	for (i = 0; fps > 0 && up[i] != '\0'; i++)
		up[i] = (char)toupper((unsigned char)up[i]);
	config_set_str(&a->fingerprint, pins > 0 ? up : NULL);
	config_set_str(&a->cert_fingerprint, fps > 0 ? up : NULL);
	return 0;
}

static int
config_key_tls_min_version(struct ctx *c, const config_setting_t *s,
    struct account *a)
{
	const char *v;
	int i;

	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    (v = config_setting_get_string(s)) != NULL &&
	    (strcmp(v, "1.0") == 0 || strcmp(v, "1.1") == 0)) {
		config_error(c, s, "tls_min_version: TLS %s is not offered: "
		    "TLS 1.0 and 1.1 are broken and deprecated (RFC 8996); "
		    "expected \"1.2\" or \"1.3\"", v);
		return -1;
	}
	if ((i = config_get_enum(c, s, tls_min_names, 2)) == -1)
		return -1;
	a->tls_min = (enum tls_min)i;
	return 0;
}

static int
config_key_user(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const char *v;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	if (strpbrk(v, "\r\n") != NULL) {
		config_error(c, s, "user: must not contain a line break");
		return -1;
	}
	config_set_str(&a->user, xstrdup(v));
	return 0;
}

/* Refuses a password kept in a file that others may read. */
static int
config_check_secret_mode(struct ctx *c, const config_setting_t *s)
{
	const char *key = config_setting_name(s);
	const char *file = config_setting_source_file(s);
	struct stat st;
	char *path, *p, *what;
	struct err e;
	int rv = -1;

	path = config_src_path(c, file);
	p = buf_escape(path, strlen(path), 256);
	what = xasprintf("%s holds a password but", p);
	st.st_mode = c->mode;
	if (file != NULL && stat(path, &st) == -1)
		config_error(c, s, "%s: cannot check the permissions of "
		    "%s: %s", key, p, strerror(errno));
	else if (fs_check_private(st.st_mode, what, p, &e) == -1)
		config_error(c, s, "%s: %s", key, e.msg);
	else
		rv = 0;
	free(what);
	free(p);
	free(path);
	return rv;
}

static int
config_key_password(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const char *v;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	if (strpbrk(v, "\r\n") != NULL) {
		config_error(c, s, "password: must not contain a line break");
		return -1;
	}
	if (config_check_secret_mode(c, s) == -1)
		return -1;
	xfree_secret(a->password);
	a->password = xstrdup(v);
	return 0;
}

static int
config_key_max_size(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const char *v;
	char e1[512];
	long long n;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		if (v != NULL && config_parse_size(v, &a->max_size) == 0)
			return 0;
		config_error(c, s, "max_size: \"%s\" is not a size such as "
		    "\"50M\", \"512k\", \"1G\" or \"1048576\"",
		    config_esc(e1, sizeof(e1), v == NULL ? "" : v));
		return -1;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		config_error(c, s, "max_size: expected a string or an integer, "
		    "got %s", config_type_name(config_setting_type(s)));
		return -1;
	}
	if (config_get_int(c, s, 0, INT64_MAX, &n) == -1)
		return -1;
	a->max_size = (uint64_t)n;
	return 0;
}

/* The proxy URL for an error message: a password in it is masked. */
static char *
config_proxy_shown(const char *v)
{
	const char *start = strstr(v, "://"), *at;

	start = start != NULL ? start + 3 : v;
	if ((at = strrchr(start, '@')) == NULL)
		return xstrdup(v);
	return xasprintf("%.*s***%s", (int)(start - v), v, at);
}

/*
 * A proxy URL libcurl understands, of a scheme that can carry a POP3
 * connection: SOCKS, or an HTTP(S) proxy that tunnels with CONNECT.
 */
static int
config_key_proxy(struct ctx *c, const config_setting_t *s, struct account *a)
{
	static const char *const schemes[] = {
		"socks5h://", "socks5://", "socks4a://", "socks4://",
		"http://", "https://"
	};
	const char *v, *host;
	char e1[512], *shown;
	size_t i, n;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	shown = config_proxy_shown(v);
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
			break;
	if (i == sizeof(schemes) / sizeof(schemes[0])) {
		config_error(c, s, "proxy: \"%s\" is not a proxy URL of the "
		    "form socks5h://, socks5://, socks4a://, socks4://, "
		    "http:// or https://HOST:PORT", config_esc(e1, sizeof(e1),
		    shown));
		free(shown);
		return -1;
	}
	host = v + strlen(schemes[i]);
	n = strcspn(host, "/?#");
	if (n == 0 || (host[n] != '\0' && strcmp(host + n, "/") != 0) ||
	    strpbrk(v, " \t\r\n") != NULL) {
		config_error(c, s, "proxy: \"%s\" must be "
		    "SCHEME://[USER:PASS@]HOST[:PORT] with nothing after it",
		    config_esc(e1, sizeof(e1), shown));
		free(shown);
		return -1;
	}
	free(shown);
	/* user:password@ in it is a secret, like password itself. */
	if (memchr(host, '@', n) != NULL &&
	    config_check_secret_mode(c, s) == -1)
		return -1;
	xfree_secret(a->proxy);
	a->proxy = xstrdup(v);
	return 0;
}

/* Frees a NULL-terminated argument vector; NULL is a no-op. */
static void
config_argv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char **
config_argv_dup(char *const *v)
{
	char **d;
	size_t i, n;

	if (v == NULL)
		return NULL;
	for (n = 0; v[n] != NULL; n++)
		;
	d = xcalloc(n + 1, sizeof(*d));
	for (i = 0; i < n; i++)
		d[i] = xstrdup(v[i]);
	return d;
}

/*
 * A command as an argument list of non-empty strings, ["COMMAND", "ARG",
 * ...] or ("COMMAND", ...): it is run without a shell.
 */
static int
config_get_argv(struct ctx *c, const config_setting_t *s, char ***out)
{
	const char *name = config_setting_name(s), *v;
	int type = config_setting_type(s), i, n;
	char **argv;

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
		config_error(c, s, "%s: expected a list of strings such as "
		    "[\"/usr/bin/procmail\", \"-d\", \"%%T\"], got %s (the "
		    "command is run without a shell)", name,
		    config_type_name(type));
		return -1;
	}
	if ((n = config_setting_length(s)) == 0 || n > ARGV_MAX) {
		config_error(c, s, "%s: needs 1 to %d strings: the command and "
		    "its arguments", name, ARGV_MAX);
		return -1;
	}
	argv = xcalloc((size_t)n + 1, sizeof(*argv));
	for (i = 0; i < n; i++) {
		const config_setting_t *el = config_setting_get_elem(s,
		    (unsigned)i);

		if (config_setting_type(el) != CONFIG_TYPE_STRING ||
		    (v = config_setting_get_string(el)) == NULL ||
		    (*v == '\0' && i == 0)) {
			config_error(c, s, "%s: element %d must be a%s string",
			    name, i + 1, i == 0 ? " non-empty" : "");
			config_argv_free(argv);
			return -1;
		}
		argv[i] = xstrdup(v);
	}
	config_argv_free(*out);
	*out = argv;
	return 0;
}

/* "unix:/PATH", or "HOST:PORT" (an IPv6 address as "[ADDR]:PORT"). */
static int
config_key_lmtp(struct ctx *c, const config_setting_t *s, struct account *a)
{
	const char *v, *colon;
	char e1[512], *end;
	unsigned long port;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] != '/' || strlen(v + 5) >= 108) {
			config_error(c, s, "lmtp: \"%s\": a socket must be "
			    "unix:/ABSOLUTE/PATH (under 108 bytes)",
			    config_esc(e1, sizeof(e1), v));
			return -1;
		}
	} else {
		colon = strrchr(v, ':');
		port = colon == NULL ? 0 : strtoul(colon + 1, &end, 10);
		if (colon == NULL || colon == v || colon[1] == '\0' ||
		    *end != '\0' || port == 0 || port > 65535 ||
		    strpbrk(v, " \t\r\n/") != NULL) {
			config_error(c, s, "lmtp: \"%s\" is neither "
			    "unix:/PATH nor HOST:PORT", config_esc(e1,
			    sizeof(e1), v));
			return -1;
		}
	}
	config_set_str(&a->lmtp, xstrdup(v));
	return 0;
}

/* Printable ASCII, no space, no angle bracket: an address for RCPT TO. */
static bool
config_rcpt_ok(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if (*v <= 0x20 || *v >= 0x7f || *v == '<' || *v == '>')
			return false;
	return true;
}

static int
config_key_recipient(struct ctx *c, const config_setting_t *s,
    struct account *a)
{
	const char *v;

	if (config_get_string(c, s, &v) == -1)
		return -1;
	if (strpbrk(v, "\r\n<> \t") != NULL) {
		config_error(c, s, "recipient: must be an address, without "
		    "spaces, line breaks or angle brackets");
		return -1;
	}
	config_set_str(&a->recipient, xstrdup(v));
	return 0;
}

#define M(member)	offsetof(struct account, member)
#define NELEM(v)	(sizeof(v) / sizeof((v)[0]))

/* The keys, indexed by enum key. */
static const struct keydef keydefs[K_COUNT] = {
	[K_NAME] =	{ "name", KIND_FN, M(name), .fn = config_key_name },
	[K_HOST] =	{ "host", KIND_FN, M(host), .fn = config_key_host },
	[K_PORT] =	{ "port", KIND_UINT, M(port), 1, 65535 },
	[K_TLS] =	{ "tls", KIND_ENUM, M(tls), .names = tls_names,
			    .nnames = NELEM(tls_names) },
	[K_ALLOW_PLAINTEXT] = { "allow_plaintext", KIND_BOOL,
			    M(allow_plaintext) },
	[K_CA_FILE] =	{ "ca_file", KIND_PATH, M(ca_file) },
	[K_FINGERPRINT] = { "fingerprint", KIND_FN, M(fingerprint),
			    .fn = config_key_fingerprint },
	[K_USER] =	{ "user", KIND_FN, M(user), .fn = config_key_user },
	[K_PASSWORD] =	{ "password", KIND_FN, M(password),
			    .fn = config_key_password },
	[K_PASSWORD_FILE] = { "password_file", KIND_PATH, M(password_file) },
	[K_PASSWORD_COMMAND] = { "password_command", KIND_STR,
			    M(password_command) },
	[K_AUTH] =	{ "auth", KIND_ENUM, M(auth), .names = auth_names,
			    .nnames = NELEM(auth_names) },
	[K_MAILDIR] =	{ "maildir", KIND_PATH, M(maildir) },
	[K_KEEP] =	{ "keep", KIND_BOOL, M(keep) },
	[K_KEEP_DAYS] =	{ "keep_days", KIND_UINT, M(keep_days), 0,
			    KEEP_DAYS_MAX },
	[K_MAX_SIZE] =	{ "max_size", KIND_FN, M(max_size),
			    .fn = config_key_max_size },
	[K_TIMEOUT] =	{ "timeout", KIND_UINT, M(timeout), 1, 86400 },
	[K_INTERVAL] =	{ "interval", KIND_UINT, M(interval), 10, 604800 },
	[K_OAUTH2_TOKEN_COMMAND] = { "oauth2_token_command", KIND_STR,
			    M(oauth2_token_command) },
	[K_MAX_MESSAGES] = { "max_messages", KIND_UINT, M(max_messages), 0,
			    1000000000 },
	[K_ADD_RECEIVED_HEADER] = { "add_received_header", KIND_BOOL,
			    M(add_received_header) },
	[K_PROXY] =	{ "proxy", KIND_FN, M(proxy), .fn = config_key_proxy },
	[K_KEEPALIVE] =	{ "keepalive", KIND_UINT, M(keepalive), 0, 3600 },
	[K_MDA] =	{ "mda", KIND_ARGV, M(mda) },
	[K_LMTP] =	{ "lmtp", KIND_FN, M(lmtp), .fn = config_key_lmtp },
	[K_MBOX] =	{ "mbox", KIND_PATH, M(mbox) },
	[K_RECIPIENT] =	{ "recipient", KIND_FN, M(recipient),
			    .fn = config_key_recipient },
	[K_ON_NEW_MAIL] = { "on_new_mail", KIND_ARGV, M(on_new_mail) },
	[K_ENABLED] =	{ "enabled", KIND_NOT, M(disabled) },
	[K_VERIFY_CA] =	{ "verify_ca", KIND_NOT, M(pin_only) },
	[K_TLS_MIN_VERSION] = { "tls_min_version", KIND_FN, M(tls_min),
			    .fn = config_key_tls_min_version },
	[K_TLS_CERT] =	{ "tls_cert", KIND_PATH, M(tls_cert) },
	[K_TLS_KEY] =	{ "tls_key", KIND_PATH, M(tls_key) },
};

/* An enum member is stored as the int config_get_enum returns. */
_Static_assert(sizeof(enum tls_mode) == sizeof(int) &&
    sizeof(enum auth_mech) == sizeof(int), "an enum key is an int");

/* Reads setting s as kd says and stores its value in a. */
static int
config_set_key(struct ctx *c, const config_setting_t *s,
    const struct keydef *kd, struct account *a)
{
	void *m = (char *)a + kd->off;
	const char *str;
	long long v;
	char *path;
	bool on;
	int i;

	switch (kd->kind) {
	case KIND_UINT:
		if (config_get_int(c, s, kd->min, kd->max, &v) == -1)
			return -1;
		*(unsigned *)m = (unsigned)v;
		return 0;
	case KIND_BOOL:
		return config_get_bool(c, s, m);
	case KIND_NOT:
		if (config_get_bool(c, s, &on) == -1)
			return -1;
		*(bool *)m = !on;
		return 0;
	case KIND_STR:
		if (config_get_string(c, s, &str) == -1)
			return -1;
		config_set_str(m, xstrdup(str));
		return 0;
	case KIND_PATH:
		if (config_get_path(c, s, &path) == -1)
			return -1;
		config_set_str(m, path);
		return 0;
	case KIND_ARGV:
		return config_get_argv(c, s, m);
	case KIND_ENUM:
		if ((i = config_get_enum(c, s, kd->names, kd->nnames)) == -1)
			return -1;
		memcpy(m, &i, sizeof(i));
		return 0;
	case KIND_FN:
		break;
	}
	return kd->fn(c, s, a);
}

static const struct keydef *
config_find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keydefs) / sizeof(keydefs[0]); i++)
		if (strcmp(keydefs[i].name, name) == 0)
			return &keydefs[i];
	return NULL;
}

static bool
config_is_top_only(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(top_only) / sizeof(top_only[0]); i++)
		if (strcmp(name, top_only[i]) == 0)
			return true;
	return false;
}

/*
 * Edit distance of a and b, a swap of two neighbours counting as one
 * edit ("hots", "host"); 99 for names of 32 characters or more.
 */
static unsigned
config_distance(const char *a, const char *b)
{
	unsigned d[33][33], i, j, v, la = (unsigned)strlen(a),
	    lb = (unsigned)strlen(b);

	if (la > 32 || lb > 32)
		return 99;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++)
		for (j = 1; j <= lb; j++) {
			v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

/* A known key close to an unknown name, as "; did you mean X?", or "". */
static void
config_suggest(const char *name, bool top, char *out, size_t size)
{
	const char *best = NULL;
	unsigned d, bestd = 3;
	size_t i;

	for (i = 0; i < sizeof(keydefs) / sizeof(keydefs[0]); i++)
		if ((d = config_distance(name, keydefs[i].name)) < bestd) {
			bestd = d;
			best = keydefs[i].name;
		}
	for (i = 0; top && i < sizeof(top_only) / sizeof(top_only[0]); i++)
		if ((d = config_distance(name, top_only[i])) < bestd) {
			bestd = d;
			best = top_only[i];
		}
	/* Two edits in a short name is another word. */
	if (best != NULL && bestd * 3 > strlen(name))
		best = NULL;
	if (best != NULL)
		snprintf(out, size, "; did you mean \"%s\"?", best);
	else
		out[0] = '\0';
}

/* An optional top-level integer key in [min, max], else dflt. */
static unsigned
config_top_int(struct ctx *c, const config_setting_t *root, const char *name,
    long long min, long long max, unsigned dflt)
{
	const config_setting_t *s = config_setting_get_member(root, name);
	long long v;

	if (s == NULL || config_get_int(c, s, min, max, &v) == -1)
		return dflt;
	return (unsigned)v;
}

/* Applies the settings of group g (the top level when top) to ac. */
static void
config_parse_group(struct ctx *c, const config_setting_t *g, struct acfg *ac,
    int top)
{
	const struct keydef *kd;
	const config_setting_t *s;
	const char *name;
	char e1[512], hint[96];
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(g, i);
		name = config_setting_name(s);
		if (top && config_is_top_only(name))
			continue;
		kd = config_find_key(name);
		if (kd == NULL || (top && kd == &keydefs[K_NAME])) {
			config_suggest(name, top, hint, sizeof(hint));
			config_error(c, s, "unknown key \"%s\"%s%s",
			    config_esc(e1, sizeof(e1), name), top ?
			    (kd == NULL ? "" : " at top level (only valid in "
			    "an account)") : " in account", kd == NULL ? hint :
			    "");
			continue;
		}
		if (config_set_key(c, s, kd, &ac->a) == 0) {
			ac->own |= BIT(kd - keydefs);
			ac->src[kd - keydefs] = s;
		}
	}
}

/* How struct account holds one of its strings. */
enum strtype {
	STR_PLAIN,
	STR_SECRET,	/* wiped before it is freed */
	STR_ARGV	/* a NULL-terminated char **, each string its own */
};

/*
 * Every string member of struct account, all owned by it: what
 * config_account_clear frees, config_inherit copies from the top level, and
 * config_override drops.
 */
static const struct strmember {
	size_t		off;
	enum strtype	type;
} account_strings[] = {
	{ M(name), STR_PLAIN },			{ M(host), STR_PLAIN },
	{ M(ca_file), STR_PLAIN },		{ M(fingerprint), STR_PLAIN },
	{ M(cert_fingerprint), STR_PLAIN },	{ M(tls_cert), STR_PLAIN },
	{ M(tls_key), STR_PLAIN },		{ M(user), STR_PLAIN },
	{ M(password), STR_SECRET },		{ M(password_file), STR_PLAIN },
	{ M(password_command), STR_PLAIN },
	{ M(oauth2_token_command), STR_PLAIN },	{ M(proxy), STR_SECRET },
	{ M(maildir), STR_PLAIN },		{ M(mda), STR_ARGV },
	{ M(lmtp), STR_PLAIN },			{ M(mbox), STR_PLAIN },
	{ M(recipient), STR_PLAIN },		{ M(on_new_mail), STR_ARGV },
};

/* The string member at offset off (a key's: keydefs[k].off), or NULL. */
static const struct strmember *
config_find_string(size_t off)
{
	size_t i;

	for (i = 0; i < NELEM(account_strings); i++)
		if (account_strings[i].off == off)
			return &account_strings[i];
	return NULL;
}

/* Frees the string member m of a and sets it to NULL. */
static void
config_string_free(struct account *a, const struct strmember *m)
{
	void *p = (char *)a + m->off;

	if (m->type == STR_ARGV) {
		config_argv_free(*(char ***)p);
		*(char ***)p = NULL;
		return;
	}
	if (m->type == STR_SECRET)
		xfree_secret(*(char **)p);
	else
		free(*(char **)p);
	*(char **)p = NULL;
}

static void
config_account_clear(struct account *a)
{
	size_t i;

	for (i = 0; i < NELEM(account_strings); i++)
		config_string_free(a, &account_strings[i]);
	memset(a, 0, sizeof(*a));
}

/* Starts an account from the top-level defaults. */
static void
config_inherit(struct acfg *ac, const struct acfg *def)
{
	const struct strmember *m;
	size_t i;
	void *p;

	*ac = *def;
	ac->inh = def->own;
	ac->own = 0;
	/* The top level sets no name: its copy stays NULL. */
	for (i = 0; i < NELEM(account_strings); i++) {
		m = &account_strings[i];
		p = (char *)&ac->a + m->off;
		if (m->type == STR_ARGV)
			*(char ***)p = config_argv_dup(*(char ***)p);
		else if (*(char **)p != NULL)
			*(char **)p = xstrdup(*(char **)p);
	}
}

/*
 * Keys of mask (the password sources, the delivery targets: string
 * members each) set in the account replace every inherited one.
 */
static void
config_override(struct acfg *ac, uint64_t mask)
{
	int k;

	if ((ac->own & mask) == 0)
		return;
	for (k = 0; k < K_COUNT; k++)
		if ((mask & ~ac->own & BIT(k)) != 0)
			config_string_free(&ac->a,
			    config_find_string(keydefs[k].off));
	ac->inh &= ~mask;
}

static int
config_count_bits(uint64_t v)
{
	int n;

	for (n = 0; v != 0; v &= v - 1)
		n++;
	return n;
}

/* Exactly one delivery target; sets a->deliver. */
static void
config_check_target(struct ctx *c, const config_setting_t *g, struct acfg *ac,
    const char *label)
{
	uint64_t set = (ac->own | ac->inh) & TARGET_KEYS;
	const config_setting_t *at = g;
	int k;

	if (set == 0) {
		config_error(c, g, "%s: missing required key \"maildir\" (or "
		    "\"mda\", \"lmtp\" or \"mbox\": one delivery target)",
		    label);
		return;
	}
	if (config_count_bits(set) > 1) {
		for (k = 0; k < K_COUNT; k++)
			if ((set & BIT(k)) && ac->src[k] != NULL)
				at = ac->src[k];
		config_error(c, at, "%s: name one delivery target only, one of "
		    "maildir, mda, lmtp and mbox", label);
		return;
	}
	ac->a.deliver = set == BIT(K_MDA) ? DELIVER_MDA : set == BIT(K_LMTP) ?
	    DELIVER_LMTP : set == BIT(K_MBOX) ? DELIVER_MBOX : DELIVER_MAILDIR;
	/* RCPT TO:<...> takes one printable word. */
	if (ac->a.deliver != DELIVER_LMTP)
		return;
	if (ac->a.recipient != NULL && !config_rcpt_ok(ac->a.recipient))
		config_error(c, ac->src[K_RECIPIENT] != NULL ?
		    ac->src[K_RECIPIENT] : g, "%s: lmtp: recipient must be "
		    "printable ASCII (RCPT TO)", label);
	else if (ac->a.recipient == NULL && ac->a.user != NULL &&
	    !config_rcpt_ok(ac->a.user))
		config_error(c, ac->src[K_USER] != NULL ? ac->src[K_USER] : g,
		    "%s: lmtp: the user name cannot be the recipient (RCPT "
		    "TO); set recipient", label);
}

/*
 * Reads the PEM file path, named by setting s, into *text (NUL-terminated,
 * at most PEM_MAX bytes; free with xfree_secret) and its mode into *mode.
 * Returns 0, or -1 after an error.
 */
static int
config_read_pem(struct ctx *c, const config_setting_t *s, const char *label,
    const char *path, mode_t *mode, char **text)
{
	const char *why = NULL;
	char *ep, *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n = 0;
	int fd;

	/* O_NONBLOCK: a FIFO must not hang the open; fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1 || fstat(fd, &st) == -1)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else {
		buf = xmalloc(PEM_MAX + 1);
		while (len < PEM_MAX && ((n = read(fd, buf + len,
		    PEM_MAX - len)) > 0 || (n == -1 && errno == EINTR)))
			len += n > 0 ? (size_t)n : 0;
		if (n == -1)
			why = strerror(errno);
		buf[len] = '\0';
	}
	if (fd != -1)
		close(fd);
	if (why != NULL) {
		ep = buf_escape(path, strlen(path), 256);
		config_error(c, s, "%s: %s: %s: %s", label,
		    config_setting_name(s), ep, why);
		free(ep);
		xfree_secret(buf);
		return -1;
	}
	*mode = st.st_mode;
	*text = buf;
	return 0;
}

/* Whether PEM text holds a private key ("-----BEGIN ...PRIVATE KEY"). */
static bool
config_pem_has_key(const char *text)
{
	const char *p, *end;
	size_t n;

	for (p = text; (p = strstr(p, "-----BEGIN ")) != NULL; p = end + 5) {
		p += 11;
		if ((end = strstr(p, "-----")) == NULL)
			return false;
		n = (size_t)(end - p);
		if (n >= 11 && memcmp(end - 11, "PRIVATE KEY", 11) == 0 &&
		    memchr(p, '\n', n) == NULL)
			return true;
	}
	return false;
}

/*
 * The client certificate's key (in tls_key, else in tls_cert): there, in
 * PEM, unencrypted, and only its owner may read it.
 */
static void
config_check_client_cert(struct ctx *c, struct acfg *ac, const char *label)
{
	const struct account *a = &ac->a;
	const char *kf = a->tls_key != NULL ? a->tls_key : a->tls_cert;
	const config_setting_t *ks = ac->src[a->tls_key != NULL ? K_TLS_KEY :
	    K_TLS_CERT];
	char *text, *ep, *what;
	struct err e;
	mode_t mode;

	if (a->tls_cert == NULL) {
		if (a->tls_key != NULL)
			config_error(c, ks, "%s: tls_key without tls_cert",
			    label);
		return;
	}
	if (config_read_pem(c, ks, label, kf, &mode, &text) == -1)
		return;
	ep = buf_escape(kf, strlen(kf), 256);
	what = xasprintf("%s holds a private key but", ep);
	if (!config_pem_has_key(text))
		config_error(c, ks, "%s: %s: %s holds no PEM private key%s",
		    label, config_setting_name(ks), ep, a->tls_key == NULL ?
		    "; set tls_key to the file that does" : "");
	else if (fs_check_private(mode, what, ep, &e) == -1)
		config_error(c, ks, "%s: %s: %s", label,
		    config_setting_name(ks), e.msg);
	else if (strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") !=
	    NULL || strstr(text, "Proc-Type: 4,ENCRYPTED") != NULL)
		config_error(c, ks, "%s: %s: %s is encrypted, and popfetch "
		    "takes no passphrase: keep the key unencrypted, readable "
		    "by you alone: (umask 077; openssl pkey -in %s -out "
		    "NEWFILE)",
		    label, config_setting_name(ks), ep, ep);
	free(what);
	free(ep);
	xfree_secret(text);
}

/* What no single TLS key can check: verify_ca, fingerprints, proxies. */
static void
config_check_tls(struct ctx *c, struct acfg *ac, const char *label)
{
	const struct account *a = &ac->a;

	if (a->pin_only && a->fingerprint == NULL &&
	    a->cert_fingerprint == NULL)
		config_error(c, ac->src[K_VERIFY_CA], "%s: verify_ca = false "
		    "trusts the server by its fingerprint alone, and none is "
		    "set: set fingerprint (popfetch.conf(5) says how to get "
		    "it)", label);
	else if (a->pin_only && a->ca_file != NULL)
		config_error(c, ac->src[K_VERIFY_CA], "%s: verify_ca = false "
		    "and ca_file contradict each other: either the "
		    "certificate's authority is checked (against ca_file) or "
		    "it is not; remove one", label);
	if (a->cert_fingerprint != NULL && a->proxy != NULL &&
	    strncasecmp(a->proxy, "https://", 8) == 0)
		config_error(c, ac->src[K_FINGERPRINT], "%s: a certificate "
		    "fingerprint is not checked through an https:// proxy (the "
		    "proxy's certificate would be taken for the server's): pin "
		    "the server's public key instead (sha256//...)", label);
	config_check_client_cert(c, ac, label);
}

/* Checks what no single key can: required keys and combinations. */
static void
config_check_account(struct ctx *c, const config_setting_t *g, struct acfg *ac,
    const char *label)
{
	static const enum key req[] = { K_NAME, K_HOST, K_USER };
	uint64_t set = ac->own | ac->inh;
	size_t i;

	for (i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if ((set & BIT(req[i])) == 0)
			config_error(c, g, "%s: missing required key \"%s\"",
			    label, keydefs[req[i]].name);
	config_check_target(c, g, ac, label);
	/* None: ~/.netrc is asked at login. */
	if (config_count_bits(set & PW_KEYS) > 1)
		config_error(c, g, "%s: set at most one of password, "
		    "password_file, password_command and "
		    "oauth2_token_command", label);
	if (set & BIT(K_OAUTH2_TOKEN_COMMAND)) {
		if ((set & BIT(K_AUTH)) == 0)
			ac->a.auth = AUTH_XOAUTH2;
		else if (ac->a.auth != AUTH_XOAUTH2 &&
		    ac->a.auth != AUTH_OAUTHBEARER)
			config_error(c, ac->src[K_AUTH] != NULL ?
			    ac->src[K_AUTH] : g, "%s: oauth2_token_command "
			    "gives a bearer token, for auth = \"xoauth2\" or "
			    "\"oauthbearer\" only", label);
	}
	if (ac->a.tls == TLS_NONE && !ac->a.allow_plaintext)
		config_error(c, ac->src[K_TLS], "%s: tls = \"none\" would send "
		    "the password across the network in cleartext; if you "
		    "really want that, also set allow_plaintext = true", label);
	if (ac->a.keep_days > 0 && !ac->a.keep)
		config_error(c, ac->src[K_KEEP_DAYS], "%s: keep_days means "
		    "nothing without keep = true (without keep, messages are "
		    "deleted as soon as they are delivered)", label);
	if ((set & BIT(K_PORT)) == 0)
		ac->a.port = ac->a.tls == TLS_IMPLICIT ? 995 : 110;
	config_check_tls(c, ac, label);
}

static void
config_parse_account(struct ctx *c, const config_setting_t *g,
    const struct acfg *def, size_t idx, struct account *out)
{
	struct acfg ac;
	char label[600], e1[512];

	if (!config_setting_is_group(g)) {
		config_error(c, g, "accounts: entry %zu is %s, not a group "
		    "{ ... }", idx + 1,
		    config_type_name(config_setting_type(g)));
		return;
	}
	config_inherit(&ac, def);
	config_parse_group(c, g, &ac, 0);
	config_override(&ac, PW_KEYS);
	config_override(&ac, TARGET_KEYS);
	if (ac.a.name != NULL)
		snprintf(label, sizeof(label), "account \"%s\"",
		    config_esc(e1, sizeof(e1), ac.a.name));
	else
		snprintf(label, sizeof(label), "account %zu", idx + 1);
	config_check_account(c, g, &ac, label);
	ac.a.line = (int)config_setting_source_line(g);
	*out = ac.a;
}

/* Account names are compared without case: they name state files. */
static void
config_check_duplicates(struct ctx *c, const config_setting_t *list,
    const struct config *cfg)
{
	const struct account *a, *b;
	size_t i, j;
	char e1[512];

	for (i = 1; i < cfg->naccounts; i++) {
		if ((a = &cfg->accounts[i])->name == NULL)
			continue;
		for (j = 0; j < i; j++) {
			b = &cfg->accounts[j];
			if (b->name == NULL ||
			    strcasecmp(a->name, b->name) != 0)
				continue;
			config_error(c,
			    config_setting_get_elem(list, (unsigned)i),
			    "duplicate account name \"%s\" (first on line %d)",
			    config_esc(e1, sizeof(e1), a->name), b->line);
			break;
		}
	}
}

static void
config_parse_accounts(struct ctx *c, const config_setting_t *root,
    const struct acfg *def, struct config *cfg)
{
	const config_setting_t *list;
	size_t i, n;

	list = config_setting_get_member(root, "accounts");
	if (list == NULL) {
		config_error(c, NULL, "no accounts: the file needs "
		    "accounts = ( { name = ...; ... } );");
		return;
	}
	if (config_want_type(c, list, CONFIG_TYPE_LIST) == -1)
		return;
	if ((n = (size_t)config_setting_length(list)) == 0) {
		config_error(c, list, "accounts: the list is empty");
		return;
	}
	cfg->accounts = xcalloc(n, sizeof(*cfg->accounts));
	cfg->naccounts = n;
	for (i = 0; i < n; i++)
		config_parse_account(c,
		    config_setting_get_elem(list, (unsigned)i), def, i,
		    &cfg->accounts[i]);
	config_check_duplicates(c, list, cfg);
}

/*
 * The state directory when neither --state-dir nor the file names one:
 * what systemd made for the service (StateDirectory=, the first of its
 * directories), else the XDG one. Never guessed from the file's path.
 */
static char *
config_default_state_dir(struct ctx *c)
{
	const char *sd = getenv("STATE_DIRECTORY"), *xdg, *home;
	char e1[512];

	if (sd != NULL && sd[0] != '\0') {
		if (sd[0] != '/') {
			config_error(c, NULL, "STATE_DIRECTORY=\"%s\" is not "
			    "an absolute path", config_esc(e1, sizeof(e1), sd));
			return NULL;
		}
		return xstrndup(sd, strcspn(sd, ":"));
	}
	xdg = getenv("XDG_STATE_HOME");
	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/popfetch", xdg);
	home = getenv("HOME");
	if (home == NULL || home[0] != '/') {
		config_error(c, NULL, "HOME is not set to an absolute path: "
		    "set state_dir");
		return NULL;
	}
	return xasprintf("%s/.local/state/popfetch", home);
}

static struct config *
config_build(struct ctx *c, const config_setting_t *root)
{
	const config_setting_t *s;
	struct config *cfg;
	struct acfg def;

	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(c->path);
	memset(&def, 0, sizeof(def));
	def.a.tls = TLS_IMPLICIT;
	def.a.auth = AUTH_AUTO;
	def.a.timeout = DEF_TIMEOUT;
	def.a.interval = DEF_INTERVAL;
	def.a.keepalive = DEF_KEEPALIVE;
	config_parse_group(c, root, &def, 1);
	cfg->timeout = def.a.timeout;
	cfg->interval = def.a.interval;
	cfg->max_parallel = config_top_int(c, root, "max_parallel", 1, 256,
	    DEF_MAX_PARALLEL);
	cfg->max_per_host = config_top_int(c, root, "max_per_host", 1, 256,
	    DEF_MAX_PER_HOST);
	/* The file's state_dir is checked even when --state-dir wins. */
	if ((s = config_setting_get_member(root, "state_dir")) != NULL) {
		if (config_get_path(c, s, &cfg->state_dir) == -1)
			cfg->state_dir = NULL;
	} else if (c->state_dir == NULL)
		cfg->state_dir = config_default_state_dir(c);
	if (c->state_dir != NULL)
		config_set_str(&cfg->state_dir, xstrdup(c->state_dir));
	config_parse_accounts(c, root, &def, cfg);
	config_account_clear(&def.a);
	return cfg;
}

/* Returns the directory part of path, newly allocated. */
static char *
config_path_dir(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static FILE *
config_open(const char *path, mode_t *modep, struct err *e)
{
	struct stat st;
	FILE *fp;
	char *p;
	int fd;

	p = buf_escape(path, strlen(path), 256);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1 || fstat(fd, &st) == -1) {
		err_set(e, EX_NOINPUT, "%s: %s", p, strerror(errno));
		goto fail;
	}
	/* libconfig's scanner exits the process on a read error. */
	if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
	    !S_ISCHR(st.st_mode)) {
		err_set(e, EX_NOINPUT, "%s: not a regular file", p);
		goto fail;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		err_set(e, EX_NOINPUT, "%s: %s", p, strerror(errno));
		goto fail;
	}
	*modep = st.st_mode;
	free(p);
	return fp;
fail:
	if (fd != -1)
		(void)close(fd);	/* read-only: nothing to lose */
	free(p);
	return NULL;
}

/* Line number line (from 1) of the file at path, or NULL; caller frees. */
static char *
config_line(const char *path, unsigned line)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = fopen(path, "re");
	unsigned n = 0;

	if (f == NULL)
		return NULL;
	while (getline(&buf, &size, f) != -1)
		if (++n == line)
			break;
	(void)fclose(f);		/* read-only: nothing to lose */
	if (n != line) {
		free(buf);
		return NULL;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}

static bool
config_key_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '-' ||
	    ch == '*';
}

/*
 * The key a "duplicate setting name" error at line l means, into out:
 * of the "NAME =" (or ":") on the line, the last that the line names
 * twice, else the last (a key set again on a line of its own). False
 * when the line has none.
 */
static bool
config_dup_key(const char *l, char *out, size_t size)
{
	const char *keys[32], *p, *q;
	size_t lens[32], n = 0, i, j;

	for (p = l; *p != '\0' && n < 32; p++) {
		if (!config_key_char(*p) || isdigit((unsigned char)*p) ||
		    (p > l && config_key_char(p[-1])))
			continue;
		for (q = p; config_key_char(*q); q++)
			;
		lens[n] = (size_t)(q - p);
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '=' || *q == ':')
			keys[n++] = p;
	}
	if (n == 0)
		return false;
	for (i = n; i-- > 0;)
		for (j = 0; j < i; j++)
			if (lens[j] == lens[i] &&
			    memcmp(keys[j], keys[i], lens[i]) == 0) {
				snprintf(out, size, "%.*s", (int)lens[i],
				    keys[i]);
				return true;
			}
	snprintf(out, size, "%.*s", (int)lens[n - 1], keys[n - 1]);
	return true;
}

/*
 * libconfig's parse errors, made to say what: the key set twice, the
 * include file that is missing.
 */
static void
config_parse_error(struct ctx *c, const config_t *lc)
{
	const char *file = config_error_file(lc), *text = config_error_text(lc);
	unsigned line = (unsigned)config_error_line(lc);
	char *l, *path, msg[600], key[64];
	const char *q;

	if (text == NULL)
		text = "cannot read the file";
	path = config_src_path(c, file);
	l = line > 0 ? config_line(path, line) : NULL;
	if (l != NULL && strcmp(text, "duplicate setting name") == 0 &&
	    config_dup_key(l, key, sizeof(key)))
		snprintf(msg, sizeof(msg), "\"%s\" is set twice in the same "
		    "group (a key may appear once)", key);
	else if (l != NULL && strcmp(text, "cannot open include file") == 0 &&
	    (q = strchr(l, '"')) != NULL && strchr(q + 1, '"') != NULL)
		snprintf(msg, sizeof(msg), "cannot open include file %.*s "
		    "(a relative name is taken from %s)", (int)(strchr(q + 1,
		    '"') - q - 1), q + 1, c->dir);
	else
		snprintf(msg, sizeof(msg), "%s", text);
	config_error_at(c, file, line, msg);
	free(l);
	free(path);
}

int
config_load(const char *path, const char *state_dir, struct config **cfgp,
    struct err *e)
{
	struct config *cfg = NULL;
	struct ctx c;
	config_t lc;
	FILE *fp;
	char *q;

	if (state_dir != NULL && state_dir[0] != '/') {
		q = buf_escape(state_dir, strlen(state_dir), ESC_MAX);
		err_set(e, EX_USAGE, "--state-dir: \"%s\" is not an absolute "
		    "path", q);
		free(q);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	if ((fp = config_open(path, &c.mode, e)) == NULL)
		return -1;
	c.path = path;
	c.state_dir = state_dir;
	c.dir = config_path_dir(path);
	c.e = e;
	config_init(&lc);
	config_set_include_dir(&lc, c.dir);
	if (config_read(&lc, fp) == CONFIG_FALSE)
		config_parse_error(&c, &lc);
	else
		cfg = config_build(&c, config_root_setting(&lc));
	(void)fclose(fp);		/* read-only: nothing to lose */
	config_destroy(&lc);
	free(c.dir);
	if (c.nerr > 0) {
		config_free(cfg);
		return -1;
	}
	*cfgp = cfg;
	return 0;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->naccounts; i++)
		config_account_clear(&cfg->accounts[i]);
	free(cfg->accounts);
	free(cfg->path);
	free(cfg->state_dir);
	free(cfg);
}

/* Whether the file at path is there (if unreadable: for open to say). */
static bool
config_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

char *
config_default_path(struct err *e)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *p = NULL, *q;

	if (xdg != NULL && xdg[0] == '/')
		p = xasprintf("%s/popfetch/config", xdg);
	else if (home != NULL && home[0] == '/')
		p = xasprintf("%s/.config/popfetch/config", home);
	if (p != NULL && config_exists(p))
		return p;
	if (config_exists(SYSTEM_CONFIG)) {
		free(p);
		return xstrdup(SYSTEM_CONFIG);
	}
	q = p != NULL ? buf_escape(p, strlen(p), 256) : NULL;
	err_set(e, EX_NOINPUT, "no configuration file: tried %s%s%s; copy "
	    EXAMPLE_CONFIG " to %s, or name one with -c", q != NULL ? q : "",
	    q != NULL ? " and " : "", SYSTEM_CONFIG,
	    q != NULL ? "one of them" : "it");
	free(q);
	free(p);
	return NULL;
}

const struct account *
config_find_account(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	return NULL;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t v = 0, mul = 1, d;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*p == 'k' || *p == 'K')
		mul = 1024;
	else if (*p == 'm' || *p == 'M')
		mul = 1024 * 1024;
	else if (*p == 'g' || *p == 'G')
		mul = 1024 * 1024 * 1024;
	if (mul != 1)
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p != '\0' || v > UINT64_MAX / mul)
		return -1;
	*bytes = v * mul;
	return 0;
}
