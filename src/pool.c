/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "xmalloc.h"

/* A running worker process. */
struct worker {
	pid_t		 pid;
	int		 fd;		/* result pipe, read end */
	char		*name;		/* its account, for messages */
	char		*host;
	void		*owner;
};

struct pool {
	struct worker	*w;
	size_t		 nw;
	unsigned	 max_parallel;
	unsigned	 max_per_host;
};

/* Set by SIGTERM and SIGINT (pool_catch_stop), read by account_run. */
static volatile sig_atomic_t pool_cancel;

struct pool *
pool_new(unsigned max_parallel, unsigned max_per_host)
{
	struct pool *p = xcalloc(1, sizeof(*p));

	pool_set_limits(p, max_parallel, max_per_host);
	return p;
}

void
pool_free(struct pool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nw; i++) {
		close(p->w[i].fd);
		free(p->w[i].name);
		free(p->w[i].host);
	}
	free(p->w);
	free(p);
}

void
pool_set_limits(struct pool *p, unsigned max_parallel, unsigned max_per_host)
{
	p->max_parallel = max_parallel;
	p->max_per_host = max_per_host;
}

size_t
pool_running(const struct pool *p)
{
	return p->nw;
}

bool
pool_can_start(const struct pool *p, const char *host)
{
	unsigned load = 0;
	size_t i;

	if (p->nw >= p->max_parallel)
		return false;
	for (i = 0; i < p->nw; i++)
		if (strcasecmp(p->w[i].host, host) == 0)
			load++;
	return load < p->max_per_host;
}

static void
pool_on_term(int sig)
{
	(void)sig;
	pool_cancel = 1;
}

const volatile sig_atomic_t *
pool_catch_stop(struct sigaction *oterm, struct sigaction *oint)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pool_on_term;	/* no SA_RESTART: waits end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, oterm);
	sigaction(SIGINT, &sa, oint);
	return &pool_cancel;
}

/* In a worker: SIGTERM and SIGINT set pool_cancel; HUP and USR1 are
 * ignored; nothing stays blocked. */
static void
pool_worker_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	(void)pool_catch_stop(NULL, NULL);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The worker's life: one run, its result down the pipe, and exit. */
static void __attribute__((noreturn))
pool_worker(const struct pool *p, const struct config *cfg,
    const struct account *a, const struct pool_job *job, int fd)
{
	struct account_opts ao;
	struct account_result res;
	ssize_t n;
	size_t i;

	for (i = 0; i < p->nw; i++)
		close(p->w[i].fd);	/* the other workers' pipes */
	pool_worker_signals();
	log_set_demote_errors(job->demote);
	memset(&ao, 0, sizeof(ao));
	ao.mode = ACCOUNT_FETCH;
	ao.cancel = &pool_cancel;
	ao.progress = job->slot;
	ao.quiet = job->quiet;
	(void)account_run(cfg, a, &ao, &res);
	n = write(fd, &res, sizeof(res));
	_exit(n == (ssize_t)sizeof(res) ? 0 : EX_OSERR);
}

int
pool_start(struct pool *p, const struct config *cfg, const struct account *a,
    const struct pool_job *job)
{
	struct worker *w;
	pid_t pid;
	int fd[2];

	if (pipe(fd) == -1) {
		log_msg(LL_ERROR, "%s: pipe: %s", a->name, strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		log_msg(LL_ERROR, "%s: fork: %s", a->name, strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		close(fd[0]);
		pool_worker(p, cfg, a, job, fd[1]);
	}
	close(fd[1]);
	p->w = xreallocarray(p->w, p->nw + 1, sizeof(*p->w));
	w = &p->w[p->nw++];
	w->pid = pid;
	w->fd = fd[0];
	w->name = xstrdup(a->name);
	w->host = xstrdup(a->host);
	w->owner = job->owner;
	return 0;
}

void *
pool_reap(struct pool *p, struct account_result *res)
{
	struct worker w;
	ssize_t r;
	size_t i;
	pid_t pid;
	int status;

	if ((pid = waitpid(-1, &status, WNOHANG)) <= 0)
		return NULL;
	for (i = 0; i < p->nw && p->w[i].pid != pid; i++)
		;
	if (i == p->nw)
		return pool_reap(p, res);	/* a stray child */
	w = p->w[i];
	p->w[i] = p->w[--p->nw];
	r = read(w.fd, res, sizeof(*res));
	close(w.fd);
	if (r != (ssize_t)sizeof(*res) || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		memset(res, 0, sizeof(*res));
		res->code = EX_SOFTWARE;
		if (WIFSIGNALED(status))
			log_msg(LL_ERROR, "%s: worker killed by signal %d",
			    w.name, WTERMSIG(status));
		else
			log_msg(LL_ERROR, "%s: worker failed", w.name);
	}
	free(w.name);
	free(w.host);
	return w.owner;
}

void
pool_signal_all(const struct pool *p, int sig)
{
	size_t i;

	for (i = 0; i < p->nw; i++)
		(void)kill(p->w[i].pid, sig);	/* it may have just ended */
}

void
pool_block_signals(sigset_t *set, sigset_t *old)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigprocmask(SIG_BLOCK, set, old);
}

int
pool_wait_signal(const sigset_t *set, long ms)
{
	struct timespec ts;
	int sig;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	sig = sigtimedwait(set, NULL, &ts);
	return sig == -1 ? 0 : sig;
}
