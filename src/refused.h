/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_REFUSED_H
#define POPFETCH_REFUSED_H

#include "err.h"
#include "uid.h"

/*
 * The UIDs of messages that the delivery target refused and that were
 * reported once already, in DIR/ACCOUNT.refused (one UID a line), so
 * that a message the agent keeps refusing is reported once, not at
 * every poll. Read and written under the account's state lock.
 */

/*
 * Reads the record into a new map (values unused). A missing or
 * unreadable file gives an empty map: at worst a refusal is reported
 * again. The caller frees it with uidmap_free.
 */
struct uidmap *refused_load(const char *dir, const char *account);

/*
 * Writes the map anew (temporary file, rename; removed when empty).
 * Returns 0, or -1 with e filled in (EX_IOERR).
 */
int	refused_save(const char *dir, const char *account,
	    const struct uidmap *, struct err *e);

#endif
