/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "status.h"
#include "xmalloc.h"

#define STATUS_MAGIC	"popfetch-status 1"
#define NEXT_MAGIC	"popfetch-daemon 1"
#define LINE_MAX_LEN	4096

static const char *const note_names[NOTE_KINDS] = {
	"refused", "oversize", "stuck"
};

/* A copy of s with anything not printable ASCII or UTF-8 made '?'. */
static char *
status_printable(const char *s)
{
	char *t = xstrdup(s), *p;

	for (p = t; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return t;
}

void
status_note_add(struct status *st, const char *uid, enum note_kind kind,
    uint64_t size, int64_t since, const char *text)
{
	struct status_note *n;

	st->notes = xreallocarray(st->notes, st->nnotes + 1,
	    sizeof(*st->notes));
	n = &st->notes[st->nnotes++];
	n->uid = xstrdup(uid);
	n->kind = kind;
	n->size = size;
	n->since = since;
	n->text = status_printable(text);
}

struct status_note *
status_note_find(const struct status *st, const char *uid,
    enum note_kind kind)
{
	size_t i;

	for (i = 0; i < st->nnotes; i++)
		if (st->notes[i].kind == kind &&
		    strcmp(st->notes[i].uid, uid) == 0)
			return &st->notes[i];
	return NULL;
}

/* Removes the notes for which drop(note, arg) says so. */
static bool
status_note_filter(struct status *st,
    bool (*drop)(const struct status_note *, const void *), const void *arg)
{
	size_t i, j;

	for (i = j = 0; i < st->nnotes; i++) {
		if (drop(&st->notes[i], arg)) {
			free(st->notes[i].uid);
			free(st->notes[i].text);
		} else
			st->notes[j++] = st->notes[i];
	}
	if (i == j)
		return false;
	st->nnotes = j;
	return true;
}

static bool
note_of(const struct status_note *n, const void *uid)
{
	return strcmp(n->uid, uid) == 0;
}

static bool
note_gone(const struct status_note *n, const void *arg)
{
	return uidmap_get(arg, n->uid) == NULL;
}

bool
status_note_forget(struct status *st, const char *uid)
{
	return status_note_filter(st, note_of, uid);
}

bool
status_note_retain(struct status *st, const struct uidmap *present)
{
	return status_note_filter(st, note_gone, present);
}

void
status_free(struct status *st)
{
	size_t i;

	for (i = 0; i < st->nnotes; i++) {
		free(st->notes[i].uid);
		free(st->notes[i].text);
	}
	free(st->notes);
	memset(st, 0, sizeof(*st));
}

/* "note KIND UID SIZE SINCE TEXT": false when it is not one. */
static bool
status_parse_note(struct status *st, char *rest)
{
	char *kind, *uid, *text, *end;
	unsigned long long size;
	long long since;
	int k;

	kind = strtok_r(rest, " ", &end);
	uid = strtok_r(NULL, " ", &end);
	if (kind == NULL || uid == NULL || !uid_valid(uid, strlen(uid)) ||
	    sscanf(end, "%llu %lld", &size, &since) != 2)
		return false;
	for (k = 0; k < NOTE_KINDS && strcmp(kind, note_names[k]) != 0; k++)
		;
	if (k == NOTE_KINDS)
		return false;
	/* The text is what follows the two numbers. */
	text = end + strspn(end, " ");
	text += strcspn(text, " ");
	text += strspn(text, " ");
	text += strcspn(text, " ");
	text += strspn(text, " ");
	status_note_add(st, uid, (enum note_kind)k, size, since, text);
	return true;
}

int
status_load(struct status *st, const char *dir, const char *account)
{
	char *path = xasprintf("%s/%s.status", dir, account);
	char line[LINE_MAX_LEN], *val;
	long long t, u;
	size_t n;
	FILE *fp;
	bool first = true;
	int saved;

	memset(st, 0, sizeof(*st));
	if ((fp = fopen(path, "re")) == NULL) {
		saved = errno;
		free(path);
		errno = saved;
		return saved == ENOENT ? 0 : -1;
	}
	free(path);
	while (fgets(line, sizeof(line), fp) != NULL) {
		n = strcspn(line, "\n");
		line[n] = '\0';
		if (first) {
			first = false;
			if (strcmp(line, STATUS_MAGIC) != 0)
				break;	/* not ours, or another version */
			continue;
		}
		if ((val = strchr(line, ' ')) == NULL)
			continue;
		*val++ = '\0';
		if (strcmp(line, "run") == 0)
			(void)sscanf(val, "%" SCNd64 " %d %lu %" SCNu64
			    " %lu %lu %lu", &st->last_run, &st->code,
			    &st->fetched, &st->bytes, &st->deleted, &st->kept,
			    &st->skipped);
		else if (strcmp(line, "ok") == 0 && sscanf(val, "%lld", &t) == 1)
			st->last_ok = t;
		else if (strcmp(line, "mail") == 0 &&
		    sscanf(val, "%lld", &t) == 1)
			st->last_mail = t;
		else if (strcmp(line, "failing") == 0 &&
		    sscanf(val, "%lld %lld", &t, &u) == 2) {
			st->failing_since = t;
			st->told = (int)u;
		} else if (strcmp(line, "interrupted") == 0)
			st->interrupted = true;
		else if (strcmp(line, "error") == 0)
			snprintf(st->error, sizeof(st->error), "%s", val);
		else if (strcmp(line, "note") == 0)
			(void)status_parse_note(st, val);
	}
	(void)fclose(fp);	/* read-only */
	return 0;
}

/* Writes path anew: fill writes the whole file, then it is renamed in. */
static int
status_replace(const char *path, void (*fill)(FILE *, const void *),
    const void *arg, struct err *e)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *fp;
	int rc = -1;

	if ((fp = fopen(tmp, "we")) == NULL)
		err_set(e, EX_IOERR, "cannot create %s: %s", tmp,
		    strerror(errno));
	else {
		fill(fp, arg);
		/* Not synced: a file lost to a power cut costs a repeated
		 * warning, and a run pays no extra wait for it. */
		if (fclose(fp) == EOF || rename(tmp, path) == -1) {
			err_set(e, EX_IOERR, "cannot write %s: %s", path,
			    strerror(errno));
			(void)unlink(tmp);
		} else
			rc = 0;
	}
	free(tmp);
	return rc;
}

static void
status_fill(FILE *fp, const void *arg)
{
	const struct status *st = arg;
	char *text;
	size_t i;

	fprintf(fp, STATUS_MAGIC "\nrun %" PRId64 " %d %lu %" PRIu64
	    " %lu %lu %lu\nok %" PRId64 "\nmail %" PRId64 "\nfailing %"
	    PRId64 " %d\n", st->last_run, st->code, st->fetched, st->bytes,
	    st->deleted, st->kept, st->skipped, st->last_ok, st->last_mail,
	    st->failing_since, st->told);
	if (st->interrupted)
		fprintf(fp, "interrupted 1\n");
	if (st->error[0] != '\0') {
		text = status_printable(st->error);
		fprintf(fp, "error %s\n", text);
		free(text);
	}
	for (i = 0; i < st->nnotes; i++)
		fprintf(fp, "note %s %s %" PRIu64 " %" PRId64 " %s\n",
		    note_names[st->notes[i].kind], st->notes[i].uid,
		    st->notes[i].size, st->notes[i].since, st->notes[i].text);
}

int
status_save(const struct status *st, const char *dir, const char *account,
    struct err *e)
{
	char *path = xasprintf("%s/%s.status", dir, account);
	int rc = status_replace(path, status_fill, st, e);

	free(path);
	return rc;
}

struct next_list {
	pid_t				 pid;
	const struct status_next	*next;
	size_t				 n;
};

static void
status_next_fill(FILE *fp, const void *arg)
{
	const struct next_list *l = arg;
	size_t i;

	fprintf(fp, NEXT_MAGIC "\npid %ld\n", (long)l->pid);
	for (i = 0; i < l->n; i++)
		fprintf(fp, "next %" PRId64 " %s\n", l->next[i].when,
		    l->next[i].name);
}

int
status_next_save(const char *dir, pid_t pid, const struct status_next *next,
    size_t n, struct err *e)
{
	struct next_list l = { pid, next, n };
	char *path = xasprintf("%s/daemon.next", dir);
	int rc = status_replace(path, status_next_fill, &l, e);

	free(path);
	return rc;
}

void
status_next_remove(const char *dir)
{
	char *path = xasprintf("%s/daemon.next", dir);

	(void)unlink(path);	/* at worst --status finds a dead pid */
	free(path);
}

int
status_next_find(const char *dir, const char *account, int64_t *when,
    pid_t *pid)
{
	char *path = xasprintf("%s/daemon.next", dir);
	char line[LINE_MAX_LEN];
	long long t;
	long p = 0;
	int n, found = 0;
	FILE *fp;

	fp = fopen(path, "re");
	free(path);
	if (fp == NULL)
		return 0;
	if (fgets(line, sizeof(line), fp) == NULL ||
	    strcmp(line, NEXT_MAGIC "\n") != 0 ||
	    fgets(line, sizeof(line), fp) == NULL ||
	    sscanf(line, "pid %ld", &p) != 1 || p <= 0 ||
	    /* A daemon that died left its file behind. EPERM: alive, as
	     * another user (the system daemon's). */
	    (kill((pid_t)p, 0) == -1 && errno != EPERM)) {
		(void)fclose(fp);	/* read-only */
		return 0;
	}
	while (!found && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "next %lld %n", &t, &n) == 1 &&
		    strcmp(line + n, account) == 0) {
			*when = t;
			*pid = (pid_t)p;
			found = 1;
		}
	}
	(void)fclose(fp);	/* read-only */
	return found;
}

/* "2026-12-07 13:05 (3 min ago)" or "(in 4 min)". */
static void
status_when(char *buf, size_t len, int64_t t, int64_t now)
{
	time_t tt = (time_t)t;
	int64_t d = now - t, a;
	const char *unit;
	struct tm tm;
	size_t o;

	if (localtime_r(&tt, &tm) == NULL ||
	    (o = strftime(buf, len, "%Y-%m-%d %H:%M", &tm)) == 0) {
		snprintf(buf, len, "%" PRId64, t);
		return;
	}
	a = d < 0 ? -d : d;
	if (a < 120)
		unit = "s";
	else if ((a /= 60) < 120)
		unit = " min";
	else if ((a /= 60) < 48)
		unit = " h";
	else {
		a /= 24;
		unit = a == 1 ? " day" : " days";
	}
	snprintf(buf + o, len - o, d < 0 ? " (in %" PRId64 "%s)" :
	    " (%" PRId64 "%s ago)", a, unit);
}

/* "52.3 MiB" and the like. */
static void
status_size(char *buf, size_t len, uint64_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRIu64 " bytes", n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
}

void
status_print(FILE *f, const char *name, const struct status *st,
    int next_known, int64_t next, pid_t pid, int64_t now)
{
	static const char *const label[NOTE_KINDS] = {
		"refused by the delivery target",
		"over max_size, left on the server",
		"left on the server"
	};
	char when[64], size[32];
	size_t i;

	fprintf(f, "%s\n", name);
	if (st->last_run == 0)
		fprintf(f, "  last run:       never\n");
	else {
		status_when(when, sizeof(when), st->last_run, now);
		status_size(size, sizeof(size), st->bytes);
		fprintf(f, "  last run:       %s, %s (exit %d): %lu fetched "
		    "(%s), %lu deleted, %lu kept, %lu skipped\n", when,
		    st->interrupted ? "interrupted" : st->error[0] != '\0' ?
		    "failed" : "ok", st->code,
		    st->fetched, size, st->deleted, st->kept, st->skipped);
	}
	if (st->failing_since != 0) {
		status_when(when, sizeof(when), st->failing_since, now);
		fprintf(f, "  failing since:  %s\n  last error:     %s\n",
		    when, st->error);
	}
	if (st->last_ok != 0) {
		status_when(when, sizeof(when), st->last_ok, now);
		fprintf(f, "  last success:   %s\n", when);
	}
	if (st->last_mail != 0) {
		status_when(when, sizeof(when), st->last_mail, now);
		fprintf(f, "  last new mail:  %s\n", when);
	}
	if (next_known && next == 0)
		fprintf(f, "  next poll:      polling now (daemon pid %ld)\n",
		    (long)pid);
	else if (next_known) {
		status_when(when, sizeof(when), next, now);
		fprintf(f, "  next poll:      %s (daemon pid %ld)\n", when,
		    (long)pid);
	}
	for (i = 0; i < st->nnotes; i++) {
		status_when(when, sizeof(when), st->notes[i].since, now);
		status_size(size, sizeof(size), st->notes[i].size);
		fprintf(f, "  %s: UID %s, %s, since %s: %s\n",
		    label[st->notes[i].kind], st->notes[i].uid, size, when,
		    st->notes[i].text);
	}
}
