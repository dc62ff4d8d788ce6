/*
 * cmd.c - the commands: strings, keys, pub/sub, CLIENT, INFO.
 */
#include "wrefd.h"

#include <ctype.h>
#include <errno.h>
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
			if (!arg_ll(A(i + 1), &t) || t <= 0 ||
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

static void cmd_ttl(struct conn *c)
{
	int64_t ms = db_ttl_ms(A(1).p, A(1).n);
	reply_int(c, ms < 0 ? ms : (ms + 500) / 1000);
}

static void cmd_dbsize(struct conn *c)
{
	reply_int(c, (long long)db_size(NULL));
}

static void cmd_select(struct conn *c)
{
	if (arg_is(A(1), "0"))
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
		if (atomic_load_explicit(&c->out_bytes, memory_order_relaxed) >
		    PUBSUB_OUT_MAX) {
			c->kill = true; /* like Redis's pubsub output limit */
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

static ssize_t find_sub(struct conn *c, struct arg ch)
{
	size_t n = atomic_load_explicit(&c->nsubs, memory_order_relaxed);
	for (size_t i = 0; i < n; i++)
		if (c->subs[i].len == ch.n && !memcmp(c->subs[i].name, ch.p, ch.n))
			return i;
	return -1;
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

static void cmd_subscribe(struct conn *c)
{
	for (size_t i = 1; i < c->argc; i++) {
		struct arg ch = A(i);
		size_t n = atomic_load_explicit(&c->nsubs,
						memory_order_relaxed);
		if (find_sub(c, ch) >= 0) {
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
			c->subs[n] = (struct sub){ name, ch.n, sig };
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
	wref_signal_disconnect(s.sig, c, on_message);
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
		if (!atomic_load_explicit(&c->nsubs, memory_order_relaxed)) {
			pthread_mutex_lock(&c->mu);
			sub_reply_locked(c, "unsubscribe", NULL, 0, true);
			pthread_mutex_unlock(&c->mu);
		}
		while (atomic_load_explicit(&c->nsubs, memory_order_relaxed))
			unsub_at(c, 0);
		return;
	}
	for (size_t i = 1; i < c->argc; i++) {
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

static void cmd_client(struct conn *c)
{
	if (arg_is(A(1), "LIST") && c->argc == 2) {
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
	} else {
		reply_err(c, "ERR unknown subcommand or wrong number of "
			     "arguments for '%.*s'. Try CLIENT HELP.",
			  (int)(A(1).n > 64 ? 64 : A(1).n), A(1).p);
	}
}

static void cmd_info(struct conn *c)
{
	struct sbuf b = { 0 };
	struct wref_stats st;
	size_t expires, keys = db_size(&expires);
	wref_stats(&st);
	sb_printf(&b,
		  "# Server\r\nredis_version:7.0.0\r\nwrefd_version:%s\r\n"
		  "redis_mode:standalone\r\nmultiplexing_api:epoll\r\n"
		  "process_id:%ld\r\ntcp_port:%d\r\nuptime_in_seconds:%lld\r\n"
		  "worker_threads:%d\r\n\r\n",
		  WREFD_VERSION, (long)getpid(), cfg.port,
		  (long long)(now_ms() - g_start_ms) / 1000, cfg.threads);
	sb_printf(&b, "# Clients\r\nconnected_clients:%zu\r\n"
		      "rejected_connections:%llu\r\nclients_per_worker:",
		  wref_set_len(g_clients),
		  (unsigned long long)atomic_load(&g_rejected));
	for (int i = 0; i < cfg.threads; i++)
		sb_printf(&b, "%s%llu", i ? "," : "",
			  (unsigned long long)atomic_load_explicit(
				  &g_wstats[i].clients, memory_order_relaxed));
	sb_printf(&b, "\r\n\r\n");
	sb_printf(&b, "# Stats\r\ntotal_connections_received:%llu\r\n"
		      "total_commands_processed:%llu\r\n"
		      "pubsub_channels:%zu\r\n\r\n",
		  (unsigned long long)atomic_load(&g_connections),
		  (unsigned long long)commands_total(),
		  wref_valmap_len(g_channels));
	sb_printf(&b, "# Wref\r\nwref_objects_live:%llu\r\n"
		      "wref_objects_created:%llu\r\nwref_blocks_live:%llu\r\n"
		      "wref_callbacks_run:%llu\r\ninterned_values:%zu\r\n\r\n",
		  (unsigned long long)st.objects_live,
		  (unsigned long long)st.objects_created,
		  (unsigned long long)st.blocks_live,
		  (unsigned long long)st.callbacks_run,
		  wref_valmap_len(g_intern));
	sb_printf(&b, "# Keyspace\r\n");
	if (keys)
		sb_printf(&b, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", keys,
			  expires);
	if (b.oom)
		reply_err(c, "ERR out of memory");
	else
		reply_bulk(c, b.p, b.n);
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
};

static const struct command commands[] = {
	{ "get", 2, false, cmd_get },
	{ "set", -3, false, cmd_set },
	{ "incr", 2, false, cmd_incr },
	{ "ping", -1, true, cmd_ping },
	{ "del", -2, false, cmd_del },
	{ "exists", -2, false, cmd_exists },
	{ "echo", 2, false, cmd_echo },
	{ "publish", 3, false, cmd_publish },
	{ "subscribe", -2, true, cmd_subscribe },
	{ "unsubscribe", -1, true, cmd_unsubscribe },
	{ "decr", 2, false, cmd_decr },
	{ "incrby", 3, false, cmd_incrby },
	{ "ttl", 2, false, cmd_ttl },
	{ "dbsize", 1, false, cmd_dbsize },
	{ "client", -2, false, cmd_client },
	{ "info", -1, false, cmd_info },
	{ "select", 2, false, cmd_select },
	{ "config", -2, false, cmd_config },
	{ "command", -1, false, cmd_command },
	{ "quit", -1, true, cmd_quit },
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
	/* relaxed, single writer (the owner worker): a statistic */
	_Atomic uint64_t *cnt = &g_wstats[c->widx].commands;
	atomic_store_explicit(cnt, atomic_load_explicit(cnt,
			memory_order_relaxed) + 1, memory_order_relaxed);
	if (!cmd) {
		reply_err(c, "ERR unknown command '%.*s'",
			  (int)(name.n > 128 ? 128 : name.n), name.p);
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
	cmd->fn(c);
}
