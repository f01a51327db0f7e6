/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include "deliver_impl.h"

int
deliver_mbox_open(struct deliver *d, struct err *e)
{
	(void)d;
	err_set(e, EX_UNAVAILABLE, "mbox: not implemented yet");
	return -1;
}

void
deliver_mbox_close(struct deliver *d)
{
	(void)d;
}

int
deliver_mbox_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	(void)d;
	(void)m;
	err_set(e, EX_UNAVAILABLE, "mbox: not implemented yet");
	return -1;
}
