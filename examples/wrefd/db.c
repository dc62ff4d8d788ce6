/*
 * db.c - the keyspace: a sharded hash table, key -> (value, deadline).
 *
 * The keyspace holds a strong ref to each value; a GET pins the value (one
 * more strong ref) for as long as its reply sits in an output queue, so
 * DEL/SET never wait for, nor copy for, a reply in flight.  Values are
 * released outside the shard lock.  Expiry: a deadline per key, checked on
 * every access, and swept in the background by the workers (each sweeps
 * its slice of shards every 100 ms).
 */
#include "wrefd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NSHARDS 256

struct entry {
	struct entry *next;
	uint64_t hash;
	struct val *v;     /* strong */
	int64_t expire_at; /* monotonic ms, 0 = none */
	size_t klen;
	char key[];
};

struct shard {
	pthread_mutex_t mu;
	struct entry **b;
	size_t nb, n;
	_Atomic size_t nexp; /* read unlocked by the sweeper as a hint */
	size_t sweep_at; /* next bucket the sweeper looks at */
} __attribute__((aligned(64)));

static struct shard shards[NSHARDS];

/* ---- SipHash-2-4 (Aumasson & Bernstein), keyed at start-up ------------
 * A fixed hash lets a client that can choose keys put them all in one
 * chain (hash flooding); with a secret random key it cannot predict where
 * a key lands.  redis-server does the same (SipHash, random key). */
static unsigned char hash_key[16];

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                          \
	do {                                                              \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                    \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                    \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t siphash24(const unsigned char key[16], const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + (n & ~(size_t)7);
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)n << 56, m;
	for (; p != end; p += 8) {
		m = le64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (int i = (int)(n & 7) - 1; i >= 0; i--)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

void hash_init(void)
{
	size_t got = 0;
	while (got < sizeof hash_key) {
		ssize_t r = getrandom(hash_key + got, sizeof hash_key - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			perror("wrefd: getrandom");
			exit(1);
		}
		got += r;
	}
}

uint64_t hash_bytes(const void *p, size_t n)
{
	return siphash24(hash_key, p, n);
}

uint64_t hash_fingerprint(void)
{
	return siphash24(hash_key, "wrefd hash key fingerprint", 26);
}

/* the reference vectors: key 00..0f, message 00..(len-1) */
bool hash_selftest(void)
{
	static const struct {
		size_t len;
		uint64_t h;
	} vec[] = {
		{ 0, 0x726fdb47dd0e0e31ull },
		{ 1, 0x74f839c593dc67fdull },
		{ 7, 0xab0200f58b01d137ull },
		{ 8, 0x93f5f5799a932462ull },
		{ 15, 0xa129ca6149be45e5ull },
		{ 63, 0x958a324ceb064572ull },
	};
	unsigned char key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = i;
	for (int i = 0; i < 64; i++)
		msg[i] = i;
	for (size_t i = 0; i < sizeof vec / sizeof *vec; i++)
		if (siphash24(key, msg, vec[i].len) != vec[i].h) {
			fprintf(stderr, "siphash24: vector %zu: %016llx\n",
				vec[i].len, (unsigned long long)siphash24(
					key, msg, vec[i].len));
			return false;
		}
	return true;
}

/* keyspace memory, for --maxmemory and INFO: entry, key, value */
static int64_t entry_mem(size_t klen, const struct val *v)
{
	return (int64_t)(sizeof(struct entry) + klen + 16 + VAL_MEM(v->len));
}

static struct shard *shard_of(uint64_t h)
{
	return &shards[h % NSHARDS];
}

static struct entry **find(struct shard *s, uint64_t h, const char *k,
			   size_t n)
{
	struct entry **pp = &s->b[(h >> 8) & (s->nb - 1)];
	for (; *pp; pp = &(*pp)->next) {
		struct entry *e = *pp;
		if (e->hash == h && e->klen == n && !memcmp(e->key, k, n))
			return pp;
	}
	return pp;
}

static void grow(struct shard *s)
{
	size_t nb = s->nb * 2;
	struct entry **b = calloc(nb, sizeof *b);
	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < s->nb; i++) {
		struct entry *e = s->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			struct entry **slot = &b[(e->hash >> 8) & (nb - 1)];
			e->next = *slot;
			*slot = e;
		}
	}
	free(s->b);
	s->b = b;
	s->nb = nb;
	s->sweep_at = 0;
}

/* Unlinks *pp; returns its value for the caller to release unlocked. */
static struct val *unlink_entry(struct shard *s, struct entry **pp)
{
	struct entry *e = *pp;
	struct val *v = e->v;
	*pp = e->next;
	s->n--;
	mem_add(-entry_mem(e->klen, v));
	if (e->expire_at)
		s->nexp--;
	free(e);
	return v;
}

static bool expired(const struct entry *e, int64_t now)
{
	return e->expire_at && e->expire_at <= now;
}

/* Finds a live entry (removing an expired one, its value into *dead). */
static struct entry **lookup(struct shard *s, uint64_t h, const char *k,
			     size_t n, struct val **dead)
{
	struct entry **pp = find(s, h, k, n);
	if (*pp && expired(*pp, now_ms())) {
		*dead = unlink_entry(s, pp);
		return NULL;
	}
	return *pp ? pp : NULL;
}

void db_init(void)
{
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_init(&shards[i].mu, NULL);
		shards[i].nb = 16;
		shards[i].b = calloc(16, sizeof *shards[i].b);
		if (!shards[i].b) {
			perror("wrefd: db_init");
			exit(1);
		}
	}
}

void db_free(void)
{
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &shards[i];
		for (size_t j = 0; j < s->nb; j++)
			while (s->b[j])
				wref_release(unlink_entry(s, &s->b[j]));
		free(s->b);
		s->b = NULL;
		pthread_mutex_destroy(&s->mu);
	}
}

struct val *db_get(const char *k, size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *v = NULL, *dead = NULL;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp)
		v = wref_retain((*pp)->v);
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	return v;
}

int db_set(const char *k, size_t n, struct val *v, int64_t expire_at,
	   int flags)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *old = NULL, *dead = NULL;
	int done = 0;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp) {
		struct entry *e = *pp;
		if (!(flags & SET_NX)) {
			old = e->v;
			mem_add(entry_mem(n, v) - entry_mem(n, old));
			e->v = v;
			v = NULL;
			if (!(flags & SET_KEEPTTL)) {
				if (e->expire_at && !expire_at)
					s->nexp--;
				else if (!e->expire_at && expire_at)
					s->nexp++;
				e->expire_at = expire_at;
			}
			done = 1;
		}
	} else if (!(flags & SET_XX)) {
		struct entry *e = malloc(sizeof *e + n);
		if (e) {
			if (s->n >= s->nb)
				grow(s);
			memcpy(e->key, k, n);
			e->klen = n;
			e->hash = h;
			e->v = v;
			mem_add(entry_mem(n, v));
			v = NULL;
			e->expire_at = expire_at;
			if (expire_at)
				s->nexp++;
			pp = find(s, h, k, n);
			e->next = *pp;
			*pp = e;
			s->n++;
			done = 1;
		} else {
			done = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&s->mu);
	/* an overwritten value may still be in another client's reply: that
	 * reply holds its own ref, so this only drops the keyspace's */
	wref_release(old);
	wref_release(dead);
	wref_release(v);
	return done;
}

int db_del(const char *k, size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *old = NULL, *dead = NULL;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp)
		old = unlink_entry(s, pp);
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	if (!old)
		return 0;
	wref_release(old);
	return 1;
}

int db_exists(const char *k, size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *dead = NULL;
	pthread_mutex_lock(&s->mu);
	int r = lookup(s, h, k, n, &dead) != NULL;
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	return r;
}

int64_t db_ttl_ms(const char *k, size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *dead = NULL;
	int64_t r = -2;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp) {
		r = (*pp)->expire_at ? (*pp)->expire_at - now_ms() : -1;
		if (r == 0)
			r = 1;
	}
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	return r;
}

int db_expire_at(const char *k, size_t n, int64_t at, int flags)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *dead = NULL, *old = NULL;
	int r = 0;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp) {
		struct entry *e = *pp;
		/* redis-server 7's conditions; no deadline counts as infinite */
		if ((flags & EXP_NX) && e->expire_at)
			goto out;
		if ((flags & EXP_XX) && !e->expire_at)
			goto out;
		if ((flags & EXP_GT) && (!e->expire_at || at <= e->expire_at))
			goto out;
		if ((flags & EXP_LT) && e->expire_at && at >= e->expire_at)
			goto out;
		r = 1;
		if (at <= now_ms()) {
			old = unlink_entry(s, pp); /* as Redis: deleted now */
		} else {
			if (!e->expire_at)
				s->nexp++;
			e->expire_at = at;
		}
	}
out:
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	wref_release(old);
	return r;
}

int db_persist(const char *k, size_t n)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *dead = NULL;
	int r = 0;
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp && (*pp)->expire_at) {
		(*pp)->expire_at = 0;
		s->nexp--;
		r = 1;
	}
	pthread_mutex_unlock(&s->mu);
	wref_release(dead);
	return r;
}

static bool val_to_ll(const struct val *v, long long *out)
{
	char *end;
	if (v->len == 0 || v->len > 20)
		return false;
	errno = 0;
	long long x = strtoll(v->data, &end, 10);
	if (errno || end != v->data + v->len ||
	    (v->data[0] != '-' && (v->data[0] < '0' || v->data[0] > '9')))
		return false;
	/* reject "+1", " 1", "01", "-0" as Redis does */
	char buf[32];
	if ((size_t)snprintf(buf, sizeof buf, "%lld", x) != v->len ||
	    memcmp(buf, v->data, v->len))
		return false;
	*out = x;
	return true;
}

/* 0 ok, -EINVAL not an integer, -ERANGE overflow, -ENOMEM */
int db_incr(const char *k, size_t n, long long by, long long *out)
{
	uint64_t h = hash_bytes(k, n);
	struct shard *s = shard_of(h);
	struct val *old = NULL, *dead = NULL;
	long long cur = 0;
	int rc = 0;
	char buf[32];
	pthread_mutex_lock(&s->mu);
	struct entry **pp = lookup(s, h, k, n, &dead);
	if (pp && !val_to_ll((*pp)->v, &cur)) {
		rc = -EINVAL;
	} else if ((by > 0 && cur > LLONG_MAX - by) ||
		   (by < 0 && cur < LLONG_MIN - by)) {
		rc = -ERANGE;
	} else {
		cur += by;
		int len = snprintf(buf, sizeof buf, "%lld", cur);
		/* library call under our own lock: it runs no code of ours
		 * that takes a shard lock (make only allocates) */
		struct val *nv = cur >= 0 && cur < SHARED_INTEGERS
					 ? val_make(buf, len)
					 : val_new(buf, len);
		if (!nv) {
			rc = -ENOMEM;
		} else if (pp) {
			old = (*pp)->v;
			mem_add(entry_mem(n, nv) - entry_mem(n, old));
			(*pp)->v = nv;
		} else {
			pthread_mutex_unlock(&s->mu);
			wref_release(dead);
			/* the key is new: insert with the plain path (a
			 * concurrent INCR may have created it: retry) */
			if (db_set(k, n, nv, 0, SET_NX) == 1) {
				*out = cur;
				return 0;
			}
			return db_incr(k, n, by, out);
		}
	}
	pthread_mutex_unlock(&s->mu);
	wref_release(old);
	wref_release(dead);
	if (!rc)
		*out = cur;
	return rc;
}

size_t db_size(size_t *expires)
{
	size_t n = 0, e = 0;
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&shards[i].mu);
		n += shards[i].n;
		e += shards[i].nexp;
		pthread_mutex_unlock(&shards[i].mu);
	}
	if (expires)
		*expires = e;
	return n;
}

/* Active expiry: each worker sweeps shards i with i % nworkers == worker,
 * a bounded number of buckets per shard per call. */
void db_sweep(int worker, int nworkers)
{
	int64_t now = now_ms();
	for (int i = worker; i < NSHARDS; i += nworkers) {
		struct shard *s = &shards[i];
		struct val *dead[64];
		int nd = 0;
		/* relaxed: a hint, re-checked under the lock */
		if (!atomic_load_explicit(&s->nexp, memory_order_relaxed))
			continue;
		pthread_mutex_lock(&s->mu);
		for (int b = 0; b < 64 && nd < 64 && s->nexp; b++) {
			size_t at = s->sweep_at++ & (s->nb - 1);
			struct entry **pp = &s->b[at];
			while (*pp && nd < 64) {
				if (expired(*pp, now))
					dead[nd++] = unlink_entry(s, pp);
				else
					pp = &(*pp)->next;
			}
		}
		pthread_mutex_unlock(&s->mu);
		for (int j = 0; j < nd; j++)
			wref_release(dead[j]);
	}
}
