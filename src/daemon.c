/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

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
#include "clock.h"
#include "daemon.h"
#include "err.h"
#include "log.h"
#include "pool.h"
#include "status.h"
#include "xmalloc.h"

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
	struct pool	*pool;
	struct sched	**s;		/* each its own allocation: a
					   worker's owner */
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

/* Up to a tenth of the interval (at most a minute), so accounts at one
 * host do not all connect at the same moment. */
static int64_t
daemon_jitter_ms(unsigned interval)
{
	int64_t max = (int64_t)interval * 100;

	if (max > 60000)
		max = 60000;
	return max > 0 ? (int64_t)(random() % max) : 0;
}

/* sd_notify(3)'s datagram, sent by hand: no libsystemd needed. */
static void
daemon_notify(const char *msg)
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
	int64_t now = clock_ms();
	time_t wall = time(NULL);
	size_t i, n = 0;
	struct err e;

	next = xreallocarray(NULL, d->ns ? d->ns : 1, sizeof(*next));
	for (i = 0; i < d->ns; i++) {
		if (d->s[i]->gone)
			continue;
		next[n].name = d->s[i]->name;
		next[n++].when = d->s[i]->running ? 0 : (int64_t)wall +
		    (d->s[i]->due > now ? (d->s[i]->due - now + 999) / 1000 : 0);
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
	int64_t now = clock_ms(), next = -1;
	size_t i, o = 0;
	struct tm tm;

	for (i = 0; i < d->ns; i++) {
		if (d->s[i]->gone)
			continue;
		if (!d->s[i]->running && (next == -1 || d->s[i]->due < next))
			next = d->s[i]->due;
		if (d->s[i]->last_code != EX_OK && o + 2 < sizeof(failing))
			o += (size_t)snprintf(failing + o, sizeof(failing) - o,
			    "%s%s", o ? " " : "", d->s[i]->name);
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
	daemon_notify(msg);
	daemon_next_save(d);
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
sched_free(struct sched *s)
{
	free(s->name);
	free(s->mailbox);
	xfree_secret(s->login);
	free(s);
}

/* The latest LOGIN-DELAY any schedule but skip knows of for mailbox. */
static int64_t
daemon_mailbox_wait(const struct daemon *d, const char *mailbox,
    const struct sched *skip)
{
	int64_t t = 0;
	size_t i;

	for (i = 0; i < d->ns; i++)
		if (d->s[i] != skip && strcmp(d->s[i]->mailbox, mailbox) == 0 &&
		    d->s[i]->not_before > t)
			t = d->s[i]->not_before;
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
		if (d->s[i] != s && d->s[i]->running &&
		    strcmp(d->s[i]->mailbox, s->mailbox) == 0)
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
static struct sched *
sched_new(const struct account *a, int64_t wait)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->name = xstrdup(a->name);
	s->mailbox = mailbox_key(a);
	s->login = login_key(a);
	s->interval = a->interval;
	s->not_before = wait;
	s->due = clock_ms() + random() % 2000;
	if (s->due < wait)
		s->due = wait;
	return s;
}

/*
 * An idle account's schedule after a reload (see daemon.h): a change of its
 * login settings clears its backoff; the next poll is never later than
 * it was, nor sooner than the LOGIN-DELAY of its (new) mailbox allows.
 */
static void
sched_update(struct sched *s, const struct account *a, int64_t wait)
{
	char *key = login_key(a), *mailbox = mailbox_key(a);
	int64_t now = clock_ms(), cand = s->due;
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
		    s->last_code) * 1000 + daemon_jitter_ms(a->interval);
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
	struct sched **ns = xcalloc(cfg->naccounts + d->ns + 1, sizeof(*ns));
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
		for (j = 0; j < d->ns && strcmp(d->s[j]->name, a->name); j++)
			;
		if (j == d->ns) {
			ns[n++] = sched_new(a, wait[i]);
			continue;
		}
		ns[n] = d->s[j];
		kept[j] = true;
		ns[n]->gone = false;
		if (!ns[n]->running)
			sched_update(ns[n], a, wait[i]);
		else if (a->password == NULL)
			ns[n]->reread = true;
		/* else: the poll's end weighs its settings against these. */
		n++;
	}
	/* Dropped accounts still running: kept until their worker ends. */
	for (j = 0; j < d->ns; j++) {
		if (kept[j])
			continue;
		if (!d->s[j]->running) {
			sched_free(d->s[j]);
			continue;
		}
		if (!d->s[j]->gone)
			log_msg(LL_INFO, "%s: no longer configured; its poll in "
			    "progress ends first", d->s[j]->name);
		ns[n] = d->s[j];
		ns[n++]->gone = true;
	}
	free(kept);
	free(wait);
	free(d->s);
	d->s = ns;
	d->ns = n;
	pool_set_limits(d->pool, cfg->max_parallel, cfg->max_per_host);
}

/* The accounts polled now (those dropped but still running aside). */
static size_t
daemon_polled(const struct daemon *d)
{
	size_t i, n = 0;

	for (i = 0; i < d->ns; i++)
		n += !d->s[i]->gone;
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
daemon_done(struct daemon *d, struct sched *s,
    const struct account_result *res)
{
	const struct account *a;
	int64_t now = clock_ms();
	unsigned delay;

	s->running = false;
	s->ended = now;
	d->last_poll = time(NULL);
	if (s->gone || (a = config_find_account(d->cfg, s->name)) == NULL) {
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
		    daemon_jitter_ms(a->interval);
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
		if (d->s[i]->gone && !d->s[i]->running) {
			sched_free(d->s[i]);
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
	    !pool_can_start(d->pool, a->host) ||
	    daemon_mailbox_busy(d, s))
		return NULL;
	return a;
}

/* Starts the polls that are due; returns how many. */
static size_t
daemon_start_due(struct daemon *d)
{
	const struct account *a;
	struct pool_job job = { NULL, false, false, NULL };
	int64_t now = clock_ms();
	size_t i, n = 0;

	for (i = 0; i < d->ns; i++) {
		struct sched *s = d->s[i];

		if (s->due > now || (a = daemon_startable(d, s)) == NULL)
			continue;
		job.demote = s->auth_failing;
		job.owner = s;
		if (pool_start(d->pool, d->cfg, a, &job) == 0) {
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
	int64_t now = clock_ms(), t = now + 60000;
	size_t i;

	for (i = 0; i < d->ns; i++) {
		const struct sched *s = d->s[i];

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
	d->next_watchdog = clock_ms();
}

/* Takes one signal, reaps what ended; false once it is time to stop. */
static bool
daemon_handle(struct daemon *d, int sig, bool *stopping)
{
	struct account_result res;
	struct sched *s;
	size_t i, n = pool_running(d->pool);

	if ((sig == SIGTERM || sig == SIGINT) && !*stopping) {
		/* Each stops within about a second, keeping what it
		 * stored; nothing it did not store is deleted. */
		if (n == 0)
			log_msg(LL_INFO, "stopping: no poll in progress");
		else
			log_msg(LL_INFO, "stopping: %zu poll%s in progress %s "
			    "stopped (what %s stored is kept)", n, n == 1 ? "" :
			    "s", n == 1 ? "is" : "are", n == 1 ? "it" : "they");
		daemon_notify("STOPPING=1");
		*stopping = d->stopping = true;
		pool_signal_all(d->pool, SIGTERM);
	} else if (sig == SIGUSR1 && !*stopping) {
		log_msg(LL_INFO, "SIGUSR1: polling every account now");
		for (i = 0; i < d->ns; i++)
			if (d->s[i]->running)
				d->s[i]->again = true;
			else if (d->s[i]->not_before <= clock_ms())
				d->s[i]->due = clock_ms();
			else
				/* The server's LOGIN-DELAY holds even now. */
				d->s[i]->due = d->s[i]->not_before;
	} else if (sig == SIGHUP && !*stopping) {
		daemon_notify("RELOADING=1");
		daemon_reload(d);
		daemon_notify("READY=1");
	}
	while ((s = pool_reap(d->pool, &res)) != NULL)
		daemon_done(d, s, &res);
	daemon_prune(d);
	return !*stopping || pool_running(d->pool) > 0;
}

int
daemon_run(const char *path, const char *state_dir, struct config **cfgp,
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
	d.pool = pool_new(d.cfg->max_parallel, d.cfg->max_per_host);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	pool_block_signals(&set, &old);
	daemon_schedule(&d, d.cfg);
	daemon_watchdog(&d);
	log_msg(LL_INFO, "daemon started: %zu account%s from %s%s",
	    d.ns, d.ns == 1 ? "" : "s", path, d.ns < d.cfg->naccounts ?
	    " (the others are disabled, or not named by -a)" : "");
	daemon_notify("READY=1");
	daemon_status(&d);
	for (;;) {
		if (!stopping && daemon_start_due(&d) > 0)
			daemon_status(&d);
		if (d.watchdog_ms > 0 && clock_ms() >= d.next_watchdog) {
			daemon_notify("WATCHDOG=1");
			d.next_watchdog = clock_ms() + d.watchdog_ms;
		}
		sig = pool_wait_signal(&set, stopping ? 1000 : daemon_timeout(&d));
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
		sched_free(d.s[i]);
	free(d.s);
	pool_free(d.pool);
	*cfgp = d.cfg;
	return EX_OK;
}
