/*
 * alloc.c - the one place libwref allocates, and (in the test build only,
 * -DWREF_TEST_HOOKS: lib/libwref_test.la) the allocation-failure injection
 * hook used by the tests.
 *
 * Which allocator (issue 15).  libwref.so has no DT_NEEDED on jemalloc: a
 * dlopen of Debian's libjemalloc.so.2 after start-up fails ("cannot
 * allocate memory in static TLS block"), and as a second-level dependency
 * jemalloc never becomes the program's malloc anyway.  Instead libwref
 * declares jemalloc's mallocx/dallocx as weak undefined symbols.  A
 * program linked with `pkg-config --libs wref` also gets libwref_jemalloc
 * (DT_NEEDED libjemalloc.so.2, lib/jemalloc_helper.c), so jemalloc loads at
 * start-up (its TLS in the static block) and, being a dependency of a
 * dependency, comes after libc in the lookup scope: the program's malloc
 * stays glibc's while mallocx binds to jemalloc.  Then libwref allocates
 * with jemalloc's own malloc/free (looked up in the object that defines
 * mallocx), else with mallocx/dallocx, else -- jemalloc not loaded: a
 * dlopen()ed libwref, a static link, --without-jemalloc, the sanitizer
 * builds -- with the process's malloc/free.
 *
 * Measured (bench/alloc_entry, glibc program, libwref_jemalloc loaded,
 * 48-byte blocks, 64 live, ns per pair): jemalloc malloc/free through a
 * pointer 11.2; malloc + sdallocx(size) 10.3; mallocx/sdallocx 14.6;
 * mallocx/dallocx 20.2; mallocx/sdallocx with MALLOCX_TCACHE(private)
 * 24.6; MALLOCX_ARENA(private) 16.3; glibc malloc/free 21.0.  Zeroed:
 * jemalloc malloc + memset 13.3, calloc 19.0, mallocx(MALLOCX_ZERO) 20.3.
 * mallocx/dallocx skip jemalloc's fast paths; sdallocx has one, but the
 * object's free does not know its size (the header does not keep it), so
 * malloc/free it is, with memset for zeroed blocks.
 *
 * Trade-off: a module that is itself dlopen()ed must link plain -lwref,
 * not libwref_jemalloc (whose jemalloc cannot load then); libwref in it
 * uses jemalloc only if the host process already has it.
 *
 * A static link (pkg-config --static) leaves mallocx NULL (a weak
 * reference pulls nothing from an archive, and wref.pc names no jemalloc
 * there): libwref uses the program's malloc, jemalloc too if the program
 * links it.  glibc's linker warning about dlopen in static programs
 * is about je_malloc_free, which never runs then.
 *
 * The choice is made once, at the first allocation (or free), from facts
 * fixed at load time (where mallocx resolved), so every thread makes the
 * same one and every block is freed by the allocator that made it.
 * WREF_ALLOCATOR=malloc in the environment forces the process malloc (for
 * valgrind, and the "--without-jemalloc" row of bench/alloc).
 */
#include "alloc.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef WREF_USE_JEMALLOC
#include <dlfcn.h>
#endif

#ifdef WREF_TEST_HOOKS
/* ---- failure injection (test build only) ------------------------------
 * Never in libwref.so or libwref_core: tests/build/check_hooks.sh checks that the
 * installed library neither has these symbols nor reads WREF_FAIL_ALLOC. */

/* -1: injection off; n >= 0: the allocation after n more succeeds fails;
 * FAIL_ALL: every allocation fails (wref__alloc_fail_from) */
#define FAIL_ALL LONG_MAX
static _Atomic long fail_countdown = -1;
static _Atomic bool fail_sticky;

static void arm(long n, bool sticky)
{
	/* relaxed: a test hook set before the sequence it tests, on the
	 * same thread */
	atomic_store_explicit(&fail_sticky, sticky, memory_order_relaxed);
	atomic_store_explicit(&fail_countdown, n < 0 ? -1 : n,
			      memory_order_relaxed);
}

void wref__alloc_fail_after(long n)
{
	arm(n, false);
}

void wref__alloc_fail_from(long n)
{
	arm(n, true);
}

__attribute__((constructor)) static void alloc_env(void)
{
	const char *s = getenv("WREF_FAIL_ALLOC");
	if (s && *s)
		wref__alloc_fail_after(strtol(s, NULL, 10));
}

static bool inject_failure(void)
{
	/* relaxed: read-mostly flag, off unless a test armed it; the countdown is
	 * a single RMW so each failure is claimed once */
	long cd = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	if (wref_likely(cd < 0))
		return false;
	if (cd == FAIL_ALL)
		return true;
	long old = atomic_fetch_sub_explicit(&fail_countdown, 1,
					     memory_order_relaxed);
	if (old == 0) {
		/* relaxed: the test hook's own flag, set with the countdown */
		if (atomic_load_explicit(&fail_sticky, memory_order_relaxed))
			atomic_store_explicit(&fail_countdown, FAIL_ALL,
					      memory_order_relaxed);
		return true;
	}
	if (old < 0) /* raced past the trigger: switch off again */
		atomic_store_explicit(&fail_countdown, -1,
				      memory_order_relaxed);
	return false;
}
#else
static inline bool inject_failure(void)
{
	return false;
}
#endif

/* ---- allocator choice ------------------------------------------------- */

typedef void *(*alloc_fn)(size_t);
typedef void (*free_fn)(void *);
static void *first_alloc(size_t n);
static void first_free(void *p);
/* relaxed: written once, under choose_once; a caller that still reads
 * first_* goes through pthread_once and then reads the choice */
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static _Atomic(alloc_fn) use_alloc = first_alloc;
static _Atomic(free_fn) use_free = first_free;
static _Atomic(const char *) allocator_name;

#ifdef WREF_USE_JEMALLOC
/* jemalloc's non-standard API: weak, NULL unless some loaded object (the
 * libwref_jemalloc helper, or a program linked with -ljemalloc) brought
 * jemalloc in.  Not hidden: they must bind to another object. */
extern void *mallocx(size_t size, int flags) __attribute__((weak));
extern void dallocx(void *ptr, int flags) __attribute__((weak));

static void *je_mallocx(size_t n)
{
	return mallocx(n, 0);
}

static void je_dallocx(void *p)
{
	if (p)
		dallocx(p, 0);
}

/* jemalloc's own malloc and free (not the process's, which are glibc's for
 * a pkg-config program): looked up in the object that defines mallocx.
 * The handle is kept for good: libwref's blocks must outlive everyone's
 * dlclose. */
static bool je_malloc_free(alloc_fn *a, free_fn *f)
{
	Dl_info self, da, df;
	if (!dladdr((void *)mallocx, &self) || !self.dli_fname)
		return false;
	void *h = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return false;
	alloc_fn ja;
	free_fn jf;
	/* dlsym returns void *; POSIX guarantees the function-pointer cast */
	*(void **)&ja = dlsym(h, "malloc");
	*(void **)&jf = dlsym(h, "free");
	/* both from the object that defines mallocx, or neither */
	if (!ja || !jf || !dladdr((void *)ja, &da) || !dladdr((void *)jf, &df) ||
	    da.dli_fbase != self.dli_fbase || df.dli_fbase != self.dli_fbase) {
		dlclose(h);
		return false;
	}
	*a = ja;
	*f = jf;
	return true;
}
#endif

static void choose(void)
{
	alloc_fn a = malloc;
	free_fn f = free;
	const char *name = "malloc";
	const char *env = getenv("WREF_ALLOCATOR");
	bool force_malloc = env && strcmp(env, "malloc") == 0;
#ifdef WREF_USE_JEMALLOC
	if (!force_malloc && mallocx && dallocx) {
		if (je_malloc_free(&a, &f)) {
			name = "jemalloc";
		} else {
			a = je_mallocx;
			f = je_dallocx;
			name = "jemalloc-mallocx";
		}
	}
#else
	(void)force_malloc;
#endif
	atomic_store_explicit(&allocator_name, name, memory_order_relaxed);
	atomic_store_explicit(&use_alloc, a, memory_order_relaxed);
	atomic_store_explicit(&use_free, f, memory_order_relaxed);
}

static void *first_alloc(size_t n)
{
	pthread_once(&choose_once, choose);
	return atomic_load_explicit(&use_alloc, memory_order_relaxed)(n);
}

static void first_free(void *p)
{
	pthread_once(&choose_once, choose);
	atomic_load_explicit(&use_free, memory_order_relaxed)(p);
}

const char *wref__allocator(void)
{
	pthread_once(&choose_once, choose);
	/* relaxed: ordered by pthread_once */
	return atomic_load_explicit(&allocator_name, memory_order_relaxed);
}

/* at load time, so no later caller (a fork child, a thread holding the
 * loader's lock) pays for dlopen; first_* cover constructors that
 * allocate before this one runs */
__attribute__((constructor)) static void alloc_choose(void)
{
	pthread_once(&choose_once, choose);
}

/*
 * Every block is 16-aligned: headers rely on it (a shared weak ref is told
 * from a callback ref by bit 3 of its address, internal.h
 * wref__ref_is_shared; a spilled death stores a header >> 4, object.c).
 * A process malloc that gave less (an interposed allocator) is asked
 * again through posix_memalign, whose memory its free() takes; jemalloc
 * never gives less for 16 bytes and up, so there the allocation fails
 * (ENOMEM) rather than mix allocators.
 */
static void *realign(void *p, size_t n)
{
	if (!p)
		return NULL;
	atomic_load_explicit(&use_free, memory_order_relaxed)(p);
	/* relaxed: set once under pthread_once before any allocation */
	const char *name = atomic_load_explicit(&allocator_name,
						memory_order_relaxed);
	if (!name || strcmp(name, "malloc") != 0)
		return NULL;
	return posix_memalign(&p, 16, n) ? NULL : p;
}

static void *do_alloc(size_t n, bool zero)
{
	if (wref_unlikely(inject_failure())) {
		errno = ENOMEM;
		return NULL;
	}
	/* 16 bytes at least, so that every allocator returns 16-aligned
	 * memory (malloc's max_align_t on x86-64 and arm64; jemalloc's
	 * classes of 16 and up) */
	if (n < 16)
		n = 16;
	void *p = atomic_load_explicit(&use_alloc, memory_order_relaxed)(n);
	if (wref_unlikely(!p || ((uintptr_t)p & 15)))
		p = realign(p, n);
	if (wref_unlikely(!p)) {
		errno = ENOMEM;
		return NULL;
	}
	/* not calloc: jemalloc's calloc has no fast path (19.0 ns a pair
	 * against 13.3 for malloc + memset, see the top) */
	if (zero)
		memset(p, 0, n);
	return p;
}

void *wref__alloc(size_t n)
{
	return do_alloc(n, false);
}

void *wref__zalloc(size_t n)
{
	return do_alloc(n, true);
}

void wref__free(void *p)
{
	atomic_load_explicit(&use_free, memory_order_relaxed)(p);
}
