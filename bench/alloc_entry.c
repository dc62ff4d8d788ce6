/*
 * bench/alloc_entry.c - which jemalloc entry point libwref should call
 * (issue 15), side by side in one run.  Linked as a pkg-config user links
 * (libwref_jemalloc brings jemalloc in as a dependency of a dependency), so
 * the program's malloc is glibc's and jemalloc is reachable only through
 * its non-standard names (weak, as in lib/alloc.c) or dlsym on its handle.
 *
 * Pattern: batches of 64 live blocks of one size (libwref's objects and
 * control blocks are 32-112 bytes), allocated then freed in order; ns per
 * allocate+free pair, best of 5 runs.
 *
 * usage: bench/alloc_entry [size] [--quick]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))
extern void *mallocx(size_t size, int flags) __attribute__((weak));
extern void dallocx(void *ptr, int flags) __attribute__((weak));
extern void sdallocx(void *ptr, size_t size, int flags) __attribute__((weak));
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
		   size_t newlen) __attribute__((weak));

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

enum { K = 64, NV = 12, RUNS = 5 };
static long rounds = 1000000;
static void *ptrs[K];
static void *(*je_malloc)(size_t);
static void (*je_free)(void *);
static void *(*je_calloc)(size_t, size_t);
static unsigned tc, arena;
static size_t sz = 48;
static double res[NV];

#define LOOP(v, A, F)                                                      \
	do {                                                               \
		double t0 = now();                                         \
		for (long i = 0; i < rounds; i++) {                        \
			for (int j = 0; j < K; j++)                        \
				ptrs[j] = (A);                             \
			for (int j = 0; j < K; j++) {                      \
				void *p = ptrs[j];                         \
				F;                                         \
			}                                                  \
		}                                                          \
		double ns = (now() - t0) / (double)rounds / K;             \
		if (ns < res[v])                                           \
			res[v] = ns;                                       \
	} while (0)

static const char *const names[NV] = {
	"glibc malloc / free (the program's)",
	"jemalloc malloc / free (dlsym)   [libwref]",
	"jemalloc malloc / sdallocx(size)",
	"mallocx / dallocx",
	"mallocx / sdallocx(size)",
	"mallocx / sdallocx, MALLOCX_TCACHE(own)",
	"mallocx ARENA(own) / sdallocx",
	"mallocx ARENA(own)|TCACHE(own) / sdallocx",
	"zeroed: glibc calloc / free",
	"zeroed: jemalloc calloc / free",
	"zeroed: mallocx(MALLOCX_ZERO) / sdallocx",
	"zeroed: jemalloc malloc+memset / free [libwref]",
};

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			rounds = 100000;
		else
			sz = strtoul(argv[i], NULL, 10);
	}
	if (!mallocx || !mallctl) {
		printf("jemalloc not loaded (--without-jemalloc?): nothing to "
		       "compare\n");
		return 0;
	}
	Dl_info di;
	if (!dladdr((void *)mallocx, &di))
		return 1;
	void *h = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 1;
	*(void **)&je_malloc = dlsym(h, "malloc");
	*(void **)&je_free = dlsym(h, "free");
	*(void **)&je_calloc = dlsym(h, "calloc");
	void *pm = dlsym(RTLD_DEFAULT, "malloc");
	Dl_info dm;
	dladdr(pm, &dm);
	printf("program's malloc: %s; jemalloc: %s; %zu-byte blocks, %d live, "
	       "ns per pair, best of %d\n",
	       dm.dli_fname, di.dli_fname, sz, K, RUNS);
	size_t len = sizeof tc;
	if (mallctl("tcache.create", &tc, &len, NULL, 0))
		return 1;
	len = sizeof arena;
	if (mallctl("arenas.create", &arena, &len, NULL, 0))
		return 1;
	for (int v = 0; v < NV; v++)
		res[v] = 1e30;
	/* interleaved: each run measures every variant once */
	for (int r = 0; r < RUNS; r++) {
		LOOP(0, malloc(sz), free(p));
		LOOP(1, je_malloc(sz), je_free(p));
		LOOP(2, je_malloc(sz), sdallocx(p, sz, 0));
		LOOP(3, mallocx(sz, 0), dallocx(p, 0));
		LOOP(4, mallocx(sz, 0), sdallocx(p, sz, 0));
		LOOP(5, mallocx(sz, MALLOCX_TCACHE(tc)),
		     sdallocx(p, sz, MALLOCX_TCACHE(tc)));
		LOOP(6, mallocx(sz, MALLOCX_ARENA(arena)), sdallocx(p, sz, 0));
		LOOP(7, mallocx(sz, MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tc)),
		     sdallocx(p, sz, MALLOCX_TCACHE(tc)));
		LOOP(8, calloc(1, sz), free(p));
		LOOP(9, je_calloc(1, sz), je_free(p));
		LOOP(10, mallocx(sz, MALLOCX_ZERO), sdallocx(p, sz, 0));
		LOOP(11, memset(je_malloc(sz), 0, sz), je_free(p));
	}
	for (int v = 0; v < NV; v++)
		printf("  %-48s %6.2f\n", names[v], res[v]);
	return 0;
}
