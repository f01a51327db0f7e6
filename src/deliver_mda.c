/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include "deliver_impl.h"

int
deliver_mda_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	(void)d;
	(void)m;
	err_set(e, EX_UNAVAILABLE, "mda: not implemented yet");
	return -1;
}
