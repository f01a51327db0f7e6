/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * delayproxy: a TCP proxy on 127.0.0.1 that adds latency, for the
 * benchmark (this kernel has no netem qdisc).
 *
 *	delayproxy [-d MS] [-p PORTFILE] LISTEN_PORT TARGET_PORT
 *
 * Accepts on 127.0.0.1:LISTEN_PORT (0: any free port, written to
 * PORTFILE) and connects each client to 127.0.0.1:TARGET_PORT. Every
 * chunk read from either side is held MS milliseconds (default 10), then
 * written to the other side, in order; an EOF travels the same way (as a
 * half-close). So a round trip through the proxy costs 2 * MS. Each
 * direction queues at most QUEUE_CAP bytes before it stops reading, as a
 * TCP window would. One thread, epoll, nanosecond timeouts; it runs until
 * killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX	(256u << 10)
#define QUEUE_CAP	(32u << 20)

struct chunk {
	struct chunk	*next;
	uint64_t	 due;		/* CLOCK_MONOTONIC, ns */
	size_t		 len, off;
	int		 eof;
	char		 data[];
};

/* One direction: bytes read from fd[from] go out on fd[!from]. */
struct dir {
	struct chunk	*head, *tail;
	size_t		 queued;
	int		 rd_eof;	/* EOF read (queued as a chunk) */
	int		 wr_done;	/* EOF delivered: shut down */
};

struct conn;
struct end {
	struct conn	*c;
	int		 side;		/* 0: client, 1: server */
};

struct conn {
	struct conn	*next;
	int		 fd[2];
	uint32_t	 ev[2];		/* epoll interest now */
	int		 gone[2];	/* fd left the epoll set: done with it */
	struct end	 end[2];
	struct dir	 d[2];		/* d[s]: read from side s */
	int		 dead;
};

static uint64_t delay_ns = 10ull * 1000000;
static int epfd, lfd, target_port;
static struct conn *conns;
static char rbuf[READ_MAX];

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Interest for side s: read while its direction may take more, write
 * while the other direction has a due chunk it could not send. */
static void
conn_update(struct conn *c, int s, uint64_t now)
{
	struct dir *rd = &c->d[s], *wr = &c->d[!s];
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->gone[s])
		return;
	if (rd->rd_eof && wr->wr_done) {
		/* Nothing more to read or write here; a hung-up socket
		 * would otherwise wake epoll again and again. */
		if (epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd[s], NULL) == -1)
			die("epoll_ctl");
		c->gone[s] = 1;
		return;
	}
	if (!rd->rd_eof && rd->queued < QUEUE_CAP)
		want |= EPOLLIN;
	if (wr->head != NULL && wr->head->due <= now)
		want |= EPOLLOUT;
	if (want == c->ev[s])
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = &c->end[s];
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd[s], &ev) == -1)
		die("epoll_ctl");
	c->ev[s] = want;
}

static void
dir_push(struct dir *d, const char *p, size_t n, int eof, uint64_t now)
{
	struct chunk *ch = malloc(sizeof(*ch) + n);

	if (ch == NULL)
		die("malloc");
	ch->next = NULL;
	ch->due = now + delay_ns;
	ch->len = n;
	ch->off = 0;
	ch->eof = eof;
	memcpy(ch->data, p, n);
	if (d->tail != NULL)
		d->tail->next = ch;
	else
		d->head = ch;
	d->tail = ch;
	d->queued += n;
}

static void
conn_read(struct conn *c, int s, uint64_t now)
{
	struct dir *d = &c->d[s];
	ssize_t n;

	while (!d->rd_eof && d->queued < QUEUE_CAP) {
		n = recv(c->fd[s], rbuf, sizeof(rbuf), 0);
		if (n > 0) {
			dir_push(d, rbuf, (size_t)n, 0, now);
		} else if (n == 0) {
			dir_push(d, NULL, 0, 1, now);
			d->rd_eof = 1;
		} else if (errno == EINTR) {
			continue;
		} else {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = 1;
			break;
		}
	}
}

/* Sends every due chunk of direction s that the socket takes. */
static void
conn_flush(struct conn *c, int s, uint64_t now)
{
	struct dir *d = &c->d[s];
	struct chunk *ch;
	ssize_t n;

	while ((ch = d->head) != NULL && ch->due <= now && !c->dead) {
		if (ch->eof) {
			shutdown(c->fd[!s], SHUT_WR);
			d->wr_done = 1;
		} else {
			while (ch->off < ch->len) {
				n = send(c->fd[!s], ch->data + ch->off,
				    ch->len - ch->off, MSG_NOSIGNAL);
				if (n > 0) {
					ch->off += (size_t)n;
					d->queued -= (size_t)n;
				} else if (n == -1 && errno == EINTR) {
					continue;
				} else {
					if (errno != EAGAIN &&
					    errno != EWOULDBLOCK)
						c->dead = 1;
					return;
				}
			}
		}
		d->head = ch->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(ch);
	}
}

static void
conn_free(struct conn *c)
{
	struct chunk *ch, *nx;
	int s;

	for (s = 0; s < 2; s++) {
		close(c->fd[s]);	/* also leaves the epoll set */
		for (ch = c->d[s].head; ch != NULL; ch = nx) {
			nx = ch->next;
			free(ch);
		}
	}
	free(c);
}

static void
accept_one(void)
{
	struct sockaddr_in sa;
	struct epoll_event ev;
	struct conn *c;
	int cfd, sfd, one = 1, s;

	cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd == -1)
		return;
	sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd == -1)
		die("socket");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)target_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* A blocking connect on loopback completes at once. */
	if (connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    set_nonblock(sfd) == -1) {
		close(sfd);
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		die("calloc");
	c->fd[0] = cfd;
	c->fd[1] = sfd;
	for (s = 0; s < 2; s++) {
		setsockopt(c->fd[s], IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		c->end[s].c = c;
		c->end[s].side = s;
		c->ev[s] = EPOLLIN;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = &c->end[s];
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd[s], &ev) == -1)
			die("epoll_ctl");
	}
	c->next = conns;
	conns = c;
}

/* Flushes what is due, frees finished connections, and returns the
 * nearest due time of a chunk still waiting (UINT64_MAX: none). */
static uint64_t
service(uint64_t now)
{
	struct conn **pp = &conns, *c;
	uint64_t next = UINT64_MAX;
	int s;

	while ((c = *pp) != NULL) {
		for (s = 0; s < 2; s++)
			conn_flush(c, s, now);
		if (c->dead || (c->d[0].wr_done && c->d[1].wr_done)) {
			*pp = c->next;
			conn_free(c);
			continue;
		}
		for (s = 0; s < 2; s++) {
			conn_update(c, s, now);
			if (c->d[s].head != NULL && c->d[s].head->due > now &&
			    c->d[s].head->due < next)
				next = c->d[s].head->due;
		}
		pp = &c->next;
	}
	return next;
}

static void
usage(void)
{
	fprintf(stderr, "usage: delayproxy [-d ms] [-p portfile] "
	    "listen_port target_port\n");
	exit(2);
}

static void
listen_on(int port, const char *portfile)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct epoll_event ev;
	FILE *f;
	int one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd == -1)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		die("bind");
	if (listen(lfd, 128) == -1)
		die("listen");
	if (getsockname(lfd, (struct sockaddr *)&sa, &len) == -1)
		die("getsockname");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1)
		die("epoll_ctl");
	if (portfile != NULL) {
		/* Write then rename, so a reader never sees half a number. */
		char tmp[4096];

		snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
		if ((f = fopen(tmp, "w")) == NULL ||
		    fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 ||
		    fclose(f) != 0 || rename(tmp, portfile) == -1)
			die(portfile);
	}
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[64];
	struct timespec ts, *tsp;
	const char *portfile = NULL;
	uint64_t now, next;
	struct end *e;
	int ch, n, i;

	while ((ch = getopt(argc, argv, "d:p:")) != -1) {
		switch (ch) {
		case 'd':
			delay_ns = (uint64_t)(strtod(optarg, NULL) * 1e6);
			break;
		case 'p':
			portfile = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	target_port = atoi(argv[optind + 1]);
	signal(SIGPIPE, SIG_IGN);
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	listen_on(atoi(argv[optind]), portfile);

	for (;;) {
		next = service(now_ns());
		tsp = NULL;
		if (next != UINT64_MAX) {
			now = now_ns();
			next = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(next / 1000000000u);
			ts.tv_nsec = (long)(next % 1000000000u);
			tsp = &ts;
		}
		n = epoll_pwait2(epfd, evs, 64, tsp, NULL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_pwait2");
		}
		now = now_ns();
		for (i = 0; i < n; i++) {
			e = evs[i].data.ptr;
			if (e == NULL) {
				accept_one();
				continue;
			}
			if (evs[i].events & EPOLLERR)
				e->c->dead = 1;	/* reset: drop both sides */
			else if (evs[i].events & (EPOLLIN | EPOLLHUP))
				conn_read(e->c, e->side, now);
			/* EPOLLOUT: service() below flushes. */
		}
	}
}
