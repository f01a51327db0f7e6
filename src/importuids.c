/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "deliver.h"
#include "importuids.h"
#include "log.h"
#include "uidstate.h"
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
path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static bool
path_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *
getmail_default(const char *home, const struct account *a)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *dir, *name, *path;

	/* getmail6 >= 6.18 prefers the XDG directory when it exists. */
	if (xdg != NULL && xdg[0] == '/')
		dir = xasprintf("%s/getmail", xdg);
	else
		dir = xasprintf("%s/.config/getmail", home);
	if (!path_exists(dir)) {
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
		if (env != NULL && env[0] == '/' && path_is_dir(env))
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
		return getmail_default(home, a);
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

/* --- the parser ---------------------------------------------------- */

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
parser_error(struct importuids_parser *p, struct err *e, const char *fmt,
    ...)
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
same(const char *s, size_t n, const char *want, bool ignore_case)
{
	if (strlen(want) != n)
		return false;
	return ignore_case ? strncasecmp(s, want, n) == 0 :
	    memcmp(s, want, n) == 0;
}

/* Notes an account that the file names, for the "no UIDs for" error. */
static void
parser_key(struct importuids_parser *p, const char *user, size_t ulen,
    const char *host, size_t hlen)
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
parser_add(struct importuids_parser *p, const char *uid, size_t n,
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
mpop_header(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *end = l + n, *c, *host, *hend, *user;
	uint64_t count = 0;

	if (n == 0 || l[0] != ' ')
		return parser_error(p, e, "a UID outside a list (a list "
		    "starts with \" COUNT HOST USER\")");
	for (c = l + 1; c < end && *c >= '0' && *c <= '9' &&
	    c - l <= DIGITS_MAX; c++)
		count = count * 10 + (uint64_t)(*c - '0');
	if (c == l + 1 || c == end || *c != ' ' || count == 0)
		return parser_error(p, e, "not a list header \" COUNT HOST "
		    "USER\" with a COUNT of 1 or more");
	host = c + 1;
	hend = memchr(host, ' ', (size_t)(end - host));
	user = hend == NULL ? end : hend + 1;
	if (hend == NULL || hend == host || user == end ||
	    memchr(user, ' ', (size_t)(end - user)) != NULL)
		return parser_error(p, e, "not a list header \" COUNT HOST "
		    "USER\" (one space between, none within)");
	p->left = p->announced = count;
	p->list_line = p->lineno;
	p->ours = same(host, (size_t)(hend - host), p->host, false) &&
	    same(user, (size_t)(end - user), p->user, false);
	parser_key(p, user, (size_t)(end - user), host, (size_t)(hend - host));
	return 0;
}

static int
mpop_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	/* mpop skips comments even inside a list. */
	if (n > 0 && l[0] == '#')
		return 0;
	if (p->left == 0)
		return mpop_header(p, l, n, e);
	if (n > 0 && l[0] == ' ')
		return parser_error(p, e, "a new list starts %" PRIu64 " UIDs "
		    "short of the %" PRIu64 " that line %zu announces",
		    p->left, p->announced, p->list_line);
	p->total++;
	if (p->ours)
		parser_add(p, l, n, -1);
	p->left--;
	return 0;
}

/* getmail6: UID, NUL, decimal time. */
static int
getmail_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *nul, *c, *end;
	int64_t t = 0;

	/* getmail6 ends lines with os.linesep and strips them on reading. */
	if (n > 0 && l[n - 1] == '\r')
		n--;
	end = l + n;
	if ((nul = memchr(l, '\0', n)) == NULL)
		return parser_error(p, e, "not a UID, a NUL byte and a time");
	for (c = nul + 1; c < end && *c >= '0' && *c <= '9' &&
	    c - nul <= DIGITS_MAX; c++)
		t = t * 10 + (*c - '0');
	if (c == nul + 1 || c != end)
		return parser_error(p, e, "the time after the NUL byte is not "
		    "a number of seconds");
	p->total++;
	parser_add(p, l, (size_t)(nul - l), t);
	return 0;
}

/* fetchmail: "USER@HOST UID", read the way fetchmail reads it. */
static int
fetchmail_line(struct importuids_parser *p, const char *l, size_t n,
    struct err *e)
{
	const char *end = l + n, *at, *sp, *kend, *last, *id, *idend;

	while (l < end && (*l == ' ' || *l == '\t'))
		l++;
	at = memchr(l, '@', (size_t)(end - l));
	sp = at == NULL ? NULL : memchr(at, ' ', (size_t)(end - at));
	if (sp == NULL)
		return parser_error(p, e, "not \"USER@HOST UID\"");
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
	parser_key(p, l, (size_t)(last - l), last + 1,
	    (size_t)(kend - last - 1));
	if (same(l, (size_t)(last - l), p->user, true) &&
	    same(last + 1, (size_t)(kend - last - 1), p->host, true))
		parser_add(p, id, (size_t)(idend - id), -1);
	return 0;
}

/* Parses the line in p->line (without its LF) and empties it. */
static int
parser_line(struct importuids_parser *p, struct err *e)
{
	const char *l = p->line.data != NULL ? p->line.data : "";
	int rc = 0;

	p->lineno++;
	switch (p->from) {
	case IMPORTUIDS_MPOP:
		rc = mpop_line(p, l, p->line.len, e);
		break;
	case IMPORTUIDS_GETMAIL6:
		rc = getmail_line(p, l, p->line.len, e);
		break;
	case IMPORTUIDS_FETCHMAIL:
		rc = fetchmail_line(p, l, p->line.len, e);
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
		if (parser_line(p, e) == -1)
			return -1;
		s += len + 1;
		n -= len + 1;
	}
	return 0;
}

/* The error for a file without a UID of the account. */
static int
parser_nomatch(struct importuids_parser *p, struct err *e)
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
	if (p->line.len > 0 && parser_line(p, e) == -1)
		return -1;
	if (p->left > 0) {
		p->failed = true;
		err_set(e, EX_DATAERR, "%s:%zu: the file ends %" PRIu64 " UIDs "
		    "short of the %" PRIu64 " that line %zu announces", p->file,
		    p->lineno, p->left, p->announced, p->list_line);
		return -1;
	}
	if (p->res.entries == 0)
		return parser_nomatch(p, e);
	return 0;
}

/* --- the command ---------------------------------------------------- */

struct options {
	const char		*config_path;
	const char		*state_dir;	/* --state-dir, or NULL */
	const char		*account;
	const char		*path;		/* NULL: the tool's default */
	enum importuids_from	 from;
	bool			 have_from;
	bool			 dry_run;
};

/* Where the account's state is, open for the import. */
struct target {
	struct deliver		*dl;		/* for recovery only */
	struct uidstate		*st;		/* NULL: none yet (dry run) */
};

/* A UID to record, and when it was first seen. */
struct pick {
	const char		*uid;
	int64_t			 t;
	size_t			 order;		/* in the file */
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: popfetch import-uids [-n] [-c file] [--state-dir "
	    "dir] -a account\n"
	    "                            --from tool [path]\n"
	    "Records the UIDs that mpop, getmail6 or fetchmail kept for an "
	    "account as\nfetched, so that popfetch does not fetch that mail "
	    "again.\n"
	    "  -c, --config FILE    configuration file\n"
	    "  -a, --account NAME   the account to record them for\n"
	    "      --from TOOL      mpop, getmail6 or fetchmail\n"
	    "  -n, --dry-run        report what would be imported; write "
	    "nothing\n"
	    "      --state-dir DIR  the accounts' state is in DIR\n"
	    "  -h, --help           print this help and exit\n"
	    "path defaults to the file where the tool keeps the account's "
	    "UIDs.\n");
}

/* Returns 0, 1 for --help, or -1 (logged) for bad arguments. */
static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "account", required_argument, NULL, 'a' },
		{ "from", required_argument, NULL, 'F' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:a:nh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'a':
			if (o->account != NULL) {
				log_msg(LL_ERROR, "import-uids: one -a only");
				return -1;
			}
			o->account = optarg;
			break;
		case 'F':
			if (importuids_from_parse(optarg, &o->from) == -1) {
				log_msg(LL_ERROR, "import-uids: --from takes "
				    "mpop, getmail6 or fetchmail");
				return -1;
			}
			o->have_from = true;
			break;
		case 'n':
			o->dry_run = true;
			break;
		case 's':
			o->state_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (o->account == NULL || !o->have_from || argc - optind > 1) {
		log_msg(LL_ERROR, "import-uids: %s", o->account == NULL ?
		    "which account? (-a NAME)" : !o->have_from ?
		    "from which tool? (--from mpop|getmail6|fetchmail)" :
		    "one path at most");
		usage(stderr);
		return -1;
	}
	o->path = optind < argc ? argv[optind] : NULL;
	return 0;
}

/* Loads the configuration and finds the account; returns a sysexits code. */
static int
load_account(const struct options *o, struct config **cfgp,
    const struct account **ap)
{
	char *path, *name;
	struct err e;

	err_clear(&e);
	path = o->config_path != NULL ? xstrdup(o->config_path) :
	    config_default_path(&e);
	if (path == NULL || config_load(path, o->state_dir, cfgp, &e) == -1) {
		log_msg(LL_ERROR, "%s", e.msg);
		free(path);
		return e.code;
	}
	free(path);
	if ((*ap = config_find_account(*cfgp, o->account)) == NULL) {
		name = buf_escape(o->account, strlen(o->account), QUOTE_MAX);
		log_msg(LL_ERROR, "%s: no account named %s", (*cfgp)->path,
		    name);
		free(name);
		return EX_USAGE;
	}
	return EX_OK;
}

/* Feeds the whole file at path to the parser. Returns 0 or -1. */
static int
read_file(const char *path, struct importuids_parser *p, struct err *e)
{
	char chunk[64 * 1024], *epath;
	uint64_t total = 0;
	struct stat st;
	ssize_t n;
	int fd, rc = -1;

	epath = buf_escape(path, strlen(path), strlen(path));
	/* Not blocked by a FIFO: it is refused below. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		err_set(e, EX_NOINPUT, "cannot open %s: %s", epath,
		    strerror(errno));
		free(epath);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		err_set(e, EX_NOINPUT, "%s: not a regular file", epath);
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_set(e, EX_IOERR, "cannot read %s: %s", epath,
			    strerror(errno));
			goto out;
		}
		if ((total += (uint64_t)n) > IMPORTUIDS_FILE_MAX) {
			err_set(e, EX_DATAERR, "%s: larger than %d MiB: not a "
			    "UID file", epath, IMPORTUIDS_FILE_MAX >> 20);
			goto out;
		}
		if (importuids_parser_feed(p, chunk, (size_t)n, e) == -1)
			goto out;
	}
	rc = importuids_parser_finish(p, e);
out:
	close(fd);
	free(epath);
	return rc;
}

/* uidstate_open, saying what a lock held by another process means, and
 * tied to the account's mailbox as a run ties it. */
static int
state_open(const struct config *cfg, const struct account *a,
    struct target *t, struct err *e)
{
	char msg[sizeof(e->msg)];

	if (uidstate_open(&t->st, cfg->state_dir, a->name, deliver_recover,
	    t->dl, e) != 0) {
		if (e->code == EX_TEMPFAIL) {
			snprintf(msg, sizeof(msg), "%s", e->msg);
			err_set(e, EX_TEMPFAIL, "account busy: is a popfetch "
			    "daemon running? (%s)", msg);
		}
		return -1;
	}
	return account_use_mailbox(t->st, a, e);
}

/*
 * A dry run changes nothing: it reads the state a run would use, and
 * refuses while a journal (a run in progress or interrupted) waits to
 * be settled.
 */
static int
open_state_dry(const struct config *cfg, const struct account *a,
    struct target *t, struct err *e)
{
	char *mailbox = uidstate_mailbox(a->user, a->host);
	size_t pending = 0;
	bool other;
	int rc;

	rc = uidstate_peek(&t->st, cfg->state_dir, a->name, mailbox, &pending,
	    &other, e);
	free(mailbox);
	if (rc == 0 && pending > 0) {
		err_set(e, EX_TEMPFAIL, "a popfetch is fetching this account "
		    "or was interrupted, and --dry-run does not recover: try "
		    "again without --dry-run, or after popfetch");
		return -1;
	}
	return rc;
}

/*
 * Opens the state the way account_run does, recovering an interrupted
 * run as it would (for a Maildir, in the Maildir).
 */
static int
open_state(const struct config *cfg, const struct account *a, bool dry,
    struct target *t, struct err *e)
{
	if (dry)
		return open_state_dry(cfg, a, t, e);
	if (deliver_open_recovery(&t->dl, a, e) == -1)
		return -1;
	return state_open(cfg, a, t, e);
}

/* The UIDs not yet in the state, each with its first-seen time. */
static struct pick *
classify(const struct importuids_result *r, const struct uidstate *st,
    time_t now, size_t *np, size_t *knownp)
{
	struct pick *v = xreallocarray(NULL, uidmap_count(r->uids) + 1,
	    sizeof(*v));
	const struct uidmap_entry *en;
	size_t pos = 0;

	*np = *knownp = 0;
	while ((en = uidmap_next(r->uids, &pos)) != NULL) {
		if (st != NULL && uidstate_has(st, en->uid, NULL)) {
			(*knownp)++;
			continue;
		}
		v[*np].uid = en->uid;
		/* None given, or a clock that was wrong: now. */
		v[*np].t = en->value < 0 || en->value > (int64_t)now ? now :
		    en->value;
		v[*np].order = *np;
		(*np)++;
	}
	return v;
}

static int
pick_cmp(const void *a, const void *b)
{
	const struct pick *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Records the picks, one journal write per distinct time, and commits. */
static int
record(struct uidstate *st, struct pick *v, size_t n, struct err *e)
{
	const char **uids = xreallocarray(NULL, n + 1, sizeof(*uids));
	size_t i, j;
	int rc = 0;

	qsort(v, n, sizeof(*v), pick_cmp);
	for (i = 0; i < n && rc == 0; i = j) {
		for (j = i; j < n && v[j].t == v[i].t; j++)
			uids[j - i] = v[j].uid;
		/* Other fetchers record no sizes: none is known. */
		rc = uidstate_delivered(st, uids, NULL, j - i, (time_t)v[i].t,
		    e);
	}
	free(uids);
	return rc == 0 ? uidstate_commit(st, e) : -1;
}

/* The summary line, and a warning where imported mail will be deleted. */
static void
report(const struct account *a, const struct options *o, size_t n,
    size_t known, size_t invalid)
{
	if (!a->keep && n > 0)
		log_msg(LL_WARN, "%s: keep is false: popfetch will delete "
		    "these %zu messages from the server without fetching "
		    "them", a->name, n);
	printf("popfetch: %s: %s %zu UIDs from %s (%zu already known, %zu "
	    "invalid skipped)%s\n", a->name, o->dry_run ? "would import" :
	    "imported", n, from_names[o->from], known, invalid,
	    o->dry_run ? "; dry run: nothing written" : "");
	fflush(stdout);
}

/* Records what the file holds for the account; returns a sysexits code. */
static int
import(const struct config *cfg, const struct account *a,
    const struct options *o, const struct importuids_result *r)
{
	struct target t = { NULL, NULL };
	struct pick *v = NULL;
	size_t n = 0, known = 0;
	struct err e;

	err_clear(&e);
	if (open_state(cfg, a, o->dry_run, &t, &e) == 0) {
		v = classify(r, t.st, time(NULL), &n, &known);
		if (o->dry_run || record(t.st, v, n, &e) == 0)
			report(a, o, n, known, r->invalid);
	}
	if (e.code != EX_OK)
		log_msg(LL_ERROR, "%s: %s", a->name, e.msg);
	free(v);
	uidstate_close(t.st);
	deliver_close(t.dl);
	return e.code;
}

/* Reads the tool's file for the account and imports it. */
static int
import_file(const struct config *cfg, const struct account *a,
    const struct options *o)
{
	struct importuids_parser *p = NULL;
	struct err e;
	char *path;
	int code = EX_OK;

	err_clear(&e);
	path = o->path != NULL ? xstrdup(o->path) :
	    importuids_default_path(o->from, a, &e);
	if (path == NULL || (o->from == IMPORTUIDS_GETMAIL6 &&
	    importuids_check_getmail_name(path, a, &e) == -1))
		goto out;
	p = importuids_parser_new(o->from, path, a->user, a->host);
	if (read_file(path, p, &e) == 0)
		code = import(cfg, a, o, importuids_parser_result(p));
out:
	if (e.code != EX_OK) {
		log_msg(LL_ERROR, "%s", e.msg);
		code = e.code;
	}
	importuids_parser_free(p);
	free(path);
	return code;
}

int
importuids_main(int argc, char **argv)
{
	struct options o;
	struct config *cfg = NULL;
	const struct account *a = NULL;
	int code;

	memset(&o, 0, sizeof(o));
	if ((code = parse_args(argc, argv, &o)) != 0)
		return code == 1 ? EX_OK : EX_USAGE;
	if ((code = load_account(&o, &cfg, &a)) == EX_OK)
		code = import_file(cfg, a, &o);
	config_free(cfg);
	return code;
}
