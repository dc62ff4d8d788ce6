/*
 * common.h - the harness shared by the C and C++ peer benchmarks.
 *
 * Every peer binary prints lines "key value" (ns per op per thread, or
 * bytes) that bench/suite.py collects; the same keys, key sets, access
 * sequences and durations are used by every peer (rust_bench.rs and
 * py_bench.py re-implement the same generators), so the driver can put the
 * figures side by side.
 *
 * Timed workloads run in threads: after a warm-up of 1/4 of the duration
 * the harness snapshots every thread's op counter, sleeps the duration and
 * snapshots again; ns/op per thread = wall * threads / ops.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameters (identical in every peer) ---------------------------- */
#ifndef BENCH_NKEYS
#define BENCH_NKEYS 16384       /* weak-value map: live entries (hit) */
#endif
#define BENCH_CHURN_KEYS 65536  /* get-or-create: key space */
#define BENCH_ZIPF_S 0.99       /* its popularity skew */
#define BENCH_RING 256          /* objects a churn thread keeps alive */
#define BENCH_SEQ 65536         /* per-thread zipf sequence length */
#define BENCH_MEM_N 20000       /* objects for the memory workload */
#define BENCH_KEYLEN 12         /* "k:%010u" */
/* oversubscription (--only oversub): mixed workload on a shared key space */
#define BENCH_OS_KEYS 4096      /* keys [0, 4096) of the same key set */
#define BENCH_OS_RING 4096      /* set / get-or-create results a thread
				   keeps alive (its most recent ones) */
#define BENCH_OS_GET 90         /* per 100 ops: get */
#define BENCH_OS_SET 4          /* set (replace) with a fresh object */
#define BENCH_OS_DEL 3          /* del; the remaining 3: get-or-create */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_xs(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* key i: 12 bytes "k:%010u" (not NUL-terminated in use; buffer is 16) */
static inline void bench_key(char out[16], uint32_t i)
{
	snprintf(out, 16, "k:%010u", i);
}

/* short-key hash for the limit and ck tables (two loads + mix) */
static inline uint64_t bench_hash(const void *key, size_t len)
{
	const unsigned char *p = (const unsigned char *)key;
	uint64_t a = 0, b = 0;
	if (len >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + len - 8, 8);
	} else {
		memcpy(&a, p, len);
	}
	uint64_t h = (a ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
	h ^= (b + len) * 0x94d049bb133111ebull;
	h ^= h >> 31;
	h *= 0xd6e8feb86cd8b5adull;
	return h ^ (h >> 29);
}

/* zipf(s) indices in [0, n) for thread @tid, same in every peer */
static inline uint32_t *bench_zipf_seq(uint32_t n, size_t len, int tid)
{
	double *cdf = (double *)malloc(n * sizeof *cdf);
	uint32_t *out = (uint32_t *)malloc(len * sizeof *out);
	double sum = 0;
	for (uint32_t i = 0; i < n; i++)
		cdf[i] = (sum += 1.0 / pow((double)(i + 1), BENCH_ZIPF_S));
	uint64_t s = 0x1234567ull + 7919ull * (uint64_t)(tid + 1);
	for (size_t k = 0; k < len; k++) {
		double u = (double)(bench_xs(&s) >> 11) / 9007199254740992.0 * sum;
		uint32_t lo = 0, hi = n - 1;
		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;
			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		/* scatter popular ranks over the key space */
		out[k] = (uint32_t)((lo * 2654435761u) % n);
	}
	free(cdf);
	return out;
}

/* ---- thread runner ---------------------------------------------------- */
struct bench_thr {
	int tid;
	void *arg;
	volatile int stop;
	uint64_t ops; /* written by the thread (relaxed), read by the runner */
	char pad[64];
};
#define BENCH_STOP(t) __atomic_load_n(&(t)->stop, __ATOMIC_RELAXED)
#define BENCH_OPS(t, n) __atomic_store_n(&(t)->ops, (n), __ATOMIC_RELAXED)

typedef void (*bench_body)(struct bench_thr *t);

struct bench_start {
	struct bench_thr *t;
	bench_body fn;
};

static void *bench_thread_main(void *p)
{
	struct bench_start *s = (struct bench_start *)p;
	s->fn(s->t);
	return NULL;
}

static inline uint64_t bench_sum_ops(struct bench_thr *t, int n)
{
	uint64_t s = 0;
	for (int i = 0; i < n; i++)
		s += __atomic_load_n(&t[i].ops, __ATOMIC_RELAXED);
	return s;
}

static inline void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* runs @fn on @n threads; returns ns per op per thread */
static inline double bench_run(int n, double ms, bench_body fn, void *arg)
{
	struct bench_thr *t = (struct bench_thr *)calloc(n, sizeof *t);
	struct bench_start *st = (struct bench_start *)calloc(n, sizeof *st);
	pthread_t *th = (pthread_t *)calloc(n, sizeof *th);
	for (int i = 0; i < n; i++) {
		t[i].tid = i;
		t[i].arg = arg;
		st[i].t = &t[i];
		st[i].fn = fn;
		pthread_create(&th[i], NULL, bench_thread_main, &st[i]);
	}
	bench_sleep_ns((uint64_t)(ms * 1e6 / 4));
	uint64_t o0 = bench_sum_ops(t, n), t0 = bench_now_ns();
	bench_sleep_ns((uint64_t)(ms * 1e6));
	uint64_t o1 = bench_sum_ops(t, n), t1 = bench_now_ns();
	for (int i = 0; i < n; i++)
		__atomic_store_n(&t[i].stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	free(t);
	free(st);
	free(th);
	if (o1 == o0)
		return NAN;
	return (double)(t1 - t0) * n / (double)(o1 - o0);
}

/* ---- oversubscription: mixed ops, per-operation latency -------------- */
enum { BENCH_OS_OP_GET, BENCH_OS_OP_SET, BENCH_OS_OP_DEL, BENCH_OS_OP_GOC };

/* one xorshift draw -> the op (low bits, per 100) and the key (high bits) */
static inline int bench_os_op(uint64_t r)
{
	unsigned p = (unsigned)(r % 100);
	if (p < BENCH_OS_GET)
		return BENCH_OS_OP_GET;
	if (p < BENCH_OS_GET + BENCH_OS_SET)
		return BENCH_OS_OP_SET;
	if (p < BENCH_OS_GET + BENCH_OS_SET + BENCH_OS_DEL)
		return BENCH_OS_OP_DEL;
	return BENCH_OS_OP_GOC;
}

static inline uint32_t bench_os_key(uint64_t r)
{
	return (uint32_t)(r >> 32) & (BENCH_OS_KEYS - 1);
}

/* the latency clock: the TSC where there is one (a few ns a read, see
 * bench_tick_cost(); calibrated against CLOCK_MONOTONIC over each timed
 * window), else CLOCK_MONOTONIC itself.  Not serialising: it may move by
 * a few tens of cycles around the op, nothing at the scale of the tail. */
static inline uint64_t bench_tick(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return bench_now_ns();
#endif
}

/* log-linear histogram (HdrHistogram's layout, 2 significant digits):
 * values below 256 exact, above in 128 sub-buckets per power of two, so a
 * recorded value is known to within 1/128 of itself */
#define BENCH_H_SUB 128
#define BENCH_H_N (2 * BENCH_H_SUB + 56 * BENCH_H_SUB)
struct bench_hist {
	uint64_t n[BENCH_H_N];  /* every op */
	uint64_t u[BENCH_H_N];  /* the updates alone: set, del, get-or-create */
	uint64_t gets, hits; /* get ops, and those that found a live value */
};

static inline unsigned bench_h_idx(uint64_t v)
{
	if (v < 2 * BENCH_H_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
	return 2 * BENCH_H_SUB + (e - 8) * BENCH_H_SUB +
	       (unsigned)((v >> (e - 7)) - BENCH_H_SUB);
}

/* the highest value bucket i holds (HdrHistogram's "highest equivalent") */
static inline uint64_t bench_h_top(unsigned i)
{
	if (i < 2 * BENCH_H_SUB)
		return i;
	unsigned e = (i - 2 * BENCH_H_SUB) / BENCH_H_SUB + 8;
	uint64_t s = (i - 2 * BENCH_H_SUB) % BENCH_H_SUB + BENCH_H_SUB;
	return ((s + 1) << (e - 7)) - 1;
}

/* @v = end - start ticks of an op (@op: BENCH_OS_OP_*); a negative
 * span (a clock step between CPUs) counts as 0 */
static inline void bench_h_add(struct bench_hist *h, int op, uint64_t v)
{
	unsigned i = (int64_t)v < 0 ? 0 : bench_h_idx(v);
	h->n[i]++;
	if (op != BENCH_OS_OP_GET)
		h->u[i]++;
}

/* the value at quantile q (0..1) of the counts @n - @minus (minus may be
 * NULL) */
static inline uint64_t bench_h_quantile(const uint64_t *n,
					const uint64_t *minus, double q)
{
	uint64_t total = 0, cum = 0;
	for (unsigned i = 0; i < BENCH_H_N; i++)
		total += n[i] - (minus ? minus[i] : 0);
	if (!total)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)total);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < BENCH_H_N; i++)
		if ((cum += n[i] - (minus ? minus[i] : 0)) >= want)
			return bench_h_top(i);
	return 0;
}

/* what a body of the oversubscription runner receives as t->arg */
struct bench_os_run {
	void *arg;              /* the workload's own context */
	struct bench_hist **h;  /* per thread, indexed by tid */
	int keep;               /* keep-ring slots per thread */
	int n;                  /* threads */
	int rec;                /* 1 while the timed window is open */
	int ready;              /* threads done with their first sets */
	char pad[64];
};

/* relaxed: pairs with the runner's relaxed stores of the window marker
 * (bench_run_os); no data is published through it (the histograms are
 * read after the joins) */
#define BENCH_OS_REC(r) __atomic_load_n(&(r)->rec, __ATOMIC_RELAXED)
/* a thread has filled its share of the map; relaxed: pairs with the
 * runner's relaxed load, which only counts (it waits for the count before
 * the warm-up starts) */
#define BENCH_OS_READY(r) __atomic_fetch_add(&(r)->ready, 1, __ATOMIC_RELAXED)

/* ---- memory: jemalloc's own count of live allocated bytes ------------ */
static inline size_t bench_allocated(void)
{
	uint64_t epoch = 1;
	size_t sz = sizeof epoch, v = 0;
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	sz = sizeof v;
	if (mallctl("stats.allocated", &v, &sz, NULL, 0))
		return 0;
	return v;
}

struct bench_os_res {
	double mops;              /* ops recorded in the window / its length */
	double p50, p99, p999;    /* ns */
	double get_p99, get_p999; /* ns, the gets alone */
	double upd_p99, upd_p999; /* ns, the updates alone */
	double hit;               /* % of gets that found a live value */
	/* MB allocated (jemalloc) at the end of the window beyond what was
	 * before the threads started: the map, the objects the threads keep,
	 * and whatever retired memory is not freed yet */
	double mem_mb;
};

/* runs @fn on @n threads over a warm-up of ms/4 (from when every thread
 * has filled its share of the map) and a window of ms; every
 * op a thread ends inside the window goes into its histogram (ticks),
 * merged here; throughput counts those ops over the window */
static inline void bench_run_os(int n, double ms, bench_body fn, void *arg,
				struct bench_os_res *res)
{
	struct bench_os_run run;
	memset(&run, 0, sizeof run);
	run.arg = arg;
	run.keep = BENCH_OS_RING;
	run.n = n;
	size_t mem0 = bench_allocated();
	run.h = (struct bench_hist **)calloc(n, sizeof *run.h);
	for (int i = 0; i < n; i++)
		run.h[i] = (struct bench_hist *)calloc(1, sizeof **run.h);
	struct bench_thr *t = (struct bench_thr *)calloc(n, sizeof *t);
	struct bench_start *st = (struct bench_start *)calloc(n, sizeof *st);
	pthread_t *th = (pthread_t *)calloc(n, sizeof *th);
	for (int i = 0; i < n; i++) {
		t[i].tid = i;
		t[i].arg = &run;
		st[i].t = &t[i];
		st[i].fn = fn;
		pthread_create(&th[i], NULL, bench_thread_main, &st[i]);
	}
	/* relaxed: a count (see BENCH_OS_READY) */
	while (__atomic_load_n(&run.ready, __ATOMIC_RELAXED) < n)
		bench_sleep_ns(100000);
	bench_sleep_ns((uint64_t)(ms * 1e6 / 4));
	uint64_t k0 = bench_tick(), t0 = bench_now_ns();
	/* relaxed: the window marker (see BENCH_OS_REC) */
	__atomic_store_n(&run.rec, 1, __ATOMIC_RELAXED);
	bench_sleep_ns((uint64_t)(ms * 1e6));
	/* relaxed: the window marker (see BENCH_OS_REC) */
	__atomic_store_n(&run.rec, 0, __ATOMIC_RELAXED);
	uint64_t k1 = bench_tick(), t1 = bench_now_ns();
	size_t mem1 = bench_allocated();
	res->mem_mb = mem1 > mem0 ? (double)(mem1 - mem0) / 1048576.0 : 0.0;
	for (int i = 0; i < n; i++) /* relaxed: pairs with BENCH_STOP's load;
				       the join publishes the histograms */
		__atomic_store_n(&t[i].stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	struct bench_hist *all = (struct bench_hist *)calloc(1, sizeof *all);
	for (int i = 0; i < n; i++) {
		for (unsigned j = 0; j < BENCH_H_N; j++) {
			all->n[j] += run.h[i]->n[j];
			all->u[j] += run.h[i]->u[j];
		}
		all->gets += run.h[i]->gets;
		all->hits += run.h[i]->hits;
		free(run.h[i]);
	}
	uint64_t ops = 0;
	for (unsigned j = 0; j < BENCH_H_N; j++)
		ops += all->n[j];
	double ns_per_tick = (k1 > k0 && t1 > t0) ?
		(double)(t1 - t0) / (double)(k1 - k0) : 1.0;
	res->mops = t1 > t0 ? (double)ops * 1e3 / (double)(t1 - t0) : NAN;
	double k = ops ? ns_per_tick : NAN;
	res->p50 = (double)bench_h_quantile(all->n, NULL, 0.50) * k;
	res->p99 = (double)bench_h_quantile(all->n, NULL, 0.99) * k;
	res->p999 = (double)bench_h_quantile(all->n, NULL, 0.999) * k;
	res->get_p99 = (double)bench_h_quantile(all->n, all->u, 0.99) * k;
	res->get_p999 = (double)bench_h_quantile(all->n, all->u, 0.999) * k;
	res->upd_p99 = (double)bench_h_quantile(all->u, NULL, 0.99) * k;
	res->upd_p999 = (double)bench_h_quantile(all->u, NULL, 0.999) * k;
	res->hit = all->gets ? 100.0 * (double)all->hits / (double)all->gets
			     : NAN;
	free(all);
	free(run.h);
	free(t);
	free(st);
	free(th);
}

/* the cost of one bench_tick() pair around nothing (ns): what every
 * recorded latency includes */
static inline double bench_tick_cost(void)
{
	const int pairs = 200000;
	uint64_t t0 = bench_now_ns(), k0 = bench_tick(), sink = 0;
	for (int i = 0; i < pairs; i++) {
		uint64_t a = bench_tick();
		sink += bench_tick() - a;
	}
	uint64_t k1 = bench_tick(), t1 = bench_now_ns();
	double ns_per_tick = (double)(t1 - t0) / (double)(k1 - k0);
	return (double)sink / pairs * ns_per_tick;
}

static inline void bench_out_os(int n, const struct bench_os_res *r)
{
	char k[32];
	snprintf(k, sizeof k, "os_mops_%d", n);
	printf("%s %.4f\n", k, r->mops);
	snprintf(k, sizeof k, "os_p50_%d", n);
	printf("%s %.4f\n", k, r->p50);
	snprintf(k, sizeof k, "os_p99_%d", n);
	printf("%s %.4f\n", k, r->p99);
	snprintf(k, sizeof k, "os_p999_%d", n);
	printf("%s %.4f\n", k, r->p999);
	snprintf(k, sizeof k, "os_get_p99_%d", n);
	printf("%s %.4f\n", k, r->get_p99);
	snprintf(k, sizeof k, "os_get_p999_%d", n);
	printf("%s %.4f\n", k, r->get_p999);
	snprintf(k, sizeof k, "os_upd_p99_%d", n);
	printf("%s %.4f\n", k, r->upd_p99);
	snprintf(k, sizeof k, "os_upd_p999_%d", n);
	printf("%s %.4f\n", k, r->upd_p999);
	snprintf(k, sizeof k, "os_hit_%d", n);
	printf("%s %.4f\n", k, r->hit);
	snprintf(k, sizeof k, "os_mem_%d", n);
	printf("%s %.4f\n", k, r->mem_mb);
	fflush(stdout);
}

/* ---- options and output ---------------------------------------------- */
struct bench_opts {
	double ms;        /* per timed measurement */
	int threads[64];  /* scaling thread counts */
	int nthreads;
	int lat_n;        /* death-callback latency samples */
	int os_threads[16]; /* oversubscription thread counts */
	int os_n;
	double os_ms;     /* its timed window (default: ms) */
	const char *impl; /* which implementation, for multi-impl binaries */
	const char *only; /* run only this workload group (profiling) */
};

/* --only GROUP: upgrade, create, get, churn, callbacks, memory, oversub */
static inline int bench_want(const struct bench_opts *o, const char *group)
{
	return !o->only || !strcmp(o->only, group);
}

static inline void bench_parse(struct bench_opts *o, int argc, char **argv)
{
	o->ms = 30;
	o->nthreads = 0;
	o->lat_n = 2000;
	o->impl = "";
	o->only = NULL;
	o->os_n = 0;
	o->os_ms = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			o->ms = atof(argv[++i]);
		else if (!strcmp(argv[i], "--lat") && i + 1 < argc)
			o->lat_n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--impl") && i + 1 < argc)
			o->impl = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			o->only = argv[++i];
		else if (!strcmp(argv[i], "--os-ms") && i + 1 < argc)
			o->os_ms = atof(argv[++i]);
		else if (!strcmp(argv[i], "--os-threads") && i + 1 < argc) {
			char *s = argv[++i], *e;
			while (*s && o->os_n < 16) {
				o->os_threads[o->os_n++] = (int)strtol(s, &e, 10);
				s = *e ? e + 1 : e;
			}
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			char *s = argv[++i], *e;
			while (*s && o->nthreads < 64) {
				o->threads[o->nthreads++] = (int)strtol(s, &e, 10);
				s = *e ? e + 1 : e;
			}
		}
	}
	if (!o->nthreads) {
		o->threads[0] = 1;
		o->threads[1] = 2;
		o->nthreads = 2;
	}
	if (!o->os_n) {
		o->os_threads[0] = 8;
		o->os_threads[1] = 32;
		o->os_threads[2] = 128;
		o->os_n = 3;
	}
	if (o->os_ms <= 0)
		o->os_ms = o->ms;
}

static inline void bench_out(const char *key, double v)
{
	printf("%s %.4f\n", key, v);
	fflush(stdout);
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* latency samples (ns) -> p50/p99/max lines */
static inline void bench_out_lat(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_u64);
	bench_out("cb_lat_p50", (double)v[n / 2]);
	bench_out("cb_lat_p99", (double)v[(size_t)((double)n * 0.99)]);
	bench_out("cb_lat_max", (double)v[n - 1]);
}

#ifdef __cplusplus
}
#endif

#endif /* BENCH_COMMON_H */
