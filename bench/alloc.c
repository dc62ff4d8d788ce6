/*
 * bench/alloc.c - libwref's allocation-heavy paths under each allocator
 * configuration (issue 15), one table in one run:
 *
 *   create + release          wref_new(32-byte payload) + wref_release
 *   create + weak + release   the same with a weak ref (no callback) made
 *                             and released: control block, RCU-deferred free
 *   death with callback       N objects with one callback ref each, made
 *                             beforehand; timed: releasing the N objects,
 *                             then wref_flush (callbacks run, memory freed)
 *
 * ns of CPU per object, two figures: the calling thread's
 * (CLOCK_THREAD_CPUTIME_ID, what the other benchmarks report) and all
 * threads' (CLOCK_PROCESS_CPUTIME_ID: liburcu's call_rcu thread, which
 * frees dead objects after a grace period, and the executor count too);
 * time spent descheduled on a loaded machine counts in neither.  A final
 * wref_flush inside the timed region; median of the repetitions.
 *
 * Rows, each in a fresh process:
 *   bench/alloc            linked as `pkg-config --libs wref` links: the
 *                          program on glibc malloc, libwref on jemalloc
 *   WREF_ALLOCATOR=malloc  the same binary, libwref forced onto the process
 *                          malloc: the allocation path of --without-jemalloc
 *   bench/alloc_jeapp      -ljemalloc linked first: program and libwref on
 *                          jemalloc (the configuration the older benchmarks
 *                          and the tests use)
 * Each row names what the process actually ran on (dladdr on malloc, and
 * jemalloc's thread.allocated growing on wref_new).
 *
 * usage: bench/alloc [--quick] [--row]   (--row: this process's row only)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wref.h>

static long iters = 2000000;
static long deaths = 200000;
static int reps = 5;

/* CPU time, in ns: [0] the calling thread, [1] every thread */
typedef struct { double v[2]; } cost;
static cost cpu_ns(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	return (cost){ { a.tv_sec * 1e9 + a.tv_nsec,
			 b.tv_sec * 1e9 + b.tv_nsec } };
}

static cost per(cost t0, long n)
{
	cost t1 = cpu_ns();
	return (cost){ { (t1.v[0] - t0.v[0]) / n, (t1.v[1] - t0.v[1]) / n } };
}

static const wref_type t = { .name = "bench" };
static void on_death(wref_ref *r, void *arg)
{
	(void)r;
	++*(long *)arg;
}

static cost create_release(void)
{
	cost t0 = cpu_ns();
	for (long i = 0; i < iters; i++)
		wref_release(wref_new(&t, 32));
	wref_flush();
	return per(t0, iters);
}

static cost create_weak_release(void)
{
	cost t0 = cpu_ns();
	for (long i = 0; i < iters; i++) {
		void *o = wref_new(&t, 32);
		wref_ref *r = wref_ref_new(o, NULL, NULL);
		wref_release(o);
		wref_release(r);
	}
	wref_flush();
	return per(t0, iters);
}

static cost death_callback(void)
{
	static long ran;
	void **objs = malloc(deaths * sizeof *objs);
	wref_ref **refs = malloc(deaths * sizeof *refs);
	if (!objs || !refs)
		abort();
	ran = 0;
	for (long i = 0; i < deaths; i++) {
		objs[i] = wref_new(&t, 32);
		refs[i] = wref_ref_new(objs[i], on_death, &ran);
	}
	cost t0 = cpu_ns();
	for (long i = 0; i < deaths; i++)
		wref_release(objs[i]);
	wref_flush();
	cost ns = per(t0, deaths);
	if (ran != deaths)
		abort();
	for (long i = 0; i < deaths; i++)
		wref_release(refs[i]);
	wref_flush();
	free(objs);
	free(refs);
	return ns;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static cost median(cost (*fn)(void))
{
	double v[2][64];
	for (int i = 0; i < reps; i++) {
		cost c = fn();
		v[0][i] = c.v[0];
		v[1][i] = c.v[1];
	}
	qsort(v[0], reps, sizeof v[0][0], cmp);
	qsort(v[1], reps, sizeof v[1][0], cmp);
	return (cost){ { v[0][reps / 2], v[1][reps / 2] } };
}

/* what this process runs on */
static void describe(char *prog, size_t np, char *lib, size_t nl)
{
	Dl_info di;
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	snprintf(prog, np, "%s",
		 m && dladdr(m, &di) && di.dli_fname ?
		 strstr(di.dli_fname, "jemalloc") ? "jemalloc" : "glibc" : "?");
	int (*ctl)(const char *, void *, size_t *, void *, size_t);
	*(void **)&ctl = dlsym(RTLD_DEFAULT, "mallctl");
	snprintf(lib, nl, "glibc");
	if (ctl) {
		uint64_t a = 0, b = 0;
		size_t sz = sizeof a;
		void *w = wref_new(&t, 8);
		wref_release(w);
		ctl("thread.allocated", &a, &sz, NULL, 0);
		void *o = wref_new(&t, 4096);
		ctl("thread.allocated", &b, &sz, NULL, 0);
		wref_release(o);
		if (b - a >= 4096)
			snprintf(lib, nl, "jemalloc");
	}
	if (!strcmp(prog, "jemalloc") && !ctl)
		snprintf(prog, np, "?");
}

static void row(void)
{
	char prog[32], lib[32];
	describe(prog, sizeof prog, lib, sizeof lib);
	const char *env = getenv("WREF_ALLOCATOR");
	cost a = median(create_release);
	cost b = median(create_weak_release);
	cost c = median(death_callback);
	printf("| %-8s | %-8s%s | %6.1f / %6.1f | %6.1f / %6.1f | "
	       "%6.1f / %6.1f |\n", prog, lib,
	       env && !strcmp(env, "malloc") ? " (WREF_ALLOCATOR=malloc)" : "",
	       a.v[0], a.v[1], b.v[0], b.v[1], c.v[0], c.v[1]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	bool only_row = false, quick = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--row"))
			only_row = true;
	}
	if (quick) {
		iters = 200000;
		deaths = 50000;
		reps = 3;
	}
	if (only_row) {
		row();
		return 0;
	}
	printf("libwref allocation paths, ns of CPU per object: calling thread "
	       "/ all threads;\nmedian of %d; %ld objects per run, %ld for "
	       "deaths\n\n", reps, iters, deaths);
	printf("| program malloc | libwref allocates from | create + release "
	       "| create + weak + release | death with callback |\n"
	       "|---|---|---:|---:|---:|\n");
	fflush(stdout);
	row();
	/* the other rows: fresh processes (the real binaries; a libtool
	 * wrapper's LD_LIBRARY_PATH is inherited) */
	char self[PATH_MAX], cmd[2 * PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	const char *q = quick ? " --quick" : "";
	snprintf(cmd, sizeof cmd, "WREF_ALLOCATOR=malloc '%s' --row%s", self, q);
	if (system(cmd) != 0)
		return 1;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	snprintf(dir, sizeof dir, "%s", self);
	snprintf(path, sizeof path, "%s/alloc_jeapp", dirname(dir));
	if (access(path, X_OK) != 0) {
		printf("| (%s not built: --without-jemalloc) |\n", path);
		return 0;
	}
	snprintf(cmd, sizeof cmd, "'%s' --row%s", path, q);
	return system(cmd) == 0 ? 0 : 1;
}
