/*
 * common.h - the prelude every lib/ source starts with: feature macros,
 * the system and liburcu headers, the public wref.h, WREF_HIDDEN and the
 * branch hints, the ThreadSanitizer hand-off annotations.  Internal, never
 * installed (the common part of the old internal.h, issue 14 item 4).
 * "rule N" in lib/, include/ and tests/ is rule N of docs/design.md.
 */
#ifndef WREF_COMMON_H
#define WREF_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* inline urcu-bp read-side and wfcqueue fast paths; not under sanitizers,
 * where liburcu's code must stay inside its uninstrumented shared objects:
 * its inline-asm atomics are invisible to TSan (our hand-offs through it
 * are annotated instead), and UBSan flags its reader registry's
 * alignment (a liburcu 0.13 issue, not ours) */
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(thread_sanitizer) && !__has_feature(address_sanitizer)
#define _LGPL_SOURCE
#endif
#else
#define _LGPL_SOURCE
#endif
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu-bp.h>
#include <urcu/list.h>
#include <urcu/wfcqueue.h>

#include "wref.h"

#define WREF_HIDDEN __attribute__((visibility("hidden")))
#define wref_likely(x) __builtin_expect(!!(x), 1)
#define wref_unlikely(x) __builtin_expect(!!(x), 0)
#define WREF_CACHELINE 64

/* ---- ThreadSanitizer hand-off annotations ------------------------------
 * liburcu 0.13 synchronises with uninstrumented inline asm, so TSan cannot
 * see the happens-before edges of call_rcu, grace periods or wfcqueue.  We
 * declare our own hand-offs through liburcu explicitly. */
#if defined(__SANITIZE_THREAD__)
#define WREF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WREF_TSAN 1
#endif
#endif
#ifdef WREF_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define wref__tsan_acquire(p) __tsan_acquire((void *)(p))
#define wref__tsan_release(p) __tsan_release((void *)(p))
#else
#define wref__tsan_acquire(p) ((void)(p))
#define wref__tsan_release(p) ((void)(p))
#endif

#endif /* WREF_COMMON_H */
