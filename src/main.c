/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <curl/curl.h>
#include <libconfig.h>
#include <openssl/crypto.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "err.h"
#include "importuids.h"
#include "log.h"
#include "poll.h"
#include "status.h"
#include "xmalloc.h"

struct options {
	const char	*config_path;
	const char	*state_dir;	/* --state-dir, or NULL */
	const char	**accounts;	/* -a, in order given */
	size_t		 naccounts;
	int		 verbose;
	bool		 quiet;
	bool		 daemon;
	bool		 syslog;
	bool		 check;
	bool		 dry_run;
	bool		 status;
	bool		 no_progress;
	bool		 list_accounts;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: popfetch [-qv] [--no-progress] [-c file] "
	    "[-a account]...\n"
	    "       popfetch --check | --dry-run [-v] [-c file] "
	    "[-a account]...\n"
	    "       popfetch --daemon [-qv] [--syslog] [-c file] "
	    "[-a account]...\n"
	    "       popfetch --status [-c file] [-a account]...\n"
	    "       popfetch import-uids -a account --from TOOL [FILE]\n"
	    "       popfetch --list-accounts [-c file]\n"
	    "       popfetch --version | --help\n"
	    "Fetches mail from POP3 accounts into Maildirs.\n"
	    "  -c, --config FILE    configuration file\n"
	    "  -a, --account NAME   fetch (or poll) only this account "
	    "(repeatable)\n"
	    "      --check          check the configuration and each account's "
	    "server;\n"
	    "                       fetch nothing\n"
	    "      --dry-run        list what a run would fetch and delete\n"
	    "      --status         what the last runs did, and what is "
	    "stuck\n"
	    "  -d, --daemon         keep polling each account on its interval\n"
	    "      --syslog         log to syslog instead of standard error\n"
	    "      --no-progress    no progress line, even on a terminal\n"
	    "      --state-dir DIR  keep the accounts' state in DIR\n"
	    "      --list-accounts  print the account names, one a line\n"
	    "  -v, --verbose        show the protocol (twice: and libcurl)\n"
	    "  -q, --quiet          print errors only\n"
	    "  -V, --version        print versions and exit\n"
	    "  -h, --help           print this help and exit\n");
}

static void
version(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	printf("popfetch %s\nlibcurl %s (%s)\nlibconfig %d.%d.%d\n%s\n",
	    PACKAGE_VERSION, cv->version, cv->ssl_version ? cv->ssl_version :
	    "no TLS", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
	    LIBCONFIG_VER_REVISION, OpenSSL_version(OPENSSL_VERSION));
}

/* libcurl is a shared library: what it can do is known only now. */
static bool
curl_has_pop3(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	const char *const *p;
	bool pop3 = false, pop3s = false;

	for (p = cv->protocols; p != NULL && *p != NULL; p++) {
		if (strcasecmp(*p, "pop3") == 0)
			pop3 = true;
		else if (strcasecmp(*p, "pop3s") == 0)
			pop3s = true;
	}
	return pop3 && pop3s && (cv->features & CURL_VERSION_SSL);
}

/* The option that ch sets to true, or NULL when ch is not such. */
static bool *
option_flag(struct options *o, int ch)
{
	const struct {
		int	 ch;
		bool	*flag;
	} flags[] = {
		{ 'q', &o->quiet }, { 'd', &o->daemon }, { 'S', &o->syslog },
		{ 'K', &o->check }, { 'D', &o->dry_run }, { 'T', &o->status },
		{ 'P', &o->no_progress }, { 'L', &o->list_accounts }
	};
	size_t i;

	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (flags[i].ch == ch)
			return flags[i].flag;
	return NULL;
}

/*
 * Takes option ch when it is not one of option_flag's, with its argument
 * in optarg; -V and -h print and exit. Returns 0, or -1 when ch is no
 * option (the usage printed).
 */
static int
option_take(struct options *o, int ch)
{
	switch (ch) {
	case 'c':
		o->config_path = optarg;
		break;
	case 'a':
		o->accounts = xreallocarray(o->accounts,
		    o->naccounts + 1, sizeof(*o->accounts));
		o->accounts[o->naccounts++] = optarg;
		break;
	case 'v':
		o->verbose++;
		break;
	case 's':
		o->state_dir = optarg;
		break;
	case 'V':
		version();
		exit(EX_OK);
	case 'h':
		usage(stdout);
		exit(EX_OK);
	default:
		usage(stderr);
		return -1;
	}
	return 0;
}

/* Options that contradict each other: said, and -1 (EX_USAGE). */
static int
options_conflict(const struct options *o)
{
	if (o->quiet && o->verbose > 0) {
		fprintf(stderr, "popfetch: -q and -v contradict each other\n");
		return -1;
	}
	if (o->quiet && (o->check || o->dry_run || o->status)) {
		fprintf(stderr, "popfetch: %s prints a report; -q would hide "
		    "it\n", o->check ? "--check" : o->dry_run ? "--dry-run" :
		    "--status");
		return -1;
	}
	if ((int)o->check + (int)o->dry_run + (int)o->daemon +
	    (int)o->status > 1) {
		fprintf(stderr, "popfetch: --check, --dry-run, --daemon and "
		    "--status each go alone\n");
		return -1;
	}
	if (o->list_accounts && (o->naccounts > 0 || o->verbose > 0 ||
	    o->quiet || o->daemon || o->syslog || o->check || o->dry_run ||
	    o->status || o->no_progress || o->state_dir != NULL)) {
		fprintf(stderr, "popfetch: --list-accounts goes alone (or with "
		    "-c)\n");
		return -1;
	}
	return 0;
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "account", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "syslog", no_argument, NULL, 'S' },
		{ "check", no_argument, NULL, 'K' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "status", no_argument, NULL, 'T' },
		{ "no-progress", no_argument, NULL, 'P' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "list-accounts", no_argument, NULL, 'L' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool *flag;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:a:dvqVh", longopts,
	    NULL)) != -1) {
		if ((flag = option_flag(o, ch)) != NULL) {
			*flag = true;
			continue;
		}
		if (option_take(o, ch) == -1)
			return -1;
	}
	if (options_conflict(o) == -1)
		return -1;
	if (optind != argc) {
		fprintf(stderr, "popfetch: unexpected argument: %s\n",
		    argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* Each -a names an account (that may run, when fetch): EX_OK, or
 * EX_USAGE, said. */
static int
check_named(const struct config *cfg, const struct options *o, bool fetch)
{
	const struct account *a;
	size_t i;

	for (i = 0; i < o->naccounts; i++) {
		if ((a = config_find_account(cfg, o->accounts[i])) == NULL) {
			log_msg(LL_ERROR, "%s: no account named %s",
			    cfg->path, o->accounts[i]);
			return EX_USAGE;
		}
		if (fetch && a->disabled) {
			log_msg(LL_ERROR, "%s: account %s is disabled (enabled "
			    "= false): enable it to fetch it", cfg->path,
			    a->name);
			return EX_USAGE;
		}
	}
	return EX_OK;
}

/*
 * --status: what each account's runs left in the state directory, and
 * a running daemon's schedule. No lock, no network, nothing written.
 */
static int
show_status(const struct config *cfg, const struct options *o)
{
	const struct account *a;
	struct status st;
	int64_t when = 0;
	pid_t pid = 0;
	size_t i, n = o->naccounts ? o->naccounts : cfg->naccounts;
	int known, code;

	/* A disabled account has a status too. */
	if ((code = check_named(cfg, o, false)) != EX_OK)
		return code;
	for (i = 0; i < n; i++) {
		a = o->naccounts ? config_find_account(cfg, o->accounts[i]) :
		    &cfg->accounts[i];
		if (status_load(&st, cfg->state_dir, a->name) == -1) {
			printf("%s\n  cannot read %s/%s.status: %s\n", a->name,
			    cfg->state_dir, a->name, strerror(errno));
			continue;
		}
		known = status_next_find(cfg->state_dir, a->name, &when, &pid);
		status_print(stdout, a->name, &st, known, when, pid,
		    (int64_t)time(NULL));
		if (a->disabled)
			printf("  disabled:       enabled = false, not fetched\n");
		status_free(&st);
	}
	return EX_OK;
}

static int
run_accounts(const struct config *cfg, const struct options *o)
{
	const struct account **list, *a;
	struct poll_opts po;
	size_t i, j, k, n;
	int code;

	if ((code = check_named(cfg, o, true)) != EX_OK)
		return code;
	n = o->naccounts ? o->naccounts : cfg->naccounts;
	list = xreallocarray(NULL, n ? n : 1, sizeof(*list));
	for (i = j = 0; i < n; i++) {
		a = o->naccounts ? config_find_account(cfg, o->accounts[i]) :
		    &cfg->accounts[i];
		if (a->disabled) {
			/* Kept in the file, never fetched. */
			if (o->check || o->dry_run)
				printf("popfetch: %s: disabled (enabled = "
				    "false): not checked\n", a->name);
			continue;
		}
		/* -a twice for one account fetches it once. */
		for (k = 0; k < j && list[k] != a; k++)
			;
		if (k == j)
			list[j++] = a;
	}
	n = j;
	po.quiet = o->quiet;
	po.mode = o->check ? ACCOUNT_CHECK : o->dry_run ? ACCOUNT_DRY_RUN :
	    ACCOUNT_FETCH;
	/* Only for a person watching, never into a file or a pipe. */
	po.progress = !o->quiet && !o->no_progress && isatty(STDOUT_FILENO) &&
	    po.mode == ACCOUNT_FETCH;
	log_set_erase_line(po.progress);
	if (po.mode == ACCOUNT_CHECK)
		printf("popfetch: %s: configuration ok, %zu account%s\n",
		    cfg->path, cfg->naccounts, cfg->naccounts == 1 ? "" : "s");
	code = poll_once(cfg, list, n, &po);
	free(list);
	return code;
}

/* --list-accounts: every account of the file, disabled ones too. */
static int
list_accounts(const struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->naccounts; i++)
		printf("%s\n", cfg->accounts[i].name);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		log_msg(LL_ERROR, "standard output: cannot write");
		return EX_IOERR;
	}
	return EX_OK;
}

int
main(int argc, char **argv)
{
	struct options o;
	struct config *cfg = NULL;
	char *path = NULL;
	struct err e;
	int code;

	memset(&o, 0, sizeof(o));
	umask(077);
	/* A peer that vanishes must surface as an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "import-uids") == 0) {
		log_open(false);
		log_set_level(LL_INFO);
		return importuids_main(argc - 1, argv + 1);
	}
	if (parse_args(argc, argv, &o) == -1) {
		free(o.accounts);
		return EX_USAGE;
	}
	log_open(o.syslog);
	log_set_timestamps(o.daemon);
	log_set_level(o.quiet ? LL_NOTICE : o.verbose >= 2 ? LL_TRACE :
	    o.verbose == 1 ? LL_DEBUG : LL_INFO);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_msg(LL_ERROR, "cannot initialise libcurl");
		return EX_SOFTWARE;
	}
	if (!curl_has_pop3()) {
		log_msg(LL_ERROR, "this libcurl cannot do POP3 and POP3S "
		    "with TLS; rebuild or install one that can");
		return EX_UNAVAILABLE;
	}
	err_clear(&e);
	path = o.config_path ? xstrdup(o.config_path) : config_default_path(&e);
	if (path == NULL || config_load(path, o.state_dir, &cfg, &e) == -1) {
		log_msg(LL_ERROR, "%s", e.msg);
		code = e.code;
	} else if (o.list_accounts)
		code = list_accounts(cfg);
	else if (o.daemon && (code = check_named(cfg, &o, true)) == EX_OK)
		code = daemon_run(path, o.state_dir, &cfg,
		    (const char *const *)o.accounts, o.naccounts);
	else if (o.status)
		code = show_status(cfg, &o);
	else if (!o.daemon)
		code = run_accounts(cfg, &o);
	config_free(cfg);
	free(path);
	free(o.accounts);
	curl_global_cleanup();
	return code;
}
