/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_UID_H
#define POPFETCH_UID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 1939: a unique-id is 1 to 70 characters in the range 0x21..0x7E. */
#define UID_MAX	70

/* Returns true when the n bytes at s form a valid RFC 1939 unique-id. */
bool	uid_valid(const char *s, size_t n);

/*
 * A map from UID strings to a 64-bit value, with expected O(1) lookups at
 * any size. The hash is seeded at random per map, so a server choosing
 * UIDs cannot force collisions. Keys are copied: an entry's uid string
 * stays valid (and in place) until uidmap_free, even after uidmap_del;
 * the entry itself may move at the next uidmap_put. Iteration is in
 * insertion order.
 */
struct uidmap;

struct uidmap_entry {
	char		*uid;
	int64_t		 value;
};

struct uidmap	*uidmap_new(void);
void		 uidmap_free(struct uidmap *);	/* NULL is a no-op */
size_t		 uidmap_count(const struct uidmap *);

/* Returns the entry for uid, or NULL. */
struct uidmap_entry *uidmap_get(const struct uidmap *, const char *uid);

/*
 * Inserts uid with value, or updates the value of an existing entry.
 * Returns the entry.
 */
struct uidmap_entry *uidmap_put(struct uidmap *, const char *uid,
	    int64_t value);

/* Removes uid. Returns true if it was there. */
bool		 uidmap_del(struct uidmap *, const char *uid);

/*
 * Iteration: start with *pos = 0; each call returns the next entry, or
 * NULL at the end. The map must not change during an iteration: collect
 * what to delete, then delete it.
 */
struct uidmap_entry *uidmap_next(const struct uidmap *, size_t *pos);

#endif
