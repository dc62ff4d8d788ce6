/*
 * ck_bench.c - the Concurrency Kit peer: a lock-free weak cache on ck_hs
 * (single writer / many readers, CK_HS_MODE_SPMC) with ck_epoch read-side
 * sections, and the textbook weak upgrade "increment if not zero" (a CAS
 * loop) on the object's count.  This is the fair lock-free C rival for the
 * map get path; it has no prompt removal at death and no get-or-create
 * (ck_hs takes one writer: a writer lock plus epoch reclamation of dead
 * entries would be libwref's design again), so only the get rows, the
 * scaling curve and the per-entry memory are measured.
 */
#include "common.h"

#include <ck_epoch.h>
#include <ck_hs.h>
#include <ck_pr.h>

static struct bench_opts opt;

struct cobj {
	uint64_t refs; /* 0 = dead */
	uint64_t payload[2];
};

struct entry {
	struct cobj *o;
	uint32_t len;
	char key[16];
};

static unsigned long hs_hash(const void *p, unsigned long seed)
{
	const struct entry *e = p;
	return (unsigned long)(bench_hash(e->key, e->len) ^ seed);
}

static bool hs_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->len == y->len && !memcmp(x->key, y->key, x->len);
}

static void *hs_malloc(size_t n)
{
	return malloc(n);
}
static void hs_free(void *p, size_t n, bool defer)
{
	(void)n;
	(void)defer; /* tables are only freed at the end, single-threaded */
	free(p);
}
static struct ck_malloc allocator = { .malloc = hs_malloc, .free = hs_free };

static ck_epoch_t epoch;
static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;

static void cache_init(ck_hs_t *hs)
{
	ck_hs_init(hs, CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC, hs_hash, hs_cmp,
		   &allocator, 1024, 0x5bd1e995);
}

static void cache_set(ck_hs_t *hs, const char *key, struct cobj *o)
{
	struct entry *e = malloc(sizeof *e);
	e->o = o;
	e->len = BENCH_KEYLEN;
	memcpy(e->key, key, BENCH_KEYLEN);
	pthread_mutex_lock(&writer);
	ck_hs_put(hs, CK_HS_HASH(hs, hs_hash, e), e);
	pthread_mutex_unlock(&writer);
}

static inline struct cobj *cache_get(ck_hs_t *hs, ck_epoch_record_t *rec,
				     const char *key)
{
	struct entry probe;
	struct cobj *ret = NULL;
	probe.len = BENCH_KEYLEN;
	memcpy(probe.key, key, BENCH_KEYLEN);
	ck_epoch_begin(rec, NULL);
	struct entry *e = ck_hs_get(hs, CK_HS_HASH(hs, hs_hash, &probe),
				    &probe);
	if (e) {
		struct cobj *o = ck_pr_load_ptr(&e->o);
		uint64_t c = ck_pr_load_64(&o->refs);
		while (c && !ck_pr_cas_64_value(&o->refs, c, c + 1, &c))
			;
		if (c)
			ret = o;
	}
	ck_epoch_end(rec, NULL);
	return ret;
}

static inline void put(struct cobj *o)
{
	if (o)
		__atomic_fetch_sub(&o->refs, 1, __ATOMIC_RELEASE);
}

static char (*keys)[16];

struct get_ctx {
	ck_hs_t *hs;
	uint32_t base;
};

static void get_body(struct bench_thr *t)
{
	struct get_ctx *g = t->arg;
	ck_epoch_record_t *rec = malloc(sizeof *rec);
	ck_epoch_register(&epoch, rec, NULL);
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(t->tid + 1), n = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			uint32_t k = g->base +
				(uint32_t)(bench_xs(&s) & (BENCH_NKEYS - 1));
			put(cache_get(g->hs, rec, keys[k]));
		}
		BENCH_OPS(t, n += 64);
	}
	ck_epoch_unregister(rec);
}

static void w_get(void)
{
	ck_hs_t hs;
	cache_init(&hs);
	for (uint32_t i = 0; i < BENCH_NKEYS; i++) {
		struct cobj *o = calloc(1, sizeof *o);
		o->refs = 1;
		cache_set(&hs, keys[i], o);
	}
	struct get_ctx hit = { &hs, 0 }, miss = { &hs, BENCH_NKEYS };
	bench_out("get_hit_1t", bench_run(1, opt.ms, get_body, &hit));
	bench_out("get_hit_2t", bench_run(2, opt.ms, get_body, &hit));
	bench_out("get_miss_1t", bench_run(1, opt.ms, get_body, &miss));
	bench_out("get_miss_2t", bench_run(2, opt.ms, get_body, &miss));
	for (int i = 0; i < opt.nthreads; i++) {
		char k[32];
		snprintf(k, sizeof k, "scale_get_%d", opt.threads[i]);
		bench_out(k, bench_run(opt.threads[i], opt.ms, get_body, &hit));
	}
	/* entries and objects leak: the process ends */
}

static void w_memory(void)
{
	struct cobj **o = malloc(BENCH_MEM_N * sizeof *o);
	for (int i = 0; i < BENCH_MEM_N; i++) {
		o[i] = calloc(1, sizeof **o);
		o[i]->refs = 1;
	}
	size_t a0 = bench_allocated();
	ck_hs_t hs;
	cache_init(&hs);
	for (int i = 0; i < BENCH_MEM_N; i++)
		cache_set(&hs, keys[i], o[i]);
	size_t a1 = bench_allocated();
	bench_out("mem_entry", (double)(a1 - a0) / BENCH_MEM_N);
}

int main(int argc, char **argv)
{
	bench_parse(&opt, argc, argv);
	ck_epoch_init(&epoch);
	keys = malloc(2 * BENCH_NKEYS * sizeof *keys);
	for (uint32_t i = 0; i < 2 * BENCH_NKEYS; i++)
		bench_key(keys[i], i);
	if (bench_want(&opt, "memory"))
		w_memory();
	if (bench_want(&opt, "get"))
		w_get();
	return 0;
}
