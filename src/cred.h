/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_CRED_H
#define POPFETCH_CRED_H

#include "config.h"
#include "err.h"

/*
 * Obtains the account's password (or bearer token): the configured
 * password itself, the first line of password_file, the first line of
 * the standard output of password_command or oauth2_token_command, or,
 * with none of these, the password of the matching entry of ~/.netrc
 * (see netrc.h; EX_CONFIG when there is none). Returns 0 and stores a newly
 * allocated string in *pw, which the caller must release with
 * xfree_secret(); or -1 with e filled in: EX_CONFIG for a password_file
 * that is missing, empty, or readable by group or others, or a command
 * that cannot be run; EX_TEMPFAIL for a command that fails, prints
 * nothing, or runs longer than timeout_sec seconds (it is then killed).
 * The password never appears in e->msg.
 */
int	cred_password(const struct account *, unsigned timeout_sec, char **pw,
	    struct err *e);

#endif
