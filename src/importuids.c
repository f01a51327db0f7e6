/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "deliver.h"
#include "importuids.h"
#include "importuids_formats.h"
#include "log.h"
#include "uidstate.h"
#include "xmalloc.h"

/* Bytes of an account name quoted in a message, at most. */
#define QUOTE_MAX	80

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
importuids_usage(FILE *f)
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
importuids_parse_args(int argc, char **argv, struct options *o)
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
			importuids_usage(stdout);
			return 1;
		default:
			importuids_usage(stderr);
			return -1;
		}
	}
	if (o->account == NULL || !o->have_from || argc - optind > 1) {
		log_msg(LL_ERROR, "import-uids: %s", o->account == NULL ?
		    "which account? (-a NAME)" : !o->have_from ?
		    "from which tool? (--from mpop|getmail6|fetchmail)" :
		    "one path at most");
		importuids_usage(stderr);
		return -1;
	}
	o->path = optind < argc ? argv[optind] : NULL;
	return 0;
}

/* Loads the configuration and finds the account; returns a sysexits code. */
static int
importuids_load_account(const struct options *o, struct config **cfgp,
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
importuids_read_file(const char *path, struct importuids_parser *p,
    struct err *e)
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
importuids_open_fetch(const struct config *cfg, const struct account *a,
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
importuids_open_dry(const struct config *cfg, const struct account *a,
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
importuids_open_state(const struct config *cfg, const struct account *a,
    bool dry, struct target *t, struct err *e)
{
	if (dry)
		return importuids_open_dry(cfg, a, t, e);
	if (deliver_open_recovery(&t->dl, a, e) == -1)
		return -1;
	return importuids_open_fetch(cfg, a, t, e);
}

/* The UIDs not yet in the state, each with its first-seen time. */
static struct pick *
importuids_classify(const struct importuids_result *r,
    const struct uidstate *st, time_t now, size_t *np, size_t *knownp)
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
importuids_pick_cmp(const void *a, const void *b)
{
	const struct pick *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Records the picks, one journal write per distinct time, and commits. */
static int
importuids_record(struct uidstate *st, struct pick *v, size_t n, struct err *e)
{
	const char **uids = xreallocarray(NULL, n + 1, sizeof(*uids));
	size_t i, j;
	int rc = 0;

	qsort(v, n, sizeof(*v), importuids_pick_cmp);
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
importuids_report(const struct account *a, const struct options *o, size_t n,
    size_t known, size_t invalid)
{
	if (!a->keep && n > 0)
		log_msg(LL_WARN, "%s: keep is false: popfetch will delete "
		    "these %zu messages from the server without fetching "
		    "them", a->name, n);
	printf("popfetch: %s: %s %zu UIDs from %s (%zu already known, %zu "
	    "invalid skipped)%s\n", a->name, o->dry_run ? "would import" :
	    "imported", n, importuids_from_name(o->from), known, invalid,
	    o->dry_run ? "; dry run: nothing written" : "");
	fflush(stdout);
}

/* Records what the file holds for the account; returns a sysexits code. */
static int
importuids_import(const struct config *cfg, const struct account *a,
    const struct options *o, const struct importuids_result *r)
{
	struct target t = { NULL, NULL };
	struct pick *v = NULL;
	size_t n = 0, known = 0;
	struct err e;

	err_clear(&e);
	if (importuids_open_state(cfg, a, o->dry_run, &t, &e) == 0) {
		v = importuids_classify(r, t.st, time(NULL), &n, &known);
		if (o->dry_run || importuids_record(t.st, v, n, &e) == 0)
			importuids_report(a, o, n, known, r->invalid);
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
importuids_import_file(const struct config *cfg, const struct account *a,
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
	if (importuids_read_file(path, p, &e) == 0)
		code = importuids_import(cfg, a, o,
		    importuids_parser_result(p));
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
	if ((code = importuids_parse_args(argc, argv, &o)) != 0)
		return code == 1 ? EX_OK : EX_USAGE;
	if ((code = importuids_load_account(&o, &cfg, &a)) == EX_OK)
		code = importuids_import_file(cfg, a, &o);
	config_free(cfg);
	return code;
}
