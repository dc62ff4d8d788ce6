/*
 * clang_compat.h - forced include (-include) for the clang-14 libFuzzer
 * build of the library sources (make fuzz).
 *
 * liburcu 0.13's rcu_dereference() expands to __atomic_load on
 * __typeof__(p), which clang rejects for _Atomic pointers such as
 * wref__cb.obj (gcc accepts it).  The library only applies it to _Atomic
 * pointers, so the fuzz build maps it onto the C11 load with the same
 * (consume, promoted to acquire) ordering.
 */
#ifndef WREF_CLANG_COMPAT_H
#define WREF_CLANG_COMPAT_H
#ifdef __clang__
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define _LGPL_SOURCE
#include <stdatomic.h>
#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#undef rcu_dereference
#define rcu_dereference(p) atomic_load_explicit(&(p), memory_order_acquire)
#endif
#endif
