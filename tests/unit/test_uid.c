/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uid.h"
#include "tap.h"

#define X10	"xxxxxxxxxx"
#define X70	X10 X10 X10 X10 X10 X10 X10

struct vrow {
	const char	*what;
	const char	*s;
	size_t		 n;
	bool		 valid;
};

#define V(w, s, ok)	{ w, s, sizeof(s) - 1, ok }

static const struct vrow vrows[] = {
	V("one character", "a", true),
	V("lowest allowed, 0x21", "!", true),
	V("highest allowed, 0x7e", "~", true),
	V("typical Dovecot UID", "00000001558e3ec1", true),
	V("every punctuation character", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
	    true),
	V("70 characters", X70, true),
	V("slash is valid (and must never be a path)", "a/b", true),
	V("dot-dot-slash is valid (and must never be a path)", "../../etc",
	    true),
	V("just a dot", ".", true),
	V("colon, as in Maildir flags", "x:2,S", true),
	V("empty", "", false),
	V("71 characters", X70 "x", false),
	V("space inside", "a b", false),
	V("space only", " ", false),
	V("leading space", " a", false),
	V("trailing space", "a ", false),
	V("tab", "a\tb", false),
	V("CR", "a\r", false),
	V("LF", "a\n", false),
	V("CRLF", "ab\r\n", false),
	V("0x01", "\x01", false),
	V("0x1f", "a\x1f", false),
	V("DEL 0x7f", "a\x7f", false),
	V("0x80", "a\x80", false),
	V("0xff", "\xff", false),
	V("UTF-8", "caf\xc3\xa9", false),
	V("NUL inside", "ab\0cd", false),
	V("NUL at the end", "abc\0", false),
	V("NUL only", "\0", false),
};

static void
test_valid(void)
{
	char big[200];
	size_t i;

	for (i = 0; i < sizeof(vrows) / sizeof(vrows[0]); i++)
		tap_ok(uid_valid(vrows[i].s, vrows[i].n) == vrows[i].valid,
		    "uid_valid: %s -> %s", vrows[i].what,
		    vrows[i].valid ? "valid" : "invalid");

	/* n, not a NUL, ends the UID: a valid prefix of longer text. */
	tap_ok(uid_valid("abc def", 3), "uid_valid: first 3 of \"abc def\"");
	tap_ok(!uid_valid("abc def", 4), "uid_valid: first 4 of \"abc def\"");

	/* Every single byte. */
	for (i = 0; i < 256; i++) {
		char c = (char)i;
		bool want = i >= 0x21 && i <= 0x7e;

		if (uid_valid(&c, 1) != want)
			break;
	}
	tap_ok(i == 256, "uid_valid: each single byte 0..255 (first wrong: "
	    "%zu)", i);

	/* Every length up to well past the limit. */
	memset(big, 'u', sizeof(big));
	for (i = 0; i <= sizeof(big); i++)
		if (uid_valid(big, i) != (i >= 1 && i <= UID_MAX))
			break;
	tap_ok(i == sizeof(big) + 1, "uid_valid: lengths 0..200 (first "
	    "wrong: %zu)", i);
	tap_ok(UID_MAX == 70, "UID_MAX is 70");
}

static void
test_basics(void)
{
	struct uidmap *m = uidmap_new();
	struct uidmap_entry *en;
	char key[16];
	size_t pos = 0;

	uidmap_free(NULL);
	tap_ok(uidmap_count(m) == 0, "new map is empty");
	tap_ok(uidmap_get(m, "a") == NULL, "get on an empty map");
	tap_ok(!uidmap_del(m, "a"), "del on an empty map");
	tap_ok(uidmap_next(m, &pos) == NULL, "iteration of an empty map");

	en = uidmap_put(m, "a", 1);
	tap_ok(en != NULL && strcmp(en->uid, "a") == 0 && en->value == 1,
	    "put returns the new entry");
	en = uidmap_get(m, "a");
	tap_ok(en != NULL && strcmp(en->uid, "a") == 0 && en->value == 1,
	    "get finds it");
	en = uidmap_put(m, "a", -5);
	tap_ok(en != NULL && en->value == -5 && uidmap_count(m) == 1,
	    "put of an existing UID updates, count stays 1");
	tap_ok((en = uidmap_get(m, "a")) != NULL && en->value == -5,
	    "get sees the update");
	en = uidmap_put(m, "b", INT64_MAX);
	tap_ok(en != NULL && en->value == INT64_MAX, "INT64_MAX kept");
	en = uidmap_put(m, "c", INT64_MIN);
	tap_ok(en != NULL && en->value == INT64_MIN, "INT64_MIN kept");
	tap_ok(uidmap_count(m) == 3, "count 3");

	/* Keys are copied. */
	snprintf(key, sizeof(key), "%s", "copied");
	uidmap_put(m, key, 7);
	key[0] = 'X';
	tap_ok((en = uidmap_get(m, "copied")) != NULL && en->value == 7 &&
	    en->uid != key, "the map keeps its own copy of the key");
	tap_ok(uidmap_get(m, "Xopied") == NULL, "changing the caller's "
	    "string does not change the key");

	tap_ok(uidmap_del(m, "a"), "del of a present UID -> true");
	tap_ok(!uidmap_del(m, "a"), "del again -> false");
	tap_ok(uidmap_get(m, "a") == NULL, "deleted UID not found");
	tap_ok(uidmap_count(m) == 3, "count 3 after one delete");
	tap_ok((en = uidmap_put(m, "a", 9)) != NULL && en->value == 9 &&
	    uidmap_count(m) == 4, "re-insert after delete");
	uidmap_free(m);
}

/* Near-identical UIDs are never taken for one another. */
static const char *const similar[] = {
	"412", "12", "41", "4120", "1", "2", "0412", "412 ", "4l2",
	"a", "A", "aa", "a/b", "a/b/", "/a/b", "UID1", "UID10", "UID100",
};

static void
test_similar(void)
{
	const size_t n = sizeof(similar) / sizeof(similar[0]);
	struct uidmap *m = uidmap_new();
	struct uidmap_entry *en;
	size_t i, j, wrong = 0;

	uidmap_put(m, "412", 412);
	tap_ok(uidmap_get(m, "12") == NULL, "\"412\" present: \"12\" is "
	    "not found");
	tap_ok(uidmap_get(m, "41") == NULL, "\"412\" present: \"41\" is "
	    "not found");
	tap_ok(uidmap_get(m, "4120") == NULL, "\"412\" present: \"4120\" "
	    "is not found");
	tap_ok(!uidmap_del(m, "12"), "\"412\" present: del \"12\" -> false");
	tap_ok(uidmap_get(m, "412") != NULL, "... and \"412\" is still "
	    "there");
	uidmap_put(m, "12", 12);
	tap_ok(uidmap_del(m, "412") && (en = uidmap_get(m, "12")) != NULL &&
	    en->value == 12, "del \"412\" leaves \"12\"");
	uidmap_free(m);

	/* Each subset pattern: only the inserted ones are found. */
	for (i = 0; i < n; i++) {
		m = uidmap_new();
		for (j = 0; j < n; j++)
			if (j != i)
				uidmap_put(m, similar[j], (int64_t)j);
		for (j = 0; j < n; j++) {
			en = uidmap_get(m, similar[j]);
			if (j == i ? en != NULL : en == NULL ||
			    en->value != (int64_t)j ||
			    strcmp(en->uid, similar[j]) != 0)
				wrong++;
		}
		uidmap_free(m);
	}
	tap_ok(wrong == 0, "similar UIDs, each left out in turn: %zu wrong "
	    "lookups", wrong);
}

#define BIG	100000

static void
key_of(char *k, size_t size, size_t i)
{
	/* Shapes like real UIDs, with shared prefixes and suffixes. */
	snprintf(k, size, "%s%zu", i % 3 == 0 ? "UID" : i % 3 == 1 ? "" :
	    "000000", i);
}

/* Visits every entry; each must be a live one, seen exactly once. */
static void
check_iteration(struct uidmap *m, const char *what, size_t step)
{
	unsigned char *seen = calloc(BIG, 1);
	struct uidmap_entry *en;
	size_t pos = 0, visits = 0, bad = 0, twice = 0, i;

	while ((en = uidmap_next(m, &pos)) != NULL) {
		visits++;
		i = (size_t)en->value;
		if (en->value < 0 || i >= BIG || i % step != 1 % step) {
			bad++;
			continue;
		}
		if (seen[i]++)
			twice++;
	}
	tap_ok(visits == uidmap_count(m) && bad == 0 && twice == 0,
	    "%s: iteration visits %zu entries, count %zu, %zu unexpected, "
	    "%zu twice", what, visits, uidmap_count(m), bad, twice);
	tap_ok(uidmap_next(m, &pos) == NULL, "%s: iteration stays at its "
	    "end", what);
	free(seen);
}

static void
test_big(void)
{
	struct uidmap *m = uidmap_new();
	struct uidmap_entry *en;
	size_t i, missing = 0, wrong = 0, nodel = 0, ghost = 0;
	char k[32];

	for (i = 0; i < BIG; i++) {
		key_of(k, sizeof(k), i);
		en = uidmap_put(m, k, (int64_t)i);
		if (en == NULL || en->value != (int64_t)i)
			wrong++;
	}
	tap_ok(wrong == 0, "100000 puts return their entries");
	tap_ok(uidmap_count(m) == BIG, "count %zu after 100000 puts",
	    uidmap_count(m));
	for (i = 0; i < BIG; i++) {
		key_of(k, sizeof(k), i);
		if ((en = uidmap_get(m, k)) == NULL)
			missing++;
		else if (en->value != (int64_t)i || strcmp(en->uid, k) != 0)
			wrong++;
	}
	tap_ok(missing == 0 && wrong == 0, "all 100000 found with their "
	    "values (%zu missing, %zu wrong)", missing, wrong);
	check_iteration(m, "all 100000", 1);

	for (i = 0; i < BIG; i += 2) {
		key_of(k, sizeof(k), i);
		if (!uidmap_del(m, k))
			nodel++;
	}
	tap_ok(nodel == 0, "50000 deletes each return true");
	tap_ok(uidmap_count(m) == BIG / 2, "count %zu after deleting half",
	    uidmap_count(m));
	missing = wrong = 0;
	for (i = 0; i < BIG; i++) {
		key_of(k, sizeof(k), i);
		en = uidmap_get(m, k);
		if (i % 2 == 0 && en != NULL)
			ghost++;
		else if (i % 2 == 1 && en == NULL)
			missing++;
		else if (i % 2 == 1 && en->value != (int64_t)i)
			wrong++;
	}
	tap_ok(ghost == 0, "deleted ones are not found (%zu found)", ghost);
	tap_ok(missing == 0 && wrong == 0, "the other 50000 are all still "
	    "found (%zu missing, %zu wrong)", missing, wrong);
	check_iteration(m, "the remaining 50000", 2);
	nodel = 0;
	for (i = 0; i < BIG; i += 2) {
		key_of(k, sizeof(k), i);
		if (uidmap_del(m, k))
			nodel++;
	}
	tap_ok(nodel == 0 && uidmap_count(m) == BIG / 2,
	    "deleting them again finds nothing, count unchanged");

	/* Updates in place do not add entries. */
	for (i = 1; i < BIG; i += 2) {
		key_of(k, sizeof(k), i);
		uidmap_put(m, k, (int64_t)i);
	}
	tap_ok(uidmap_count(m) == BIG / 2, "updating the 50000 keeps the "
	    "count");

	/* Then empty it completely, in a different order. */
	nodel = 0;
	for (i = BIG; i-- > 0;) {
		if (i % 2 == 0)
			continue;
		key_of(k, sizeof(k), i);
		if (!uidmap_del(m, k))
			nodel++;
	}
	i = 0;
	tap_ok(nodel == 0 && uidmap_count(m) == 0 &&
	    uidmap_next(m, &i) == NULL, "deleting the rest in reverse "
	    "empties the map");
	uidmap_put(m, "again", 1);
	tap_ok(uidmap_count(m) == 1 && uidmap_get(m, "again") != NULL,
	    "the emptied map still works");
	uidmap_free(m);
}

/* Keys of every valid length, including the 70-character maximum. */
static void
test_long_keys(void)
{
	struct uidmap *m = uidmap_new();
	struct uidmap_entry *en;
	char k[UID_MAX + 1];
	size_t i, wrong = 0;

	for (i = 1; i <= UID_MAX; i++) {
		memset(k, '~', i);
		k[i] = '\0';
		uidmap_put(m, k, (int64_t)i);
	}
	for (i = 1; i <= UID_MAX; i++) {
		memset(k, '~', i);
		k[i] = '\0';
		if ((en = uidmap_get(m, k)) == NULL ||
		    en->value != (int64_t)i)
			wrong++;
	}
	tap_ok(wrong == 0 && uidmap_count(m) == UID_MAX, "keys of 1 to 70 "
	    "characters that prefix one another");
	uidmap_free(m);
}

int
main(void)
{
	test_valid();
	test_basics();
	test_similar();
	test_big();
	test_long_keys();
	return tap_done();
}
