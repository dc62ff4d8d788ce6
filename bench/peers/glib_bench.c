/*
 * glib_bench.c - the GLib peer: GWeakRef (g_weak_ref_get + g_object_unref)
 * on a GObject with a 16-byte payload, and the weak cache a GLib program
 * writes by hand: a GMutex guarding a GHashTable from key to GWeakRef,
 * whose entries are removed promptly by a weak notify when their object
 * dies (as libwref's maps do).  Death callbacks: g_object_weak_ref()
 * notifies, which GLib runs inline on the releasing thread.
 */
#include "common.h"

#include <glib-object.h>

typedef struct {
	GObject parent;
	guint64 key, pad;
} BObj;
typedef struct {
	GObjectClass parent;
} BObjClass;
G_DEFINE_TYPE(BObj, bobj, G_TYPE_OBJECT)
static void bobj_class_init(BObjClass *k)
{
	(void)k;
}
static void bobj_init(BObj *o)
{
	(void)o;
}
#define NEW() ((GObject *)g_object_new(bobj_get_type(), NULL))

static struct bench_opts opt;

/* ---- 1. upgrade + release -------------------------------------------- */
struct up_ctx {
	GWeakRef w[2];
	int shared;
};

static void up_body(struct bench_thr *t)
{
	struct up_ctx *c = t->arg;
	GWeakRef *w = &c->w[c->shared ? 0 : t->tid];
	uint64_t n = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			GObject *p = g_weak_ref_get(w);
			g_object_unref(p);
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_upgrade(void)
{
	struct up_ctx c;
	GObject *o[2];
	for (int i = 0; i < 2; i++) {
		o[i] = NEW();
		g_weak_ref_init(&c.w[i], o[i]);
	}
	c.shared = 0;
	bench_out("up_1t", bench_run(1, opt.ms, up_body, &c));
	bench_out("up_2t_own", bench_run(2, opt.ms, up_body, &c));
	c.shared = 1;
	bench_out("up_2t_shared", bench_run(2, opt.ms, up_body, &c));
	for (int i = 0; i < opt.nthreads; i++) {
		char k[32];
		snprintf(k, sizeof k, "scale_up_%d", opt.threads[i]);
		bench_out(k, bench_run(opt.threads[i], opt.ms, up_body, &c));
	}
	for (int i = 0; i < 2; i++) {
		g_weak_ref_clear(&c.w[i]);
		g_object_unref(o[i]);
	}
}

/* ---- 2. create + release --------------------------------------------- */
static void new_body(struct bench_thr *t)
{
	uint64_t n = 0;
	int weak = t->arg != NULL;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			GObject *o = NEW();
			if (weak) {
				GWeakRef w;
				g_weak_ref_init(&w, o);
				g_object_unref(o);
				g_weak_ref_clear(&w);
			} else {
				g_object_unref(o);
			}
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_create(void)
{
	bench_out("new_rel", bench_run(1, opt.ms, new_body, NULL));
	bench_out("new_rel_weak", bench_run(1, opt.ms, new_body, &opt));
}

/* ---- the hand-written weak cache ------------------------------------- */
struct entry {
	GWeakRef wr;
	GObject *ident; /* the object it names, for removal by identity */
};

struct cache {
	GMutex mu;
	GHashTable *h; /* char * (owned) -> struct entry * (owned) */
};

static void entry_free(gpointer p)
{
	struct entry *e = p;
	g_weak_ref_clear(&e->wr);
	g_free(e);
}

static void cache_init(struct cache *c)
{
	g_mutex_init(&c->mu);
	c->h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
				     entry_free);
}

static void cache_fini(struct cache *c)
{
	g_hash_table_destroy(c->h);
	g_mutex_clear(&c->mu);
}

static GObject *cache_get(struct cache *c, const char *key)
{
	g_mutex_lock(&c->mu);
	struct entry *e = g_hash_table_lookup(c->h, key);
	GObject *o = e ? g_weak_ref_get(&e->wr) : NULL;
	g_mutex_unlock(&c->mu);
	return o;
}

static void cache_set(struct cache *c, const char *key, GObject *o)
{
	struct entry *e = g_new(struct entry, 1);
	g_weak_ref_init(&e->wr, o);
	e->ident = o;
	g_mutex_lock(&c->mu);
	g_hash_table_replace(c->h, g_strdup(key), e);
	g_mutex_unlock(&c->mu);
}

static struct cache churn_cache;

/* weak notify: runs inline in the last unref; removes the entry if it
 * still names the dying object */
static void gone(gpointer data, GObject *where)
{
	char *key = data;
	struct cache *c = &churn_cache;
	g_mutex_lock(&c->mu);
	struct entry *e = g_hash_table_lookup(c->h, key);
	if (e && e->ident == where)
		g_hash_table_remove(c->h, key);
	g_mutex_unlock(&c->mu);
	g_free(key);
}

static GObject *cache_get_or_create(struct cache *c, const char *key)
{
	GObject *o = cache_get(c, key);
	if (o)
		return o;
	g_mutex_lock(&c->mu);
	struct entry *e = g_hash_table_lookup(c->h, key);
	if (e && (o = g_weak_ref_get(&e->wr)) != NULL) {
		g_mutex_unlock(&c->mu);
		return o;
	}
	o = NEW();
	g_object_weak_ref(o, gone, g_strdup(key));
	if (e) {
		g_weak_ref_set(&e->wr, o);
		e->ident = o;
	} else {
		e = g_new(struct entry, 1);
		g_weak_ref_init(&e->wr, o);
		e->ident = o;
		g_hash_table_insert(c->h, g_strdup(key), e);
	}
	g_mutex_unlock(&c->mu);
	return o;
}

static char (*keys)[16]; /* NUL-terminated: g_str_hash needs it */

struct get_ctx {
	struct cache *c;
	uint32_t base;
};

static void get_body(struct bench_thr *t)
{
	struct get_ctx *g = t->arg;
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(t->tid + 1), n = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			uint32_t k = g->base +
				(uint32_t)(bench_xs(&s) & (BENCH_NKEYS - 1));
			GObject *o = cache_get(g->c, keys[k]);
			if (o)
				g_object_unref(o);
		}
		BENCH_OPS(t, n += 64);
	}
}

static void w_get(void)
{
	struct cache c;
	cache_init(&c);
	GObject **o = malloc(BENCH_NKEYS * sizeof *o);
	for (uint32_t i = 0; i < BENCH_NKEYS; i++) {
		o[i] = NEW();
		cache_set(&c, keys[i], o[i]);
	}
	struct get_ctx hit = { &c, 0 }, miss = { &c, BENCH_NKEYS };
	bench_out("get_hit_1t", bench_run(1, opt.ms, get_body, &hit));
	bench_out("get_hit_2t", bench_run(2, opt.ms, get_body, &hit));
	bench_out("get_miss_1t", bench_run(1, opt.ms, get_body, &miss));
	bench_out("get_miss_2t", bench_run(2, opt.ms, get_body, &miss));
	for (int i = 0; i < opt.nthreads; i++) {
		char k[32];
		snprintf(k, sizeof k, "scale_get_%d", opt.threads[i]);
		bench_out(k, bench_run(opt.threads[i], opt.ms, get_body, &hit));
	}
	cache_fini(&c);
	for (uint32_t i = 0; i < BENCH_NKEYS; i++)
		g_object_unref(o[i]);
	free(o);
}

/* ---- 4. get-or-create under churn ------------------------------------- */
static char (*ckeys)[16];
static uint32_t *zseq[2];

static void goc_body(struct bench_thr *t)
{
	GObject *ring[BENCH_RING] = { 0 };
	const uint32_t *seq = zseq[t->tid];
	uint64_t n = 0;
	size_t pos = 0;
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++, pos++) {
			uint32_t k = seq[pos & (BENCH_SEQ - 1)];
			GObject *o = cache_get_or_create(&churn_cache,
							 ckeys[k]);
			GObject **slot = &ring[pos & (BENCH_RING - 1)];
			if (*slot)
				g_object_unref(*slot);
			*slot = o;
		}
		BENCH_OPS(t, n += 64);
	}
	for (int i = 0; i < BENCH_RING; i++)
		if (ring[i])
			g_object_unref(ring[i]);
}

static void w_churn(void)
{
	ckeys = malloc(BENCH_CHURN_KEYS * sizeof *ckeys);
	for (uint32_t i = 0; i < BENCH_CHURN_KEYS; i++)
		bench_key(ckeys[i], i);
	zseq[0] = bench_zipf_seq(BENCH_CHURN_KEYS, BENCH_SEQ, 0);
	zseq[1] = bench_zipf_seq(BENCH_CHURN_KEYS, BENCH_SEQ, 1);
	cache_init(&churn_cache);
	bench_out("goc_churn_2t", bench_run(2, opt.ms, goc_body, NULL));
	cache_fini(&churn_cache);
}

/* ---- 8. threads outnumbering cores: mixed ops on 4096 shared keys ----- */
/* a fresh object whose weak notify removes its entry (churn_cache's) */
static GObject *os_make(const char *key)
{
	GObject *o = NEW();
	g_object_weak_ref(o, gone, g_strdup(key));
	return o;
}

/* set of a fresh object: replaces the entry's GWeakRef in place */
static void os_set(struct cache *c, const char *key, GObject *o)
{
	g_mutex_lock(&c->mu);
	struct entry *e = g_hash_table_lookup(c->h, key);
	if (e) {
		g_weak_ref_set(&e->wr, o);
		e->ident = o;
	} else {
		e = g_new(struct entry, 1);
		g_weak_ref_init(&e->wr, o);
		e->ident = o;
		g_hash_table_insert(c->h, g_strdup(key), e);
	}
	g_mutex_unlock(&c->mu);
}

static void os_del(struct cache *c, const char *key)
{
	g_mutex_lock(&c->mu);
	g_hash_table_remove(c->h, key);
	g_mutex_unlock(&c->mu);
}

/* the same workload as wref_bench's os_body */
static void os_body(struct bench_thr *t)
{
	struct bench_os_run *run = t->arg;
	struct cache *c = &churn_cache;
	struct bench_hist *h = run->h[t->tid];
	GObject **ring = calloc((size_t)run->keep, sizeof *ring);
	uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(t->tid + 1), n = 0;
	int pos = 0;
	for (int k = t->tid; k < BENCH_OS_KEYS; k += run->n) {
		GObject *p = os_make(keys[k]);
		os_set(c, keys[k], p);
		if (ring[pos])
			g_object_unref(ring[pos]);
		ring[pos] = p;
		pos = pos + 1 == run->keep ? 0 : pos + 1;
	}
	BENCH_OS_READY(run);
	while (!BENCH_STOP(t)) {
		for (int i = 0; i < 64; i++) {
			uint64_t r = bench_xs(&s);
			const char *key = keys[bench_os_key(r)];
			int op = bench_os_op(r), rec = BENCH_OS_REC(run);
			GObject *p = NULL;
			uint64_t a = bench_tick();
			switch (op) {
			case BENCH_OS_OP_GET:
				p = cache_get(c, key);
				h->hits += p != NULL;
				h->gets++;
				if (p)
					g_object_unref(p);
				p = NULL;
				break;
			case BENCH_OS_OP_SET:
				p = os_make(key);
				os_set(c, key, p);
				break;
			case BENCH_OS_OP_DEL:
				os_del(c, key);
				break;
			default:
				p = cache_get_or_create(c, key);
			}
			if (p) {
				GObject *old = ring[pos];
				ring[pos] = p;
				pos = pos + 1 == run->keep ? 0 : pos + 1;
				if (old)
					g_object_unref(old);
			}
			uint64_t b = bench_tick();
			if (rec)
				bench_h_add(h, op, b - a);
		}
		BENCH_OPS(t, n += 64);
	}
	for (int i = 0; i < run->keep; i++)
		if (ring[i])
			g_object_unref(ring[i]);
	free(ring);
}

static void w_oversub(void)
{
	bench_out("os_clock", bench_tick_cost());
	for (int i = 0; i < opt.os_n; i++) {
		struct bench_os_res r;
		cache_init(&churn_cache);
		bench_run_os(opt.os_threads[i], opt.os_ms, os_body, NULL, &r);
		bench_out_os(opt.os_threads[i], &r);
		cache_fini(&churn_cache);
	}
}

/* ---- 5. death callbacks (inline weak notify) ------------------------- */
static uint64_t cb_count;

static void count_cb(gpointer data, GObject *where)
{
	(void)data;
	(void)where;
	__atomic_fetch_add(&cb_count, 1, __ATOMIC_RELAXED);
}

static void w_callbacks(void)
{
	uint64_t n = 0, t0 = bench_now_ns(),
		 end = t0 + (uint64_t)(opt.ms * 1e6);
	do {
		for (int i = 0; i < 64; i++) {
			GObject *o = NEW();
			g_object_weak_ref(o, count_cb, NULL);
			g_object_unref(o);
		}
		n += 64;
	} while (bench_now_ns() < end);
	bench_out("cb_tput", (double)(bench_now_ns() - t0) / (double)n);
}

/* ---- 6. memory --------------------------------------------------------- */
static void w_memory(void)
{
	GObject **o = malloc(BENCH_MEM_N * sizeof *o);
	GWeakRef *w = malloc(BENCH_MEM_N * sizeof *w);
	GObject *warm = NEW(); /* class init outside the measurement */
	g_object_unref(warm);
	size_t a0 = bench_allocated();
	for (int i = 0; i < BENCH_MEM_N; i++)
		o[i] = NEW();
	size_t a1 = bench_allocated();
	for (int i = 0; i < BENCH_MEM_N; i++)
		g_weak_ref_init(&w[i], o[i]);
	size_t a2 = bench_allocated();
	struct cache c;
	cache_init(&c);
	for (int i = 0; i < BENCH_MEM_N; i++)
		cache_set(&c, keys[i], o[i]);
	size_t a3 = bench_allocated();
	bench_out("mem_obj", (double)(a1 - a0) / BENCH_MEM_N);
	bench_out("mem_ref", (double)(a2 - a1) / BENCH_MEM_N +
				     sizeof(GWeakRef));
	bench_out("mem_entry", (double)(a3 - a2) / BENCH_MEM_N);
	cache_fini(&c);
	for (int i = 0; i < BENCH_MEM_N; i++) {
		g_weak_ref_clear(&w[i]);
		g_object_unref(o[i]);
	}
	free(o);
	free(w);
}

int main(int argc, char **argv)
{
	bench_parse(&opt, argc, argv);
	keys = malloc(2 * BENCH_NKEYS * sizeof *keys);
	for (uint32_t i = 0; i < 2 * BENCH_NKEYS; i++)
		bench_key(keys[i], i);
	if (bench_want(&opt, "memory"))
		w_memory();
	if (bench_want(&opt, "upgrade"))
		w_upgrade();
	if (bench_want(&opt, "create"))
		w_create();
	if (bench_want(&opt, "get"))
		w_get();
	if (bench_want(&opt, "churn"))
		w_churn();
	if (bench_want(&opt, "callbacks"))
		w_callbacks();
	if (bench_want(&opt, "oversub"))
		w_oversub();
	return 0;
}
