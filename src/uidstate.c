/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "uidstate.h"
#include "xmalloc.h"

/* Version 2 may name its mailbox on its second line; 1 never does. */
#define STATE_MAGIC	"popfetch-uidstate 2"
#define STATE_MAGIC_V1	"popfetch-uidstate 1"
/* A journal's first line. One without (popfetch 0.1's) starts with a
 * record; another version is refused. */
#define JOURNAL_MAGIC	"popfetch-journal 1"
#define JOURNAL_PREFIX	"popfetch-journal "
#define STATE_MAILBOX	"mailbox "
#define MAILBOX_MAX	160	/* characters of a mailbox's name */
/*
 * Records are "UID TIME", and in version 2 also "UID TIME SIZE" (SIZE as
 * LIST gave it at delivery) and "UID TIME SIZE d" (the server committed
 * the deletion of a message of SIZE octets under UID). The end line has
 * no space, so no record can look like it.
 */
#define STATE_END	"end:"
#define STATE_LINE_MAX	256

/* Pending records: the journal's "P" lines not yet followed by "D". */
struct pending {
	char		**uids;
	char		**names;
	size_t		 n;
};

/* What the state holds of one UID; the map gives its index in recs. */
struct uidrec {
	int64_t		 time;		/* of the first delivery */
	uint64_t	 size;		/* as LIST gave it, when sized */
	bool		 sized;
	bool		 deleted;	/* the server committed a DELE */
};

struct uidstate {
	char		*dir;
	char		*account;
	char		*state_path;
	char		*journal_path;
	char		*mailbox;	/* what the state describes, or NULL */
	bool		 had_file;	/* the state file existed */
	int		 dirfd;
	int		 lockfd;
	int		 jfd;		/* journal, opened on first use */
	bool		 jtorn;		/* it ends in a failed append */
	struct uidmap	*map;		/* uid -> index in recs */
	struct uidrec	*recs;		/* forgotten UIDs' slots stay */
	size_t		 nrecs, recsize;
	struct pending	 open;		/* this run's, still unresolved */
	bool		 dirty;		/* the state file is out of date */
};

static int
uidstate_lock(struct uidstate *s, const char *account, struct err *e)
{
	char *path = xasprintf("%s/%s.lock", s->dir, account);
	int rc = -1;

	s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd == -1)
		err_set(e, EX_CANTCREAT, "cannot open %s: %s", path,
		    strerror(errno));
	else if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0)
		rc = 0;
	else if (errno == EWOULDBLOCK) {
		err_set(e, EX_TEMPFAIL, "%s: another popfetch is fetching "
		    "this account", path);
		rc = UIDSTATE_BUSY;
	} else
		err_set(e, EX_IOERR, "%s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int
uidstate_sync_dir(struct uidstate *s, struct err *e)
{
	if (fsync(s->dirfd) == 0)
		return 0;
	err_set(e, EX_IOERR, "cannot sync %s: %s", s->dir, strerror(errno));
	return -1;
}

/*
 * Splits line in place at single spaces into at most max fields. Returns
 * their number, or 0 when there are more or one is empty.
 */
static size_t
uidstate_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *sp;

	for (;;) {
		if (*line == '\0' || *line == ' ' || n == max)
			return 0;
		f[n++] = line;
		if ((sp = strchr(line, ' ')) == NULL)
			return n;
		*sp = '\0';
		line = sp + 1;
	}
}

static bool
uidstate_parse_time(const char *s, int64_t *t)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return false;
	*t = v;
	return true;
}

/* A size, as LIST may give any 64-bit one. */
static bool
uidstate_parse_size(const char *s, uint64_t *size)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*size = v;
	return true;
}

/*
 * Reads one line without its newline: 1 a line (*complete says whether
 * it had one), 0 the end, -1 a read error or a line too long.
 */
static int
uidstate_getline(FILE *f, char *line, size_t size, bool *complete)
{
	size_t n;

	if (fgets(line, (int)size, f) == NULL)
		return ferror(f) ? -1 : 0;
	n = strlen(line);
	*complete = n > 0 && line[n - 1] == '\n';
	if (*complete)
		line[--n] = '\0';
	else if (n == size - 1)
		return -1;
	return 1;
}

/* A mailbox as uidstate_mailbox makes it: printable, no space. */
static bool
uidstate_mailbox_valid(const char *m)
{
	/* uidstate_mailbox's names hold an '@' (a long one, cut, a '~'
	 * and a hash); "-" stands for none. */
	if (*m == '\0' || strlen(m) > MAILBOX_MAX ||
	    (strchr(m, '@') == NULL && strchr(m, '~') == NULL))
		return false;
	for (; *m != '\0'; m++)
		if (*m < 0x21 || *m > 0x7e)
			return false;
	return true;
}

static struct uidrec *
uidstate_rec(const struct uidstate *s, const char *uid)
{
	const struct uidmap_entry *en = uidmap_get(s->map, uid);

	return en != NULL ? &s->recs[en->value] : NULL;
}

/* Records uid, which must be new, first delivered at t, size unknown. */
static struct uidrec *
uidstate_add(struct uidstate *s, const char *uid, int64_t t)
{
	struct uidrec *rec;

	if (s->nrecs == s->recsize) {
		s->recsize = s->recsize ? s->recsize * 2 : 64;
		s->recs = xreallocarray(s->recs, s->recsize,
		    sizeof(*s->recs));
	}
	rec = &s->recs[s->nrecs];
	memset(rec, 0, sizeof(*rec));
	rec->time = t;
	uidmap_put(s->map, uid, (int64_t)s->nrecs++);
	return rec;
}

/*
 * Records uid as delivered at t (size, when sized). A UID recorded
 * before keeps its record, unless the server committed its deletion:
 * then this is another message under a reused UID, and replaces it.
 */
static void
uidstate_record(struct uidstate *s, const char *uid, int64_t t, bool sized,
    uint64_t size)
{
	struct uidrec *rec = uidstate_rec(s, uid);

	if (rec == NULL)
		rec = uidstate_add(s, uid, t);
	else if (rec->deleted)
		rec->time = t;
	else
		return;
	rec->sized = sized;
	rec->size = sized ? size : 0;
	rec->deleted = false;
}

/* One record (the forms above STATE_END); false if malformed. */
static bool
uidstate_parse_record(struct uidstate *s, char *line, bool v2)
{
	char *f[4];
	size_t n = uidstate_fields(line, f, v2 ? 4 : 2);
	uint64_t size = 0;
	struct uidrec *rec;
	int64_t t;

	if (n < 2 || !uid_valid(f[0], strlen(f[0])) ||
	    !uidstate_parse_time(f[1], &t) || uidmap_get(s->map, f[0]) ||
	    (n >= 3 && !uidstate_parse_size(f[2], &size)) ||
	    (n == 4 && strcmp(f[3], "d") != 0))
		return false;
	rec = uidstate_add(s, f[0], t);
	rec->sized = n >= 3;
	rec->size = size;
	rec->deleted = n == 4;
	return true;
}

/*
 * Line lineno (from 1) of a state file, without its newline, into s:
 * the version, the mailbox, a record or the end line. *v2 (version 2),
 * *count (records so far) and *ended (the end line read) carry what the
 * lines before said. Returns false if the line is malformed.
 */
static bool
uidstate_load_line(struct uidstate *s, char *line, size_t lineno, bool *v2,
    size_t *count, bool *ended)
{
	int64_t t;

	if (lineno == 1) {
		if (strcmp(line, STATE_MAGIC) == 0)
			*v2 = true;
		else if (strcmp(line, STATE_MAGIC_V1) != 0)
			return false;
		return true;
	}
	/* Always there in version 2, so that a UID "mailbox" is
	 * never taken for it: "mailbox -" names none. */
	if (lineno == 2 && *v2) {
		if (strncmp(line, STATE_MAILBOX,
		    strlen(STATE_MAILBOX)) != 0)
			return false;
		if (strcmp(line + strlen(STATE_MAILBOX), "-") == 0)
			return true;
		if (!uidstate_mailbox_valid(line +
		    strlen(STATE_MAILBOX)))
			return false;
		s->mailbox = xstrdup(line + strlen(STATE_MAILBOX));
		return true;
	}
	if (strncmp(line, STATE_END, strlen(STATE_END)) == 0 &&
	    strchr(line, ' ') == NULL) {
		if (!uidstate_parse_time(line + strlen(STATE_END), &t) ||
		    (uint64_t)t != *count)
			return false;
		*ended = true;
		return true;
	}
	if (!uidstate_parse_record(s, line, *v2))
		return false;
	(*count)++;
	return true;
}

/* Loads the state file at path into s (empty s->map, no mailbox yet). */
static int
uidstate_load_path(struct uidstate *s, const char *path, struct err *e)
{
	char line[STATE_LINE_MAX];
	size_t lineno = 0, count = 0;
	bool complete, ended = false, v2 = false;
	FILE *f;
	int r;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		err_set(e, EX_IOERR, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	s->had_file = true;
	while ((r = uidstate_getline(f, line, sizeof(line), &complete)) == 1) {
		lineno++;
		if (!complete || ended ||
		    !uidstate_load_line(s, line, lineno, &v2, &count, &ended))
			break;
	}
	fclose(f);
	if (r == 0 && ended)
		return 0;
	err_set(e, EX_IOERR, "%s:%zu: corrupt state file (%s); refusing to "
	    "guess which mail was already fetched: repair it or restore it "
	    "(moved aside, the next run fetches everything on the server "
	    "again)", path, lineno + (r != 1),
	    r == -1 ? "unreadable or overlong line" :
	    r == 0 ? "truncated: no end line" : "malformed line");
	return -1;
}

static void
pending_add(struct pending *p, const char *uid, const char *name)
{
	p->uids = xreallocarray(p->uids, p->n + 1, sizeof(*p->uids));
	p->names = xreallocarray(p->names, p->n + 1, sizeof(*p->names));
	p->uids[p->n] = xstrdup(uid);
	p->names[p->n] = xstrdup(name);
	p->n++;
}

static void
pending_del(struct pending *p, const char *uid)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (strcmp(p->uids[i], uid) != 0)
			continue;
		free(p->uids[i]);
		free(p->names[i]);
		p->uids[i] = p->uids[p->n - 1];
		p->names[i] = p->names[p->n - 1];
		p->n--;
		return;
	}
}

static void
pending_free(struct pending *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->uids[i]);
		free(p->names[i]);
	}
	free(p->uids);
	free(p->names);
}

/* A Maildir base name of ours: printable, no '/', not hidden. */
static bool
uidstate_name_valid(const char *name)
{
	const char *c;

	if (name[0] == '\0' || name[0] == '.')
		return false;
	for (c = name; *c != '\0'; c++)
		if (*c < 0x21 || *c > 0x7e || *c == '/')
			return false;
	return true;
}

/*
 * Applies one complete journal line, "P UID NAME", "D UID TIME" or
 * "D UID TIME SIZE"; false if it is malformed.
 */
static bool
uidstate_replay_line(struct uidstate *s, char *line, struct pending *p)
{
	char *f[3];
	uint64_t size = 0;
	size_t n;
	int64_t t;

	if (line[0] == '\0' || line[1] != ' ' ||
	    (n = uidstate_fields(line + 2, f, 3)) < 2 ||
	    !uid_valid(f[0], strlen(f[0])))
		return false;
	if (line[0] == 'P' && n == 2 && uidstate_name_valid(f[1])) {
		pending_add(p, f[0], f[1]);
		return true;
	}
	if (line[0] == 'D' && uidstate_parse_time(f[1], &t) &&
	    (n == 2 || uidstate_parse_size(f[2], &size))) {
		uidstate_record(s, f[0], t, n == 3, size);
		pending_del(p, f[0]);
		return true;
	}
	return false;
}

static int
uidstate_replay(struct uidstate *s, struct pending *p, bool *had_journal,
    struct err *e)
{
	char line[STATE_LINE_MAX + 512];
	size_t lineno = 0;
	bool complete = true, malformed = false;
	FILE *f;
	int r;

	*had_journal = false;
	if ((f = fopen(s->journal_path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		err_set(e, EX_IOERR, "cannot read %s: %s", s->journal_path,
		    strerror(errno));
		return -1;
	}
	*had_journal = true;
	while ((r = uidstate_getline(f, line, sizeof(line), &complete)) == 1) {
		lineno++;
		/* A torn last line was never acknowledged: nothing relied
		 * on it, so it is dropped. */
		if (!complete)
			break;
		if (lineno == 1 && strcmp(line, JOURNAL_MAGIC) == 0)
			continue;
		if (lineno == 1 && strncmp(line, JOURNAL_PREFIX,
		    strlen(JOURNAL_PREFIX)) == 0) {
			fclose(f);
			err_set(e, EX_IOERR, "%s: a journal of another version "
			    "of popfetch (\"%s\"); run that version to settle "
			    "it", s->journal_path, line);
			return -1;
		}
		if (!uidstate_replay_line(s, line, p)) {
			malformed = true;
			break;
		}
	}
	fclose(f);
	if (r == 0 || (r == 1 && !complete))
		return 0;
	err_set(e, EX_IOERR, "%s:%zu: corrupt journal (%s); refusing to "
	    "guess which mail was already fetched", s->journal_path,
	    malformed ? lineno : lineno + 1, malformed ? "malformed line" :
	    "unreadable or overlong line");
	return -1;
}

static int
uidstate_recover(struct uidstate *s, uidstate_recover_fn recover, void *arg,
    struct err *e)
{
	struct pending p = { NULL, NULL, 0 };
	bool had_journal, *found = NULL;
	time_t now = time(NULL);
	size_t i;
	int rc = -1;

	if (uidstate_replay(s, &p, &had_journal, e) == -1)
		goto out;
	if (p.n > 0) {
		found = xcalloc(p.n, sizeof(*found));
		if (recover(arg, (const char *const *)p.names, p.n, found,
		    e) == -1)
			goto out;
		/* Its size is not journaled: known only from LIST. */
		for (i = 0; i < p.n; i++)
			if (found[i])
				uidstate_record(s, p.uids[i], now, false, 0);
	}
	s->dirty = had_journal;
	rc = had_journal ? uidstate_commit(s, e) : 0;
out:
	free(found);
	pending_free(&p);
	return rc;
}

static int
uidstate_load(struct uidstate *s, struct err *e)
{
	return uidstate_load_path(s, s->state_path, e);
}

static struct uidstate *
uidstate_new(const char *dir, const char *account)
{
	struct uidstate *s = xcalloc(1, sizeof(*s));

	s->dirfd = s->lockfd = s->jfd = -1;
	s->dir = xstrdup(dir);
	s->account = xstrdup(account);
	s->state_path = xasprintf("%s/%s.state", dir, account);
	s->journal_path = xasprintf("%s/%s.journal", dir, account);
	s->map = uidmap_new();
	return s;
}

/*
 * Where the state of another mailbox of the account waits: DIR/ACCOUNT@
 * HASH.state ('@' is in no account name). The file names its mailbox,
 * so a colliding hash is noticed.
 */
static char *
uidstate_aside_path(const struct uidstate *s, const char *mailbox)
{
	uint64_t h = 0xcbf29ce484222325u;	/* FNV-1a */
	const char *c;

	for (c = mailbox; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3u;
	return xasprintf("%s/%s@%016" PRIx64 ".state", s->dir, s->account, h);
}

/* Empties s: no UIDs, no mailbox, no file read. */
static void
uidstate_forget(struct uidstate *s)
{
	uidmap_free(s->map);
	s->map = uidmap_new();
	s->nrecs = 0;
	free(s->mailbox);
	s->mailbox = NULL;
	s->had_file = false;
}

/*
 * Replaces s's content with the state set aside for mailbox. Returns 1
 * when there was one (its path in *pathp, the caller's to free), 0 when
 * none (or one of another mailbox under a colliding name: s is then
 * empty), -1 with e filled in.
 */
static int
uidstate_load_aside(struct uidstate *s, const char *mailbox, char **pathp,
    struct err *e)
{
	char *path = uidstate_aside_path(s, mailbox);

	uidstate_forget(s);
	if (uidstate_load_path(s, path, e) == -1) {
		free(path);
		return -1;
	}
	if (s->had_file && s->mailbox != NULL &&
	    strcmp(s->mailbox, mailbox) == 0) {
		*pathp = path;
		return 1;
	}
	uidstate_forget(s);
	free(path);
	return 0;
}

int
uidstate_peek(struct uidstate **sp, const char *dir, const char *account,
    const char *mailbox, size_t *pending, bool *other, struct err *e)
{
	struct uidstate *s = uidstate_new(dir, account);
	struct pending p = { NULL, NULL, 0 };
	bool had_journal;
	char *aside = NULL;

	*other = false;
	if (uidstate_load(s, e) == -1 ||
	    uidstate_replay(s, &p, &had_journal, e) == -1)
		goto fail;
	*pending = p.n;
	/* What a run would use: the state of this mailbox (one written
	 * before states named theirs, or only a journal, is adopted). */
	if ((!s->had_file && !had_journal) || (s->mailbox != NULL &&
	    strcmp(s->mailbox, mailbox) != 0)) {
		*other = s->had_file;
		if (uidstate_load_aside(s, mailbox, &aside, e) == -1)
			goto fail;
	}
	free(aside);
	pending_free(&p);
	*sp = s;
	return 0;
fail:
	pending_free(&p);
	uidstate_close(s);
	return -1;
}

int
uidstate_open(struct uidstate **sp, const char *dir, const char *account,
    uidstate_recover_fn recover, void *arg, struct err *e)
{
	struct uidstate *s = uidstate_new(dir, account);
	int rc = -1;

	if (fs_mkdirs(dir, "state directory", e) == -1)
		goto fail;
	if ((s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		err_set(e, EX_CANTCREAT, "cannot open %s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	if ((rc = uidstate_lock(s, account, e)) != 0 ||
	    (rc = uidstate_load(s, e)) == -1 ||
	    (rc = uidstate_recover(s, recover, arg, e)) == -1)
		goto fail;
	*sp = s;
	return 0;
fail:
	uidstate_close(s);
	return rc;
}

/* Renames from over to, then makes the directory durable. */
static int
uidstate_move(struct uidstate *s, const char *from, const char *to,
    struct err *e)
{
	if (rename(from, to) == 0)
		return uidstate_sync_dir(s, e);
	err_set(e, EX_IOERR, "cannot rename %s to %s: %s", from, to,
	    strerror(errno));
	return -1;
}

int
uidstate_use_mailbox(struct uidstate *s, const char *mailbox, char **was,
    struct err *e)
{
	char *aside = NULL;
	int rc;

	*was = NULL;
	if (s->had_file && (s->mailbox == NULL ||
	    strcmp(s->mailbox, mailbox) == 0)) {
		if (s->mailbox != NULL)
			return 0;
		/* Written before states named their mailbox: adopted. */
		s->mailbox = xstrdup(mailbox);
		s->dirty = true;
		return uidstate_commit(s, e);
	}
	if (s->had_file) {
		/* Kept whole, so that switching back fetches nothing again
		 * (the open folded any journal in). */
		if (uidstate_commit(s, e) == -1)
			return -1;
		aside = uidstate_aside_path(s, s->mailbox);
		rc = uidstate_move(s, s->state_path, aside, e);
		free(aside);
		if (rc == -1)
			return -1;
		*was = s->mailbox;
		s->mailbox = NULL;
	}
	/* Also with no state file at all: a run that died between the two
	 * renames left this mailbox's state aside. */
	aside = NULL;
	if ((rc = uidstate_load_aside(s, mailbox, &aside, e)) == 1)
		rc = uidstate_move(s, aside, s->state_path, e);
	else if (rc == 0) {
		s->mailbox = xstrdup(mailbox);
		s->dirty = true;
		rc = uidstate_commit(s, e);
	}
	free(aside);
	s->had_file = rc == 0;
	return rc == -1 ? -1 : *was != NULL;
}

/* Appends str to b, each byte outside 0x21..0x7e, and '%', as %XX. */
static void
uidstate_mailbox_put(struct buf *b, const char *str, bool fold)
{
	char hex[4];
	int c;

	for (; *str != '\0'; str++) {
		c = (unsigned char)*str;
		if (fold && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c < 0x21 || c > 0x7e || c == '%') {
			snprintf(hex, sizeof(hex), "%%%02X", c);
			(void)buf_append(b, hex, 3);	/* uncapped */
		} else {
			hex[0] = (char)c;
			(void)buf_append(b, hex, 1);
		}
	}
}

char *
uidstate_mailbox(const char *user, const char *host)
{
	uint64_t h = 0xcbf29ce484222325u;	/* FNV-1a */
	struct buf b;
	char *id;
	size_t i;

	buf_init(&b, SIZE_MAX / 2);
	uidstate_mailbox_put(&b, user, false);
	(void)buf_append(&b, "@", 1);
	/* Host names are case-insensitive; port and TLS are no part. */
	uidstate_mailbox_put(&b, host, true);
	if (b.len <= MAILBOX_MAX) {
		(void)buf_append(&b, "", 1);
		return b.data;
	}
	/* Too long for a state line: a prefix and a hash of the whole. */
	for (i = 0; i < b.len; i++)
		h = (h ^ (unsigned char)b.data[i]) * 0x100000001b3u;
	id = xasprintf("%.*s~%016" PRIx64, MAILBOX_MAX - 17, b.data, h);
	buf_free(&b);
	return id;
}

void
uidstate_close(struct uidstate *s)
{
	if (s == NULL)
		return;
	if (s->jfd != -1)
		close(s->jfd);
	if (s->lockfd != -1)
		close(s->lockfd);	/* releases the flock */
	if (s->dirfd != -1)
		close(s->dirfd);
	uidmap_free(s->map);
	free(s->recs);
	pending_free(&s->open);
	free(s->dir);
	free(s->account);
	free(s->mailbox);
	free(s->state_path);
	free(s->journal_path);
	free(s);
}

bool
uidstate_has(const struct uidstate *s, const char *uid, time_t *first_seen)
{
	const struct uidrec *rec = uidstate_rec(s, uid);

	if (rec != NULL && first_seen != NULL)
		*first_seen = (time_t)rec->time;
	return rec != NULL;
}

bool
uidstate_was_deleted(const struct uidstate *s, const char *uid,
    uint64_t *size)
{
	const struct uidrec *rec = uidstate_rec(s, uid);

	if (rec == NULL || !rec->deleted)
		return false;
	if (size != NULL)
		*size = rec->size;
	return true;
}

size_t
uidstate_count(const struct uidstate *s)
{
	return uidmap_count(s->map);
}

/* Writes all of text to fd; -1 with errno set on failure. */
static int
uidstate_write_all(int fd, const char *text, size_t len)
{
	ssize_t w;

	while (len > 0) {
		if ((w = write(fd, text, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		text += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Appends text to the journal (a new one starts with its version line)
 * and makes it durable. A failed append (a full disk) is cut off again,
 * so that a later one does not follow a torn line: the journal would
 * read as corrupt.
 */
static int
uidstate_append(struct uidstate *s, const char *text, size_t len,
    struct err *e)
{
	struct stat st;
	off_t start = -1;
	char *head;
	int errnum, rc;

	if (s->jtorn) {
		err_set(e, EX_IOERR, "cannot write %s: it ends in a failed "
		    "write", s->journal_path);
		return -1;
	}
	if (s->jfd == -1) {
		s->jfd = open(s->journal_path, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0600);
		if (s->jfd == -1) {
			err_set(e, EX_CANTCREAT, "cannot open %s: %s",
			    s->journal_path, strerror(errno));
			return -1;
		}
		/* The journal's own name must survive a power cut too. */
		if (uidstate_sync_dir(s, e) == -1)
			return -1;
	}
	if (fstat(s->jfd, &st) == -1)
		goto fail;
	start = st.st_size;
	/* A new journal's version line goes with its first records, in one
	 * write, one sync: torn, it is a journal of nothing acknowledged. */
	if (start == 0) {
		head = xasprintf("%s\n%.*s", JOURNAL_MAGIC, (int)len, text);
		rc = uidstate_write_all(s->jfd, head, strlen(head));
		free(head);
	} else
		rc = uidstate_write_all(s->jfd, text, len);
	if (rc == 0 && fdatasync(s->jfd) == 0)
		return 0;
fail:
	errnum = errno;
	err_errno(e, EX_IOERR, errnum, "cannot write %s: %s", s->journal_path,
	    strerror(errnum));
	/* Shrinking needs no room. Failing that, the torn line must stay
	 * the last one (a replay drops it): nothing more is appended. */
	if (start != -1 && ftruncate(s->jfd, start) == -1)
		s->jtorn = true;
	return -1;
}

int
uidstate_pending(struct uidstate *s, const char *const *uids,
    const char *const *names, size_t n, struct err *e)
{
	struct buf b;
	size_t i;
	int rc = 0;

	buf_init(&b, SIZE_MAX / 2);
	for (i = 0; i < n; i++) {
		char *l = xasprintf("P %s %s\n", uids[i], names[i]);

		(void)buf_append(&b, l, strlen(l)); /* no cap to exceed */
		free(l);
	}
	if (n > 0)
		rc = uidstate_append(s, b.data, b.len, e);
	for (i = 0; rc == 0 && i < n; i++)
		pending_add(&s->open, uids[i], names[i]);
	buf_free(&b);
	return rc;
}

int
uidstate_delivered(struct uidstate *s, const char *const *uids,
    const uint64_t *sizes, size_t n, time_t now, struct err *e)
{
	struct buf b;
	size_t i;
	int rc = 0;

	buf_init(&b, SIZE_MAX / 2);
	for (i = 0; i < n; i++) {
		char *l = sizes != NULL ? xasprintf("D %s %lld %" PRIu64 "\n",
		    uids[i], (long long)now, sizes[i]) : xasprintf("D %s "
		    "%lld\n", uids[i], (long long)now);

		(void)buf_append(&b, l, strlen(l)); /* no cap to exceed */
		free(l);
	}
	if (n > 0 && (rc = uidstate_append(s, b.data, b.len, e)) == 0) {
		for (i = 0; i < n; i++) {
			uidstate_record(s, uids[i], now, sizes != NULL,
			    sizes != NULL ? sizes[i] : 0);
			pending_del(&s->open, uids[i]);
		}
		s->dirty = true;
	}
	buf_free(&b);
	return rc;
}

void
uidstate_deleted(struct uidstate *s, const char *uid, uint64_t size)
{
	struct uidrec *rec = uidstate_rec(s, uid);

	if (rec == NULL || (rec->deleted && rec->size == size))
		return;
	rec->sized = rec->deleted = true;
	rec->size = size;
	s->dirty = true;
}

void
uidstate_retain(struct uidstate *s, const struct uidmap *present)
{
	struct uidmap_entry *en;
	char **gone = NULL;
	size_t pos = 0, n = 0, i;

	while ((en = uidmap_next(s->map, &pos)) != NULL) {
		if (uidmap_get(present, en->uid) != NULL)
			continue;
		gone = xreallocarray(gone, n + 1, sizeof(*gone));
		gone[n++] = xstrdup(en->uid);
	}
	for (i = 0; i < n; i++) {
		uidmap_del(s->map, gone[i]);
		free(gone[i]);
	}
	free(gone);
	if (n > 0)
		s->dirty = true;
}

/*
 * Replaces path atomically with what fill writes: a temporary file,
 * fsynced, renamed over path, and the directory fsynced.
 */
static int
uidstate_replace(struct uidstate *s, const char *path,
    void (*fill)(const struct uidstate *, FILE *), struct err *e)
{
	char *tmp = xasprintf("%s.new", path);
	int fd, rc = -1;
	bool bad;
	FILE *f;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		err_set(e, EX_CANTCREAT, "cannot create %s: %s", tmp,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		goto out;
	}
	fill(s, f);
	bad = fflush(f) != 0 || ferror(f) || fsync(fd) != 0;
	if (fclose(f) != 0)
		bad = true;
	if (bad || rename(tmp, path) != 0) {
		err_errno(e, EX_IOERR, errno, "cannot write %s: %s", tmp,
		    strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = uidstate_sync_dir(s, e);
out:
	free(tmp);
	return rc;
}

static void
uidstate_fill_state(const struct uidstate *s, FILE *f)
{
	const struct uidrec *rec;
	struct uidmap_entry *en;
	size_t pos = 0;

	fprintf(f, "%s\n" STATE_MAILBOX "%s\n", STATE_MAGIC, s->mailbox != NULL ?
	    s->mailbox : "-");
	while ((en = uidmap_next(s->map, &pos)) != NULL) {
		rec = &s->recs[en->value];
		fprintf(f, "%s %" PRId64, en->uid, rec->time);
		if (rec->sized)
			fprintf(f, " %" PRIu64 "%s", rec->size, rec->deleted ?
			    " d" : "");
		fputc('\n', f);
	}
	fprintf(f, STATE_END "%zu\n", uidmap_count(s->map));
}

/* The pending records still unresolved: the next run's recovery needs
 * them (a batch whose move into new/ failed half-way). */
static void
uidstate_fill_pending(const struct uidstate *s, FILE *f)
{
	size_t i;

	fprintf(f, JOURNAL_MAGIC "\n");
	for (i = 0; i < s->open.n; i++)
		fprintf(f, "P %s %s\n", s->open.uids[i], s->open.names[i]);
}

int
uidstate_commit(struct uidstate *s, struct err *e)
{
	if (!s->dirty)
		return 0;
	/* The new state is durable before the journal changes. */
	if (uidstate_replace(s, s->state_path, uidstate_fill_state, e) == -1)
		return -1;
	s->had_file = true;
	if (s->jfd != -1) {
		close(s->jfd);
		s->jfd = -1;
	}
	s->jtorn = false;
	if (s->open.n > 0) {
		if (uidstate_replace(s, s->journal_path, uidstate_fill_pending,
		    e) == -1)
			return -1;
	} else if (unlink(s->journal_path) == -1 && errno != ENOENT) {
		err_set(e, EX_IOERR, "cannot remove %s: %s", s->journal_path,
		    strerror(errno));
		return -1;
	}
	s->dirty = false;
	return 0;
}
