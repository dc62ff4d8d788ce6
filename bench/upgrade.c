/*
 * bench/upgrade.c - the core's costs, side by side with their physical
 * limits, measured in the same run, interleaved, median of repetitions:
 *
 *  - upgrade + release (wref_ref_get + wref_release) vs a plain atomic
 *    fetch_add/fetch_sub pair on a counter: 1 thread; 2 threads on their
 *    own objects; 2 threads on one shared object (target <= 1.25x, issue
 *    12);
 *  - wref_new + wref_release of an object never weakly referenced vs
 *    malloc + free (jemalloc in the default build) of the same total size
 *    (issue 12's target, <= 1.25x calloc + free, is judged by the peers
 *    suite, whose limit_bench measures jemalloc's calloc); and new +
 *    release with one weak ref;
 *  - header and control-block sizes.
 *
 * usage: bench/upgrade [--quick] [--reps N] [--profile wref|limit|wref-shared|limit-shared|new|malloc]
 *   --profile runs one loop only (for perf stat / record)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* how this binary links libwref (bench/bench.mk builds it both ways) */
#ifndef WREF_BENCH_LINK
#define WREF_BENCH_LINK "shared libwref.so, linked as pkg-config --libs wref"
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define PAYLOAD 32 /* bytes of payload in the allocation benchmarks */

static long iters = 20 * 1000 * 1000;
static int reps = 7;
static int ncpu = 1;

/* the calling thread's CPU time: time spent descheduled (shared, loaded
 * machines) does not count; with 2 threads each measures its own */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const wref_type bench_type = { .name = "bench" };

/* one counter / object per cache line pair (no false sharing) */
struct slot {
	_Alignas(128) _Atomic uint64_t counter;
	void *obj;
	wref_ref *ref;
};
static struct slot slots[2];

/* what one thread runs: a loop of pairs on @s */
enum { K_LIMIT, K_WREF };

static void __attribute__((noinline)) loop_limit(_Atomic uint64_t *c, long n)
{
	for (long i = 0; i < n; i++) {
		atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(c, 1, memory_order_release);
	}
}

static void __attribute__((noinline)) loop_wref(wref_ref *r, long n)
{
	for (long i = 0; i < n; i++) {
		void *p = wref_ref_get(r);
		wref_release(p);
	}
}

struct job {
	int kind;
	struct slot *s;
	int cpu;
	pthread_barrier_t *bar;
	double ns;
};

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % ncpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *worker(void *p)
{
	struct job *j = p;
	pin(j->cpu);
	/* warm up: registers the thread with RCU and the stats */
	if (j->kind == K_WREF)
		loop_wref(j->s->ref, 1000);
	else
		loop_limit(&j->s->counter, 1000);
	pthread_barrier_wait(j->bar);
	double t0 = now();
	if (j->kind == K_WREF)
		loop_wref(j->s->ref, iters);
	else
		loop_limit(&j->s->counter, iters);
	j->ns = (now() - t0) / (double)iters;
	return NULL;
}

/* ns per pair, per thread (the slower thread's, for 2 threads) */
static double run_pairs(int kind, int nthreads, bool shared)
{
	pthread_t t[2];
	struct job j[2];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		j[i] = (struct job){ .kind = kind, .s = &slots[shared ? 0 : i],
				     .cpu = i, .bar = &bar };
		pthread_create(&t[i], NULL, worker, &j[i]);
	}
	double worst = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		if (j[i].ns > worst)
			worst = j[i].ns;
	}
	pthread_barrier_destroy(&bar);
	return worst;
}

/* ---- allocation ----------------------------------------------------------- */

static double __attribute__((noinline)) run_malloc(long n)
{
	double t0 = now();
	for (long i = 0; i < n; i++) {
		void *p = malloc(sizeof(struct wref__hdr) + PAYLOAD);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	return (now() - t0) / (double)n;
}

static double __attribute__((noinline)) run_calloc(long n)
{
	double t0 = now();
	for (long i = 0; i < n; i++) {
		void *p = calloc(1, sizeof(struct wref__hdr) + PAYLOAD);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	return (now() - t0) / (double)n;
}

static double __attribute__((noinline)) run_new(long n)
{
	double t0 = now();
	for (long i = 0; i < n; i++) {
		void *p = wref_new(&bench_type, PAYLOAD);
		__asm__ volatile("" : : "r"(p) : "memory");
		wref_release(p);
	}
	return (now() - t0) / (double)n;
}

static double __attribute__((noinline)) run_new_weak(long n)
{
	double t0 = now();
	for (long i = 0; i < n; i++) {
		void *p = wref_new(&bench_type, PAYLOAD);
		wref_ref *r = wref_ref_new(p, NULL, NULL);
		wref_release(p);
		wref_release(r);
	}
	return (now() - t0) / (double)n;
}

/* ---- driver ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

enum { C_1T, C_2T_OWN, C_2T_SHARED, C_NEW, C_NEW_WEAK, C_N };

int main(int argc, char **argv)
{
	const char *profile = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--profile") && i + 1 < argc)
			profile = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			iters = 5 * 1000 * 1000;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--quick] [--reps N] "
				"[--profile wref|limit|wref-shared|limit-shared|new|malloc]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || reps > 99)
		reps = 7;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		ncpu = CPU_COUNT(&set);

	for (int i = 0; i < 2; i++) {
		/* 128 bytes in all: each object on its own cache lines, like
		 * the limit's counters (adjacent small objects share a line:
		 * that is false sharing, not the protocol's cost) */
		slots[i].obj = wref_new(&bench_type,
					128 - sizeof(struct wref__hdr));
		slots[i].ref = wref_ref_new(slots[i].obj, NULL, NULL);
		if (!slots[i].obj || !slots[i].ref) {
			perror("wref_new");
			return 1;
		}
	}

	if (profile) {
		double ns;
		if (!strcmp(profile, "wref"))
			ns = run_pairs(K_WREF, 1, false);
		else if (!strcmp(profile, "wref-shared"))
			ns = run_pairs(K_WREF, 2, true);
		else if (!strcmp(profile, "limit-shared"))
			ns = run_pairs(K_LIMIT, 2, true);
		else if (!strcmp(profile, "limit"))
			ns = run_pairs(K_LIMIT, 1, false);
		else if (!strcmp(profile, "new"))
			ns = run_new(iters);
		else
			ns = run_malloc(iters);
		printf("%s: %.2f ns per op\n", profile, ns);
		return 0;
	}

	double lib[C_N][100], lim[C_N][100], calloc_ns[100];
	long alloc_iters = iters / 2;
	for (int r = 0; r < reps; r++) {
		/* interleaved: limit then libwref, each case, each rep */
		lim[C_1T][r] = run_pairs(K_LIMIT, 1, false);
		lib[C_1T][r] = run_pairs(K_WREF, 1, false);
		lim[C_2T_OWN][r] = run_pairs(K_LIMIT, 2, false);
		lib[C_2T_OWN][r] = run_pairs(K_WREF, 2, false);
		lim[C_2T_SHARED][r] = run_pairs(K_LIMIT, 2, true);
		lib[C_2T_SHARED][r] = run_pairs(K_WREF, 2, true);
		lim[C_NEW][r] = run_malloc(alloc_iters);
		lib[C_NEW][r] = run_new(alloc_iters);
		calloc_ns[r] = run_calloc(alloc_iters);
		lim[C_NEW_WEAK][r] = lim[C_NEW][r];
		lib[C_NEW_WEAK][r] = run_new_weak(alloc_iters / 4);
	}
	wref_flush();

	static const char *names[C_N] = {
		"upgrade+release, 1 thread",
		"upgrade+release, 2 threads, own objects",
		"upgrade+release, 2 threads, one shared object",
		"new+release, no weak ref (vs malloc+free)",
		"new+weak ref+release (vs malloc+free)",
	};
	static const char *targets[C_N] = { "<= 1.25", "<= 1.25", "<= 1.25",
					    "see suite", "-" };
	printf("libwref bench/upgrade (%s): %ld pairs per measurement, "
	       "median of %d interleaved repetitions, %d CPUs, thread CPU "
	       "time\n\n", WREF_BENCH_LINK, iters, reps, ncpu);
	printf("| case | libwref ns | limit ns | ratio (median) | ratio (best "
	       "of %d) | target |\n", reps);
	printf("|---|---:|---:|---:|---:|---|\n");
	for (int c = 0; c < C_N; c++) {
		double a = median(lib[c], reps), b = median(lim[c], reps);
		/* median() sorted both: [0] is the best run of each */
		printf("| %s | %.2f | %.2f | %.2fx | %.2fx | %s |\n", names[c],
		       a, b, a / b, lib[c][0] / lim[c][0], targets[c]);
	}
	double cz = median(calloc_ns, reps);
	double nw = median(lib[C_NEW], reps);
	printf("| new+release vs calloc+free (zeroed, like wref_new) | %.2f "
	       "| %.2f | %.2fx | %.2fx | - |\n", nw, cz, nw / cz,
	       lib[C_NEW][0] / calloc_ns[0]);
	printf("\nsizes: object header %zu bytes (sizeof(struct wref__hdr)), "
	       "control block %zu bytes (sizeof(struct wref__cb)), payload "
	       "%d bytes in the allocation cases\n",
	       sizeof(struct wref__hdr), sizeof(struct wref__cb), PAYLOAD);
	printf("allocators: libwref's own (jemalloc when the program loads it, "
	       "see lib/alloc.c); the malloc/calloc rows use the program's "
	       "malloc (glibc here)\n");

	for (int i = 0; i < 2; i++) {
		wref_release(slots[i].ref);
		wref_release(slots[i].obj);
	}
	return 0;
}
