/*
 * core_test.h - small helpers shared by the core test suites (objects, weak
 * refs, executor, stress).  Tests may include "internal.h" for the hooks.
 */
#ifndef WREF_CORE_TEST_H
#define WREF_CORE_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* generous: ThreadSanitizer is ~10x slower and the machine may be shared */
#define CT_TIMEOUT 300

static inline long ct_scale(void)
{
	const char *s = getenv("WREF_STRESS_SCALE");
	long v = s && *s ? strtol(s, NULL, 10) : 1;
	return v > 0 ? v : 1;
}

static inline bool ct_tsan(void)
{
#ifdef WREF_TSAN
	return true;
#else
	return false;
#endif
}

static inline double ct_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: per-thread cheap randomness */
static inline uint64_t ct_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* busy-wait about @n spins (a small random delay) */
static inline void ct_spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

static inline struct wref_stats ct_stats(void)
{
	struct wref_stats s;
	wref_stats(&s);
	return s;
}

/* objects_live back to @start after a flush; blocks_live after the
 * deferred frees (wref_shutdown waits for them) */
#define ct_assert_no_leak(start)                                           \
	do {                                                               \
		struct wref_stats ct_s_;                                   \
		ck_assert_int_eq(wref_flush(), 0);                         \
		ct_s_ = ct_stats();                                        \
		ck_assert_uint_eq(ct_s_.objects_live, (start).objects_live); \
		wref_shutdown();                                           \
		ct_s_ = ct_stats();                                        \
		ck_assert_uint_eq(ct_s_.objects_live, (start).objects_live); \
		ck_assert_uint_eq(ct_s_.blocks_live, (start).blocks_live);  \
	} while (0)

static inline int ct_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* WREF_CORE_TEST_H */
