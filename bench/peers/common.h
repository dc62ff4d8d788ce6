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

/* ---- options and output ---------------------------------------------- */
struct bench_opts {
	double ms;        /* per timed measurement */
	int threads[64];  /* scaling thread counts */
	int nthreads;
	int lat_n;        /* death-callback latency samples */
	const char *impl; /* which implementation, for multi-impl binaries */
	const char *only; /* run only this workload group (profiling) */
};

/* --only GROUP: upgrade, create, get, churn, callbacks, memory */
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
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			o->ms = atof(argv[++i]);
		else if (!strcmp(argv[i], "--lat") && i + 1 < argc)
			o->lat_n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--impl") && i + 1 < argc)
			o->impl = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			o->only = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
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
