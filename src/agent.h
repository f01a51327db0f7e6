/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef POPFETCH_AGENT_H
#define POPFETCH_AGENT_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/*
 * Runs a command from an argument list, without a shell, in a process
 * group of its own (posix_spawnp: safe beside our threads), with what it
 * writes to standard output and standard error captured.
 */
struct agent_result {
	bool		spawned;	/* false: could not start (err says) */
	bool		timed_out;	/* killed (its group) at the limit */
	int		status;		/* waitpid status, when it ended */
	uint64_t	unread;		/* bytes of input it did not read */
	char		err[512];	/* its output, escaped and cut short */
};

/*
 * Runs argv (argv[0] looked up in PATH) with env_add ("NAME=VALUE"
 * strings, NULL-terminated, may be NULL) added to our environment. Its
 * standard input is the whole of infd from offset 0, through a pipe
 * (infd -1: /dev/null); after timeout seconds it and its process group
 * are killed. *res says how it ended. Returns 0, or -1 with e filled in
 * when something of ours failed (pipe, reading infd: EX_IOERR or
 * EX_OSERR).
 */
int	agent_run(char *const *argv, char *const *env_add, int infd,
	    unsigned timeout, struct agent_result *res, struct err *e);

/*
 * Starts argv (argv[0] looked up in PATH) with env_add added to our
 * environment, standard input in_r, standard output out_w (standard
 * error too with AGENT_STDERR, else ours), every signal unblocked and
 * SIGPIPE at its default, in a process group of its own with
 * AGENT_GROUP. Returns 0 with *pid set, or an errno value: a failed
 * exec is one (ENOENT, EACCES...), reported by posix_spawnp.
 */
#define AGENT_STDERR	0x1
#define AGENT_GROUP	0x2
int	agent_spawn(char *const *argv, char *const *env_add, int in_r,
	    int out_w, unsigned flags, pid_t *pid);

/*
 * Describes how the agent ended, for an error message: "exit 1",
 * "killed by signal 9", "timed out after N s", "could not start", with
 * its output if any. Writes into buf (size bytes) and returns it.
 */
const char *agent_describe(const struct agent_result *, unsigned timeout,
	    char *buf, size_t size);

#endif
