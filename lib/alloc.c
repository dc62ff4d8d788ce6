/*
 * alloc.c - the one place libwref allocates, and the allocation-failure
 * injection hook used by the tests.
 *
 * libwref calls malloc/calloc/free: configure links jemalloc (default), and
 * where jemalloc is the process allocator (linked before libc, as the tests
 * and benchmarks do) these are jemalloc's thread-cache fast paths.  We
 * measured jemalloc's mallocx/dallocx at ~10 ns a pair against ~6 ns for
 * its malloc/free (bench on 2026-11-25): the non-standard entry points skip
 * the fast path, so we do not use them.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* relaxed: read-mostly flag, off in production; the countdown is
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

static void *do_alloc(size_t n, bool zero)
{
	if (wref_unlikely(inject_failure())) {
		errno = ENOMEM;
		return NULL;
	}
	if (n == 0)
		n = 1;
	void *p = zero ? calloc(1, n) : malloc(n);
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
	free(p);
}
