/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "err.h"
#include "log.h"
#include "progress.h"
#include "poll.h"
#include "status.h"
#include "xmalloc.h"

/* Set by the SIGTERM/SIGINT handler of a worker (or of a lone run). */
static volatile sig_atomic_t poll_cancel;

/* A running worker process. */
struct worker {
	pid_t		 pid;
	int		 fd;		/* result pipe, read end */
	char		*name;		/* its account */
	char		*host;
};

/* The workers of one pool, and its limits. */
struct pool {
	struct worker	*w;
	size_t		 nw;
	unsigned	 max_parallel;
	unsigned	 max_per_host;
	bool		 quiet;		/* -q: account_opts.quiet */
};

static void
poll_on_term(int sig)
{
	(void)sig;
	poll_cancel = 1;
}

static void
poll_print(const struct account *a, const struct account_result *res)
{
	char line[512];

	account_summary(a->name, res, line, sizeof(line));
	printf("popfetch: %s\n", line);
	fflush(stdout);
}

/* SIGTERM and SIGINT set poll_cancel; HUP and USR1 are ignored. */
static void
poll_worker_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = poll_on_term;	/* no SA_RESTART: waits end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static bool
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

/*
 * Starts a worker for account a. Returns 0, or -1 (logged) when it
 * cannot. In the worker, errors are logged at debug level when demote.
 */
static int
pool_start(struct pool *p, const struct config *cfg, const struct account *a,
    struct account_progress *slot, bool demote)
{
	struct account_opts ao;
	struct account_result res;
	struct worker *w;
	ssize_t n;
	pid_t pid;
	size_t i;
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
		for (i = 0; i < p->nw; i++)
			close(p->w[i].fd);	/* the other workers' pipes */
		poll_worker_signals();
		log_set_demote_errors(demote);
		memset(&ao, 0, sizeof(ao));
		ao.mode = ACCOUNT_FETCH;
		ao.cancel = &poll_cancel;
		ao.progress = slot;
		ao.quiet = p->quiet;
		(void)account_run(cfg, a, &ao, &res);
		n = write(fd[1], &res, sizeof(res));
		_exit(n == (ssize_t)sizeof(res) ? 0 : EX_OSERR);
	}
	close(fd[1]);
	p->w = xreallocarray(p->w, p->nw + 1, sizeof(*p->w));
	w = &p->w[p->nw++];
	w->pid = pid;
	w->fd = fd[0];
	w->name = xstrdup(a->name);
	w->host = xstrdup(a->host);
	return 0;
}

/*
 * Reaps one finished worker if there is one: fills *res and returns its
 * account's name (the caller frees it), or NULL when none has ended.
 */
static char *
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
		return pool_reap(p, res);	/* not ours: a stray child */
	w = p->w[i];
	p->w[i] = p->w[--p->nw];
	r = read(w.fd, res, sizeof(*res));
	close(w.fd);
	free(w.host);
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
	return w.name;
}

static void
pool_signal_all(const struct pool *p, int sig)
{
	size_t i;

	for (i = 0; i < p->nw; i++)
		(void)kill(p->w[i].pid, sig);	/* it may have just ended */
}

/* Blocks the signals the parent takes with sigtimedwait; *old gets the
 * previous mask. */
static void
poll_block(sigset_t *set, sigset_t *old)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigprocmask(SIG_BLOCK, set, old);
}

/* Waits up to ms milliseconds for a blocked signal; 0 for none. */
static int
poll_wait(const sigset_t *set, long ms)
{
	struct timespec ts;
	int sig;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	sig = sigtimedwait(set, NULL, &ts);
	return sig == -1 ? 0 : sig;
}

static void
poll_tick(void *arg)
{
	progress_draw(arg, false);
}

static int
poll_serial(const struct config *cfg, const struct account *const *accts,
    size_t n, const struct poll_opts *po, struct account_progress *slots,
    struct progress *pr)
{
	struct account_opts ao;
	struct account_result res;
	struct sigaction sa, oterm, oint;
	int code = EX_OK;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = poll_on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &oterm);
	sigaction(SIGINT, &sa, &oint);
	/* Accounts are independent: one failing stops no other. */
	for (i = 0; i < n && !poll_cancel; i++) {
		memset(&ao, 0, sizeof(ao));
		ao.mode = po->mode;
		ao.cancel = &poll_cancel;
		ao.quiet = po->quiet;
		if (pr != NULL) {
			ao.progress = &slots[i];
			ao.tick = poll_tick;
			ao.tick_arg = pr;
		}
		code = err_worse(code, account_run(cfg, accts[i], &ao, &res));
		progress_clear(pr);
		if (!po->quiet && po->mode == ACCOUNT_FETCH)
			poll_print(accts[i], &res);
	}
	if (poll_cancel)
		code = err_worse(code, EX_TEMPFAIL);
	sigaction(SIGTERM, &oterm, NULL);
	sigaction(SIGINT, &oint, NULL);
	return code;
}

/* One account's place in a run of poll_once. */
struct once_job {
	const struct account	*acct;
	bool			 started;
	bool			 done;
	struct account_result	 res;
};

static void
once_fill(struct pool *p, const struct config *cfg, struct once_job *jobs,
    size_t n, struct account_progress *slots, bool stopping)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (jobs[i].started || jobs[i].done)
			continue;
		if (stopping) {
			/* Interrupted before its turn: not fetched. */
			jobs[i].done = true;
			jobs[i].res.code = EX_TEMPFAIL;
			continue;
		}
		if (!pool_can_start(p, jobs[i].acct->host))
			continue;
		if (pool_start(p, cfg, jobs[i].acct, slots != NULL ?
		    &slots[i] : NULL, false) == 0)
			jobs[i].started = true;
		else {
			jobs[i].done = true;
			jobs[i].res.code = EX_OSERR;
		}
	}
}

static void
once_collect(struct pool *p, struct once_job *jobs, size_t n,
    struct account_progress *slots)
{
	struct account_result res;
	char *name;
	size_t i;

	while ((name = pool_reap(p, &res)) != NULL) {
		for (i = 0; i < n; i++)
			if (jobs[i].started && !jobs[i].done &&
			    strcmp(jobs[i].acct->name, name) == 0) {
				jobs[i].done = true;
				jobs[i].res = res;
				/* Also when the worker died mid-way. */
				if (slots != NULL)
					slots[i].state = 2;
			}
		free(name);
	}
}

/*
 * Progress slots that worker processes fill in and this one reads: shared
 * memory. NULL when there is to be no display (or no memory for it).
 */
static struct account_progress *
poll_slots(size_t n)
{
	void *m;

	m = mmap(NULL, n * sizeof(struct account_progress),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

int
poll_once(const struct config *cfg, const struct account *const *accts,
    size_t n, const struct poll_opts *po)
{
	struct pool p = { NULL, 0, cfg->max_parallel, cfg->max_per_host,
		po->quiet };
	struct account_progress *slots = NULL;
	struct progress *pr = NULL;
	struct once_job *jobs;
	size_t i, printed = 0;
	bool stopping = false;
	sigset_t set, old;
	int code = EX_OK, sig;

	if (po->progress && po->mode == ACCOUNT_FETCH && n > 0 &&
	    (slots = poll_slots(n)) != NULL)
		pr = progress_new(STDOUT_FILENO, accts, slots, n);
	if (n <= 1 || cfg->max_parallel <= 1 || po->mode != ACCOUNT_FETCH) {
		code = poll_serial(cfg, accts, n, po, slots, pr);
		goto out;
	}
	jobs = xcalloc(n, sizeof(*jobs));
	for (i = 0; i < n; i++)
		jobs[i].acct = accts[i];
	poll_block(&set, &old);
	for (;;) {
		once_fill(&p, cfg, jobs, n, slots, stopping);
		/* Summaries go out in the order given, as soon as they can. */
		for (; printed < n && jobs[printed].done; printed++) {
			code = err_worse(code, jobs[printed].res.code);
			progress_clear(pr);
			if (!po->quiet)
				poll_print(jobs[printed].acct,
				    &jobs[printed].res);
		}
		if (printed == n)
			break;
		if (pr != NULL)
			progress_draw(pr, true);
		sig = poll_wait(&set, pr != NULL ? 200 : 1000);
		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = true;
			pool_signal_all(&p, SIGTERM);
		}
		once_collect(&p, jobs, n, slots);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(p.w);
	free(jobs);
out:
	progress_free(pr);
	if (slots != NULL)
		(void)munmap(slots, n * sizeof(*slots));	/* at exit anyway */
	return code;
}

/* --- the daemon ------------------------------------------------------ */

/*
 * One account's schedule. While a poll runs, mailbox and login describe
 * the settings it was started with (a reload may change the account's);
 * otherwise those of the configuration in use.
 */
struct sched {
	char		*name;
	char		*mailbox;	/* "user@host": LOGIN-DELAY's scope */
	char		*login;		/* login_key(): what failures refer to */
	int64_t		 due;		/* monotonic ms */
	int64_t		 not_before;	/* LOGIN-DELAY: no login sooner */
	int64_t		 started;	/* when the last poll began */
	int64_t		 ended;		/* when the last poll ended; 0: none */
	unsigned	 interval;	/* the interval due was reckoned with */
	unsigned	 failures;	/* in a row */
	bool		 running;
	bool		 again;		/* SIGUSR1 while running */
	bool		 auth_failing;	/* reported once, then quiet */
	bool		 gone;		/* dropped by a reload, still running */
	bool		 reread;	/* reloaded while running (outside secret) */
	int		 last_code;
};

struct daemon {
	const char	*path;
	const char	*state_dir;	/* --state-dir, or NULL */
	struct config	*cfg;
	struct pool	 pool;
	struct sched	*s;
	size_t		 ns;
	int64_t		 watchdog_ms;	/* 0: no watchdog */
	int64_t		 next_watchdog;
	time_t		 last_poll;	/* wall clock, for STATUS */
	bool		 stopping;	/* SIGTERM: no poll comes next */
	const char *const *only;	/* -a: these accounts, or all */
	size_t		 nonly;
};

/* Whether the daemon polls a: not disabled, and named by -a if any. */
static bool
daemon_wanted(const struct daemon *d, const struct account *a)
{
	size_t i;

	if (a->disabled)
		return false;
	for (i = 0; i < d->nonly; i++)
		if (strcmp(d->only[i], a->name) == 0)
			return true;
	return d->nonly == 0;
}

static int64_t
poll_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Up to a tenth of the interval (at most a minute), so accounts at one
 * host do not all connect at the same moment. */
static int64_t
poll_jitter_ms(unsigned interval)
{
	int64_t max = (int64_t)interval * 100;

	if (max > 60000)
		max = 60000;
	return max > 0 ? (int64_t)(random() % max) : 0;
}

/* sd_notify(3)'s datagram, sent by hand: no libsystemd needed. */
static void
poll_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';		/* an abstract socket */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	/* Best effort: systemd may be gone, and that must not stop us. */
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

/* Each account's next poll, for popfetch --status (status.h). */
static void
daemon_next_save(const struct daemon *d)
{
	struct status_next *next;
	int64_t now = poll_now_ms();
	time_t wall = time(NULL);
	size_t i, n = 0;
	struct err e;

	next = xreallocarray(NULL, d->ns ? d->ns : 1, sizeof(*next));
	for (i = 0; i < d->ns; i++) {
		if (d->s[i].gone)
			continue;
		next[n].name = d->s[i].name;
		next[n++].when = d->s[i].running ? 0 : (int64_t)wall +
		    (d->s[i].due > now ? (d->s[i].due - now + 999) / 1000 : 0);
	}
	err_clear(&e);
	/* Before the first poll the state directory may not exist yet. */
	if (status_next_save(d->cfg->state_dir, getpid(), next, n, &e) == -1)
		log_msg(LL_DEBUG, "%s", e.msg);
	free(next);
}

static void
daemon_status(const struct daemon *d)
{
	char msg[512], when[32], failing[256] = "";
	int64_t now = poll_now_ms(), next = -1;
	size_t i, o = 0;
	struct tm tm;

	for (i = 0; i < d->ns; i++) {
		if (d->s[i].gone)
			continue;
		if (!d->s[i].running && (next == -1 || d->s[i].due < next))
			next = d->s[i].due;
		if (d->s[i].last_code != EX_OK && o + 2 < sizeof(failing))
			o += (size_t)snprintf(failing + o, sizeof(failing) - o,
			    "%s%s", o ? " " : "", d->s[i].name);
	}
	if (o >= sizeof(failing))
		strcpy(failing + sizeof(failing) - 4, "...");
	strcpy(when, "never");
	if (d->last_poll != 0 && localtime_r(&d->last_poll, &tm) != NULL)
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	snprintf(msg, sizeof(msg), "STATUS=%zu account%s; last poll %s; next "
	    "in %llds; %s%s", d->cfg->naccounts, d->cfg->naccounts == 1 ? "" :
	    "s", when,
	    next < 0 ? 0LL : (long long)((next - now + 999) / 1000),
	    o ? "failing: " : "all well", failing);
	poll_notify(msg);
	daemon_next_save(d);
}

static struct sched *
daemon_find(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->ns; i++)
		if (strcmp(d->s[i].name, name) == 0)
			return &d->s[i];
	return NULL;
}

/*
 * The settings that decide whether a login works (the secret's source
 * included), as one string: equal strings, equal logins. It holds the
 * password: free it with xfree_secret.
 */
static char *
login_key(const struct account *a)
{
	const char *f[] = { a->host, a->user, a->ca_file, a->fingerprint,
	    a->password, a->password_file, a->password_command,
	    a->oauth2_token_command, a->proxy };
	size_t i, len = 64, o;
	char *k;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		len += f[i] != NULL ? strlen(f[i]) + 24 : 3;
	k = xmalloc(len);
	o = (size_t)snprintf(k, len, "%u %d %d %d", a->port, (int)a->tls,
	    (int)a->auth, (int)a->allow_plaintext);
	/* Length-prefixed: no two lists of fields make the same string. */
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		o += (size_t)(f[i] == NULL ? snprintf(k + o, len - o, " -") :
		    snprintf(k + o, len - o, " %zu:%s", strlen(f[i]), f[i]));
	return k;
}

/* "user@host", host in lower case: whom a LOGIN-DELAY binds. Freed by
 * the caller. */
static char *
mailbox_key(const struct account *a)
{
	char *k = xasprintf("%s@%s", a->user, a->host), *p;

	for (p = strrchr(k, '@') + 1; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return k;
}

static void
sched_clear(struct sched *s)
{
	free(s->name);
	free(s->mailbox);
	xfree_secret(s->login);
	memset(s, 0, sizeof(*s));
}

/* The latest LOGIN-DELAY any schedule but skip knows of for mailbox. */
static int64_t
daemon_mailbox_wait(const struct daemon *d, const char *mailbox,
    const struct sched *skip)
{
	int64_t t = 0;
	size_t i;

	for (i = 0; i < d->ns; i++)
		if (&d->s[i] != skip && strcmp(d->s[i].mailbox, mailbox) == 0 &&
		    d->s[i].not_before > t)
			t = d->s[i].not_before;
	return t;
}

/*
 * True while another poll works on the mailbox of s: one of an account
 * that a reload dropped or renamed, or that had other settings when it
 * started. A second session meanwhile would fetch the same messages, or
 * be refused as [IN-USE].
 */
static bool
daemon_mailbox_busy(const struct daemon *d, const struct sched *s)
{
	size_t i;

	for (i = 0; i < d->ns; i++)
		if (&d->s[i] != s && d->s[i].running &&
		    strcmp(d->s[i].mailbox, s->mailbox) == 0)
			return true;
	return false;
}

/* Seconds to wait after a poll that ended with code, before the next. */
static unsigned
daemon_delay(const struct sched *s, unsigned interval, int code)
{
	unsigned shift, cap;

	if (code == EX_OK)
		return interval;
	/* A refused login will not heal by itself: back off harder. */
	shift = code == EX_NOPERM ? 2 * s->failures : s->failures;
	cap = code == EX_NOPERM ? 6 * 3600 : 3600;
	if (cap < interval)
		cap = interval;
	if (shift > 16 || (uint64_t)interval << shift > cap)
		return cap;
	return interval << shift;
}

/* A new account's schedule: the first poll soon, spread over two
 * seconds, unless the server's LOGIN-DELAY for its mailbox says later. */
static void
sched_init(struct sched *s, const struct account *a, int64_t wait)
{
	s->name = xstrdup(a->name);
	s->mailbox = mailbox_key(a);
	s->login = login_key(a);
	s->interval = a->interval;
	s->not_before = wait;
	s->due = poll_now_ms() + random() % 2000;
	if (s->due < wait)
		s->due = wait;
}

/*
 * An idle account's schedule after a reload (see poll.h): a change of its
 * login settings clears its backoff; the next poll is never later than
 * it was, nor sooner than the LOGIN-DELAY of its (new) mailbox allows.
 */
static void
sched_update(struct sched *s, const struct account *a, int64_t wait)
{
	char *key = login_key(a), *mailbox = mailbox_key(a);
	int64_t now = poll_now_ms(), cand = s->due;
	bool changed, moved, prompt;

	/* An outside secret (file, command, ~/.netrc) may have been fixed:
	 * a reload after a refused login is taken as such a change. */
	changed = strcmp(key, s->login) != 0;
	prompt = s->failures > 0 && (changed ||
	    (a->password == NULL && s->last_code == EX_NOPERM));
	xfree_secret(s->login);
	s->login = key;
	if ((moved = strcmp(mailbox, s->mailbox) != 0)) {
		free(s->mailbox);
		s->mailbox = mailbox;
		s->not_before = wait;	/* the old one was another server's */
	} else
		free(mailbox);
	if (!prompt && !moved && s->interval == a->interval)
		return;
	if (prompt) {
		s->failures = 0;
		s->auth_failing = false;	/* a refusal now is news */
		cand = now + random() % 2000;
	} else if (s->ended != 0)
		cand = s->ended + (int64_t)daemon_delay(s, a->interval,
		    s->last_code) * 1000 + poll_jitter_ms(a->interval);
	if (cand < s->due)
		s->due = cand;
	if (s->due < s->not_before)
		s->due = s->not_before;
	s->interval = a->interval;
	if (prompt)
		log_msg(LL_INFO, "%s: %s: backoff cleared, next poll in %llds",
		    a->name, changed ? "login settings changed" :
		    "the password from outside the file may have changed",
		    (long long)((s->due - now + 999) / 1000));
}

/*
 * A schedule for every account of cfg, keeping what the old ones knew.
 * An account is the same across a reload when its name is.
 */
static void
daemon_schedule(struct daemon *d, const struct config *cfg)
{
	struct sched *ns = xcalloc(cfg->naccounts + d->ns, sizeof(*ns));
	int64_t *wait = xcalloc(cfg->naccounts + 1, sizeof(*wait));
	bool *kept = xcalloc(d->ns + 1, sizeof(*kept));
	const struct account *a;
	size_t i, j, n = 0;
	char *mailbox;

	/* Read before any old schedule changes below. */
	for (i = 0; i < cfg->naccounts; i++) {
		mailbox = mailbox_key(&cfg->accounts[i]);
		wait[i] = daemon_mailbox_wait(d, mailbox, NULL);
		free(mailbox);
	}
	for (i = 0; i < cfg->naccounts; i++) {
		a = &cfg->accounts[i];
		/* One not wanted now is as one no longer configured. */
		if (!daemon_wanted(d, a))
			continue;
		for (j = 0; j < d->ns && strcmp(d->s[j].name, a->name); j++)
			;
		if (j == d->ns) {
			sched_init(&ns[n++], a, wait[i]);
			continue;
		}
		ns[n] = d->s[j];
		kept[j] = true;
		ns[n].gone = false;
		if (!ns[n].running)
			sched_update(&ns[n], a, wait[i]);
		else if (a->password == NULL)
			ns[n].reread = true;
		/* else: the poll's end weighs its settings against these. */
		n++;
	}
	/* Dropped accounts still running: kept until their worker ends. */
	for (j = 0; j < d->ns; j++) {
		if (kept[j])
			continue;
		if (!d->s[j].running) {
			sched_clear(&d->s[j]);
			continue;
		}
		if (!d->s[j].gone)
			log_msg(LL_INFO, "%s: no longer configured; its poll in "
			    "progress ends first", d->s[j].name);
		ns[n] = d->s[j];
		ns[n++].gone = true;
	}
	free(kept);
	free(wait);
	free(d->s);
	d->s = ns;
	d->ns = n;
	d->pool.max_parallel = cfg->max_parallel;
	d->pool.max_per_host = cfg->max_per_host;
}

/* The accounts polled now (those dropped but still running aside). */
static size_t
daemon_polled(const struct daemon *d)
{
	size_t i, n = 0;

	for (i = 0; i < d->ns; i++)
		n += !d->s[i].gone;
	return n;
}

static void
daemon_reload(struct daemon *d)
{
	struct config *ncfg;
	size_t polled;
	struct err e;

	err_clear(&e);
	if (config_load(d->path, d->state_dir, &ncfg, &e) == -1) {
		log_msg(LL_ERROR, "configuration not reloaded, the old one "
		    "stays in use: %s", e.msg);
		return;
	}
	daemon_schedule(d, ncfg);
	if (strcmp(d->cfg->state_dir, ncfg->state_dir) != 0)
		status_next_remove(d->cfg->state_dir);
	config_free(d->cfg);
	d->cfg = ncfg;
	polled = daemon_polled(d);
	log_msg(LL_INFO, "configuration reloaded from %s: %zu account%s%s",
	    d->path, polled, polled == 1 ? "" : "s", polled < ncfg->naccounts ?
	    " (the others are disabled, or not named by -a)" : "");
}

static void
daemon_report(struct sched *s, const struct account_result *res,
    unsigned delay, bool stopping)
{
	enum log_level lv = res->fetched || res->deleted || res->skipped ||
	    res->busy ? LL_INFO : LL_DEBUG;
	char line[512], next[40] = "";

	if (!stopping)
		snprintf(next, sizeof(next), "; next poll in %us", delay);
	account_summary(s->name, res, line, sizeof(line));
	log_msg(lv, "%s%s", line, next);
	if (stopping)
		return;
	if (res->code == EX_NOPERM && !s->auth_failing) {
		log_msg(LL_WARN, "%s: login refused; next try in %us, then "
		    "less and less often, reported again only with -v",
		    s->name, delay);
		s->auth_failing = true;
	} else if (res->code != EX_NOPERM && s->auth_failing) {
		if (res->code == EX_OK)
			log_msg(LL_INFO, "%s: login works again", s->name);
		else
			/* The worker was quiet about errors: say it here. */
			log_msg(LL_ERROR, "%s: %s", s->name, res->error);
		s->auth_failing = false;
	} else if (res->code == EX_OK && s->last_code == EX_NOPERM)
		/* Refused before a reload cleared the backoff. */
		log_msg(LL_INFO, "%s: login works again", s->name);
}

/*
 * After a poll of account a: the settings it ran with become a's, and
 * with them the scope of the server's LOGIN-DELAY. Returns true when the
 * poll failed with login settings that a reload has since changed (or
 * was refused, and a's secret comes from outside and may have been
 * fixed meanwhile): its failure says nothing about the settings now.
 */
static bool
daemon_settle(struct daemon *d, struct sched *s, const struct account *a,
    const struct account_result *res)
{
	char *key = login_key(a), *mailbox = mailbox_key(a);
	bool stale;

	stale = res->code != EX_OK && (strcmp(key, s->login) != 0 ||
	    (s->reread && res->code == EX_NOPERM));
	xfree_secret(s->login);
	s->login = key;
	s->reread = false;
	if (strcmp(mailbox, s->mailbox) == 0) {
		s->not_before = s->started + (int64_t)res->login_delay * 1000;
		free(mailbox);
	} else {
		/* The LOGIN-DELAY learnt was another mailbox's. */
		s->not_before = daemon_mailbox_wait(d, mailbox, s);
		free(s->mailbox);
		s->mailbox = mailbox;
	}
	return stale;
}

static void
daemon_done(struct daemon *d, const char *name,
    const struct account_result *res)
{
	struct sched *s = daemon_find(d, name);
	const struct account *a;
	int64_t now = poll_now_ms();
	unsigned delay;

	if (s == NULL)
		return;
	s->running = false;
	s->ended = now;
	d->last_poll = time(NULL);
	if (s->gone || (a = config_find_account(d->cfg, name)) == NULL) {
		s->gone = true;		/* dropped by a reload */
		return;
	}
	s->interval = a->interval;
	if (daemon_settle(d, s, a, res)) {
		log_msg(LL_INFO, "%s: this poll ran with the settings from "
		    "before the reload; the next one, with the new, soon",
		    s->name);
		s->failures = 0;
		s->auth_failing = false;
		s->due = now + random() % 2000;
	} else {
		s->failures = res->code == EX_OK ? 0 : s->failures + 1;
		delay = daemon_delay(s, a->interval, res->code);
		if (delay < res->login_delay)
			delay = res->login_delay;
		daemon_report(s, res, delay, d->stopping);
		s->due = now + (int64_t)delay * 1000 +
		    poll_jitter_ms(a->interval);
	}
	s->last_code = res->code;
	if (s->again)
		s->due = now;
	if (s->due < s->not_before)
		s->due = s->not_before;
	s->again = false;
}

/* Forgets schedules of dropped accounts whose worker has ended. */
static void
daemon_prune(struct daemon *d)
{
	size_t i = 0;

	while (i < d->ns) {
		if (d->s[i].gone && !d->s[i].running) {
			sched_clear(&d->s[i]);
			d->s[i] = d->s[--d->ns];
		} else
			i++;
	}
}

/* The account of s, when a poll of it may start now as far as the
 * limits and other polls go; else NULL. */
static const struct account *
daemon_startable(const struct daemon *d, const struct sched *s)
{
	const struct account *a;

	if (s->running || s->gone ||
	    (a = config_find_account(d->cfg, s->name)) == NULL ||
	    !pool_can_start(&d->pool, a->host) ||
	    daemon_mailbox_busy(d, s))
		return NULL;
	return a;
}

/* Starts the polls that are due; returns how many. */
static size_t
daemon_start_due(struct daemon *d)
{
	const struct account *a;
	int64_t now = poll_now_ms();
	size_t i, n = 0;

	for (i = 0; i < d->ns; i++) {
		struct sched *s = &d->s[i];

		if (s->due > now || (a = daemon_startable(d, s)) == NULL)
			continue;
		if (pool_start(&d->pool, d->cfg, a, NULL, s->auth_failing) == 0) {
			s->running = true;
			s->started = now;
			n++;
		}
		else
			s->due = now + 60000;	/* fork failed: later */
	}
	return n;
}

/* Milliseconds until something is due: a poll or the watchdog. */
static long
daemon_timeout(const struct daemon *d)
{
	int64_t now = poll_now_ms(), t = now + 60000;
	size_t i;

	for (i = 0; i < d->ns; i++) {
		const struct sched *s = &d->s[i];

		if (s->running || s->gone || s->due >= t)
			continue;
		/* Due but held back by the limits or by another poll of its
		 * mailbox: a worker's end (SIGCHLD) is what frees it, not the
		 * clock. */
		if (s->due <= now && daemon_startable(d, s) == NULL)
			continue;
		t = s->due;
	}
	if (d->watchdog_ms > 0 && d->next_watchdog < t)
		t = d->next_watchdog;
	return t <= now ? 0 : (long)(t - now);
}

static void
daemon_watchdog(struct daemon *d)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid;
	long long v;

	if (usec == NULL || (v = atoll(usec)) <= 0)
		return;
	pid = getenv("WATCHDOG_PID");
	if (pid != NULL && atoll(pid) != (long long)getpid())
		return;
	d->watchdog_ms = v / 2000 > 0 ? v / 2000 : 1;	/* half the period */
	d->next_watchdog = poll_now_ms();
}

/* Takes one signal, reaps what ended; false once it is time to stop. */
static bool
daemon_handle(struct daemon *d, int sig, bool *stopping)
{
	struct account_result res;
	char *name;
	size_t i;

	if ((sig == SIGTERM || sig == SIGINT) && !*stopping) {
		/* Each stops within about a second, keeping what it
		 * stored; nothing it did not store is deleted. */
		log_msg(LL_INFO, "stopping: %zu poll%s in progress %s stopped "
		    "(what %s stored is kept)", d->pool.nw, d->pool.nw == 1 ?
		    "" : "s", d->pool.nw == 1 ? "is" : "are", d->pool.nw == 1 ?
		    "it" : "they");
		poll_notify("STOPPING=1");
		*stopping = d->stopping = true;
		pool_signal_all(&d->pool, SIGTERM);
	} else if (sig == SIGUSR1 && !*stopping) {
		log_msg(LL_INFO, "SIGUSR1: polling every account now");
		for (i = 0; i < d->ns; i++)
			if (d->s[i].running)
				d->s[i].again = true;
			else if (d->s[i].not_before <= poll_now_ms())
				d->s[i].due = poll_now_ms();
			else
				/* The server's LOGIN-DELAY holds even now. */
				d->s[i].due = d->s[i].not_before;
	} else if (sig == SIGHUP && !*stopping) {
		poll_notify("RELOADING=1");
		daemon_reload(d);
		poll_notify("READY=1");
	}
	while ((name = pool_reap(&d->pool, &res)) != NULL) {
		daemon_done(d, name, &res);
		free(name);
	}
	daemon_prune(d);
	return !*stopping || d->pool.nw > 0;
}

int
poll_daemon(const char *path, const char *state_dir, struct config **cfgp,
    const char *const *only, size_t nonly)
{
	struct daemon d;
	bool stopping = false, more;
	sigset_t set, old;
	int sig;

	memset(&d, 0, sizeof(d));
	d.path = path;
	d.state_dir = state_dir;
	d.cfg = *cfgp;
	d.only = only;
	d.nonly = nonly;
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	poll_block(&set, &old);
	daemon_schedule(&d, d.cfg);
	daemon_watchdog(&d);
	log_msg(LL_INFO, "daemon started: %zu account%s from %s%s",
	    d.ns, d.ns == 1 ? "" : "s", path, d.ns < d.cfg->naccounts ?
	    " (the others are disabled, or not named by -a)" : "");
	poll_notify("READY=1");
	daemon_status(&d);
	for (;;) {
		if (!stopping && daemon_start_due(&d) > 0)
			daemon_status(&d);
		if (d.watchdog_ms > 0 && poll_now_ms() >= d.next_watchdog) {
			poll_notify("WATCHDOG=1");
			d.next_watchdog = poll_now_ms() + d.watchdog_ms;
		}
		sig = poll_wait(&set, stopping ? 1000 : daemon_timeout(&d));
		more = daemon_handle(&d, sig, &stopping);
		/* After the signal's work: what ended is rescheduled. */
		if (sig != 0)
			daemon_status(&d);
		if (!more)
			break;
	}
	status_next_remove(d.cfg->state_dir);
	log_msg(LL_INFO, "stopped");
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < d.ns; i++)
		sched_clear(&d.s[i]);
	free(d.s);
	free(d.pool.w);
	*cfgp = d.cfg;
	return EX_OK;
}
