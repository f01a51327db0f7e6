/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "netrc.h"
#include "xmalloc.h"

#define NETRC_FILE_MAX	(1024 * 1024)	/* bytes in the whole file */
#define NETRC_TOKEN_MAX	4096		/* bytes in one token, unescaped */
#define NETRC_NAME_MAX	256		/* of the path in messages */

/* Where the lexer is. */
enum lex {
	LEX_BLANK,	/* between tokens */
	LEX_COMMENT,	/* skipping to the end of the line */
	LEX_WORD,	/* in an unquoted token */
	LEX_QUOTED,	/* in a quoted token */
	LEX_ESCAPE,	/* after a backslash in a quoted token */
	LEX_CLOSED,	/* right after a closing quote */
	LEX_MACLINE,	/* the rest of a macdef line */
	LEX_MACBOL,	/* a macro body line, blanks only so far */
	LEX_MACBODY	/* a macro body line with text */
};

/* What the next token must be. */
enum want {
	WANT_KEY,
	WANT_HOST,
	WANT_LOGIN,
	WANT_PASSWORD,
	WANT_ACCOUNT,
	WANT_PORT,
	WANT_MACNAME
};

enum entry {
	ENTRY_NONE,	/* before the first machine or default */
	ENTRY_MACHINE,
	ENTRY_DEFAULT
};

struct keyword {
	const char	*name;
	enum want	 want;		/* what follows it */
};

static const struct keyword keywords[] = {
	{ "machine", WANT_HOST },
	{ "default", WANT_KEY },
	{ "login", WANT_LOGIN },
	{ "password", WANT_PASSWORD },
	{ "passwd", WANT_PASSWORD },
	{ "account", WANT_ACCOUNT },
	{ "port", WANT_PORT },
	{ "macdef", WANT_MACNAME },
};

struct netrc_parser {
	char		*name;		/* the file, escaped for messages */
	char		*host;
	char		*user;
	size_t		 nbytes;	/* fed so far */
	int		 failed;

	enum lex	 lex;
	size_t		 line;		/* of the byte being read */
	int		 bol;		/* only blanks so far on this line */
	char		 tok[NETRC_TOKEN_MAX + 1];
	size_t		 toklen;
	size_t		 tokline;	/* where the token began */
	int		 quoted;

	enum want	 want;
	const char	*keyword;	/* whose value is wanted */
	size_t		 keyline;	/* where that keyword was */

	enum entry	 entry;		/* the entry being read */
	int		 host_ok;	/* its machine name is host */
	int		 has_login;
	int		 login_ok;	/* its login is user */
	int		 has_password;
	char		*pw;		/* its password, if it may match */
	size_t		 pwline;

	int		 done;		/* the search is over */
	char		*result;	/* the password found */
	size_t		 resultline;
	int		 secrets;	/* a password or account was seen */
};

static int
netrc_is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\f' || c == '\v';
}

static int
netrc_ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* strcasecmp for ASCII only, whatever the locale. */
static int
netrc_ascii_caseeq(const char *a, const char *b)
{
	while (*a != '\0' && netrc_ascii_lower((unsigned char)*a) ==
	    netrc_ascii_lower((unsigned char)*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

static const struct keyword *
netrc_find_keyword(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (netrc_ascii_caseeq(s, keywords[i].name))
			return &keywords[i];
	return NULL;
}

static int
netrc_syntax(struct netrc_parser *p, size_t line, const char *msg,
    struct err *e)
{
	err_set(e, EX_CONFIG, "%s:%zu: %s", p->name, line, msg);
	p->failed = 1;
	return -1;
}

static void
netrc_entry_reset(struct netrc_parser *p, enum entry entry)
{
	xfree_secret(p->pw);
	p->pw = NULL;
	p->entry = entry;
	p->host_ok = p->has_login = p->login_ok = p->has_password = 0;
}

/* The entry is complete: does it end the search? */
static void
netrc_entry_end(struct netrc_parser *p)
{
	int hit;

	if (p->entry != ENTRY_NONE && !p->done) {
		hit = !p->has_login || p->login_ok;
		if (p->entry == ENTRY_DEFAULT || (p->host_ok && hit))
			p->done = 1;
		if (p->done && hit) {
			p->result = p->pw;
			p->resultline = p->pwline;
			p->pw = NULL;
		}
	}
	netrc_entry_reset(p, ENTRY_NONE);
}

static int
netrc_on_keyword(struct netrc_parser *p, struct err *e)
{
	const struct keyword *k;

	if (p->quoted)
		return netrc_syntax(p, p->tokline, "a quoted string where a "
		    "keyword belongs", e);
	if ((k = netrc_find_keyword(p->tok)) == NULL)
		return netrc_syntax(p, p->tokline, "unknown keyword (expected "
		    "machine, default, login, password, account, port or "
		    "macdef; a value with blanks must be quoted)", e);
	if (k->want == WANT_HOST || k->want == WANT_KEY) {
		netrc_entry_end(p);
		netrc_entry_reset(p, k->want == WANT_HOST ? ENTRY_MACHINE :
		    ENTRY_DEFAULT);
	} else if (k->want != WANT_MACNAME && p->entry == ENTRY_NONE) {
		err_set(e, EX_CONFIG, "%s:%zu: %s outside a machine or "
		    "default entry", p->name, p->tokline, k->name);
		p->failed = 1;
		return -1;
	} else if (k->want == WANT_LOGIN && p->has_login)
		return netrc_syntax(p, p->tokline, "a second login in one "
		    "entry", e);
	else if (k->want == WANT_PASSWORD && p->has_password)
		return netrc_syntax(p, p->tokline, "a second password in one "
		    "entry", e);
	p->want = k->want;
	p->keyword = k->name;
	p->keyline = p->tokline;
	return 0;
}

static int
netrc_on_value(struct netrc_parser *p, struct err *e)
{
	if (!p->quoted && netrc_find_keyword(p->tok) != NULL) {
		err_set(e, EX_CONFIG, "%s:%zu: %s without a value (quote a "
		    "value that is also a keyword)", p->name, p->keyline,
		    p->keyword);
		p->failed = 1;
		return -1;
	}
	switch (p->want) {
	case WANT_HOST:
		p->host_ok = netrc_ascii_caseeq(p->tok, p->host);
		break;
	case WANT_LOGIN:
		p->has_login = 1;
		p->login_ok = strcmp(p->tok, p->user) == 0;
		break;
	case WANT_PASSWORD:
		p->has_password = p->secrets = 1;
		/* Keep it only if this entry may still match. */
		if (!p->done && (p->entry == ENTRY_DEFAULT || p->host_ok)) {
			p->pw = xstrndup(p->tok, p->toklen);
			p->pwline = p->tokline;
		}
		break;
	case WANT_ACCOUNT:
		p->secrets = 1;
		break;
	case WANT_MACNAME:
		p->lex = LEX_MACLINE;
		break;
	case WANT_PORT:
	case WANT_KEY:
		break;
	}
	p->want = WANT_KEY;
	return 0;
}

static int
netrc_token_end(struct netrc_parser *p, struct err *e)
{
	int rv;

	p->tok[p->toklen] = '\0';
	p->lex = LEX_BLANK;
	rv = p->want == WANT_KEY ? netrc_on_keyword(p, e) :
	    netrc_on_value(p, e);
	xwipe(p->tok, p->toklen);
	p->toklen = 0;
	return rv;
}

static int
netrc_tok_add(struct netrc_parser *p, int c, struct err *e)
{
	if (p->toklen == NETRC_TOKEN_MAX)
		return netrc_syntax(p, p->tokline, "a token longer than 4096 "
		    "bytes", e);
	p->tok[p->toklen++] = (char)c;
	return 0;
}

static int
netrc_lex_blank(struct netrc_parser *p, int c, struct err *e)
{
	if (c == '\n') {
		if (p->want == WANT_MACNAME)
			return netrc_syntax(p, p->keyline, "macdef without a "
			    "name on its line", e);
		p->line++;
		p->bol = 1;
		return 0;
	}
	if (netrc_is_blank(c))
		return 0;
	p->tokline = p->line;
	if (c == '#' && (p->bol || p->want == WANT_KEY)) {
		p->lex = LEX_COMMENT;
		return 0;
	}
	p->bol = 0;
	p->quoted = c == '"';
	if (p->quoted) {
		p->lex = LEX_QUOTED;
		return 0;
	}
	p->lex = LEX_WORD;
	return netrc_tok_add(p, c, e);
}

static int
netrc_unescape(int c)
{
	switch (c) {
	case 'n':
		return '\n';
	case 'r':
		return '\r';
	case 't':
		return '\t';
	default:
		return c;
	}
}

static int
netrc_lex_quoted(struct netrc_parser *p, int c, struct err *e)
{
	if (c == '\n')
		return netrc_syntax(p, p->tokline, "unterminated quoted string",
		    e);
	if (p->lex == LEX_ESCAPE) {
		p->lex = LEX_QUOTED;
		return netrc_tok_add(p, netrc_unescape(c), e);
	}
	if (c == '\\')
		p->lex = LEX_ESCAPE;
	else if (c == '"')
		p->lex = LEX_CLOSED;
	else
		return netrc_tok_add(p, c, e);
	return 0;
}

/* Macro bodies are skipped up to a line that is empty or blank. */
static int
netrc_lex_macro(struct netrc_parser *p, int c)
{
	if (c == '\n') {
		p->line++;
		if (p->lex == LEX_MACBOL) {
			p->lex = LEX_BLANK;
			p->bol = 1;
		} else
			p->lex = LEX_MACBOL;
	} else if (p->lex == LEX_MACBOL && !netrc_is_blank(c))
		p->lex = LEX_MACBODY;
	return 0;
}

static int
netrc_lex_byte(struct netrc_parser *p, int c, struct err *e)
{
	if (c == '\0')
		return netrc_syntax(p, p->line, "a NUL byte", e);
	switch (p->lex) {
	case LEX_BLANK:
		return netrc_lex_blank(p, c, e);
	case LEX_COMMENT:
		if (c != '\n')
			return 0;
		p->lex = LEX_BLANK;
		return netrc_lex_blank(p, c, e);
	case LEX_WORD:
		if (!netrc_is_blank(c))
			return netrc_tok_add(p, c, e);
		break;
	case LEX_QUOTED:
	case LEX_ESCAPE:
		return netrc_lex_quoted(p, c, e);
	case LEX_CLOSED:
		if (!netrc_is_blank(c))
			return netrc_syntax(p, p->line, "text right after a "
			    "closing quote", e);
		break;
	case LEX_MACLINE:
		if (c == '\n') {
			p->line++;
			p->lex = LEX_MACBOL;
		}
		return 0;
	case LEX_MACBOL:
	case LEX_MACBODY:
		return netrc_lex_macro(p, c);
	}
	/* A blank ended a token; it counts in the state that follows. */
	if (netrc_token_end(p, e) == -1)
		return -1;
	return netrc_lex_byte(p, c, e);
}

struct netrc_parser *
netrc_parser_new(const char *name, const char *host, const char *user)
{
	struct netrc_parser *p;

	p = xcalloc(1, sizeof(*p));
	p->name = buf_escape(name, strlen(name), NETRC_NAME_MAX);
	p->host = xstrdup(host);
	p->user = xstrdup(user);
	p->lex = LEX_BLANK;
	p->line = 1;
	p->bol = 1;
	p->want = WANT_KEY;
	p->entry = ENTRY_NONE;
	return p;
}

int
netrc_parser_feed(struct netrc_parser *p, const void *data, size_t n,
    struct err *e)
{
	const unsigned char *s = data;
	size_t i;

	if (p->failed) {
		err_set(e, EX_SOFTWARE, "%s: netrc parser used after an error",
		    p->name);
		return -1;
	}
	if (n > NETRC_FILE_MAX - p->nbytes) {
		err_set(e, EX_CONFIG, "%s: larger than 1 MiB", p->name);
		p->failed = 1;
		return -1;
	}
	p->nbytes += n;
	for (i = 0; i < n; i++)
		if (netrc_lex_byte(p, s[i], e) == -1)
			return -1;
	return 0;
}

/* The end of the input ends whatever token or entry is open. */
static int
netrc_parser_finish(struct netrc_parser *p, struct err *e)
{
	switch (p->lex) {
	case LEX_QUOTED:
	case LEX_ESCAPE:
		return netrc_syntax(p, p->tokline, "unterminated quoted string",
		    e);
	case LEX_WORD:
	case LEX_CLOSED:
		if (netrc_token_end(p, e) == -1)
			return -1;
		break;
	default:
		break;
	}
	if (p->want == WANT_MACNAME)
		return netrc_syntax(p, p->keyline, "macdef without a name on "
		    "its line", e);
	if (p->want != WANT_KEY) {
		err_set(e, EX_CONFIG, "%s:%zu: %s without a value", p->name,
		    p->keyline, p->keyword);
		p->failed = 1;
		return -1;
	}
	netrc_entry_end(p);
	return 0;
}

int
netrc_parser_end(struct netrc_parser *p, char **password, struct err *e)
{
	*password = NULL;
	if (p->failed) {
		err_set(e, EX_SOFTWARE, "%s: netrc parser used after an error",
		    p->name);
		return -1;
	}
	if (netrc_parser_finish(p, e) == -1)
		return -1;
	if (p->result == NULL)
		return 0;
	/* config.c refuses these too: they would end the PASS command. */
	if (strpbrk(p->result, "\r\n") != NULL) {
		err_set(e, EX_CONFIG, "%s:%zu: the password contains a line "
		    "break", p->name, p->resultline);
		p->failed = 1;
		return -1;
	}
	*password = p->result;
	p->result = NULL;
	return 1;
}

/* Returns 1 when the input so far held a password or account, else 0. */
static int
netrc_parser_secrets(const struct netrc_parser *p)
{
	return p->secrets;
}

void
netrc_parser_free(struct netrc_parser *p)
{
	if (p == NULL)
		return;
	xfree_secret(p->pw);
	xfree_secret(p->result);
	free(p->name);
	free(p->host);
	free(p->user);
	xwipe(p, sizeof(*p));
	free(p);
}

/* Only regular files (and /dev/null and the like) are read. */
static int
netrc_check_type(int fd, const char *ep, struct stat *st, struct err *e)
{
	if (fstat(fd, st) == -1) {
		err_set(e, EX_IOERR, "%s: %s", ep, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode)) {
		err_set(e, EX_CONFIG, "%s: not a regular file", ep);
		return -1;
	}
	return 0;
}

/* As ftp(1): a file with secrets must be the user's, and private. */
static int
netrc_check_private(const struct stat *st, const char *ep, struct err *e)
{
	char *what;
	int rc;

	if (st->st_uid != geteuid()) {
		err_set(e, EX_CONFIG, "%s holds a password but is owned by "
		    "uid %lu, not by uid %lu that runs popfetch", ep,
		    (unsigned long)st->st_uid, (unsigned long)geteuid());
		return -1;
	}
	what = xasprintf("%s holds a password but", ep);
	rc = fs_check_private(st->st_mode, what, ep, e);
	free(what);
	return rc;
}

static int
netrc_read_all(int fd, struct netrc_parser *p, const char *ep, struct err *e)
{
	char buf[8192];
	ssize_t n;
	int rv = 0;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err_set(e, EX_IOERR, "%s: %s", ep, strerror(errno));
			rv = -1;
			break;
		}
		if ((rv = netrc_parser_feed(p, buf, (size_t)n, e)) == -1)
			break;
	}
	xwipe(buf, sizeof(buf));
	return rv;
}

static int
netrc_lookup_fd(int fd, const char *path, const char *host, const char *user,
    char **password, struct err *e)
{
	struct netrc_parser *p;
	struct stat st;
	char *ep;
	int rv = -1;

	ep = buf_escape(path, strlen(path), NETRC_NAME_MAX);
	p = netrc_parser_new(path, host, user);
	if (netrc_check_type(fd, ep, &st, e) == 0 &&
	    netrc_read_all(fd, p, ep, e) == 0)
		rv = netrc_parser_end(p, password, e);
	if (rv != -1 && netrc_parser_secrets(p) &&
	    netrc_check_private(&st, ep, e) == -1) {
		xfree_secret(*password);
		*password = NULL;
		rv = -1;
	}
	netrc_parser_free(p);
	free(ep);
	return rv;
}

int
netrc_lookup(const char *path, const char *host, const char *user,
    char **password, struct err *e)
{
	char *ep;
	int fd, rv;

	*password = NULL;
	/* O_NONBLOCK: a FIFO must not hang the open; netrc_check_type
	 * refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1 && (errno == ENOENT || errno == ENOTDIR))
		return 0;
	if (fd == -1) {
		ep = buf_escape(path, strlen(path), NETRC_NAME_MAX);
		err_set(e, EX_CONFIG, "%s: %s", ep, strerror(errno));
		free(ep);
		return -1;
	}
	rv = netrc_lookup_fd(fd, path, host, user, password, e);
	(void)close(fd);	/* read-only: nothing to lose */
	return rv;
}

static char *
netrc_in_home(const char *home)
{
	size_t n = strlen(home);

	return xasprintf("%s%s.netrc", home, home[n - 1] == '/' ? "" : "/");
}

char *
netrc_default_path(void)
{
	const char *s;
	struct passwd *pw;

	if ((s = getenv("NETRC")) != NULL && *s != '\0')
		return xstrdup(s);
	if ((s = getenv("HOME")) != NULL && *s != '\0')
		return netrc_in_home(s);
	if ((pw = getpwuid(geteuid())) != NULL && pw->pw_dir != NULL &&
	    pw->pw_dir[0] != '\0')
		return netrc_in_home(pw->pw_dir);
	return NULL;
}
