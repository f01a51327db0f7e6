/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_IMPORTUIDS_H
#define POPFETCH_IMPORTUIDS_H

/*
 * popfetch import-uids: reads the UIDs that mpop, getmail6 or fetchmail
 * recorded for an account that keeps its mail on the server (the files
 * and their parser: importuids_formats.h), and records them as delivered
 * in popfetch's state, so that popfetch does not fetch that mail again.
 */

/*
 * The command: popfetch import-uids [-n] [-c file] -a account --from
 * mpop|getmail6|fetchmail [path], with argv[0] "import-uids". Reads and
 * checks the whole file before it opens the account's state, so that a
 * file that is malformed or holds nothing of the account changes
 * nothing; then opens the Maildir and the state as a fetch does
 * (recovering an interrupted run) and records the new UIDs. With -n
 * (--dry-run) nothing is written: a journal left by a run is refused
 * (EX_TEMPFAIL) rather than recovered. Logs its errors, prints one line
 * of summary on standard output, and returns a sysexits code: EX_USAGE
 * (arguments, unknown account, no $HOME), EX_CONFIG or EX_NOINPUT (the
 * configuration), EX_NOINPUT (the file cannot be read), EX_DATAERR
 * (malformed, or nothing of the account in it), EX_TEMPFAIL (another
 * popfetch holds the account), or what the state and Maildir return.
 */
int	importuids_main(int argc, char **argv);

#endif
