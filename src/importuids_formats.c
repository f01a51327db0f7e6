/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "importuids_formats.h"
#include "xmalloc.h"

/* Accounts that a "no UIDs for" message names before "and N more". */
#define KEYS_SHOWN	8
/* Bytes of the file's own text quoted in a message, at most. */
#define QUOTE_MAX	80
/* The characters getmail6 turns into '-' in the oldmail file name. */
#define GETMAIL_STRIP	"/\\:;<>|"
#define GETMAIL_PREFIX	"oldmail-"
/* Digits of a number in a file, at most: no overflow of 64 bits. */
#define DIGITS_MAX	18

static const char *const from_names[] = {
	[IMPORTUIDS_MPOP] = "mpop",
	[IMPORTUIDS_GETMAIL6] = "getmail6",
	[IMPORTUIDS_FETCHMAIL] = "fetchmail"
};

struct importuids_parser {
	enum importuids_from	 from;
	char			*file;		/* escaped, for messages */
	char			*user;
	char			*host;
	struct buf		 line;		/* the line being read */
	size_t			 lineno;
	bool			 failed;
	/* mpop: the list being read */
	uint64_t		 left;		/* its UIDs to come; 0: none */
	uint64_t		 announced;
	size_t			 list_line;
	bool			 ours;
	struct uidmap		*keys;		/* escaped "user@host" seen */
	size_t			 total;		/* UID lines, all accounts */
	struct importuids_result res;
};

int
importuids_from_parse(const char *name, enum importuids_from *fromp)
{
	size_t i;

	for (i = 0; i < sizeof(from_names) / sizeof(from_names[0]); i++)
		if (strcmp(name, from_names[i]) == 0) {
			*fromp = (enum importuids_from)i;
			return 0;
		}
	return -1;
}

const char *
importuids_from_name(enum importuids_from from)
{
	return from_names[from];
}

char *
importuids_getmail_name(const char *host, unsigned port, const char *user)
{
	char *raw = xasprintf(GETMAIL_PREFIX "%s-%u-%s", host, port, user);
	char *out = xmalloc(strlen(raw) + 1), *o = out;
	const char *c;
	bool run = false;

	/* Python's re.sub("[/\\:;<>|]+", "-", name): a run becomes one. */
	for (c = raw; *c != '\0'; c++) {
		if (strchr(GETMAIL_STRIP, *c) == NULL) {
			*o++ = *c;
			run = false;
		} else if (!run) {
			*o++ = '-';
			run = true;
		}
	}
	*o = '\0';
	free(raw);
	return out;
}

static bool
importuids_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static bool
importuids_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *
importuids_getmail_default(const char *home, const struct account *a)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *dir, *name, *path;

	/* getmail6 >= 6.18 prefers the XDG directory when it exists. */
	if (xdg != NULL && xdg[0] == '/')
		dir = xasprintf("%s/getmail", xdg);
	else
		dir = xasprintf("%s/.config/getmail", home);
	if (!importuids_exists(dir)) {
		free(dir);
		dir = xasprintf("%s/.getmail", home);
	}
	name = importuids_getmail_name(a->host, a->port, a->user);
	path = xasprintf("%s/%s", dir, name);
	free(dir);
	free(name);
	return path;
}

char *
importuids_default_path(enum importuids_from from, const struct account *a,
    struct err *e)
{
	const char *home = getenv("HOME"), *env;

	if (from == IMPORTUIDS_FETCHMAIL) {
		env = getenv("FETCHMAILHOME");
		if (env != NULL && env[0] == '/' && importuids_is_dir(env))
			return xasprintf("%s/.fetchids", env);
		env = getenv("HOME_ETC");
		if (env != NULL && env[0] == '/')
			return xasprintf("%s/.fetchids", env);
	}
	if (home == NULL || home[0] != '/') {
		err_set(e, EX_USAGE, "HOME is not set to an absolute path, so "
		    "%s's file is not known: give its path",
		    from_names[from]);
		return NULL;
	}
	switch (from) {
	case IMPORTUIDS_MPOP:
		/* mpop puts user and host into the name verbatim. */
		return xasprintf("%s/.mpop_uidls/%s_at_%s", home, a->user,
		    a->host);
	case IMPORTUIDS_GETMAIL6:
		return importuids_getmail_default(home, a);
	case IMPORTUIDS_FETCHMAIL:
		break;
	}
	return xasprintf("%s/.fetchids", home);
}

int
importuids_check_getmail_name(const char *path, const struct account *a,
    struct err *e)
{
	const char *base = strrchr(path, '/');
	char *want, *got, *wesc;

	base = base == NULL ? path : base + 1;
	if (strncmp(base, GETMAIL_PREFIX, strlen(GETMAIL_PREFIX)) != 0)
		return 0;
	want = importuids_getmail_name(a->host, a->port, a->user);
	if (strcmp(base, want) == 0) {
		free(want);
		return 0;
	}
	got = buf_escape(path, strlen(path), strlen(path));
	wesc = buf_escape(want, strlen(want), 2 * QUOTE_MAX);
	err_set(e, EX_DATAERR, "%s: the getmail6 file of another account: "
	    "getmail6 keeps the UIDs of this account's host, port and user "
	    "in %s", got, wesc);
	free(got);
	free(wesc);
	free(want);
	return -1;
}

struct importuids_parser *
importuids_parser_new(enum importuids_from from, const char *file,
    const char *user, const char *host)
{
	struct importuids_parser *p = xcalloc(1, sizeof(*p));

	p->from = from;
	p->file = buf_escape(file, strlen(file), strlen(file));
	p->user = xstrdup(user);
	p->host = xstrdup(host);
	buf_init(&p->line, IMPORTUIDS_LINE_MAX);
	p->keys = uidmap_new();
	p->res.uids = uidmap_new();
	return p;
}

void
importuids_parser_free(struct importuids_parser *p)
{
	if (p == NULL)
		return;
	free(p->file);
	free(p->user);
	free(p->host);
	buf_free(&p->line);
	uidmap_free(p->keys);
	uidmap_free(p->res.uids);
	free(p);
}

const struct importuids_result *
importuids_parser_result(const struct importuids_parser *p)
{
	return &p->res;
}

/* Fails the parse at the current line, quoting it. Returns -1. */
static int __attribute__((format(printf, 3, 4)))
importuids_reject(struct importuids_parser *p, struct err *e,
    const char *fmt, ...)
{
	char what[512], *q;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	q = buf_escape(p->line.data, p->line.len, QUOTE_MAX);
	err_set(e, EX_DATAERR, "%s:%zu: %s: \"%s\"", p->file, p->lineno, what,
	    q);
	free(q);
	p->failed = true;
	return -1;
}

static bool
importuids_same(const char *s, size_t n, const char *want, bool ignore_case)
{
	if (strlen(want) != n)
		return false;
	return ignore_case ? strncasecmp(s, want, n) == 0 :
	    memcmp(s, want, n) == 0;
}

/* Notes an account that the file names, for the "no UIDs for" error. */
static void
importuids_parser_key(struct importuids_parser *p, const char *user,
    size_t ulen, const char *host, size_t hlen)
{
	char *u = buf_escape(user, ulen, QUOTE_MAX);
	char *h = buf_escape(host, hlen, QUOTE_MAX);
	char *k = xasprintf("%s@%s", u, h);

	if (uidmap_get(p->keys, k) == NULL)
		uidmap_put(p->keys, k, 0);
	free(k);
	free(h);
	free(u);
}

/* One UID of the account, with the time the file gives or -1. */
static void
importuids_parser_add(struct importuids_parser *p, const char *uid, size_t n,
    int64_t t)
{
	char key[UID_MAX + 1];
	struct uidmap_entry *en;

	p->res.entries++;
	if (!uid_valid(uid, n)) {
		p->res.invalid++;
		return;
	}
	memcpy(key, uid, n);
	key[n] = '\0';
	if ((en = uidmap_get(p->res.uids, key)) == NULL)
		uidmap_put(p->res.uids, key, t);
	else if (t != -1 && (en->value == -1 || t < en->value))
		en->value = t;
}

/* mpop: " COUNT HOST USER" opens a list of COUNT UIDs. */
static int
importuids_mpop_header(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *end = l + n, *c, *host, *hend, *user;
	uint64_t count = 0;

	if (n == 0 || l[0] != ' ')
		return importuids_reject(p, e, "a UID outside a list (a "
		    "list starts with \" COUNT HOST USER\")");
	for (c = l + 1; c < end && *c >= '0' && *c <= '9' &&
	    c - l <= DIGITS_MAX; c++)
		count = count * 10 + (uint64_t)(*c - '0');
	if (c == l + 1 || c == end || *c != ' ' || count == 0)
		return importuids_reject(p, e, "not a list header \" COUNT "
		    "HOST USER\" with a COUNT of 1 or more");
	host = c + 1;
	hend = memchr(host, ' ', (size_t)(end - host));
	user = hend == NULL ? end : hend + 1;
	if (hend == NULL || hend == host || user == end ||
	    memchr(user, ' ', (size_t)(end - user)) != NULL)
		return importuids_reject(p, e, "not a list header \" COUNT "
		    "HOST USER\" (one space between, none within)");
	p->left = p->announced = count;
	p->list_line = p->lineno;
	p->ours = importuids_same(host, (size_t)(hend - host), p->host,
	    false) && importuids_same(user, (size_t)(end - user), p->user,
	    false);
	importuids_parser_key(p, user, (size_t)(end - user), host,
	    (size_t)(hend - host));
	return 0;
}

static int
importuids_mpop_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	/* mpop skips comments even inside a list. */
	if (n > 0 && l[0] == '#')
		return 0;
	if (p->left == 0)
		return importuids_mpop_header(p, l, n, e);
	if (n > 0 && l[0] == ' ')
		return importuids_reject(p, e, "a new list starts %" PRIu64
		    " UIDs short of the %" PRIu64 " that line %zu announces",
		    p->left, p->announced, p->list_line);
	p->total++;
	if (p->ours)
		importuids_parser_add(p, l, n, -1);
	p->left--;
	return 0;
}

/* getmail6: UID, NUL, decimal time. */
static int
importuids_getmail_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *nul, *c, *end;
	int64_t t = 0;

	/* getmail6 ends lines with os.linesep and strips them on reading. */
	if (n > 0 && l[n - 1] == '\r')
		n--;
	end = l + n;
	if ((nul = memchr(l, '\0', n)) == NULL)
		return importuids_reject(p, e, "not a UID, a NUL byte and a "
		    "time");
	for (c = nul + 1; c < end && *c >= '0' && *c <= '9' &&
	    c - nul <= DIGITS_MAX; c++)
		t = t * 10 + (*c - '0');
	if (c == nul + 1 || c != end)
		return importuids_reject(p, e, "the time after the NUL byte "
		    "is not a number of seconds");
	p->total++;
	importuids_parser_add(p, l, (size_t)(nul - l), t);
	return 0;
}

/* fetchmail: "USER@HOST UID", read the way fetchmail reads it. */
static int
importuids_fetchmail_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *end = l + n, *at, *sp, *kend, *last, *id, *idend;

	while (l < end && (*l == ' ' || *l == '\t'))
		l++;
	at = memchr(l, '@', (size_t)(end - l));
	sp = at == NULL ? NULL : memchr(at, ' ', (size_t)(end - at));
	if (sp == NULL)
		return importuids_reject(p, e, "not \"USER@HOST UID\"");
	for (kend = sp; kend > at && (kend[-1] == ' ' || kend[-1] == '\t');
	    kend--)
		;
	/* The last '@' of the key: InterMail users have one of their own. */
	for (last = kend - 1; *last != '@'; last--)
		;
	for (id = sp; id < end && *id == ' '; id++)
		;
	for (idend = id; idend < end && *idend != ' ' && *idend != '\t';
	    idend++)
		;
	p->total++;
	importuids_parser_key(p, l, (size_t)(last - l), last + 1,
	    (size_t)(kend - last - 1));
	if (importuids_same(l, (size_t)(last - l), p->user, true) &&
	    importuids_same(last + 1, (size_t)(kend - last - 1), p->host, true))
		importuids_parser_add(p, id, (size_t)(idend - id), -1);
	return 0;
}

/* Parses the line in p->line (without its LF) and empties it. */
static int
importuids_parser_line(struct importuids_parser *p, struct err *e)
{
	const char *l = p->line.data != NULL ? p->line.data : "";
	int rc = 0;

	p->lineno++;
	switch (p->from) {
	case IMPORTUIDS_MPOP:
		rc = importuids_mpop_line(p, l, p->line.len, e);
		break;
	case IMPORTUIDS_GETMAIL6:
		rc = importuids_getmail_line(p, l, p->line.len, e);
		break;
	case IMPORTUIDS_FETCHMAIL:
		rc = importuids_fetchmail_line(p, l, p->line.len, e);
		break;
	}
	buf_reset(&p->line);
	return rc;
}

int
importuids_parser_feed(struct importuids_parser *p, const void *data,
    size_t n, struct err *e)
{
	const char *s = data, *nl;
	size_t len;

	if (p->failed) {
		err_set(e, EX_SOFTWARE, "%s: read on after an error", p->file);
		return -1;
	}
	while (n > 0) {
		nl = memchr(s, '\n', n);
		len = nl != NULL ? (size_t)(nl - s) : n;
		if (buf_append(&p->line, s, len) == -1) {
			p->lineno++;
			p->failed = true;
			err_set(e, EX_DATAERR, "%s:%zu: a line longer than %d "
			    "bytes: not a UID file of %s", p->file, p->lineno,
			    IMPORTUIDS_LINE_MAX, from_names[p->from]);
			return -1;
		}
		if (nl == NULL)
			break;
		if (importuids_parser_line(p, e) == -1)
			return -1;
		s += len + 1;
		n -= len + 1;
	}
	return 0;
}

/* The error for a file without a UID of the account. */
static int
importuids_parser_nomatch(struct importuids_parser *p, struct err *e)
{
	const struct uidmap_entry *en;
	char *u, *h, more[64];
	size_t pos = 0, shown = 0, n = uidmap_count(p->keys);
	struct buf list;

	p->failed = true;
	if (p->total == 0) {
		err_set(e, EX_DATAERR, "%s: holds no UIDs at all: nothing to "
		    "import", p->file);
		return -1;
	}
	/* Past the cap the message is cut anyway: stop listing. */
	buf_init(&list, sizeof(e->msg));
	while (shown < KEYS_SHOWN &&
	    (en = uidmap_next(p->keys, &pos)) != NULL &&
	    buf_append(&list, ", ", shown > 0 ? 2 : 0) == 0 &&
	    buf_append(&list, en->uid, strlen(en->uid)) == 0)
		shown++;
	more[0] = '\0';
	if (n > shown)
		snprintf(more, sizeof(more), " and %zu more", n - shown);
	u = buf_escape(p->user, strlen(p->user), QUOTE_MAX);
	h = buf_escape(p->host, strlen(p->host), QUOTE_MAX);
	err_set(e, EX_DATAERR, "%s: holds no UIDs for user %s at host %s "
	    "(%s); it holds those of %s%s", p->file, u, h,
	    p->from == IMPORTUIDS_MPOP ? "matched exactly" :
	    "matched ignoring case", list.data != NULL ? list.data : "", more);
	buf_free(&list);
	free(u);
	free(h);
	return -1;
}

int
importuids_parser_finish(struct importuids_parser *p, struct err *e)
{
	if (p->failed) {
		err_set(e, EX_SOFTWARE, "%s: finished after an error", p->file);
		return -1;
	}
	if (p->line.len > 0 && importuids_parser_line(p, e) == -1)
		return -1;
	if (p->left > 0) {
		p->failed = true;
		err_set(e, EX_DATAERR, "%s:%zu: the file ends %" PRIu64 " UIDs "
		    "short of the %" PRIu64 " that line %zu announces", p->file,
		    p->lineno, p->left, p->announced, p->list_line);
		return -1;
	}
	if (p->res.entries == 0)
		return importuids_parser_nomatch(p, e);
	return 0;
}
