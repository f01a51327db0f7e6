/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include "deliver_impl.h"

int
deliver_lmtp_open(struct deliver *d, struct err *e)
{
	(void)d;
	err_set(e, EX_UNAVAILABLE, "lmtp: not implemented yet");
	return -1;
}

void
deliver_lmtp_close(struct deliver *d)
{
	(void)d;
}

int
deliver_lmtp_hand(struct deliver *d, struct maildir_msg *m, struct err *e)
{
	(void)d;
	(void)m;
	err_set(e, EX_UNAVAILABLE, "lmtp: not implemented yet");
	return -1;
}
