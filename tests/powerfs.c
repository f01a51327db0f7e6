/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * powerfs: an in-memory FUSE file system that simulates a power cut, for
 * popfetch's durability tests.
 *
 *	powerfs [-o capacity=BYTES] [FUSE options] MOUNTPOINT
 *
 * Run it in the foreground (-f) and stop it with fusermount3 -u
 * MOUNTPOINT (or SIGTERM to its PID). It needs no backing directory:
 * everything lives in memory, and is lost when it exits.
 *
 * THE MODEL. Each file and directory has a live state (what programs
 * see) and a durable state (what a power cut leaves). Only these make
 * anything durable:
 *
 *   fsync(2) or fdatasync(2) of a file: its data and size become durable
 *	(fsync also its mode, owner and times; fdatasync only the data and
 *	size). It does NOT make the file's name durable in any directory.
 *   fsync(2) of a directory (FUSE's fsyncdir): the directory's list of
 *	entries (name -> inode) becomes durable as a snapshot of its live
 *	list at that moment, and so do its mode, owner and times. Nothing
 *	inside the entries (a file's data, a subdirectory's own entries)
 *	becomes durable with it.
 *
 * Nothing else does: not close(2) (flush, release), not syncfs(2) or
 * sync(2) (the kernel does not pass them to a FUSE file system, so there
 * is nothing to implement: like any FUSE file system's data, ours is
 * not made durable by them), not sync_file_range(2), not O_SYNC.
 *
 * A new inode is born durable with no data (size 0) and its creation
 * mode, but it exists after a power cut only if a durable entry names
 * it. A rename is durable per directory, each directory by its own
 * snapshot: after rename(a/x, b/y), a cut leaves the file as a/x and b/y
 * if only b was fsynced since, under neither name if only a was, as b/y
 * if both were, and as a/x if neither was. The same holds for link,
 * unlink, mkdir, rmdir, symlink and create. This is the harshest model
 * POSIX allows; real file systems (ext4's journal) are often kinder.
 *
 * A POWER CUT ("drop") rebuilds the live tree from the durable one: from
 * the root, each directory reachable through durable entries gets its
 * durable entry list back, each reachable file its durable data, size
 * and attributes. An inode not reachable that way is gone (an open file
 * descriptor to it still works, on an unlinked file). A directory that
 * the durable tree reaches twice (a directory rename made durable in
 * the target only) keeps the first entry found, breadth first; the
 * others are removed. Kill every process that uses the mount (and wait
 * until each is gone: a dying process finishes its FUSE requests) before
 * a drop, as a power cut would.
 *
 * THE CONTROL FILE. /.powerfs at the mount root (not listed by readdir,
 * and it cannot be created, renamed or removed). Write one command a
 * line:
 *	drop		the power cut described above
 *	sync		make everything durable now (a test's baseline)
 *	limit BYTES	the file system is full once the live files hold
 *			BYTES bytes (writes get ENOSPC); 0: no limit
 *	kill-after N	the N-th fsync, fdatasync or fsyncdir from now
 *			(of any file or directory) takes effect, and then
 *			its caller gets SIGKILL before the call returns: it
 *			can do nothing more, so a drop after it dies is a
 *			power cut right after that call; 0 disarms
 *	reset		set the counters below to 0
 * e.g. "echo drop >MOUNTPOINT/.powerfs". An unknown command fails the
 * write with EINVAL. Reading it gives counters, one "name value" a line:
 *	fsync N, fdatasync N, fsyncdir N	calls seen
 *	drops N, syncs N, kills N		commands run, callers killed
 *	armed N					kill-after calls still to go
 *	used N, limit N				bytes held by live files
 *	nodes N					inodes in memory
 *
 * OPTIONS. -o capacity=BYTES is "limit BYTES" from the start. The mount
 * always gets direct_io, entry, attribute and negative timeouts of 0, no
 * writeback cache, no kernel_cache or auto_cache and hard_remove (unlink
 * of an open file is immediate, no .fuse_hidden files), so the kernel
 * never serves data or names that a drop took away; and
 * default_permissions, so the kernel checks modes. Locks (flock, fcntl)
 * are not implemented here: the kernel then keeps them locally, which is
 * right for one mount.
 *
 * One mutex serializes every operation; the default multi-threaded loop
 * is safe. A limit of libfuse's path-based API: fstat(2) of an open but
 * unlinked file fails with ESTALE (read, write, ftruncate, fsync work).
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE	(1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE		(1 << 1)
#endif

#define CTL_NAME	".powerfs"
#define NAME_MAX_LEN	255
#define STATS_MAX	512

struct ent {
	char		*name;
	struct node	*node;
};

struct entlist {
	struct ent	*v;
	size_t		 n, cap;
};

struct attrs {
	mode_t		 mode;
	uid_t		 uid;
	gid_t		 gid;
	struct timespec	 atim, mtim, ctim;
};

struct node {
	struct node	*next, *prev;	/* every node but the control file */
	uint64_t	 ino;
	struct attrs	 a, da;		/* live, durable */
	char		*data;		/* file bytes, or a symlink's target */
	size_t		 size, cap;
	char		*ddata;		/* durable file bytes */
	size_t		 dsize;
	struct entlist	 ents, dents;	/* directory: live, durable */
	unsigned	 nlink;		/* live entries naming it */
	unsigned	 opens;		/* open file handles */
	bool		 mark;
	bool		 ctl;
};

struct pfs {
	pthread_mutex_t	 lock;
	struct node	*root;
	struct node	*nodes;
	struct node	 ctl;
	uint64_t	 next_ino;
	uint64_t	 nnodes;
	uint64_t	 used, limit;
	uint64_t	 n_fsync, n_fdatasync, n_fsyncdir, n_drop, n_sync;
	uint64_t	 n_kill, kill_after;
	bool		 garbage;	/* a node may have become unreachable */
};

struct options {
	char		*capacity;
};

/*
 * Every operation runs between these two: the file system, locked (one
 * mutex serializes every operation), and the same unlocked again, handing
 * back rc, the operation's result.
 */
static struct pfs *
pfs_lock(void)
{
	struct pfs *p = fuse_get_context()->private_data;

	pthread_mutex_lock(&p->lock);
	return p;
}

static int
pfs_unlock(struct pfs *p, int rc)
{
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);

	if (p == NULL) {
		fprintf(stderr, "powerfs: out of memory\n");
		abort();
	}
	return p;
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n == 0 ? 1 : n)) == NULL) {
		fprintf(stderr, "powerfs: out of memory\n");
		abort();
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

static char *
xmemdup(const char *s, size_t n)
{
	return n == 0 ? NULL : memcpy(xmalloc(n), s, n);
}

static struct timespec
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* --- entry lists ----------------------------------------------------- */

static ssize_t
ents_find(const struct entlist *l, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strncmp(l->v[i].name, name, len) == 0 &&
		    l->v[i].name[len] == '\0')
			return (ssize_t)i;
	return -1;
}

static void
ents_add(struct entlist *l, const char *name, struct node *n)
{
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 8 : l->cap * 2;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].name = xstrdup(name);
	l->v[l->n].node = n;
	l->n++;
}

/* Removes entry i, keeping the order of the others. */
static void
ents_del(struct entlist *l, size_t i)
{
	free(l->v[i].name);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(*l->v));
	l->n--;
}

static void
ents_clear(struct entlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static void
ents_copy(struct entlist *dst, const struct entlist *src)
{
	size_t i;

	ents_clear(dst);
	for (i = 0; i < src->n; i++)
		ents_add(dst, src->v[i].name, src->v[i].node);
}

/* --- nodes ----------------------------------------------------------- */

/* A new node owned by uid and gid, in no directory yet. */
static struct node *
node_new(struct pfs *p, mode_t mode, uid_t uid, gid_t gid)
{
	struct node *n = xmalloc(sizeof(*n));

	memset(n, 0, sizeof(*n));
	n->ino = p->next_ino++;
	n->a.mode = mode;
	n->a.uid = uid;
	n->a.gid = gid;
	n->a.atim = n->a.mtim = n->a.ctim = now();
	n->da = n->a;	/* born durable: empty, with its creation mode */
	n->next = p->nodes;
	if (p->nodes != NULL)
		p->nodes->prev = n;
	p->nodes = n;
	p->nnodes++;
	return n;
}

static void
node_free(struct pfs *p, struct node *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		p->nodes = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	if (S_ISREG(n->a.mode))
		p->used -= n->size;
	free(n->data);
	free(n->ddata);
	ents_clear(&n->ents);
	ents_clear(&n->dents);
	free(n);
	p->nnodes--;
}

/* Sets a regular file's live size, zero-filling growth. */
static void
node_resize(struct pfs *p, struct node *n, size_t size)
{
	if (size > n->cap) {
		size_t cap = n->cap < 4096 ? 4096 : n->cap;

		while (cap < size)
			cap = cap > SIZE_MAX / 2 ? size : cap * 2;
		n->data = xrealloc(n->data, cap);
		n->cap = cap;
	}
	if (size > n->size)
		memset(n->data + n->size, 0, size - n->size);
	p->used = p->used - n->size + size;
	n->size = size;
}

static unsigned
node_nlink(const struct node *n)
{
	unsigned k = 2;
	size_t i;

	if (!S_ISDIR(n->a.mode))
		return n->nlink;
	for (i = 0; i < n->ents.n; i++)
		if (S_ISDIR(n->ents.v[i].node->a.mode))
			k++;
	return k;
}

/* The index of directory d's live entry name, or -1. */
static ssize_t
node_find(const struct node *d, const char *name)
{
	return ents_find(&d->ents, name, strlen(name));
}

/*
 * 0 if a new entry name can be made in directory d, else -EEXIST: d has
 * one, or d is the root and name the control file's.
 */
static int
node_name_free(const struct pfs *p, const struct node *d, const char *name)
{
	if (node_find(d, name) != -1 ||
	    (d == p->root && strcmp(name, CTL_NAME) == 0))
		return -EEXIST;
	return 0;
}

/* Makes a regular file's live data and size durable. */
static void
node_sync_data(struct node *n)
{
	free(n->ddata);
	n->ddata = xmemdup(n->data, n->size);
	n->dsize = n->size;
}

/* Frees every node that neither tree reaches and no handle holds. */
static void
gc(struct pfs *p)
{
	struct node *n, *next, **stack;
	size_t sp = 0, i;

	if (!p->garbage)
		return;
	p->garbage = false;
	stack = xmalloc((size_t)(p->nnodes + 1) * sizeof(*stack));
	for (n = p->nodes; n != NULL; n = n->next)
		n->mark = false;
	for (n = p->nodes; n != NULL; n = n->next)
		if (n == p->root || n->opens > 0) {
			n->mark = true;
			stack[sp++] = n;
		}
	while (sp > 0) {
		n = stack[--sp];
		for (i = 0; i < n->ents.n + n->dents.n; i++) {
			struct node *c = i < n->ents.n ? n->ents.v[i].node :
			    n->dents.v[i - n->ents.n].node;

			if (!c->mark) {
				c->mark = true;
				stack[sp++] = c;
			}
		}
	}
	free(stack);
	for (n = p->nodes; n != NULL; n = next) {
		next = n->next;
		if (!n->mark)
			node_free(p, n);
	}
}

/* --- paths ----------------------------------------------------------- */

/* Walks the first len bytes of an absolute path through live entries. */
static int
walk(struct pfs *p, const char *path, size_t len, struct node **np)
{
	struct node *n = p->root;
	const char *s = path, *end = path + len, *e;
	ssize_t i;

	while (s < end) {
		while (s < end && *s == '/')
			s++;
		if (s == end)
			break;
		for (e = s; e < end && *e != '/'; e++)
			;
		if (!S_ISDIR(n->a.mode))
			return -ENOTDIR;
		if ((i = ents_find(&n->ents, s, (size_t)(e - s))) == -1)
			return -ENOENT;
		n = n->ents.v[i].node;
		s = e;
	}
	*np = n;
	return 0;
}

static bool
is_ctl_path(const char *path)
{
	return path != NULL && strcmp(path, "/" CTL_NAME) == 0;
}

static int
resolve(struct pfs *p, const char *path, struct node **np)
{
	if (is_ctl_path(path)) {
		*np = &p->ctl;
		return 0;
	}
	return walk(p, path, strlen(path), np);
}

/* The node of an open handle, else of the path. */
static int
resolve_fi(struct pfs *p, const char *path, struct fuse_file_info *fi,
    struct node **np)
{
	if (fi != NULL && fi->fh != 0) {
		*np = (struct node *)(uintptr_t)fi->fh;
		return 0;
	}
	if (path == NULL)
		return -EBADF;
	return resolve(p, path, np);
}

/*
 * The directory that would hold path, and the last component's name.
 * The control file's name cannot be made, removed or renamed.
 */
static int
parent_of(struct pfs *p, const char *path, struct node **dp,
    const char **namep)
{
	const char *slash = strrchr(path, '/');
	int rc;

	if (slash == NULL || slash[1] == '\0')
		return -EINVAL;
	if (strlen(slash + 1) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	if (is_ctl_path(path))
		return -EPERM;
	if ((rc = walk(p, path, (size_t)(slash - path), dp)) != 0)
		return rc;
	if (!S_ISDIR((*dp)->a.mode))
		return -ENOTDIR;
	*namep = slash + 1;
	return 0;
}

/* --- the power cut --------------------------------------------------- */

static void
restore(struct pfs *p, struct node *n)
{
	n->a = n->da;
	if (!S_ISREG(n->a.mode))
		return;
	p->used -= n->size;
	free(n->data);
	n->data = xmemdup(n->ddata, n->dsize);
	n->size = n->cap = n->dsize;
	p->used += n->size;
}

static void
drop(struct pfs *p)
{
	struct node *n, **queue;
	size_t head = 0, tail = 0, i;

	queue = xmalloc((size_t)(p->nnodes + 1) * sizeof(*queue));
	for (n = p->nodes; n != NULL; n = n->next) {
		n->mark = false;
		n->nlink = 0;
	}
	p->root->mark = true;
	queue[tail++] = p->root;
	while (head < tail) {
		n = queue[head++];
		for (i = 0; i < n->dents.n; ) {
			struct node *c = n->dents.v[i].node;

			if (c->mark && S_ISDIR(c->a.mode)) {
				/* A directory has one name: drop the others. */
				ents_del(&n->dents, i);
				continue;
			}
			if (!c->mark) {
				c->mark = true;
				if (S_ISDIR(c->da.mode))
					queue[tail++] = c;
			}
			c->nlink++;
			i++;
		}
		ents_copy(&n->ents, &n->dents);
	}
	free(queue);
	for (n = p->nodes; n != NULL; n = n->next) {
		if (n->mark)
			restore(p, n);
		else if (S_ISDIR(n->a.mode)) {
			ents_clear(&n->ents);
			ents_clear(&n->dents);
		}
	}
	p->n_drop++;
	p->garbage = true;
	gc(p);
}

static void
sync_all(struct pfs *p)
{
	struct node *n;

	for (n = p->nodes; n != NULL; n = n->next) {
		n->da = n->a;
		if (S_ISDIR(n->a.mode))
			ents_copy(&n->dents, &n->ents);
		else if (S_ISREG(n->a.mode))
			node_sync_data(n);
	}
	p->n_sync++;
}

static int
stats_text(struct pfs *p, char *buf, size_t size)
{
	return snprintf(buf, size,
	    "fsync %" PRIu64 "\nfdatasync %" PRIu64 "\nfsyncdir %" PRIu64 "\n"
	    "drops %" PRIu64 "\nsyncs %" PRIu64 "\nkills %" PRIu64 "\n"
	    "armed %" PRIu64 "\nused %" PRIu64 "\nlimit %" PRIu64 "\n"
	    "nodes %" PRIu64 "\n",
	    p->n_fsync, p->n_fdatasync, p->n_fsyncdir, p->n_drop, p->n_sync,
	    p->n_kill, p->kill_after, p->used, p->limit, p->nnodes);
}

static int
parse_bytes(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': x <<= 10; end++; break;
	case 'm': case 'M': x <<= 20; end++; break;
	case 'g': case 'G': x <<= 30; end++; break;
	}
	if (*end != '\0')
		return -1;
	*v = x;
	return 0;
}

/* One command line of the control file; -EINVAL if unknown. */
static int
command(struct pfs *p, char *line)
{
	size_t n = strlen(line);
	uint64_t v;

	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' ||
	    line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0)
		return 0;
	if (strcmp(line, "drop") == 0)
		drop(p);
	else if (strcmp(line, "sync") == 0)
		sync_all(p);
	else if (strcmp(line, "reset") == 0)
		p->n_fsync = p->n_fdatasync = p->n_fsyncdir = p->n_drop =
		    p->n_sync = p->n_kill = 0;
	else if (strncmp(line, "limit ", 6) == 0 &&
	    parse_bytes(line + 6, &v) == 0)
		p->limit = v;
	else if (strncmp(line, "kill-after ", 11) == 0 &&
	    parse_bytes(line + 11, &v) == 0)
		p->kill_after = v;
	else
		return -EINVAL;
	return 0;
}

static int
ctl_write(struct pfs *p, const char *buf, size_t size)
{
	char *text = xmalloc(size + 1), *line, *save = NULL;
	int rc = 0;

	memcpy(text, buf, size);
	text[size] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL && rc == 0;
	    line = strtok_r(NULL, "\n", &save))
		rc = command(p, line);
	free(text);
	return rc == 0 ? (int)size : rc;
}

/* --- operations ------------------------------------------------------ */

static void
fill_stat(struct pfs *p, const struct node *n, struct stat *st)
{
	char buf[STATS_MAX];

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->a.mode;
	st->st_uid = n->a.uid;
	st->st_gid = n->a.gid;
	st->st_atim = n->a.atim;
	st->st_mtim = n->a.mtim;
	st->st_ctim = n->a.ctim;
	st->st_blksize = 4096;
	if (n->ctl) {
		st->st_nlink = 1;
		st->st_size = stats_text(p, buf, sizeof(buf));
		return;
	}
	st->st_nlink = node_nlink(n);
	st->st_size = S_ISDIR(n->a.mode) ? 4096 : (off_t)n->size;
	st->st_blocks = (st->st_size + 511) / 512;
}

static int
pfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0)
		fill_stat(p, n, st);
	return pfs_unlock(p, rc);
}

static int
pfs_access(const char *path, int mask)
{
	struct pfs *p;
	struct node *n;
	int rc;

	(void)mask;	/* default_permissions: the kernel checks modes */
	p = pfs_lock();
	rc = resolve(p, path, &n);
	return pfs_unlock(p, rc);
}

static int
pfs_readlink(const char *path, char *buf, size_t size)
{
	struct pfs *p;
	struct node *n;
	size_t len;
	int rc;

	if (size == 0)
		return -EINVAL;
	p = pfs_lock();
	if ((rc = resolve(p, path, &n)) == 0 && !S_ISLNK(n->a.mode))
		rc = -EINVAL;
	if (rc == 0) {
		len = n->size < size - 1 ? n->size : size - 1;
		memcpy(buf, n->data, len);
		buf[len] = '\0';
	}
	return pfs_unlock(p, rc);
}

/* Makes a node of the given mode under path's name: *np on success. */
static int
make_node(struct pfs *p, const char *path, mode_t mode, struct node **np)
{
	struct node *d, *n;
	const char *name;
	int rc;

	if ((rc = parent_of(p, path, &d, &name)) != 0 ||
	    (rc = node_name_free(p, d, name)) != 0)
		return rc;
	/* Only inside an operation: outside, libfuse's context is junk. */
	n = node_new(p, mode, fuse_get_context()->uid,
	    fuse_get_context()->gid);
	ents_add(&d->ents, name, n);
	n->nlink = 1;
	d->a.mtim = d->a.ctim = n->a.ctim;
	*np = n;
	return 0;
}

static int
pfs_mkdir(const char *path, mode_t mode)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	rc = make_node(p, path, S_IFDIR | (mode & 07777), &n);
	return pfs_unlock(p, rc);
}

static int
pfs_symlink(const char *target, const char *path)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = make_node(p, path, S_IFLNK | 0777, &n)) == 0) {
		/* A target never changes: it is as durable as the inode. */
		n->size = strlen(target);
		n->data = xmemdup(target, n->size);
	}
	return pfs_unlock(p, rc);
}

/* Removes name from d's live entries; the node may become garbage. */
static void
unlink_ent(struct pfs *p, struct node *d, size_t i)
{
	struct node *n = d->ents.v[i].node;

	ents_del(&d->ents, i);
	if (n->nlink > 0)
		n->nlink--;
	n->a.ctim = d->a.mtim = d->a.ctim = now();
	p->garbage = true;
}

static int
remove_common(const char *path, bool dir)
{
	struct pfs *p;
	struct node *d, *n;
	const char *name;
	ssize_t i;
	int rc;

	p = pfs_lock();
	if ((rc = parent_of(p, path, &d, &name)) != 0)
		goto out;
	if ((i = node_find(d, name)) == -1) {
		rc = -ENOENT;
		goto out;
	}
	n = d->ents.v[i].node;
	if (dir && !S_ISDIR(n->a.mode))
		rc = -ENOTDIR;
	else if (!dir && S_ISDIR(n->a.mode))
		rc = -EISDIR;
	else if (dir && n->ents.n > 0)
		rc = -ENOTEMPTY;
	else {
		unlink_ent(p, d, (size_t)i);
		gc(p);
	}
out:
	return pfs_unlock(p, rc);
}

static int
pfs_unlink(const char *path)
{
	return remove_common(path, false);
}

static int
pfs_rmdir(const char *path)
{
	return remove_common(path, true);
}

/* True if a is b or one of b's ancestors on path (live tree). */
static bool
is_ancestor(struct pfs *p, const struct node *a, const char *path)
{
	const char *s;
	struct node *n;

	for (s = path; (s = strchr(s + 1, '/')) != NULL; )
		if (walk(p, path, (size_t)(s - path), &n) == 0 && n == a)
			return true;
	return walk(p, path, strlen(path), &n) == 0 && n == a;
}

static int
rename_check(struct node *src, struct node *dst)
{
	if (S_ISDIR(src->a.mode)) {
		if (!S_ISDIR(dst->a.mode))
			return -ENOTDIR;
		if (dst->ents.n > 0)
			return -ENOTEMPTY;
	} else if (S_ISDIR(dst->a.mode))
		return -EISDIR;
	return 0;
}

static int
rename_locked(struct pfs *p, const char *from, const char *to,
    unsigned int flags)
{
	struct node *sd, *td, *src, *dst = NULL;
	const char *sname, *tname;
	ssize_t si, ti;
	int rc;

	if ((rc = parent_of(p, from, &sd, &sname)) != 0 ||
	    (rc = parent_of(p, to, &td, &tname)) != 0)
		return rc;
	if ((si = node_find(sd, sname)) == -1)
		return -ENOENT;
	src = sd->ents.v[si].node;
	if (td == p->root && strcmp(tname, CTL_NAME) == 0)
		return -EPERM;
	if ((ti = node_find(td, tname)) != -1)
		dst = td->ents.v[ti].node;
	if ((flags & RENAME_NOREPLACE) && dst != NULL)
		return -EEXIST;
	if ((flags & RENAME_EXCHANGE) && dst == NULL)
		return -ENOENT;
	if (dst == src)
		return 0;	/* the same file: POSIX says do nothing */
	if (S_ISDIR(src->a.mode) && is_ancestor(p, src, to))
		return -EINVAL;
	if ((flags & RENAME_EXCHANGE) && S_ISDIR(dst->a.mode) &&
	    is_ancestor(p, dst, from))
		return -EINVAL;
	if (flags & RENAME_EXCHANGE) {
		sd->ents.v[si].node = dst;
		td->ents.v[ti].node = src;
	} else {
		if (dst != NULL) {
			if ((rc = rename_check(src, dst)) != 0)
				return rc;
			unlink_ent(p, td, (size_t)ti);
		}
		/* Re-find: the unlink may have moved the source entry. */
		si = node_find(sd, sname);
		ents_del(&sd->ents, (size_t)si);
		ents_add(&td->ents, tname, src);
	}
	src->a.ctim = sd->a.mtim = sd->a.ctim = td->a.mtim = td->a.ctim =
	    now();
	gc(p);
	return 0;
}

static int
pfs_rename(const char *from, const char *to, unsigned int flags)
{
	struct pfs *p;
	int rc;

	if (flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	p = pfs_lock();
	rc = rename_locked(p, from, to, flags);
	return pfs_unlock(p, rc);
}

static int
pfs_link(const char *from, const char *to)
{
	struct pfs *p;
	struct node *src, *d;
	const char *name;
	int rc;

	p = pfs_lock();
	if ((rc = resolve(p, from, &src)) != 0 ||
	    (rc = parent_of(p, to, &d, &name)) != 0)
		goto out;
	if (src->ctl || S_ISDIR(src->a.mode)) {
		rc = -EPERM;
		goto out;
	}
	if ((rc = node_name_free(p, d, name)) != 0)
		goto out;
	ents_add(&d->ents, name, src);
	src->nlink++;
	src->a.ctim = d->a.mtim = d->a.ctim = now();
out:
	return pfs_unlock(p, rc);
}

static int
pfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0 && n->ctl)
		rc = -EPERM;
	if (rc == 0) {
		n->a.mode = (n->a.mode & S_IFMT) | (mode & 07777);
		n->a.ctim = now();
	}
	return pfs_unlock(p, rc);
}

static int
pfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0 && n->ctl)
		rc = -EPERM;
	if (rc == 0) {
		if (uid != (uid_t)-1)
			n->a.uid = uid;
		if (gid != (gid_t)-1)
			n->a.gid = gid;
		n->a.ctim = now();
	}
	return pfs_unlock(p, rc);
}

/* How many bytes of growth the capacity allows. */
static uint64_t
room(const struct pfs *p)
{
	if (p->limit == 0)
		return UINT64_MAX;
	return p->used >= p->limit ? 0 : p->limit - p->used;
}

static int
truncate_locked(struct pfs *p, struct node *n, off_t size)
{
	if (n->ctl)
		return 0;	/* "echo drop >.powerfs" truncates first */
	if (S_ISDIR(n->a.mode))
		return -EISDIR;
	if (!S_ISREG(n->a.mode))
		return -EINVAL;
	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > SIZE_MAX / 2)
		return -EFBIG;
	if ((size_t)size > n->size && (size_t)size - n->size > room(p))
		return -ENOSPC;
	node_resize(p, n, (size_t)size);
	n->a.mtim = n->a.ctim = now();
	return 0;
}

static int
pfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0)
		rc = truncate_locked(p, n, size);
	return pfs_unlock(p, rc);
}

static int
pfs_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	struct pfs *p;
	struct timespec t = now();
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0 && !n->ctl) {
		if (tv == NULL)
			n->a.atim = n->a.mtim = t;
		else {
			if (tv[0].tv_nsec != UTIME_OMIT)
				n->a.atim = tv[0].tv_nsec == UTIME_NOW ? t :
				    tv[0];
			if (tv[1].tv_nsec != UTIME_OMIT)
				n->a.mtim = tv[1].tv_nsec == UTIME_NOW ? t :
				    tv[1];
		}
		n->a.ctim = t;
	}
	return pfs_unlock(p, rc);
}

static void
hold(struct node *n, struct fuse_file_info *fi)
{
	n->opens++;
	fi->fh = (uint64_t)(uintptr_t)n;
	fi->direct_io = 1;
	fi->keep_cache = 0;
}

static int
pfs_open(const char *path, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve(p, path, &n)) != 0)
		goto out;
	if (S_ISDIR(n->a.mode)) {
		rc = -EISDIR;
		goto out;
	}
	if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY &&
	    (rc = truncate_locked(p, n, 0)) != 0)
		goto out;
	hold(n, fi);
out:
	return pfs_unlock(p, rc);
}

static int
pfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n, *d;
	const char *name;
	ssize_t i;
	int rc;

	p = pfs_lock();
	if ((rc = parent_of(p, path, &d, &name)) != 0)
		goto out;
	if ((i = node_find(d, name)) != -1) {
		/* The kernel looks first; another thread may have won. */
		n = d->ents.v[i].node;
		if (fi->flags & O_EXCL)
			rc = -EEXIST;
		else if (S_ISDIR(n->a.mode))
			rc = -EISDIR;
		else if (fi->flags & O_TRUNC)
			rc = truncate_locked(p, n, 0);
	} else
		rc = make_node(p, path, S_IFREG | (mode & 07777), &n);
	if (rc == 0)
		hold(n, fi);
out:
	return pfs_unlock(p, rc);
}

static int
pfs_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct pfs *p;
	char text[STATS_MAX];
	const char *src;
	struct node *n;
	size_t len;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) != 0)
		goto out;
	if (n->ctl) {
		len = (size_t)stats_text(p, text, sizeof(text));
		src = text;
	} else {
		len = n->size;
		src = n->data;
	}
	if (off < 0 || (uint64_t)off >= len)
		rc = 0;
	else {
		rc = (int)(len - (size_t)off < size ? len - (size_t)off : size);
		memcpy(buf, src + off, (size_t)rc);
	}
	if (!n->ctl)
		n->a.atim = now();
out:
	return pfs_unlock(p, rc);
}

static int
pfs_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	uint64_t end, grow;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) != 0)
		goto out;
	if (n->ctl) {
		rc = ctl_write(p, buf, size);
		goto out;
	}
	if (off < 0 || (uint64_t)off > SIZE_MAX / 4 || size > INT_MAX) {
		rc = -EFBIG;
		goto out;
	}
	if (size == 0)
		goto out;
	end = (uint64_t)off + size;
	grow = end > n->size ? end - n->size : 0;
	if (grow > room(p)) {
		/* Fill what is left, as a real disk would; then ENOSPC. */
		end = n->size + room(p);
		if (end <= (uint64_t)off) {
			rc = -ENOSPC;
			goto out;
		}
		size = (size_t)(end - (uint64_t)off);
	}
	if (end > n->size)
		node_resize(p, n, (size_t)end);
	memcpy(n->data + off, buf, size);
	n->a.mtim = n->a.ctim = now();
	rc = (int)size;
out:
	return pfs_unlock(p, rc);
}

static int
pfs_statfs(const char *path, struct statvfs *sv)
{
	struct pfs *p;
	uint64_t total, avail;

	(void)path;
	p = pfs_lock();
	total = p->limit != 0 ? p->limit : (uint64_t)1 << 40;
	avail = total > p->used ? total - p->used : 0;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_blocks = total / 4096;
	sv->f_bfree = sv->f_bavail = avail / 4096;
	sv->f_files = 1u << 20;
	sv->f_ffree = sv->f_favail = p->nnodes < sv->f_files ?
	    sv->f_files - p->nnodes : 0;
	sv->f_namemax = NAME_MAX_LEN;
	return pfs_unlock(p, 0);
}

static int
pfs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;	/* close(2) makes nothing durable */
}

static int
pfs_release(const char *path, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n = (struct node *)(uintptr_t)fi->fh;

	(void)path;
	p = pfs_lock();
	if (n != NULL && n->opens > 0 && --n->opens == 0 && !n->ctl) {
		p->garbage = true;
		gc(p);
	}
	return pfs_unlock(p, 0);
}

/*
 * After a durable call took effect: kill its caller if this is the call
 * that kill-after names. The caller waits for our reply, and dies as it
 * gets it, before it can act on it.
 */
static void
maybe_kill(struct pfs *p)
{
	pid_t pid = fuse_get_context()->pid;

	if (p->kill_after == 0 || --p->kill_after > 0)
		return;
	if (pid > 0 && kill(pid, SIGKILL) == 0)
		p->n_kill++;
}

static int
pfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) != 0 || n->ctl)
		goto out;
	if (datasync)
		p->n_fdatasync++;
	else {
		p->n_fsync++;
		n->da = n->a;
	}
	if (S_ISREG(n->a.mode))
		node_sync_data(n);
	maybe_kill(p);
out:
	return pfs_unlock(p, rc);
}

static int
pfs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	p = pfs_lock();
	if ((rc = resolve(p, path, &n)) == 0 && !S_ISDIR(n->a.mode))
		rc = -ENOTDIR;
	if (rc == 0) {
		n->opens++;
		fi->fh = (uint64_t)(uintptr_t)n;
	}
	return pfs_unlock(p, rc);
}

static int
pfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct pfs *p;
	struct stat st;
	struct node *n;
	size_t i;
	int rc;

	(void)off;
	(void)flags;
	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) != 0)
		goto out;
	memset(&st, 0, sizeof(st));
	st.st_ino = n->ino;
	st.st_mode = S_IFDIR;
	if (filler(buf, ".", &st, 0, 0) != 0 ||
	    filler(buf, "..", NULL, 0, 0) != 0)
		goto out;
	for (i = 0; i < n->ents.n; i++) {
		st.st_ino = n->ents.v[i].node->ino;
		st.st_mode = n->ents.v[i].node->a.mode & S_IFMT;
		if (filler(buf, n->ents.v[i].name, &st, 0, 0) != 0)
			break;
	}
	n->a.atim = now();
out:
	return pfs_unlock(p, rc);
}

static int
pfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	return pfs_release(path, fi);
}

static int
pfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct pfs *p;
	struct node *n;
	int rc;

	(void)datasync;	/* entries are the directory's data */
	p = pfs_lock();
	if ((rc = resolve_fi(p, path, fi, &n)) == 0 && !S_ISDIR(n->a.mode))
		rc = -ENOTDIR;
	if (rc == 0) {
		ents_copy(&n->dents, &n->ents);
		n->da = n->a;
		p->n_fsyncdir++;
		maybe_kill(p);
	}
	return pfs_unlock(p, rc);
}

static void *
pfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* Nothing may be cached above us: a drop changes what is true. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	cfg->use_ino = 1;
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE |
	    FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	return fuse_get_context()->private_data;
}

static const struct fuse_operations pfs_ops = {
	.init		= pfs_init,
	.getattr	= pfs_getattr,
	.access		= pfs_access,
	.readlink	= pfs_readlink,
	.mkdir		= pfs_mkdir,
	.symlink	= pfs_symlink,
	.unlink		= pfs_unlink,
	.rmdir		= pfs_rmdir,
	.rename		= pfs_rename,
	.link		= pfs_link,
	.chmod		= pfs_chmod,
	.chown		= pfs_chown,
	.truncate	= pfs_truncate,
	.utimens	= pfs_utimens,
	.open		= pfs_open,
	.create		= pfs_create,
	.read		= pfs_read,
	.write		= pfs_write,
	.statfs		= pfs_statfs,
	.flush		= pfs_flush,
	.release	= pfs_release,
	.fsync		= pfs_fsync,
	.opendir	= pfs_opendir,
	.readdir	= pfs_readdir,
	.releasedir	= pfs_releasedir,
	.fsyncdir	= pfs_fsyncdir,
};

static const struct fuse_opt pfs_opts[] = {
	{ "capacity=%s", offsetof(struct options, capacity), 0 },
	FUSE_OPT_END
};

static void
pfs_free_all(struct pfs *p)
{
	while (p->nodes != NULL)
		node_free(p, p->nodes);
}

int
main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { NULL };
	struct pfs p;
	int rc;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.lock, NULL);
	p.next_ino = 2;
	p.ctl.ctl = true;
	p.ctl.ino = 1u << 30;
	p.ctl.a.mode = S_IFREG | 0600;
	p.ctl.a.atim = p.ctl.a.mtim = p.ctl.a.ctim = now();
	if (fuse_opt_parse(&args, &o, pfs_opts, NULL) == -1)
		return 1;
	if (o.capacity != NULL && parse_bytes(o.capacity, &p.limit) == -1) {
		fprintf(stderr, "powerfs: bad capacity: %s\n", o.capacity);
		return 1;
	}
	free(o.capacity);
	/* The root: owned by whoever mounts, born with durable entries. */
	p.root = node_new(&p, S_IFDIR | 0755, getuid(), getgid());
	p.root->ino = 1;
	p.root->nlink = 1;
	if (fuse_opt_add_arg(&args,
	    "-odefault_permissions,fsname=powerfs,subtype=powerfs") == -1)
		return 1;
	rc = fuse_main(args.argc, args.argv, &pfs_ops, &p);
	fuse_opt_free_args(&args);
	pfs_free_all(&p);
	pthread_mutex_destroy(&p.lock);
	return rc;
}
