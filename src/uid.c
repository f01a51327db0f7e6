/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "uid.h"
#include "xmalloc.h"

struct uidmap {
	struct uidmap_entry	*slots;	/* uid == NULL: empty */
	size_t			 nslots;	/* a power of two */
	size_t			 count;
	uint64_t		 seed;
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

static uint64_t
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
	return h;
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
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nslots; i++)
		free(m->slots[i].uid);
	free(m->slots);
	free(m);
}

size_t
uidmap_count(const struct uidmap *m)
{
	return m->count;
}

static size_t
uidmap_find(const struct uidmap *m, const char *uid)
{
	size_t i = uidmap_hash(m, uid) & (m->nslots - 1);

	while (m->slots[i].uid != NULL && strcmp(m->slots[i].uid, uid) != 0)
		i = (i + 1) & (m->nslots - 1);
	return i;
}

struct uidmap_entry *
uidmap_get(const struct uidmap *m, const char *uid)
{
	size_t i = uidmap_find(m, uid);

	return m->slots[i].uid != NULL ? &m->slots[i] : NULL;
}

static void
uidmap_grow(struct uidmap *m)
{
	struct uidmap_entry *old = m->slots;
	size_t i, j, oldn = m->nslots;

	m->nslots *= 2;
	m->slots = xcalloc(m->nslots, sizeof(*m->slots));
	for (i = 0; i < oldn; i++) {
		if (old[i].uid == NULL)
			continue;
		j = uidmap_find(m, old[i].uid);
		m->slots[j] = old[i];
	}
	free(old);
}

struct uidmap_entry *
uidmap_put(struct uidmap *m, const char *uid, int64_t value)
{
	size_t i;

	/* Keep the load under 1/2 so linear probes stay short. */
	if ((m->count + 1) * 2 > m->nslots)
		uidmap_grow(m);
	i = uidmap_find(m, uid);
	if (m->slots[i].uid == NULL) {
		m->slots[i].uid = xstrdup(uid);
		m->count++;
	}
	m->slots[i].value = value;
	return &m->slots[i];
}

bool
uidmap_del(struct uidmap *m, const char *uid)
{
	size_t i = uidmap_find(m, uid), j, home, mask = m->nslots - 1;

	if (m->slots[i].uid == NULL)
		return false;
	free(m->slots[i].uid);
	m->slots[i].uid = NULL;
	m->count--;
	/* Backward-shift deletion: no tombstones, probes stay exact. */
	for (j = (i + 1) & mask; m->slots[j].uid != NULL; j = (j + 1) & mask) {
		home = uidmap_hash(m, m->slots[j].uid) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].uid = NULL;
			i = j;
		}
	}
	return true;
}

struct uidmap_entry *
uidmap_next(const struct uidmap *m, size_t *pos)
{
	while (*pos < m->nslots) {
		if (m->slots[(*pos)++].uid != NULL)
			return &m->slots[*pos - 1];
	}
	return NULL;
}
