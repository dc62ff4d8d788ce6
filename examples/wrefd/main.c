/*
 * main.c - wrefd: listener, worker event loops, connections, RESP parser,
 * output queues, SIGTERM shutdown.
 *
 * One epoll event loop per worker thread.  The listening socket is in
 * every worker's epoll set (EPOLLEXCLUSIVE); a worker owns the connections
 * it accepted and is the only thread that reads, writes or closes them.
 * Other threads (publishers, CLIENT LIST) only pin a connection through
 * libwref and append to its output queue under its mutex, then post it to
 * the owner's mailbox (an eventfd) so the owner flushes it.
 */
#include "wrefd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { K_LISTEN = 1, K_WAKE, K_CONN };

struct config cfg = {
	.port = 6380,
	.threads = 0,
	.max_request = 16u << 20,
	.max_clients = 10000,
	.client_out_max = 1u << 20,
	.pubsub_hard = 32u << 20,
	.pubsub_soft = 8u << 20,
	.pubsub_soft_secs = 60,
	.tcp_keepalive = 300,
};

wref_set *g_clients;
wref_valmap *g_channels;
wref_valmap *g_intern;
_Atomic uint64_t g_connections, g_rejected;
struct wstat g_wstats[256];
int64_t g_start_ms;
static _Atomic int g_nclients;
static _Atomic bool g_stop;
static int g_listen_fd = -1;
static int g_listen_kind = K_LISTEN;
static _Atomic uint64_t g_next_id = 1;

struct worker {
	int kind; /* K_WAKE: the eventfd's epoll tag */
	int idx;
	pthread_t th;
	int epfd, evfd;
	struct conn *conns; /* owned, doubly linked */
	struct conn *dead;  /* closed, released after the event batch */
	pthread_mutex_t mbox_mu;
	struct conn **mbox; /* to flush; each holds a strong ref */
	size_t mbox_n, mbox_cap;
	struct conn **adopt; /* accepted for us by another worker */
	size_t adopt_n, adopt_cap;
};
static struct worker *g_workers;

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__thread int t_widx;

void mem_add(int64_t delta)
{
	/* relaxed: a statistic and a soft limit */
	atomic_fetch_add_explicit(&g_wstats[t_widx].mem, delta,
				  memory_order_relaxed);
}

size_t used_memory(void)
{
	int64_t n = 0;
	for (int i = 0; i < cfg.threads; i++)
		n += atomic_load_explicit(&g_wstats[i].mem,
					  memory_order_relaxed);
	return n > 0 ? (size_t)n : 0;
}

uint64_t commands_total(void)
{
	uint64_t n = 0;
	for (int i = 0; i < cfg.threads; i++)
		/* relaxed: a statistic */
		n += atomic_load_explicit(&g_wstats[i].commands,
					  memory_order_relaxed);
	return n;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- values ------------------------------------------------------------ */

static const wref_type val_type = { .name = "wrefd.val" };

static void *val_create(const void *p, size_t n, void *arg)
{
	struct val *v = wref_new(&val_type, sizeof *v + n + 1);
	if (!v)
		return NULL;
	v->len = n;
	if (n)
		memcpy(v->data, p, n);
	return v;
}

struct val *val_new(const void *p, size_t n)
{
	return val_create(p, n, NULL);
}

struct val *val_make(const void *p, size_t n)
{
	if (n <= INTERN_MAX) {
		struct val *v = wref_valmap_get_or_create(g_intern, p, n,
							  val_create, NULL);
		if (v)
			return v;
	}
	return val_create(p, n, NULL);
}

/* ---- output queue ------------------------------------------------------ */

/* The caps count memory, not payload: a block counts its whole allocation
 * (a 16 KiB block holding two bytes counts 16 KiB), a shared value counts
 * its whole size in every queue that holds it (the queue may be its last
 * holder). */
#define SEG_MEM(s) (sizeof(struct seg) + (s)->cap + 16)

static void out_mem_add(struct conn *c, int64_t d)
{
	/* relaxed: written under mu; unlocked reads are hints */
	atomic_store_explicit(&c->out_mem,
		atomic_load_explicit(&c->out_mem, memory_order_relaxed) + d,
		memory_order_relaxed);
	mem_add(d);
}

static struct seg *seg_new(struct conn *c, size_t need)
{
	struct seg *s;
	/* bytes after a shared value (its CRLF, the next reply's header)
	 * start a small block, not a 16 KiB one */
	size_t want = c->out_tail && c->out_tail->v && need <= SMALL_SEG
			      ? SMALL_SEG
			      : SEG_SIZE;
	if (need <= SEG_SIZE && want == SEG_SIZE && c->spare) {
		s = c->spare;
		c->spare = NULL;
	} else {
		size_t cap = need > want ? need : want;
		s = malloc(sizeof *s + cap);
		if (!s)
			return NULL;
		s->cap = cap;
	}
	s->next = NULL;
	s->v = NULL;
	s->off = s->len = 0;
	out_mem_add(c, SEG_MEM(s));
	return s;
}

static void seg_push(struct conn *c, struct seg *s)
{
	if (c->out_tail)
		c->out_tail->next = s;
	else
		c->out_head = s;
	c->out_tail = s;
}

static void out_add(struct conn *c, size_t n)
{
	/* relaxed: written under mu; the owner's unlocked reads are hints
	 * re-checked under mu before acting */
	atomic_store_explicit(&c->out_bytes,
		atomic_load_explicit(&c->out_bytes, memory_order_relaxed) + n,
		memory_order_relaxed);
}

bool out_bytes_locked(struct conn *c, const char *p, size_t n)
{
	struct seg *t = c->out_tail;
	if (!n)
		return true;
	if (!t || t->v || t->cap - t->len < n) {
		t = seg_new(c, n);
		if (!t)
			return false;
		seg_push(c, t);
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
	out_add(c, n);
	return true;
}

bool out_val_locked(struct conn *c, struct val *v)
{
	struct seg *s;
	if (v->len <= COPY_MAX)
		return out_bytes_locked(c, v->data, v->len);
	s = malloc(sizeof *s);
	if (!s)
		return false;
	s->next = NULL;
	s->v = wref_retain(v); /* the reply shares the value, no copy */
	s->off = 0;
	s->len = v->len;
	s->cap = 0;
	seg_push(c, s);
	out_add(c, v->len);
	out_mem_add(c, SEG_MEM(s) + VAL_MEM(v->len));
	return true;
}

static void seg_free(struct conn *c, struct seg *s)
{
	if (s->v) {
		out_mem_add(c, -(int64_t)(SEG_MEM(s) + VAL_MEM(s->v->len)));
		wref_release(s->v);
		free(s);
		return;
	}
	out_mem_add(c, -(int64_t)SEG_MEM(s));
	if (!c->spare && s->cap == SEG_SIZE)
		c->spare = s;
	else
		free(s);
}

static void out_clear_locked(struct conn *c)
{
	while (c->out_head) {
		struct seg *s = c->out_head;
		c->out_head = s->next;
		seg_free(c, s);
	}
	c->out_tail = NULL;
	atomic_store_explicit(&c->out_bytes, 0, memory_order_relaxed);
}

void reply_raw(struct conn *c, const char *p, size_t n)
{
	pthread_mutex_lock(&c->mu);
	if (!out_bytes_locked(c, p, n))
		c->kill = true;
	pthread_mutex_unlock(&c->mu);
}

void reply_str(struct conn *c, const char *s)
{
	reply_raw(c, s, strlen(s));
}

void reply_err(struct conn *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;
	buf[0] = '-';
	va_start(ap, fmt);
	n = vsnprintf(buf + 1, sizeof buf - 3, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof buf - 4)
		n = sizeof buf - 4;
	/* a RESP error line must not contain CR or LF */
	for (int i = 1; i <= n; i++)
		if (buf[i] == '\r' || buf[i] == '\n')
			buf[i] = ' ';
	memcpy(buf + 1 + n, "\r\n", 2);
	reply_raw(c, buf, n + 3);
}

void reply_int(struct conn *c, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, ":%lld\r\n", v);
	reply_raw(c, buf, n);
}

void reply_array(struct conn *c, long long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "*%lld\r\n", v);
	reply_raw(c, buf, n);
}

void reply_nil(struct conn *c)
{
	reply_raw(c, "$-1\r\n", 5);
}

void reply_bulk(struct conn *c, const char *p, size_t n)
{
	char hdr[32];
	int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
	pthread_mutex_lock(&c->mu);
	if (!out_bytes_locked(c, hdr, h) || !out_bytes_locked(c, p, n) ||
	    !out_bytes_locked(c, "\r\n", 2))
		c->kill = true;
	pthread_mutex_unlock(&c->mu);
}

void reply_val(struct conn *c, struct val *v)
{
	char hdr[32];
	int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", v->len);
	pthread_mutex_lock(&c->mu);
	if (!out_bytes_locked(c, hdr, h) || !out_val_locked(c, v) ||
	    !out_bytes_locked(c, "\r\n", 2))
		c->kill = true;
	pthread_mutex_unlock(&c->mu);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_destroy(void *p)
{
	/* may run on any thread: the last strong ref may be a publisher's or
	 * CLIENT LIST's pin; the owner already closed the socket */
	struct conn *c = p;
	conn_drop_subs(c);
	free(c->subs);
	out_clear_locked(c);
	free(c->spare);
	free(c->in);
	free(c->argv);
	resp_free(&c->rp);
	pthread_mutex_destroy(&c->mu);
}

static const wref_type conn_type = { .name = "wrefd.conn",
				     .destroy = conn_destroy };

static void set_events(struct conn *c, bool rd, bool wr)
{
	struct epoll_event ev = { .data.ptr = c };
	if (rd == c->reading && wr == c->writing)
		return;
	ev.events = (rd ? EPOLLIN : 0) | (wr ? EPOLLOUT : 0);
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) {
		c->reading = rd;
		c->writing = wr;
	}
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;
	if (atomic_load_explicit(&c->closed, memory_order_relaxed))
		return;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	pthread_mutex_lock(&c->mu);
	/* relaxed: publishers read it under mu; CLIENT LIST's read is a
	 * snapshot */
	atomic_store_explicit(&c->closed, true, memory_order_relaxed);
	out_clear_locked(c);
	pthread_mutex_unlock(&c->mu);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&g_nclients, 1);
	atomic_fetch_sub_explicit(&g_wstats[w->idx].clients, 1,
				  memory_order_relaxed); /* a statistic */
	/* the current epoll batch may still name it: drop the owner's ref
	 * after the batch (worker_reap) */
	c->next = w->dead;
	w->dead = c;
}

static void worker_reap(struct worker *w)
{
	while (w->dead) {
		struct conn *c = w->dead;
		w->dead = c->next;
		/* the owner's ref: once it goes the connection leaves
		 * g_clients and every channel it subscribed to, with no
		 * bookkeeping here */
		wref_release(c);
	}
}

static bool conn_flush(struct conn *c)
{
	bool ok = true;
	pthread_mutex_lock(&c->mu);
	while (c->out_head) {
		struct iovec iov[64];
		int k = 0;
		for (struct seg *s = c->out_head; s && k < 64; s = s->next) {
			iov[k].iov_base = (s->v ? s->v->data : s->buf) + s->off;
			iov[k].iov_len = s->len - s->off;
			k++;
		}
		ssize_t wr = writev(c->fd, iov, k);
		if (wr < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				ok = false;
			break;
		}
		atomic_store_explicit(&c->out_bytes,
			atomic_load_explicit(&c->out_bytes,
					     memory_order_relaxed) - wr,
			memory_order_relaxed);
		while (wr > 0) {
			struct seg *s = c->out_head;
			size_t left = s->len - s->off;
			if ((size_t)wr < left) {
				s->off += wr;
				break;
			}
			wr -= left;
			c->out_head = s->next;
			if (!c->out_head)
				c->out_tail = NULL;
			seg_free(c, s);
		}
	}
	if (c->kill)
		ok = false;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static size_t in_limit(void)
{
	return cfg.max_request + INLINE_MAX + 4096;
}

/* Makes room for at least READ_CHUNK (or the pending command's size) more
 * bytes; false when the buffer is at its bound. */
static bool in_reserve(struct conn *c)
{
	size_t want = READ_CHUNK;
	/* c->need counts from c->in_off: compact first so it fits the bound */
	if (c->in_off && (c->in_off == c->in_len || c->in_off > c->in_cap / 2 ||
			  c->in_cap - c->in_len < want || c->need)) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->need > c->in_len)
		want = c->need - c->in_len;
	if (c->in_cap - c->in_len >= want)
		return true;
	size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
	while (cap - c->in_len < want)
		cap *= 2;
	if (cap > in_limit())
		cap = in_limit();
	if (cap <= c->in_len)
		return false;
	char *n = realloc(c->in, cap);
	if (!n)
		return false;
	c->in = n;
	c->in_cap = cap;
	return true;
}

static size_t out_mem_of(struct conn *c)
{
	return atomic_load_explicit(&c->out_mem, memory_order_relaxed);
}

static bool argv_fill(struct conn *c)
{
	const struct resp *r = &c->rp;
	if (r->argc > c->argv_cap) {
		size_t cap = c->argv_cap ? c->argv_cap : 16;
		while (cap < r->argc)
			cap *= 2;
		struct arg *a = realloc(c->argv, cap * sizeof *a);
		if (!a)
			return false;
		c->argv = a;
		c->argv_cap = cap;
	}
	for (size_t i = 0; i < r->argc; i++) {
		c->argv[i].p = c->in + c->in_off + r->args[i].off;
		c->argv[i].n = r->args[i].n;
	}
	c->argc = r->argc;
	return true;
}

/* Redis's answer to cross-protocol scripting: a browser made to send an
 * HTTP request to us shows as an inline "POST" or "Host:" command; the
 * connection is dropped before any later line (the body) runs. */
static bool is_http(struct conn *c)
{
	struct arg a = c->argv[0];
	return (a.n == 4 && !strncasecmp(a.p, "post", 4)) ||
	       (a.n == 5 && !strncasecmp(a.p, "host:", 5));
}

/* Runs the complete commands in the input buffer, stopping when the output
 * queue holds client_out_max (backpressure: input is not read meanwhile)
 * or a long command yields its turn.  Returns true when runnable work is
 * left: a complete command, or a command to resume. */
static bool conn_process(struct conn *c)
{
	while (!c->closing && c->in_off < c->in_len) {
		if (out_mem_of(c) >= cfg.client_out_max)
			return true;
		if (!c->in_cmd) {
			size_t used = 0;
			int r = resp_parse(&c->rp, c->in + c->in_off,
					   c->in_len - c->in_off, &used);
			if (r == 0) {
				c->need = c->rp.need;
				break;
			}
			if (r < 0) {
				reply_err(c, "ERR Protocol error: %s",
					  c->rp.err);
				resp_reset(&c->rp);
				c->closing = true;
				break;
			}
			c->need = 0;
			c->cmd_used = used;
			c->cmd_cursor = 0;
			if (!argv_fill(c)) {
				reply_err(c, "ERR out of memory");
				c->closing = true;
				break;
			}
			if (c->argc && is_http(c)) {
				fprintf(stderr, "wrefd: Possible SECURITY ATTACK "
					"detected. It looks like somebody is "
					"sending POST or Host: commands to "
					"wrefd. This is likely due to an "
					"attacker attempting to use Cross "
					"Protocol Scripting. Connection from "
					"%s aborted.\n", c->addr);
				c->drop = true;
				return false;
			}
		}
		c->cmd_again = false;
		if (c->argc)
			cmd_exec(c); /* may set c->closing (QUIT) */
		if (c->cmd_again) {
			/* a long command yields to the worker's other
			 * clients; argv stays valid: no read meanwhile */
			c->in_cmd = true;
			return true;
		}
		c->in_cmd = false;
		resp_reset(&c->rp);
		c->in_off += c->cmd_used;
	}
	if (c->in_off == c->in_len && !c->in_cmd) {
		c->in_off = c->in_len = 0;
		resp_reset(&c->rp);
	}
	return false;
}

/* Closing after a final reply (QUIT, protocol error): discard what the
 * client already sent, so that close() sends FIN after the reply rather
 * than a reset that could destroy the reply in flight. */
static void conn_close_after_reply(struct conn *c)
{
	char junk[4096];
	for (int i = 0; i < 256; i++) {
		ssize_t n = read(c->fd, junk, sizeof junk);
		if (n <= 0)
			break;
	}
	shutdown(c->fd, SHUT_WR);
	conn_close(c);
}

/* Reads, runs, writes; closes when done or broken. */
static void conn_service(struct conn *c, bool readable)
{
	bool more = false;
	if (readable && !c->closing && !c->in_cmd) {
		if (!in_reserve(c)) {
			reply_err(c, "ERR Protocol error: request too large");
			c->closing = true;
		} else {
			ssize_t n = read(c->fd, c->in + c->in_len,
					 c->in_cap - c->in_len);
			if (n == 0 || (n < 0 && errno != EAGAIN &&
				       errno != EINTR)) {
				conn_close(c);
				return;
			}
			if (n > 0) {
				c->in_len += n;
				atomic_store_explicit(&c->last_ms, now_ms(),
						      memory_order_relaxed);
			}
		}
	}
	for (int round = 0; round < 8; round++) {
		more = conn_process(c);
		if (c->drop) {
			conn_close(c);
			return;
		}
		if (!conn_flush(c)) {
			conn_close(c);
			return;
		}
		if (atomic_load_explicit(&c->out_bytes, memory_order_relaxed) ||
		    c->closing || !more || c->in_cmd)
			break;
		/* output drained with commands still buffered: run more */
	}
	size_t pending = atomic_load_explicit(&c->out_bytes,
					      memory_order_relaxed);
	if (c->closing && !pending) {
		conn_close_after_reply(c);
		return;
	}
	/* work left (commands buffered, a command to resume) with nothing
	 * to write: ask for write-readiness, which comes at once, so the
	 * worker comes back after its other clients' events (before, the
	 * connection waited for input that might never come) */
	bool blocked = out_mem_of(c) >= cfg.client_out_max;
	set_events(c, !c->closing && !blocked && !c->in_cmd,
		   pending > 0 || (more && !c->closing));
}

void conn_wake(struct conn *c)
{
	struct worker *w = c->w;
	bool post = false;
	if (c->wake_pending)
		return;
	pthread_mutex_lock(&w->mbox_mu);
	if (w->mbox_n == w->mbox_cap) {
		size_t cap = w->mbox_cap ? w->mbox_cap * 2 : 64;
		struct conn **m = realloc(w->mbox, cap * sizeof *m);
		if (m) {
			w->mbox = m;
			w->mbox_cap = cap;
		}
	}
	if (w->mbox_n < w->mbox_cap) {
		w->mbox[w->mbox_n++] = wref_retain(c);
		post = w->mbox_n == 1 && !w->adopt_n;
		c->wake_pending = true;
	} else {
		c->kill = true; /* cannot schedule its flush: cut it */
	}
	pthread_mutex_unlock(&w->mbox_mu);
	if (post) {
		uint64_t one = 1;
		ssize_t r = write(w->evfd, &one, sizeof one);
		(void)r;
	}
}

static void conn_adopt(struct worker *w, struct conn *c);

struct killarg {
	struct conn *self;
	uint64_t id;
	const char *addr;
	bool skipme;
	size_t n;
};

/* wref_set_foreach pins @obj: it cannot be freed while we look at it */
static int kill_one(void *obj, void *arg)
{
	struct conn *o = obj;
	struct killarg *k = arg;
	if ((k->id && o->id != k->id) || (k->addr && strcmp(o->addr, k->addr)))
		return 0;
	if (o == k->self) {
		if (k->skipme)
			return 0;
		/* we are its owner: close after this command's reply */
		o->closing = true;
		k->n++;
		return 0;
	}
	pthread_mutex_lock(&o->mu);
	if (!atomic_load_explicit(&o->closed, memory_order_relaxed) &&
	    !o->kill) {
		o->kill = true; /* its owner closes it on the next flush */
		conn_wake(o);
		k->n++;
	}
	pthread_mutex_unlock(&o->mu);
	return 0;
}

size_t conn_kill(struct conn *self, uint64_t id, const char *addr,
		 bool skipme)
{
	struct killarg k = { self, id, addr, skipme, 0 };
	wref_set_foreach(g_clients, kill_one, &k);
	return k.n;
}

static void worker_mailbox(struct worker *w)
{
	uint64_t v;
	ssize_t r = read(w->evfd, &v, sizeof v);
	(void)r;
	for (;;) {
		struct conn **box, **adopt;
		size_t n, na;
		pthread_mutex_lock(&w->mbox_mu);
		box = w->mbox;
		n = w->mbox_n;
		w->mbox = NULL;
		w->mbox_n = w->mbox_cap = 0;
		adopt = w->adopt;
		na = w->adopt_n;
		w->adopt = NULL;
		w->adopt_n = w->adopt_cap = 0;
		pthread_mutex_unlock(&w->mbox_mu);
		if (!n && !na) {
			free(box);
			free(adopt);
			return;
		}
		for (size_t i = 0; i < na; i++)
			conn_adopt(w, adopt[i]);
		free(adopt);
		for (size_t i = 0; i < n; i++) {
			struct conn *c = box[i];
			pthread_mutex_lock(&c->mu);
			c->wake_pending = false;
			pthread_mutex_unlock(&c->mu);
			if (!atomic_load_explicit(&c->closed,
						  memory_order_relaxed))
				conn_service(c, false);
			wref_release(c);
		}
		free(box);
	}
}

/* Out of descriptors: the listening socket stays readable, so epoll would
 * spin.  Give up the spare descriptor, accept the pending connection and
 * close it at once (the client sees EOF), then take the spare back. */
static int g_spare_fd = -1;
static pthread_mutex_t g_spare_mu = PTHREAD_MUTEX_INITIALIZER;

static void shed_connection(void)
{
	pthread_mutex_lock(&g_spare_mu);
	if (g_spare_fd >= 0) {
		close(g_spare_fd);
		int fd = accept4(g_listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			atomic_fetch_add(&g_rejected, 1);
		}
		g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&g_spare_mu);
}

/* A connection accepted but never registered: close and drop it. */
static void conn_drop_new(struct conn *c)
{
	close(c->fd);
	atomic_fetch_sub(&g_nclients, 1);
	pthread_mutex_lock(&c->mu);
	atomic_store_explicit(&c->closed, true, memory_order_relaxed);
	pthread_mutex_unlock(&c->mu);
	wref_release(c);
}

/* On the owner thread: registers a new connection with its worker. */
static void conn_adopt(struct worker *w, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	c->reading = true;
	if (atomic_load(&g_stop) ||
	    epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_drop_new(c);
		return;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	atomic_fetch_add_explicit(&g_wstats[w->idx].clients, 1,
				  memory_order_relaxed); /* a statistic */
	/* weakly registered: the set never keeps it alive, and the entry
	 * goes by itself when the connection dies */
	wref_set_add(g_clients, c);
}

/* Accepts on whichever worker epoll woke, then deals the connections out
 * round-robin (EPOLLEXCLUSIVE alone lets one busy worker take a whole
 * burst); a connection for another worker goes through its mailbox. */
static void worker_accept(struct worker *w)
{
	static _Atomic unsigned rr;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof sa;
		int fd = accept4(g_listen_fd, (struct sockaddr *)&sa, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				shed_connection();
			return;
		}
		if (atomic_fetch_add(&g_nclients, 1) >= cfg.max_clients) {
			static const char msg[] =
				"-ERR max number of clients reached\r\n";
			ssize_t r = write(fd, msg, sizeof msg - 1);
			(void)r;
			close(fd);
			atomic_fetch_sub(&g_nclients, 1);
			atomic_fetch_add(&g_rejected, 1);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (cfg.tcp_keepalive > 0) {
			/* as redis-server's tcp-keepalive: probes after N s
			 * idle, then every N/3 s, dead after 3 unanswered */
			int idle = cfg.tcp_keepalive;
			int intvl = idle / 3 > 0 ? idle / 3 : 1, cnt = 3;
			setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one,
				   sizeof one);
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
				   sizeof idle);
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
				   sizeof intvl);
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt,
				   sizeof cnt);
		}
		struct conn *c = wref_new(&conn_type, sizeof *c);
		if (!c) {
			close(fd);
			atomic_fetch_sub(&g_nclients, 1);
			continue;
		}
		/* relaxed: only spreads the load */
		struct worker *to = &g_workers[atomic_fetch_add_explicit(&rr, 1,
				memory_order_relaxed) % cfg.threads];
		c->kind = K_CONN;
		c->fd = fd;
		c->w = to;
		c->widx = to->idx;
		c->id = atomic_fetch_add(&g_next_id, 1);
		pthread_mutex_init(&c->mu, NULL);
		resp_init(&c->rp, cfg.max_request);
		snprintf(c->addr, sizeof c->addr, "%s:%d",
			 inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
		c->ctime_ms = now_ms();
		atomic_store(&c->last_ms, c->ctime_ms);
		atomic_fetch_add(&g_connections, 1);
		if (to == w) {
			conn_adopt(w, c);
			continue;
		}
		pthread_mutex_lock(&to->mbox_mu);
		bool queued = false, post = !to->mbox_n && !to->adopt_n;
		if (to->adopt_n == to->adopt_cap) {
			size_t cap = to->adopt_cap ? to->adopt_cap * 2 : 16;
			struct conn **a = realloc(to->adopt, cap * sizeof *a);
			if (a) {
				to->adopt = a;
				to->adopt_cap = cap;
			}
		}
		if (to->adopt_n < to->adopt_cap) {
			to->adopt[to->adopt_n++] = c; /* the owner's ref */
			queued = true;
		}
		pthread_mutex_unlock(&to->mbox_mu);
		if (!queued) {
			conn_drop_new(c);
		} else if (post) {
			uint64_t one64 = 1;
			ssize_t r = write(to->evfd, &one64, sizeof one64);
			(void)r;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[128];
	t_widx = w->idx;
	int64_t last_sweep = now_ms();

	while (!atomic_load(&g_stop)) {
		int n = epoll_wait(w->epfd, evs, 128, 100);
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;
			if (kind == K_LISTEN) {
				worker_accept(w);
			} else if (kind == K_WAKE) {
				worker_mailbox(w);
			} else {
				struct conn *c = evs[i].data.ptr;
				if (atomic_load_explicit(&c->closed,
						memory_order_relaxed))
					continue;
				conn_service(c, evs[i].events &
					     (EPOLLIN | EPOLLHUP | EPOLLERR));
			}
		}
		worker_reap(w);
		int64_t now = now_ms();
		if (now - last_sweep >= 100) {
			db_sweep(w->idx, cfg.threads);
			last_sweep = now;
		}
	}
	while (w->conns)
		conn_close(w->conns);
	worker_mailbox(w);
	worker_reap(w);
	return NULL;
}

/* ---- startup / shutdown ------------------------------------------------ */

/* --self-test: SipHash-2-4 against its reference vectors, and the parser
 * on a command fed in one piece and byte by byte */
static int self_test(void)
{
	static const char cmd[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
				  "set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n";
	char buf[sizeof cmd];
	struct resp r;
	size_t used = 0, off = 0;
	int ok = hash_selftest(), cmds = 0;
	memcpy(buf, cmd, sizeof cmd);
	resp_init(&r, 1 << 20);
	for (size_t len = 1; off < sizeof cmd - 1 && len <= sizeof cmd - 1 - off;) {
		int rc = resp_parse(&r, buf + off, len, &used);
		if (rc < 0)
			break;
		if (rc == 0) {
			len++;
			continue;
		}
		if (cmds == 0)
			ok &= r.argc == 3 && r.args[2].n == 5 &&
			      !memcmp(buf + off + r.args[2].off, "hello", 5);
		else
			ok &= r.argc == 4 && r.args[1].n == 3 &&
			      !memcmp(buf + off + r.args[1].off, "a b", 3) &&
			      r.args[2].n == 3 &&
			      !memcmp(buf + off + r.args[2].off, "c'd", 3) &&
			      r.args[3].n == 2 &&
			      !memcmp(buf + off + r.args[3].off, "A\n", 2);
		cmds++;
		resp_reset(&r);
		off += used;
		len = 1;
	}
	ok &= cmds == 2;
	resp_free(&r);
	printf("wrefd self-test: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wrefd [options]\n"
		"  -p, --port N          TCP port on 127.0.0.1 (default 6380, "
		"0 = any free port)\n"
		"  -t, --threads N       worker threads (default: CPUs)\n"
		"  -m, --max-request N   largest command in bytes (default "
		"16 MiB)\n"
		"  -c, --max-clients N   (default 10000)\n"
		"  -f, --port-file FILE  write the port there once listening\n"
		"  --tcp-keepalive N     keepalive probes after N s idle "
		"(default 300, 0 = off)\n"
		"  --maxmemory BYTES     refuse writes (-OOM) while keyspace "
		"and output\n"
		"                        queues hold more (default 0 = no "
		"limit)\n"
		"  --client-output-limit BYTES  a client's queued replies "
		"above which its\n"
		"                        commands wait (default 1mb)\n"
		"  --pubsub-output-limit HARD[,SOFT,SECS]  a subscriber "
		"holding HARD,\n"
		"                        or SOFT for SECS, is cut "
		"(default 32mb,8mb,60)\n"
		"  --self-test           check the hash and parser, then "
		"exit\n"
		"  -h, --help\n"
		"Sizes take k/kb/m/mb/g/gb as redis.conf does "
		"(k = 1000, kb = 1024).\n"
		"SIGTERM or SIGINT shuts down cleanly.\n");
}

/* redis.conf's memtoull: 1k = 1000, 1kb = 1024 */
static bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long mul = 1, v;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	if (!strcasecmp(end, "k"))
		mul = 1000;
	else if (!strcasecmp(end, "kb"))
		mul = 1024;
	else if (!strcasecmp(end, "m"))
		mul = 1000 * 1000;
	else if (!strcasecmp(end, "mb"))
		mul = 1024 * 1024;
	else if (!strcasecmp(end, "g"))
		mul = 1000ull * 1000 * 1000;
	else if (!strcasecmp(end, "gb"))
		mul = 1024ull * 1024 * 1024;
	else if (*end)
		return false;
	if (v > SIZE_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static int self_test(void);

static void bad_option(const char *what, const char *v)
{
	fprintf(stderr, "wrefd: bad %s '%s'\n", what, v);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-request", required_argument, NULL, 'm' },
		{ "max-clients", required_argument, NULL, 'c' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "tcp-keepalive", required_argument, NULL, 'K' },
		{ "maxmemory", required_argument, NULL, 'M' },
		{ "client-output-limit", required_argument, NULL, 'O' },
		{ "pubsub-output-limit", required_argument, NULL, 'P' },
		{ "self-test", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int o;
	while ((o = getopt_long(argc, argv, "p:t:m:c:f:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			cfg.port = atoi(optarg);
			break;
		case 't':
			cfg.threads = atoi(optarg);
			break;
		case 'm':
			cfg.max_request = strtoull(optarg, NULL, 0);
			break;
		case 'c':
			cfg.max_clients = atoi(optarg);
			break;
		case 'f':
			cfg.port_file = optarg;
			break;
		case 'K': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 0 || v > 86400 * 7)
				bad_option("--tcp-keepalive", optarg);
			cfg.tcp_keepalive = (int)v;
			break;
		}
		case 'M':
			if (!parse_size(optarg, &cfg.maxmemory))
				bad_option("--maxmemory", optarg);
			break;
		case 'O':
			if (!parse_size(optarg, &cfg.client_out_max) ||
			    cfg.client_out_max < 1024)
				bad_option("--client-output-limit (at least "
					   "1024)", optarg);
			break;
		case 'P': {
			char hard[64], soft[64];
			int secs = 0, k;
			size_t h, sf = 0;
			k = sscanf(optarg, "%63[^,],%63[^,],%d", hard, soft,
				   &secs);
			if ((k != 1 && k != 3) || !parse_size(hard, &h) ||
			    (k == 3 && (!parse_size(soft, &sf) || secs < 0)))
				bad_option("--pubsub-output-limit", optarg);
			cfg.pubsub_hard = h;
			cfg.pubsub_soft = sf;
			cfg.pubsub_soft_secs = secs;
			break;
		}
		case 'T':
			exit(self_test());
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (cfg.threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg.threads = n > 0 ? (int)n : 1;
	}
	if (cfg.threads > 256)
		cfg.threads = 256;
	if (cfg.port < 0 || cfg.port > 65535 || cfg.max_request < 64 ||
	    cfg.max_request > (1ull << 32) || cfg.max_clients <= 0) {
		usage(stderr);
		exit(2);
	}
}

static void listen_socket(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(cfg.port) };
	socklen_t sl = sizeof sa;
	int one = 1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
	g_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			     0);
	if (g_listen_fd < 0)
		die("socket");
	setsockopt(g_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(g_listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind 127.0.0.1");
	if (listen(g_listen_fd, 511) < 0)
		die("listen");
	if (getsockname(g_listen_fd, (struct sockaddr *)&sa, &sl) == 0)
		cfg.port = ntohs(sa.sin_port);
}

int main(int argc, char **argv)
{
	sigset_t set;
	int sig = 0;

	parse_args(argc, argv);
	hash_init();
	signal(SIGPIPE, SIG_IGN);
	/* every thread inherits the mask; main waits for them in sigwait */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	g_start_ms = now_ms();
	g_clients = wref_set_new(NULL);
	/* pre-sized: the table's automatic growth runs in liburcu's
	 * call_rcu thread and needs grace periods, which lag far behind one
	 * SUBSCRIBE of 100,000 channels (chains then grow long and every
	 * lookup walks them: 12 s instead of 0.5 s for 100,000) */
	wref_map_options chopt = { .initial_size = 1u << 17 };
	g_channels = wref_valmap_new(&chopt);
	g_intern = wref_valmap_new(NULL);
	if (!g_clients || !g_channels || !g_intern)
		die("wrefd: containers");
	db_init();
	listen_socket();
	g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	g_workers = calloc(cfg.threads, sizeof *g_workers);
	if (!g_workers)
		die("calloc");
	for (int i = 0; i < cfg.threads; i++) {
		struct worker *w = &g_workers[i];
		struct epoll_event ev;
		w->kind = K_WAKE;
		w->idx = i;
		pthread_mutex_init(&w->mbox_mu, NULL);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->epfd < 0 || w->evfd < 0)
			die("epoll/eventfd");
		ev.events = EPOLLIN;
		ev.data.ptr = w;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
			die("epoll_ctl");
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = &g_listen_kind;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, g_listen_fd, &ev) < 0)
			die("epoll_ctl listen");
	}
	for (int i = 0; i < cfg.threads; i++)
		if (pthread_create(&g_workers[i].th, NULL, worker_main,
				   &g_workers[i]))
			die("pthread_create");

	if (cfg.port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", cfg.port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", cfg.port) < 0 || fclose(f) ||
		    rename(tmp, cfg.port_file))
			die("port file");
	}
	printf("wrefd %s: listening on 127.0.0.1:%d with %d worker threads\n",
	       WREFD_VERSION, cfg.port, cfg.threads);
	fflush(stdout);

	while (sigwait(&set, &sig) != 0)
		;
	printf("wrefd: signal %d, shutting down\n", sig);
	fflush(stdout);

	atomic_store(&g_stop, true);
	for (int i = 0; i < cfg.threads; i++) {
		uint64_t one = 1;
		ssize_t r = write(g_workers[i].evfd, &one, sizeof one);
		(void)r;
	}
	for (int i = 0; i < cfg.threads; i++)
		pthread_join(g_workers[i].th, NULL);
	close(g_listen_fd);
	if (g_spare_fd >= 0)
		close(g_spare_fd);
	for (int i = 0; i < cfg.threads; i++) {
		close(g_workers[i].epfd);
		close(g_workers[i].evfd);
		/* posted by a publisher after this worker had stopped */
		for (size_t j = 0; j < g_workers[i].mbox_n; j++)
			wref_release(g_workers[i].mbox[j]);
		free(g_workers[i].mbox);
		for (size_t j = 0; j < g_workers[i].adopt_n; j++)
			conn_drop_new(g_workers[i].adopt[j]);
		free(g_workers[i].adopt);
		pthread_mutex_destroy(&g_workers[i].mbox_mu);
	}
	free(g_workers);
	db_free();
	wref_release(g_clients);
	wref_release(g_channels);
	wref_release(g_intern);
	wref_shutdown();
	if (cfg.port_file)
		unlink(cfg.port_file);
	printf("wrefd: bye\n");
	return 0;
}
