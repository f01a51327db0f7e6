/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_NETRC_H
#define POPFETCH_NETRC_H

#include <stddef.h>

#include "err.h"

/*
 * A reader for ~/.netrc, the password source of last resort.
 *
 * The format, as ftp(1) and curl read it, where they agree; where they
 * differ, curl (which popfetch runs on) decides, and where both are lax
 * this reader refuses what it cannot read with certainty:
 *
 *  - Tokens are separated by blanks (space, tab, CR, LF, FF, VT); CR LF
 *    line ends and a missing final newline are fine. A comma is an
 *    ordinary character (inetutils ftp splits at it, curl does not).
 *  - A token that starts with a double quote runs to the next unescaped
 *    double quote on the same line: \n, \r and \t stand for LF, CR and
 *    TAB, a backslash before any other character stands for that
 *    character (\" and \\). A quote or backslash inside an unquoted
 *    token is an ordinary character (as in curl). The closing quote must
 *    be followed by a blank or the end of the file.
 *  - A line whose first non-blank character is '#' is a comment, and so
 *    is the rest of a line from a token starting with '#' where a keyword
 *    is expected (a value, such as a password, may start with '#').
 *  - Keywords, case-insensitive: "machine NAME" and "default" begin an
 *    entry; within an entry "login NAME", "password STRING" (also
 *    "passwd"), "account STRING" and "port PORT" (the last two are read
 *    and ignored); "macdef NAME" anywhere: its body, from the next line
 *    to the next line that is empty or blank, is skipped (or to the end
 *    of the file). Every keyword but "default" takes the next token as
 *    its value, which must not be an unquoted keyword: "login password"
 *    is an error (a missing value), write login "password" instead.
 *  - Errors: an unknown keyword, a login, password, account or port
 *    outside an entry, a second login or password in one entry, a quoted
 *    string where a keyword belongs, a macdef without a name on its line,
 *    an unterminated quoted string, a NUL byte, a token over 4096 bytes
 *    (after unescaping), a file over 1 MiB. The whole file is checked,
 *    not just up to the entry that matches.
 *
 * Matching: the entries are searched in order. A machine entry matches
 * when its name equals host, compared case-insensitively (ASCII), and it
 * has no login or its login equals user exactly. The first default entry
 * ends the search: it matches when it has no login or its login equals
 * user; entries after it are never used. The first entry that matches
 * decides, whether or not it has a password.
 *
 * Error messages never hold a password or any other token of the file.
 */

/*
 * Looks up the password for user at host in the netrc file at path.
 * Returns 1 and stores a newly allocated password in *password, which the
 * caller must release with xfree_secret(), when an entry matches and has
 * a password (possibly ""); 0 with *password NULL when the file does not
 * exist, no entry matches, or the entry that matches has no password; -1
 * with *password NULL and e filled in on error: EX_CONFIG for a syntax
 * error ("PATH:LINE: message"), a file that is neither a regular file nor
 * a character device, a file that holds a password or account string and
 * can be accessed by group or others or is not owned by the effective
 * user, a password that contains CR or LF (POP3 cannot send it), or a file
 * that cannot be opened; EX_IOERR when reading fails. The file is read
 * through one descriptor: the checks apply to what is read.
 */
int	netrc_lookup(const char *path, const char *host, const char *user,
	    char **password, struct err *e);

/*
 * Returns the netrc file to read, newly allocated (the caller frees it):
 * $NETRC when it is set and not empty, else $HOME/.netrc when $HOME is
 * set and not empty, else .netrc in the home directory of the effective
 * user in the password database; NULL when none of these is known.
 */
char	*netrc_default_path(void);

/*
 * The parser under netrc_lookup, exposed for the unit tests: it takes
 * the file in pieces of any size, so every split point can be tried.
 */
struct netrc_parser;

/*
 * Starts a parser looking for user at host (both borrowed, copied); name
 * is what error messages call the file. Never returns NULL.
 */
struct netrc_parser *netrc_parser_new(const char *name, const char *host,
	    const char *user);

/*
 * Parses the next n bytes. Returns 0, or -1 with e filled in on a syntax
 * error (or when the parser failed before); after -1 only
 * netrc_parser_free may follow.
 */
int	netrc_parser_feed(struct netrc_parser *, const void *, size_t n,
	    struct err *e);

/*
 * Ends the input. Returns 1 with a newly allocated password in *password
 * (free with xfree_secret), 0 with *password NULL when no entry matches or
 * the matching one has no password, or -1 with *password NULL and e filled
 * in (a syntax error at the end of the input, a password with CR or LF).
 * Call at most once.
 */
int	netrc_parser_end(struct netrc_parser *, char **password,
	    struct err *e);

/* Wipes and frees the parser; NULL is a no-op. */
void	netrc_parser_free(struct netrc_parser *);

#endif
