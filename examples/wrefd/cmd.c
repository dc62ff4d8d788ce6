/*
 * cmd.c - the commands: strings, keys, pub/sub, CLIENT, INFO.
 */
#include "wrefd.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define A(i) (c->argv[i])

static bool arg_is(struct arg a, const char *s)
{
	return a.n == strlen(s) && !strncasecmp(a.p, s, a.n);
}

static bool arg_ll(struct arg a, long long *out)
{
	char buf[32], *end;
	if (a.n == 0 || a.n >= sizeof buf)
		return false;
	memcpy(buf, a.p, a.n);
	buf[a.n] = 0;
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return !errno && *end == 0 && !isspace((unsigned char)buf[0]);
}

/* ---- strings and keys -------------------------------------------------- */

static void cmd_ping(struct conn *c)
{
	bool sub = atomic_load_explicit(&c->nsubs, memory_order_relaxed) > 0;
	if (c->argc > 2) {
		reply_err(c, "ERR wrong number of arguments for 'ping' command");
	} else if (sub) {
		/* RESP2 subscribed mode answers PING as a push-like array */
		reply_str(c, "*2\r\n$4\r\npong\r\n");
		if (c->argc == 2)
			reply_bulk(c, A(1).p, A(1).n);
		else
			reply_bulk(c, "", 0);
	} else if (c->argc == 2) {
		reply_bulk(c, A(1).p, A(1).n);
	} else {
		reply_str(c, "+PONG\r\n");
	}
}

static void cmd_echo(struct conn *c)
{
	reply_bulk(c, A(1).p, A(1).n);
}

static void cmd_get(struct conn *c)
{
	struct val *v = db_get(A(1).p, A(1).n);
	if (!v) {
		reply_nil(c);
		return;
	}
	/* large values are not copied: the output queue takes a ref */
	reply_val(c, v);
	wref_release(v);
}

static void cmd_set(struct conn *c)
{
	int64_t expire_at = 0;
	int flags = 0;
	for (size_t i = 3; i < c->argc; i++) {
		long long t;
		bool ex = arg_is(A(i), "EX"), px = arg_is(A(i), "PX");
		if ((ex || px) && i + 1 < c->argc && !expire_at &&
		    !(flags & SET_KEEPTTL)) {
			if (!arg_ll(A(i + 1), &t)) {
				reply_err(c, "ERR value is not an integer or "
					     "out of range");
				return;
			}
			if (t <= 0 ||
			    t > (ex ? 1000000000000LL : 1000000000000000LL)) {
				reply_err(c, "ERR invalid expire time in "
					     "'set' command");
				return;
			}
			expire_at = now_ms() + (ex ? t * 1000 : t);
			i++;
		} else if (arg_is(A(i), "NX") && !(flags & SET_XX)) {
			flags |= SET_NX;
		} else if (arg_is(A(i), "XX") && !(flags & SET_NX)) {
			flags |= SET_XX;
		} else if (arg_is(A(i), "KEEPTTL") && !expire_at) {
			flags |= SET_KEEPTTL;
		} else {
			reply_err(c, "ERR syntax error");
			return;
		}
	}
	struct val *v = val_make(A(2).p, A(2).n);
	if (!v) {
		reply_err(c, "ERR out of memory");
		return;
	}
	int r = db_set(A(1).p, A(1).n, v, expire_at, flags);
	if (r == 1)
		reply_str(c, "+OK\r\n");
	else if (r == 0)
		reply_nil(c);
	else
		reply_err(c, "ERR out of memory");
}

static void cmd_del(struct conn *c)
{
	long long n = 0;
	for (size_t i = 1; i < c->argc; i++)
		n += db_del(A(i).p, A(i).n);
	reply_int(c, n);
}

static void cmd_exists(struct conn *c)
{
	long long n = 0;
	for (size_t i = 1; i < c->argc; i++)
		n += db_exists(A(i).p, A(i).n);
	reply_int(c, n);
}

static void incr_by(struct conn *c, long long by)
{
	long long out;
	int r = db_incr(A(1).p, A(1).n, by, &out);
	if (r == 0)
		reply_int(c, out);
	else if (r == -EINVAL)
		reply_err(c, "ERR value is not an integer or out of range");
	else if (r == -ERANGE)
		reply_err(c, "ERR increment or decrement would overflow");
	else
		reply_err(c, "ERR out of memory");
}

static void cmd_incr(struct conn *c)
{
	incr_by(c, 1);
}

static void cmd_decr(struct conn *c)
{
	incr_by(c, -1);
}

static void cmd_incrby(struct conn *c)
{
	long long by;
	if (!arg_ll(A(2), &by)) {
		reply_err(c, "ERR value is not an integer or out of range");
		return;
	}
	incr_by(c, by);
}

static void cmd_decrby(struct conn *c)
{
	long long by;
	if (!arg_ll(A(2), &by)) {
		reply_err(c, "ERR value is not an integer or out of range");
		return;
	}
	if (by == LLONG_MIN) {
		reply_err(c, "ERR decrement would overflow");
		return;
	}
	incr_by(c, -by);
}

static void cmd_ttl(struct conn *c)
{
	int64_t ms = db_ttl_ms(A(1).p, A(1).n);
	reply_int(c, ms < 0 ? ms : (ms + 500) / 1000);
}

static void cmd_pttl(struct conn *c)
{
	reply_int(c, db_ttl_ms(A(1).p, A(1).n));
}

static void cmd_expire(struct conn *c)
{
	long long t;
	int flags = 0;
	for (size_t i = 3; i < c->argc; i++) {
		if (arg_is(A(i), "NX")) {
			flags |= EXP_NX;
		} else if (arg_is(A(i), "XX")) {
			flags |= EXP_XX;
		} else if (arg_is(A(i), "GT")) {
			flags |= EXP_GT;
		} else if (arg_is(A(i), "LT")) {
			flags |= EXP_LT;
		} else {
			reply_err(c, "ERR Unsupported option %.*s",
				  (int)(A(i).n > 128 ? 128 : A(i).n), A(i).p);
			return;
		}
	}
	if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
		reply_err(c, "ERR NX and XX, GT or LT options at the same time "
			     "are not compatible");
		return;
	}
	if ((flags & EXP_GT) && (flags & EXP_LT)) {
		reply_err(c, "ERR GT and LT options at the same time are not "
			     "compatible");
		return;
	}
	if (!arg_ll(A(2), &t)) {
		reply_err(c, "ERR value is not an integer or out of range");
		return;
	}
	int64_t now = now_ms();
	if (t > (LLONG_MAX - now) / 1000 || t < (LLONG_MIN + now) / 1000) {
		reply_err(c, "ERR invalid expire time in 'expire' command");
		return;
	}
	reply_int(c, db_expire_at(A(1).p, A(1).n, now + t * 1000, flags));
}

static void cmd_persist(struct conn *c)
{
	reply_int(c, db_persist(A(1).p, A(1).n));
}

static void cmd_dbsize(struct conn *c)
{
	reply_int(c, (long long)db_size(NULL));
}

static void cmd_select(struct conn *c)
{
	long long db;
	if (!arg_ll(A(1), &db))
		reply_err(c, "ERR value is not an integer or out of range");
	else if (db == 0)
		reply_str(c, "+OK\r\n");
	else
		reply_err(c, "ERR DB index is out of range");
}

/* ---- pub/sub ------------------------------------------------------------- */

struct pubmsg {
	const char *ch;
	size_t chlen;
	struct val *msg;
};

/* A channel's subscriber: runs on the publisher's thread with the
 * connection pinned by the signal (it cannot be freed under us). */
static void on_message(void *obj, void *arg)
{
	struct conn *c = obj;
	struct pubmsg *m = arg;
	char hdr[64];
	int h;

	pthread_mutex_lock(&c->mu);
	if (!atomic_load_explicit(&c->closed, memory_order_relaxed) &&
	    !c->kill) {
		/* like Redis's client-output-buffer-limit pubsub: hard,
		 * and soft for a while, in memory held */
		size_t mem = atomic_load_explicit(&c->out_mem,
						  memory_order_relaxed);
		int64_t now = 0;
		if (cfg.pubsub_soft && mem > cfg.pubsub_soft) {
			now = now_ms();
			if (!c->soft_since)
				c->soft_since = now;
		} else {
			c->soft_since = 0;
		}
		if ((cfg.pubsub_hard && mem > cfg.pubsub_hard) ||
		    (c->soft_since &&
		     now - c->soft_since >= cfg.pubsub_soft_secs * 1000LL)) {
			c->kill = true;
		} else {
			h = snprintf(hdr, sizeof hdr,
				     "*3\r\n$7\r\nmessage\r\n$%zu\r\n",
				     m->chlen);
			char mh[32];
			int mhl = snprintf(mh, sizeof mh, "\r\n$%zu\r\n",
					   m->msg->len);
			/* the payload is shared by every subscriber */
			if (!out_bytes_locked(c, hdr, h) ||
			    !out_bytes_locked(c, m->ch, m->chlen) ||
			    !out_bytes_locked(c, mh, mhl) ||
			    !out_val_locked(c, m->msg) ||
			    !out_bytes_locked(c, "\r\n", 2))
				c->kill = true;
		}
		conn_wake(c);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *make_channel(const void *key, size_t len, void *arg)
{
	return wref_signal_new();
}

/* The connection's subscriptions: an array (for UNSUBSCRIBE with no
 * argument and for the close path) indexed by an open-addressing hash set
 * of slot = index + 1 (linear probing, load at most 1/2, backward-shift
 * deletion), so SUBSCRIBE of n channels costs O(n), not O(n^2). */
static size_t sub_slot(struct conn *c, const char *p, size_t n, uint64_t h,
		       bool *found)
{
	size_t i = h & c->sub_mask;
	for (;;) {
		uint32_t v = c->sub_slots[i];
		if (!v) {
			*found = false;
			return i;
		}
		const struct sub *s = &c->subs[v - 1];
		if (s->hash == h && s->len == n && !memcmp(s->name, p, n)) {
			*found = true;
			return i;
		}
		i = (i + 1) & c->sub_mask;
	}
}

static bool subset_reserve(struct conn *c, size_t n)
{
	if (c->sub_slots && (n + 1) * 2 <= c->sub_mask + 1)
		return true;
	size_t slots = c->sub_slots ? (c->sub_mask + 1) * 2 : 16;
	while ((n + 1) * 2 > slots)
		slots *= 2;
	uint32_t *t = calloc(slots, sizeof *t);
	if (!t)
		return false;
	for (size_t k = 0; k < n; k++) {
		size_t i = c->subs[k].hash & (slots - 1);
		while (t[i])
			i = (i + 1) & (slots - 1);
		t[i] = k + 1;
	}
	free(c->sub_slots);
	c->sub_slots = t;
	c->sub_mask = slots - 1;
	return true;
}

static void subset_del(struct conn *c, size_t i)
{
	size_t mask = c->sub_mask, j = i;
	c->sub_slots[i] = 0;
	for (;;) {
		j = (j + 1) & mask;
		uint32_t v = c->sub_slots[j];
		if (!v)
			return;
		size_t k = c->subs[v - 1].hash & mask;
		/* v stays if its home k lies cyclically in (i, j] */
		bool stay = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stay) {
			c->sub_slots[i] = v;
			c->sub_slots[j] = 0;
			i = j;
		}
	}
}

static ssize_t find_sub(struct conn *c, struct arg ch)
{
	bool found;
	if (!c->sub_slots)
		return -1;
	size_t i = sub_slot(c, ch.p, ch.n, hash_bytes(ch.p, ch.n), &found);
	return found ? (ssize_t)c->sub_slots[i] - 1 : -1;
}

static void sub_reply_locked(struct conn *c, const char *kind,
			     const char *ch, size_t n, bool nil_ch)
{
	char buf[96];
	int h = snprintf(buf, sizeof buf, "*3\r\n$%zu\r\n%s\r\n", strlen(kind),
			 kind);
	bool ok = out_bytes_locked(c, buf, h);
	if (nil_ch) {
		ok = ok && out_bytes_locked(c, "$-1\r\n", 5);
	} else {
		h = snprintf(buf, sizeof buf, "$%zu\r\n", n);
		ok = ok && out_bytes_locked(c, buf, h) &&
		     out_bytes_locked(c, ch, n) &&
		     out_bytes_locked(c, "\r\n", 2);
	}
	h = snprintf(buf, sizeof buf, ":%zu\r\n",
		     atomic_load_explicit(&c->nsubs, memory_order_relaxed));
	if (!ok || !out_bytes_locked(c, buf, h))
		c->kill = true;
}

/* A command with many channels runs SUB_BATCH of them per turn, then
 * yields (cmd_again, cmd_cursor) so that the worker's other clients are
 * served meanwhile; the confirmations come out in order all the same. */
static void cmd_subscribe(struct conn *c)
{
	size_t first = c->cmd_cursor ? c->cmd_cursor : 1;
	for (size_t i = first; i < c->argc; i++) {
		struct arg ch = A(i);
		size_t n = atomic_load_explicit(&c->nsubs,
						memory_order_relaxed);
		uint64_t h = hash_bytes(ch.p, ch.n);
		bool found = false;
		size_t slot = 0;
		if (i - first == SUB_BATCH) {
			c->cmd_cursor = i;
			c->cmd_again = true;
			return;
		}
		if (!subset_reserve(c, n)) {
			reply_err(c, "ERR out of memory");
			return;
		}
		slot = sub_slot(c, ch.p, ch.n, h, &found);
		if (found) {
			pthread_mutex_lock(&c->mu);
			sub_reply_locked(c, "subscribe", ch.p, ch.n, false);
			pthread_mutex_unlock(&c->mu);
			continue;
		}
		if (n == c->nsubs_cap) {
			size_t cap = n ? 2 * n : 4;
			struct sub *s = realloc(c->subs, cap * sizeof *s);
			if (!s) {
				reply_err(c, "ERR out of memory");
				return;
			}
			c->subs = s;
			c->nsubs_cap = cap;
		}
		char *name = malloc(ch.n + 1);
		/* one signal per channel, made on first SUBSCRIBE; the map
		 * holds it weakly: it lives while a subscriber holds it */
		wref_signal *sig = name ? wref_valmap_get_or_create(g_channels,
						ch.p, ch.n, make_channel, NULL)
					: NULL;
		if (!sig) {
			free(name);
			reply_err(c, "ERR out of memory");
			return;
		}
		memcpy(name, ch.p, ch.n);
		name[ch.n] = 0;
		/* connect and confirm under our output lock, so no message
		 * can overtake the confirmation */
		pthread_mutex_lock(&c->mu);
		int rc = wref_signal_connect(sig, c, on_message);
		if (rc == 0) {
			c->subs[n] = (struct sub){ name, ch.n, h, sig };
			c->sub_slots[slot] = n + 1;
			atomic_store_explicit(&c->nsubs, n + 1,
					      memory_order_relaxed);
			sub_reply_locked(c, "subscribe", ch.p, ch.n, false);
		}
		pthread_mutex_unlock(&c->mu);
		if (rc) {
			free(name);
			wref_release(sig);
			reply_err(c, "ERR subscribe failed: %s", strerror(-rc));
			return;
		}
	}
}

static void unsub_at(struct conn *c, size_t i)
{
	size_t n = atomic_load_explicit(&c->nsubs, memory_order_relaxed);
	struct sub s = c->subs[i];
	bool found;
	wref_signal_disconnect(s.sig, c, on_message);
	subset_del(c, sub_slot(c, s.name, s.len, s.hash, &found));
	if (i != n - 1) {
		/* the last one moves to i: its slot follows */
		struct sub *l = &c->subs[n - 1];
		c->sub_slots[sub_slot(c, l->name, l->len, l->hash, &found)] =
			i + 1;
	}
	c->subs[i] = c->subs[n - 1];
	atomic_store_explicit(&c->nsubs, n - 1, memory_order_relaxed);
	pthread_mutex_lock(&c->mu);
	sub_reply_locked(c, "unsubscribe", s.name, s.len, false);
	pthread_mutex_unlock(&c->mu);
	free(s.name);
	wref_release(s.sig); /* the channel dies with its last subscriber */
}

static void cmd_unsubscribe(struct conn *c)
{
	if (c->argc == 1) {
		size_t k = 0;
		if (!c->cmd_cursor &&
		    !atomic_load_explicit(&c->nsubs, memory_order_relaxed)) {
			pthread_mutex_lock(&c->mu);
			sub_reply_locked(c, "unsubscribe", NULL, 0, true);
			pthread_mutex_unlock(&c->mu);
		}
		while (atomic_load_explicit(&c->nsubs, memory_order_relaxed)) {
			if (k++ == SUB_BATCH) {
				c->cmd_cursor = 1;
				c->cmd_again = true;
				return;
			}
			unsub_at(c, 0);
		}
		return;
	}
	size_t first = c->cmd_cursor ? c->cmd_cursor : 1;
	for (size_t i = first; i < c->argc; i++) {
		if (i - first == SUB_BATCH) {
			c->cmd_cursor = i;
			c->cmd_again = true;
			return;
		}
		ssize_t at = find_sub(c, A(i));
		if (at >= 0) {
			unsub_at(c, at);
		} else {
			pthread_mutex_lock(&c->mu);
			sub_reply_locked(c, "unsubscribe", A(i).p, A(i).n,
					 false);
			pthread_mutex_unlock(&c->mu);
		}
	}
}

void conn_drop_subs(struct conn *c)
{
	/* from the connection's destroy: its signal entries already read
	 * dead (the library unsubscribed it), only our refs remain */
	size_t n = atomic_load_explicit(&c->nsubs, memory_order_relaxed);
	for (size_t i = 0; i < n; i++) {
		free(c->subs[i].name);
		wref_release(c->subs[i].sig);
	}
	atomic_store_explicit(&c->nsubs, 0, memory_order_relaxed);
	free(c->sub_slots);
	c->sub_slots = NULL;
}

static void cmd_publish(struct conn *c)
{
	wref_signal *sig = wref_valmap_get(g_channels, A(1).p, A(1).n);
	size_t n = 0;
	if (sig) {
		struct pubmsg m = { A(1).p, A(1).n, val_make(A(2).p, A(2).n) };
		if (!m.msg) {
			wref_release(sig);
			reply_err(c, "ERR out of memory");
			return;
		}
		n = wref_signal_emit(sig, &m);
		wref_release(m.msg);
		wref_release(sig);
	}
	reply_int(c, (long long)n);
}

/* ---- CLIENT, INFO, CONFIG ------------------------------------------------ */

struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->n;
		va_start(ap, fmt);
		int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)k < room) {
			b->n += k;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap - b->n <= (size_t)k)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* Called by wref_set_foreach with @obj pinned: even if its owner closes it
 * meanwhile, the memory stays valid until we return. */
static int client_line(void *obj, void *arg)
{
	struct conn *o = obj;
	struct sbuf *b = arg;
	int64_t now = now_ms();
	char name[64];
	size_t omem;
	if (atomic_load_explicit(&o->closed, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&o->mu);
	memcpy(name, o->name, sizeof name);
	omem = atomic_load_explicit(&o->out_bytes, memory_order_relaxed);
	pthread_mutex_unlock(&o->mu);
	const char *cmd = atomic_load_explicit(&o->last_cmd,
					       memory_order_relaxed);
	size_t subs = atomic_load_explicit(&o->nsubs, memory_order_relaxed);
	sb_printf(b,
		  "id=%llu addr=%s laddr=127.0.0.1:%d fd=%d name=%s age=%lld "
		  "idle=%lld flags=%c db=0 sub=%zu psub=0 multi=-1 omem=%zu "
		  "cmd=%s user=default\n",
		  (unsigned long long)o->id, o->addr, cfg.port, o->fd, name,
		  (long long)(now - o->ctime_ms) / 1000,
		  (long long)(now - atomic_load_explicit(&o->last_ms,
					memory_order_relaxed)) / 1000,
		  subs ? 'P' : 'N', subs, omem, cmd ? cmd : "NULL");
	return 0;
}

/* redis-server 7's text, for the subcommands wrefd has */
static const char *const client_help[] = {
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GETNAME",
	"    Return the name of the current connection.",
	"ID",
	"    Return the ID of the current connection.",
	"KILL <ip:port>",
	"    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]",
	"    Kill connections. Options are:",
	"    * ADDR (<ip:port>|<unixsocket>:0)",
	"      Kill connections made from the specified address",
	"    * ID <client-id>",
	"      Kill connections by client id.",
	"    * SKIPME (YES|NO)",
	"      Skip killing current connection (default: yes).",
	"LIST",
	"    Return information about client connections.",
	"SETNAME <name>",
	"    Assign the name <name> to the current connection.",
	"HELP",
	"    Prints this help.",
};

static void client_kill(struct conn *c)
{
	char addr[64];
	if (c->argc == 3) {
		/* the old form: CLIENT KILL ip:port, +OK or an error */
		if (A(2).n < sizeof addr) {
			memcpy(addr, A(2).p, A(2).n);
			addr[A(2).n] = 0;
		}
		if (A(2).n >= sizeof addr || !conn_kill(c, 0, addr, false)) {
			reply_err(c, "ERR No such client");
			return;
		}
		reply_str(c, "+OK\r\n");
		return;
	}
	uint64_t id = 0;
	bool skipme = true, have_addr = false;
	if (c->argc % 2) {
		reply_err(c, "ERR syntax error");
		return;
	}
	for (size_t i = 2; i + 1 < c->argc; i += 2) {
		struct arg v = A(i + 1);
		long long n;
		if (arg_is(A(i), "ID")) {
			if (!arg_ll(v, &n) || n <= 0) {
				reply_err(c, "ERR client-id should be greater "
					     "than 0");
				return;
			}
			id = (uint64_t)n;
		} else if (arg_is(A(i), "ADDR")) {
			if (v.n >= sizeof addr) {
				reply_int(c, 0); /* matches nobody */
				return;
			}
			memcpy(addr, v.p, v.n);
			addr[v.n] = 0;
			have_addr = true;
		} else if (arg_is(A(i), "SKIPME")) {
			if (arg_is(v, "yes")) {
				skipme = true;
			} else if (arg_is(v, "no")) {
				skipme = false;
			} else {
				reply_err(c, "ERR syntax error");
				return;
			}
		} else {
			reply_err(c, "ERR syntax error");
			return;
		}
	}
	reply_int(c, (long long)conn_kill(c, id, have_addr ? addr : NULL,
					  skipme));
}

static void cmd_client(struct conn *c)
{
	static const struct {
		const char *name;
		int arity; /* of the whole command, as Redis counts it */
	} subs[] = { { "list", -2 }, { "id", 2 }, { "setname", 3 },
		     { "getname", 2 }, { "kill", -3 }, { "help", 2 } };
	size_t k;
	for (k = 0; k < sizeof subs / sizeof *subs; k++)
		if (arg_is(A(1), subs[k].name))
			break;
	if (k == sizeof subs / sizeof *subs) {
		reply_err(c, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
			  (int)(A(1).n > 128 ? 128 : A(1).n), A(1).p);
		return;
	}
	if ((subs[k].arity > 0 && c->argc != (size_t)subs[k].arity) ||
	    (subs[k].arity < 0 && c->argc < (size_t)-subs[k].arity)) {
		reply_err(c, "ERR wrong number of arguments for 'client|%s' "
			     "command", subs[k].name);
		return;
	}
	if (arg_is(A(1), "HELP")) {
		size_t n = sizeof client_help / sizeof *client_help;
		reply_array(c, (long long)n);
		for (size_t i = 0; i < n; i++) {
			reply_raw(c, "+", 1);
			reply_str(c, client_help[i]);
			reply_raw(c, "\r\n", 2);
		}
	} else if (arg_is(A(1), "KILL")) {
		client_kill(c);
	} else if (arg_is(A(1), "LIST") && c->argc > 2) {
		/* redis-server's TYPE and ID filters are not implemented */
		reply_err(c, "ERR syntax error");
	} else if (arg_is(A(1), "LIST")) {
		struct sbuf b = { 0 };
		wref_set_foreach(g_clients, client_line, &b);
		if (b.oom)
			reply_err(c, "ERR out of memory");
		else
			reply_bulk(c, b.p ? b.p : "", b.n);
		free(b.p);
	} else if (arg_is(A(1), "ID") && c->argc == 2) {
		reply_int(c, (long long)c->id);
	} else if (arg_is(A(1), "SETNAME") && c->argc == 3) {
		struct arg nm = A(2);
		for (size_t i = 0; i < nm.n; i++)
			if (nm.p[i] <= ' ' || nm.p[i] > '~') {
				reply_err(c, "ERR Client names cannot contain "
					     "spaces, newlines or special "
					     "characters.");
				return;
			}
		if (nm.n >= sizeof c->name) {
			reply_err(c, "ERR client name too long");
			return;
		}
		pthread_mutex_lock(&c->mu);
		memcpy(c->name, nm.p, nm.n);
		c->name[nm.n] = 0;
		pthread_mutex_unlock(&c->mu);
		reply_str(c, "+OK\r\n");
	} else if (arg_is(A(1), "GETNAME") && c->argc == 2) {
		char name[64];
		pthread_mutex_lock(&c->mu);
		memcpy(name, c->name, sizeof name);
		pthread_mutex_unlock(&c->mu);
		if (name[0])
			reply_bulk(c, name, strlen(name));
		else
			reply_nil(c);
	}
}

/* INFO [section ...]: as redis-server 7, sections "# Name" separated by an
 * empty line; no argument, "default", "all" or "everything": all of them;
 * an unknown section: nothing (an empty bulk) */
static bool info_wants(struct conn *c, const char *sec)
{
	if (c->argc == 1)
		return true;
	for (size_t i = 1; i < c->argc; i++)
		if (arg_is(A(i), sec) || arg_is(A(i), "all") ||
		    arg_is(A(i), "default") || arg_is(A(i), "everything"))
			return true;
	return false;
}

static void info_section(struct sbuf *b, int *n, const char *name)
{
	sb_printf(b, "%s# %s\r\n", (*n)++ ? "\r\n" : "", name);
}

static void cmd_info(struct conn *c)
{
	struct sbuf b = { 0 };
	int n = 0;
	if (info_wants(c, "server")) {
		info_section(&b, &n, "Server");
		sb_printf(&b,
			  "redis_version:7.0.0\r\nwrefd_version:%s\r\n"
			  "redis_mode:standalone\r\nmultiplexing_api:epoll\r\n"
			  "process_id:%ld\r\ntcp_port:%d\r\n"
			  "uptime_in_seconds:%lld\r\nworker_threads:%d\r\n"
			  "tcp_keepalive:%d\r\nkeyspace_hash:siphash-2-4\r\n"
			  "hash_key_fingerprint:%016llx\r\n",
			  WREFD_VERSION, (long)getpid(), cfg.port,
			  (long long)(now_ms() - g_start_ms) / 1000,
			  cfg.threads, cfg.tcp_keepalive,
			  (unsigned long long)hash_fingerprint());
	}
	if (info_wants(c, "clients")) {
		info_section(&b, &n, "Clients");
		sb_printf(&b, "connected_clients:%zu\r\n"
			      "rejected_connections:%llu\r\nclients_per_worker:",
			  wref_set_len(g_clients),
			  (unsigned long long)atomic_load(&g_rejected));
		for (int i = 0; i < cfg.threads; i++)
			sb_printf(&b, "%s%llu", i ? "," : "",
				  (unsigned long long)atomic_load_explicit(
					  &g_wstats[i].clients,
					  memory_order_relaxed));
		sb_printf(&b, "\r\nclient_output_limit:%zu\r\n"
			      "pubsub_output_limit:%zu,%zu,%d\r\n",
			  cfg.client_out_max, cfg.pubsub_hard, cfg.pubsub_soft,
			  cfg.pubsub_soft_secs);
	}
	if (info_wants(c, "memory")) {
		info_section(&b, &n, "Memory");
		sb_printf(&b, "used_memory:%zu\r\nmaxmemory:%zu\r\n"
			      "maxmemory_policy:noeviction\r\n",
			  used_memory(), cfg.maxmemory);
	}
	if (info_wants(c, "stats")) {
		info_section(&b, &n, "Stats");
		sb_printf(&b, "total_connections_received:%llu\r\n"
			      "total_commands_processed:%llu\r\n"
			      "pubsub_channels:%zu\r\n",
			  (unsigned long long)atomic_load(&g_connections),
			  (unsigned long long)commands_total(),
			  wref_valmap_len(g_channels));
	}
	if (info_wants(c, "wref")) {
		struct wref_stats st;
		wref_stats(&st);
		info_section(&b, &n, "Wref");
		sb_printf(&b, "wref_objects_live:%llu\r\n"
			      "wref_objects_created:%llu\r\n"
			      "wref_blocks_live:%llu\r\n"
			      "wref_callbacks_run:%llu\r\ninterned_values:%zu\r\n",
			  (unsigned long long)st.objects_live,
			  (unsigned long long)st.objects_created,
			  (unsigned long long)st.blocks_live,
			  (unsigned long long)st.callbacks_run,
			  wref_valmap_len(g_intern));
	}
	if (info_wants(c, "keyspace")) {
		size_t expires, keys = db_size(&expires);
		info_section(&b, &n, "Keyspace");
		if (keys)
			sb_printf(&b, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n",
				  keys, expires);
	}
	if (b.oom)
		reply_err(c, "ERR out of memory");
	else
		reply_bulk(c, b.p ? b.p : "", b.n);
	free(b.p);
}

static void cmd_config(struct conn *c)
{
	/* enough for redis-benchmark, which asks for these two */
	if (arg_is(A(1), "GET") && c->argc == 3) {
		const char *v = arg_is(A(2), "save")         ? ""
				: arg_is(A(2), "appendonly") ? "no"
							     : NULL;
		if (!v) {
			reply_array(c, 0);
			return;
		}
		reply_array(c, 2);
		reply_bulk(c, A(2).p, A(2).n);
		reply_bulk(c, v, strlen(v));
	} else {
		reply_err(c, "ERR CONFIG subcommand not supported by wrefd");
	}
}

static void cmd_command(struct conn *c)
{
	reply_array(c, 0);
}

static void cmd_quit(struct conn *c)
{
	reply_str(c, "+OK\r\n");
	c->closing = true;
}

/* ---- dispatch ------------------------------------------------------------ */

struct command {
	const char *name;
	int arity; /* like Redis: n exact, -n at least n */
	bool in_sub; /* allowed in subscribed mode */
	void (*fn)(struct conn *c);
	bool denyoom; /* refused over --maxmemory (may grow the keyspace) */
};

static const struct command commands[] = {
	{ "get", 2, false, cmd_get, false },
	{ "set", -3, false, cmd_set, true },
	{ "incr", 2, false, cmd_incr, true },
	{ "ping", -1, true, cmd_ping, false },
	{ "del", -2, false, cmd_del, false },
	{ "exists", -2, false, cmd_exists, false },
	{ "echo", 2, false, cmd_echo, false },
	{ "publish", 3, false, cmd_publish, false },
	{ "subscribe", -2, true, cmd_subscribe, false },
	{ "unsubscribe", -1, true, cmd_unsubscribe, false },
	{ "decr", 2, false, cmd_decr, true },
	{ "incrby", 3, false, cmd_incrby, true },
	{ "decrby", 3, false, cmd_decrby, true },
	{ "ttl", 2, false, cmd_ttl, false },
	{ "pttl", 2, false, cmd_pttl, false },
	{ "expire", -3, false, cmd_expire, false },
	{ "persist", 2, false, cmd_persist, false },
	{ "dbsize", 1, false, cmd_dbsize, false },
	{ "client", -2, false, cmd_client, false },
	{ "info", -1, false, cmd_info, false },
	{ "select", 2, false, cmd_select, false },
	{ "config", -2, false, cmd_config, false },
	{ "command", -1, false, cmd_command, false },
	{ "quit", -1, true, cmd_quit, false },
};

void cmd_exec(struct conn *c)
{
	const struct command *cmd = NULL;
	struct arg name = A(0);
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (arg_is(name, commands[i].name)) {
			cmd = &commands[i];
			break;
		}
	if (c->cmd_cursor && cmd) {
		cmd->fn(c); /* a command resumed for another turn */
		return;
	}
	/* relaxed, single writer (the owner worker): a statistic */
	_Atomic uint64_t *cnt = &g_wstats[c->widx].commands;
	atomic_store_explicit(cnt, atomic_load_explicit(cnt,
			memory_order_relaxed) + 1, memory_order_relaxed);
	if (!cmd) {
		/* redis-server 7's text: the first arguments, 128 bytes */
		char args[160];
		size_t k = 0;
		args[0] = 0;
		for (size_t i = 1; i < c->argc && k < 128; i++) {
			int w = snprintf(args + k, sizeof args - k, "'%.*s' ",
					 (int)(A(i).n > 128 - k ? 128 - k
								: A(i).n),
					 A(i).p);
			if (w < 0 || (size_t)w >= sizeof args - k)
				break;
			k += w;
		}
		reply_err(c, "ERR unknown command '%.*s', with args beginning "
			     "with: %s",
			  (int)(name.n > 128 ? 128 : name.n), name.p, args);
		return;
	}
	/* relaxed: a diagnostic snapshot for CLIENT LIST */
	atomic_store_explicit(&c->last_cmd, cmd->name, memory_order_relaxed);
	if ((cmd->arity > 0 && c->argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && c->argc < (size_t)-cmd->arity)) {
		reply_err(c, "ERR wrong number of arguments for '%s' command",
			  cmd->name);
		return;
	}
	if (!cmd->in_sub &&
	    atomic_load_explicit(&c->nsubs, memory_order_relaxed)) {
		reply_err(c, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
			     "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
			     "allowed in this context", cmd->name);
		return;
	}
	if (cmd->denyoom && cfg.maxmemory && used_memory() > cfg.maxmemory) {
		reply_str(c, "-OOM command not allowed when used memory > "
			     "'maxmemory'.\r\n");
		return;
	}
	cmd->fn(c);
}
