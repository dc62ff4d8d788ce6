/*
 * alloc_route.c - which allocator serves libwref, and which the program
 * (issue 15).  Built twice:
 *
 *  tests/alloc_pkgconfig  linked as `pkg-config --libs wref` links (libwref
 *                         and libwref_jemalloc, nothing else): the program's
 *                         malloc must be libc's, libwref's blocks jemalloc's;
 *  tests/alloc_jeapp      -DAPP_ON_JEMALLOC, -ljemalloc linked first: both
 *                         must be jemalloc's.
 *
 * "Came from jemalloc": jemalloc's per-thread counter thread.allocated
 * grows by at least the size asked for (the program never links jemalloc's
 * API: mallctl is looked up with dlsym).  Also runs a weak ref through
 * death with a callback, so the frees (on liburcu's call_rcu thread) go
 * through the same route.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wref.h>

#include "alloc_test.h"

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
static mallctl_fn je_mallctl;

static uint64_t thread_allocated(void)
{
	uint64_t v = 0;
	size_t sz = sizeof v;
	CHECK(je_mallctl("thread.allocated", &v, &sz, NULL, 0) == 0);
	return v;
}

static const char *object_of(const char *sym, void **base)
{
	Dl_info di;
	void *p = dlsym(RTLD_DEFAULT, sym);
	CHECK(p != NULL);
	CHECK(dladdr(p, &di) != 0);
	*base = di.dli_fbase;
	return di.dli_fname ? di.dli_fname : "?";
}

static atomic_int died;
static void on_death(wref_ref *r, void *arg)
{
	(void)r;
	(void)arg;
	atomic_fetch_add(&died, 1);
}

static const wref_type obj_type = { .name = "alloc_route" };

int main(void)
{
	void *malloc_base, *mallctl_base, *free_base;
	const char *malloc_in = object_of("malloc", &malloc_base);
	const char *free_in = object_of("free", &free_base);
	/* jemalloc is loaded (libwref_jemalloc's DT_NEEDED) */
	const char *je_in = object_of("mallctl", &mallctl_base);
	*(void **)&je_mallctl = dlsym(RTLD_DEFAULT, "mallctl");
	printf("program's malloc: %s\nprogram's free:   %s\njemalloc:         %s\n",
	       malloc_in, free_in, je_in);
	CHECK(strstr(je_in, "jemalloc") != NULL);
	CHECK(malloc_base == free_base);
#ifdef APP_ON_JEMALLOC
	CHECK(malloc_base == mallctl_base);
#else
	/* the library did not change the program's allocator */
	CHECK(malloc_base != mallctl_base);
	CHECK(strstr(malloc_in, "libc.so") != NULL);
#endif

	/* warm up: the first call registers the thread with liburcu etc. */
	void *w = wref_new(&obj_type, 16);
	CHECK(w != NULL);
	wref_release(w);

	/* libwref's blocks come from jemalloc */
	enum { BIG = 8192 };
	uint64_t a0 = thread_allocated();
	void *o = wref_new(&obj_type, BIG);
	uint64_t a1 = thread_allocated();
	CHECK(o != NULL);
	printf("wref_new(%d): thread.allocated +%llu\n", BIG,
	       (unsigned long long)(a1 - a0));
	CHECK(a1 - a0 >= BIG);

	/* the program's own malloc: jemalloc's only with -ljemalloc first */
	uint64_t b0 = thread_allocated();
	void *m = malloc(BIG);
	uint64_t b1 = thread_allocated();
	CHECK(m != NULL);
	printf("malloc(%d): thread.allocated +%llu\n", BIG,
	       (unsigned long long)(b1 - b0));
#ifdef APP_ON_JEMALLOC
	CHECK(b1 - b0 >= BIG);
#else
	CHECK(b1 - b0 == 0);
#endif
	free(m);

	/* a weak ref with a callback, upgrade, death, flush: control block
	 * and the object's memory freed after a grace period */
	uint64_t c0 = thread_allocated();
	wref_ref *r = wref_ref_new(o, on_death, NULL);
	CHECK(r != NULL);
	CHECK(thread_allocated() > c0);
	void *p = wref_ref_get(r);
	CHECK(p == o);
	wref_release(p);
	wref_release(o);
	CHECK(wref_flush() == 0);
	CHECK(atomic_load(&died) == 1);
	CHECK(wref_ref_get(r) == NULL);
	wref_release(r);

	/* many, so the frees on the call_rcu thread really happen */
	for (int i = 0; i < 10000; i++) {
		void *x = wref_new(&obj_type, 40);
		CHECK(x != NULL);
		wref_ref *xr = wref_ref_new(x, on_death, NULL);
		CHECK(xr != NULL);
		wref_release(x);
		wref_release(xr);
	}
	CHECK(wref_flush() == 0);
	printf("ok\n");
	return 0;
}
