/*
 * alloc.h - the allocator wrapper of alloc.c (jemalloc mallocx when present,
 * else malloc) and its test hooks. Internal, never installed; split from
 * internal.h (issue 14 item 4).
 */
#ifndef WREF_ALLOC_H
#define WREF_ALLOC_H

#include "common.h"

/* ---- alloc.c ---------------------------------------------------------- */
WREF_HIDDEN void *wref__alloc(size_t n);  /* NULL + errno ENOMEM */
WREF_HIDDEN void *wref__zalloc(size_t n); /* zeroed */
WREF_HIDDEN void wref__free(void *p);
/* Test hooks, only in the test build (-DWREF_TEST_HOOKS, lib/libwref_test.la;
 * never in the installed library): the @n-th allocation from now fails (0 =
 * the next one); negative disables.  Also set by the WREF_FAIL_ALLOC
 * environment variable. */
WREF_HIDDEN void wref__alloc_fail_after(long n);
/* Test hook: the @n-th allocation from now and every one after it fail,
 * until wref__alloc_fail_after(-1). */
WREF_HIDDEN void wref__alloc_fail_from(long n);
/* "jemalloc", "jemalloc-mallocx" or "malloc": what serves wref__alloc */
WREF_HIDDEN const char *wref__allocator(void);

#endif /* WREF_ALLOC_H */
