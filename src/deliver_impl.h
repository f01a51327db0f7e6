/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_DELIVER_IMPL_H
#define POPFETCH_DELIVER_IMPL_H

/*
 * Inside the deliver module only: the handle, and the targets other than
 * a Maildir, one file each (deliver_mda.c, deliver_mbox.c,
 * deliver_lmtp.c). Each *_hand returns a deliver_result or -1 (deliver.h).
 */
#include "deliver.h"

struct deliver {
	const struct account	*acct;
	enum deliver_kind	 kind;
	struct maildir		*md;		/* target or spool */
	int			 fd;		/* mbox file, LMTP socket */
	struct lmtp		*lmtp;		/* LMTP: the connection */
};

/*
 * The envelope sender of the message open at fd: the address of its
 * Return-Path field, else of its From field, else "MAILER-DAEMON"; only
 * printable characters without spaces. *fromp gets it (the caller
 * frees). Returns 0, or -1 with e filled in (EX_IOERR).
 */
int	deliver_sender(int fd, char **fromp, struct err *e);

/* The same, but *fromp is NULL when the message names no sender. */
int	deliver_sender_or_null(int fd, char **fromp, struct err *e);

int	deliver_mda_hand(struct deliver *, struct maildir_msg *, struct err *);

int	deliver_mbox_open(struct deliver *, struct err *);
void	deliver_mbox_close(struct deliver *);
int	deliver_mbox_hand(struct deliver *, struct maildir_msg *, struct err *);

int	deliver_lmtp_open(struct deliver *, struct err *);
void	deliver_lmtp_close(struct deliver *);
int	deliver_lmtp_hand(struct deliver *, struct maildir_msg *, struct err *);

#endif
