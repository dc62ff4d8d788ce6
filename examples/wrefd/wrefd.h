/*
 * wrefd.h - a small multithreaded RESP2 server built on libwref.
 *
 * Where libwref is used:
 *  - clients: a wref_set of connection objects (weak); CLIENT LIST walks it
 *    with wref_set_foreach while connections come and go;
 *  - pub/sub: each channel is a wref_signal found in a weak-value map
 *    (wref_valmap, get_or_create on SUBSCRIBE); a subscriber is its
 *    connection held weakly, so a closed connection is unsubscribed without
 *    any bookkeeping, and a channel nobody listens to disappears;
 *  - values are immutable wref objects shared by the keyspace and the
 *    output queues of in-flight replies: DEL or overwrite while a large
 *    reply is being written to another client only drops one reference;
 *  - small values are interned in a wref_valmap (get_or_create), so equal
 *    values stored under many keys share one object.
 * EX/PX expiry is a plain scheme (deadline per key, checked on access and
 * swept by the workers), not libwref's retention tier: the tier keeps an
 * object alive for a while after its last use (a cache), while EX must
 * remove a key at a fixed deadline whatever its use, and interned values
 * are shared between keys with different deadlines.
 */
#ifndef WREFD_H
#define WREFD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wref.h>

#include "resp.h"

#define WREFD_VERSION "0.1"

/* ---- limits ------------------------------------------------------------ */
#define INLINE_MAX RESP_INLINE_MAX    /* inline command / header line */
#define READ_CHUNK (16 * 1024)
#define SMALL_SEG 256                 /* a block for bytes after a shared value */
#define SUB_BATCH 1024                /* (UN)SUBSCRIBE channels per turn */
#define INTERN_MAX 256                /* values up to this size are interned */
#define SEG_SIZE (16 * 1024)
#define COPY_MAX 1024                 /* values up to this are copied out */

struct config {
	int port;
	int threads;
	size_t max_request; /* bytes in one command (bulk lengths summed) */
	int max_clients;
	const char *port_file;
	/* output caps, in bytes of memory held (blocks and shared values) */
	size_t client_out_max;   /* stop running a client's commands above */
	size_t pubsub_hard;      /* a subscriber holding this much is cut */
	size_t pubsub_soft;      /* ...or holding this much for soft_secs */
	int pubsub_soft_secs;
	int tcp_keepalive;       /* seconds, 0 = off */
	size_t maxmemory;        /* 0 = no limit */
};
extern struct config cfg;

/* ---- values (immutable wref objects) ---------------------------------- */
struct val {
	size_t len;
	char data[]; /* NUL-terminated for convenience */
};
struct val *val_make(const void *p, size_t n); /* interned if small */
struct val *val_new(const void *p, size_t n);  /* never interned */
/* INCR interns only results in [0, SHARED_INTEGERS), as Redis shares
 * 0..9999: counters rarely repeat, small numbers do, across keys */
#define SHARED_INTEGERS 10000

/* ---- globals ------------------------------------------------------------ */
extern wref_set *g_clients;     /* struct conn, weak */
extern wref_valmap *g_channels; /* channel name -> wref_signal, weak */
extern wref_valmap *g_intern;   /* value bytes -> struct val, weak */
extern _Atomic uint64_t g_connections, g_rejected;
/* commands processed, one counter per worker (no shared cache line) */
struct wstat {
	_Atomic uint64_t commands;
	_Atomic uint64_t clients; /* connections the worker owns now */
	/* memory this thread added (keyspace, output queues) minus what it
	 * freed: may go negative, only the sum over threads means anything */
	_Atomic int64_t mem;
} __attribute__((aligned(64)));
extern struct wstat g_wstats[];
uint64_t commands_total(void);
extern __thread int t_widx; /* this worker's index in g_wstats (main: 0) */
void mem_add(int64_t delta);
size_t used_memory(void);   /* keyspace + output queues, bytes */
/* the memory a value takes (header, bytes, NUL, allocator overhead) */
#define VAL_MEM(len) (sizeof(struct val) + (len) + 1 + 48)
extern int64_t g_start_ms;
int64_t now_ms(void); /* monotonic, coarse */

/* ---- keyed hash (db.c): SipHash-2-4, key from getrandom at start-up ----- */
void hash_init(void);
uint64_t hash_bytes(const void *p, size_t n);
uint64_t siphash24(const unsigned char key[16], const void *p, size_t n);
uint64_t hash_fingerprint(void); /* identifies the key without showing it */
bool hash_selftest(void);        /* SipHash-2-4 reference vectors */

/* ---- keyspace (db.c) ---------------------------------------------------- */
enum { SET_NX = 1, SET_XX = 2, SET_KEEPTTL = 4 };
struct val *db_get(const char *k, size_t n);        /* new strong ref */
int db_set(const char *k, size_t n, struct val *v, int64_t expire_at,
	   int flags);                                /* consumes v; 1 set */
int db_del(const char *k, size_t n);                /* 1 removed */
int db_exists(const char *k, size_t n);
int db_incr(const char *k, size_t n, long long by, long long *out);
int64_t db_ttl_ms(const char *k, size_t n);         /* -2 absent, -1 none */
/* EXPIRE: 1 set, 0 no such key or a condition failed; at <= now deletes
 * the key (1) */
enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };
int db_expire_at(const char *k, size_t n, int64_t at, int flags);
int db_persist(const char *k, size_t n);            /* 1 had a deadline */
size_t db_size(size_t *expires);
void db_sweep(int worker, int nworkers);
void db_init(void);
void db_free(void);

/* ---- connections (main.c) ---------------------------------------------- */
struct arg {
	const char *p;
	size_t n;
};

struct seg {
	struct seg *next;
	struct val *v; /* shared value, or NULL: bytes in buf */
	size_t off, len, cap;
	char buf[];
};

struct sub {
	char *name;
	size_t len;
	uint64_t hash;
	wref_signal *sig; /* strong: the channel lives while someone listens */
};

struct worker;

struct conn {
	int kind; /* first: epoll tag */
	int fd;
	uint64_t id;
	struct worker *w;
	int widx; /* the owner's index in g_wstats */
	struct conn *prev, *next; /* the owner worker's list (owner only) */
	char addr[48];
	int64_t ctime_ms;
	_Atomic int64_t last_ms;
	_Atomic(const char *) last_cmd;
	_Atomic bool closed;

	/* input: owner thread only */
	char *in;
	size_t in_len, in_cap, in_off, need;
	struct resp rp;     /* the command being parsed, across reads */
	struct arg *argv;
	size_t argc, argv_cap;
	size_t cmd_used;    /* input bytes of the command in argv */
	size_t cmd_cursor;  /* a command run in turns: where it resumes */
	bool cmd_again;     /* set by a command that wants another turn */
	bool in_cmd;        /* argv holds a command that is not finished */
	bool closing, reading, writing;
	bool drop;          /* close now, reply nothing (cross-protocol) */

	/* output queue: appended by the owner and by publishers, under mu */
	pthread_mutex_t mu;
	struct seg *out_head, *out_tail, *spare;
	_Atomic size_t out_bytes; /* bytes still to write */
	_Atomic size_t out_mem;   /* memory the queue holds (the caps) */
	int64_t soft_since;       /* over the pubsub soft limit since (ms) */
	bool wake_pending; /* queued in the owner's mailbox */
	bool kill;         /* subscriber too far behind */
	char name[64];     /* CLIENT SETNAME */

	/* subscriptions: owner thread only; count read by CLIENT LIST */
	struct sub *subs;
	size_t nsubs_cap;
	_Atomic size_t nsubs;
	uint32_t *sub_slots; /* hash set over subs: index + 1, 0 empty */
	size_t sub_mask;     /* slots - 1 (slots a power of two) */
};

/* reply helpers: take c->mu themselves (never called with it held) */
void reply_raw(struct conn *c, const char *p, size_t n);
void reply_str(struct conn *c, const char *s);   /* raw, s includes CRLF */
void reply_err(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void reply_int(struct conn *c, long long v);
void reply_bulk(struct conn *c, const char *p, size_t n);
void reply_val(struct conn *c, struct val *v);   /* $len + shared value */
void reply_nil(struct conn *c);
void reply_array(struct conn *c, long long n);
/* with c->mu held */
bool out_bytes_locked(struct conn *c, const char *p, size_t n);
bool out_val_locked(struct conn *c, struct val *v);

void conn_wake(struct conn *c); /* with c->mu held: schedule a flush */
/* CLIENT KILL: cut connections matching id (0 = any) and addr (NULL =
 * any), skipping @self when skipme; returns how many */
size_t conn_kill(struct conn *self, uint64_t id, const char *addr,
		 bool skipme);

/* ---- commands (cmd.c) --------------------------------------------------- */
void cmd_exec(struct conn *c);
void conn_drop_subs(struct conn *c);

#endif
