/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "uid.h"
#include "xmalloc.h"

/*
 * Layout, for 100 000 UIDs in a few megabytes: the entries in insertion
 * order (a deleted one keeps its place with uid NULL), their keys packed
 * in an arena of large chunks, and an open-addressing index of (entry
 * number + 1, hash) pairs, at most half full, so a probe compares hashes
 * and touches a key only on a likely match.
 */
#define ARENA_CHUNK	(64 * 1024)

struct slot {
	uint32_t	 idx;		/* entry number + 1; 0: empty */
	uint32_t	 hash;
};

struct chunk {
	struct chunk	*next;
	size_t		 used;
	char		 data[];
};

struct uidmap {
	struct uidmap_entry *entries;
	size_t		 nentries, entsize;
	struct slot	*slots;
	size_t		 nslots;	/* a power of two */
	size_t		 count;		/* live entries */
	struct chunk	*arena;
	uint64_t	 seed;
};

bool
uid_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > UID_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static uint32_t
uidmap_hash(const struct uidmap *m, const char *s)
{
	uint64_t h = m->seed ^ 0xcbf29ce484222325ULL;

	/* FNV-1a over a random seed, then a full avalanche. */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

static char *
uidmap_keep(struct uidmap *m, const char *s)
{
	size_t n = strlen(s) + 1;
	struct chunk *c = m->arena;
	char *p;

	if (c == NULL || ARENA_CHUNK - c->used < n) {
		c = xmalloc(sizeof(*c) + (n > ARENA_CHUNK ? n : ARENA_CHUNK));
		c->next = m->arena;
		c->used = 0;
		m->arena = c;
	}
	p = c->data + c->used;
	memcpy(p, s, n);
	c->used += n;
	return p;
}

struct uidmap *
uidmap_new(void)
{
	struct uidmap *m = xcalloc(1, sizeof(*m));

	m->nslots = 64;
	m->slots = xcalloc(m->nslots, sizeof(*m->slots));
	if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(m->seed))
		/* Only collision resistance suffers; the map still works. */
		m->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	return m;
}

void
uidmap_free(struct uidmap *m)
{
	struct chunk *c, *next;

	if (m == NULL)
		return;
	for (c = m->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(m->entries);
	free(m->slots);
	free(m);
}

size_t
uidmap_count(const struct uidmap *m)
{
	return m->count;
}

/* The slot holding uid, or the empty one where it would go. */
static size_t
uidmap_find(const struct uidmap *m, const char *uid, uint32_t hash)
{
	size_t i = hash & (m->nslots - 1);
	const struct slot *s;

	for (;; i = (i + 1) & (m->nslots - 1)) {
		s = &m->slots[i];
		if (s->idx == 0 || (s->hash == hash &&
		    strcmp(m->entries[s->idx - 1].uid, uid) == 0))
			return i;
	}
}

struct uidmap_entry *
uidmap_get(const struct uidmap *m, const char *uid)
{
	size_t i = uidmap_find(m, uid, uidmap_hash(m, uid));

	return m->slots[i].idx ? &m->entries[m->slots[i].idx - 1] : NULL;
}

static void
uidmap_grow(struct uidmap *m)
{
	struct slot *old = m->slots;
	size_t i, j, oldn = m->nslots;

	m->nslots *= 2;
	m->slots = xcalloc(m->nslots, sizeof(*m->slots));
	for (i = 0; i < oldn; i++) {
		if (old[i].idx == 0)
			continue;
		for (j = old[i].hash & (m->nslots - 1); m->slots[j].idx != 0;
		    j = (j + 1) & (m->nslots - 1))
			;
		m->slots[j] = old[i];
	}
	free(old);
}

struct uidmap_entry *
uidmap_put(struct uidmap *m, const char *uid, int64_t value)
{
	uint32_t hash = uidmap_hash(m, uid);
	struct uidmap_entry *en;
	size_t i;

	i = uidmap_find(m, uid, hash);
	if (m->slots[i].idx != 0) {
		en = &m->entries[m->slots[i].idx - 1];
		en->value = value;
		return en;
	}
	if (m->nentries >= UINT32_MAX - 1)
		abort();	/* four billion UIDs: not a mailbox */
	if (m->nentries == m->entsize) {
		m->entsize = m->entsize ? m->entsize * 2 : 64;
		m->entries = xreallocarray(m->entries, m->entsize,
		    sizeof(*m->entries));
	}
	en = &m->entries[m->nentries++];
	en->uid = uidmap_keep(m, uid);
	en->value = value;
	m->count++;
	/* Keep the index under half full, so that probes stay short. */
	if ((m->count + 1) * 2 > m->nslots) {
		uidmap_grow(m);
		i = uidmap_find(m, uid, hash);
	}
	m->slots[i].idx = (uint32_t)m->nentries;
	m->slots[i].hash = hash;
	return en;
}

bool
uidmap_del(struct uidmap *m, const char *uid)
{
	size_t i, j, home, mask = m->nslots - 1;

	i = uidmap_find(m, uid, uidmap_hash(m, uid));
	if (m->slots[i].idx == 0)
		return false;
	m->entries[m->slots[i].idx - 1].uid = NULL;	/* key stays in arena */
	m->slots[i].idx = 0;
	m->count--;
	/* Backward-shift deletion: no tombstones, probes stay exact. */
	for (j = (i + 1) & mask; m->slots[j].idx != 0; j = (j + 1) & mask) {
		home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].idx = 0;
			i = j;
		}
	}
	return true;
}

struct uidmap_entry *
uidmap_next(const struct uidmap *m, size_t *pos)
{
	while (*pos < m->nentries) {
		if (m->entries[(*pos)++].uid != NULL)
			return &m->entries[*pos - 1];
	}
	return NULL;
}
