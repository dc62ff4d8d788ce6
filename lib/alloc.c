/*
 * alloc.c - the one place libwref allocates: jemalloc (mallocx/dallocx) by
 * default, libc malloc with --without-jemalloc and under sanitizers; and the
 * allocation-failure injection hook used by the tests.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WREF_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

/* -1: injection off; n >= 0: the allocation after n more succeeds fails */
static _Atomic long fail_countdown = -1;

void wref__alloc_fail_after(long n)
{
	/* relaxed: a test hook set before the sequence it tests, on the
	 * same thread */
	atomic_store_explicit(&fail_countdown, n < 0 ? -1 : n,
			      memory_order_relaxed);
}

__attribute__((constructor)) static void alloc_env(void)
{
	const char *s = getenv("WREF_FAIL_ALLOC");
	if (s && *s)
		wref__alloc_fail_after(strtol(s, NULL, 10));
}

static bool inject_failure(void)
{
	/* relaxed: read-mostly flag, off in production; the countdown is
	 * a single RMW so each failure is claimed once */
	if (wref_likely(atomic_load_explicit(&fail_countdown,
					     memory_order_relaxed) < 0))
		return false;
	long old = atomic_fetch_sub_explicit(&fail_countdown, 1,
					     memory_order_relaxed);
	if (old == 0)
		return true;
	if (old < 0) /* raced past the trigger: switch off again */
		atomic_store_explicit(&fail_countdown, -1,
				      memory_order_relaxed);
	return false;
}

static void *do_alloc(size_t n, bool zero)
{
	if (wref_unlikely(inject_failure())) {
		errno = ENOMEM;
		return NULL;
	}
	if (n == 0)
		n = 1;
	void *p;
#ifdef WREF_USE_JEMALLOC
	p = mallocx(n, zero ? MALLOCX_ZERO : 0);
#else
	p = zero ? calloc(1, n) : malloc(n);
#endif
	if (wref_unlikely(!p)) {
		errno = ENOMEM;
		return NULL;
	}
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
	if (!p)
		return;
#ifdef WREF_USE_JEMALLOC
	dallocx(p, 0);
#else
	free(p);
#endif
}
