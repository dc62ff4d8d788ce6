/*
 * object.h - the object header, strong counts and death context of object.c.
 * Internal, never installed; split from internal.h (issue 14 item 4).
 */
#ifndef WREF_OBJECT_H
#define WREF_OBJECT_H

#include "common.h"

/* ---- object.c --------------------------------------------------------- */

/*
 * Strong counts (docs/core.md).  An object's header word holds its strong
 * count inline (n << 1, even) until its first weak use; then one CAS
 * replaces it with the control block's address | WREF_W_CB (odd), and the
 * count lives in the block's sticky counter from then on (the word never
 * changes again).  Inline, only strong holders touch the word, so retain
 * and release are CASes (no increment can slip past the switch); in the
 * block, upgrades are one fetch_add on memory the weak ref keeps alive, with
 * no RCU read-side section.
 *
 * Sticky counter of a block (Linux rcuref_t / Anderson-Blelloch-Wei):
 * bit 63 DEAD: set by the one CAS that owns destruction; sticky.
 * [2^62, 2^63): saturated zone: the object is pinned forever.
 * Inline word: [2, WREF_SAT) live (count < 2^61), [WREF_SAT, WREF_DEAD)
 * saturated, WREF_DEAD dead.
 */
#define WREF_DEAD (UINT64_C(1) << 63)
#define WREF_SAT (UINT64_C(1) << 62)
#define WREF_SAT_MID (WREF_SAT + (UINT64_C(1) << 61))
/* counts in [WREF_UNDERFLOW_ZONE, 2^64) are dead: DEAD plus failed
 * upgrades' increments, or a dead count an over-release pushed below DEAD */
#define WREF_UNDERFLOW_ZONE (WREF_DEAD - (UINT64_C(1) << 40))
#define WREF_W_CB UINT64_C(1)
/* beside WREF_W_CB: the block was made for a callback ref (its object is
 * usually released by a sole owner), so the last release tries one CAS
 * 1 -> DEAD before the fetch_sub (object.c release_cnt_solo).  A hint
 * only: set once, with the block's address, by the publishing CAS */
#define WREF_W_SOLO UINT64_C(2)
#define WREF_INL(n) ((uint64_t)(n) << 1)

struct wref__cb;

struct wref__hdr {
	/* inline count, or the control block | WREF_W_CB (see above) */
	_Atomic uint64_t word;
	/* the type pointer, plus WREF_TC_PIN once the library may pin the
	 * object with wref__tryget (watch owners, shared refs); the bit is
	 * only ever set, and only while a strong ref is held */
	_Atomic uintptr_t tc;
#ifdef WREF_DEBUG
	uint64_t magic;
	uint64_t pad; /* keep the payload 16-byte aligned */
#endif
};
#define WREF_TC_PIN ((uintptr_t)2)
#define WREF_MAGIC UINT64_C(0x7772656661626c65)      /* "wrefable" */
#define WREF_MAGIC_DEAD UINT64_C(0x646561646465616d) /* "deaddeam" */

static inline struct wref__hdr *wref__hdr(const void *obj)
{
	return (struct wref__hdr *)obj - 1;
}
static inline void *wref__payload(struct wref__hdr *h)
{
	return h + 1;
}
/* --enable-debug: abort naming the misuse if @obj is not a live object
 * from wref_new(); compiled out otherwise (it sits on hot paths) */
#ifdef WREF_DEBUG
WREF_HIDDEN void wref__check_slow(const void *obj, const char *what);
#define wref__check(obj, what) wref__check_slow((obj), (what))
#else
#define wref__check(obj, what) ((void)(obj), (void)(what))
#endif
WREF_HIDDEN const wref_type *wref__type(const struct wref__hdr *h);
static inline struct wref__cb *wref__word_cb(uint64_t w)
{
	return (w & WREF_W_CB) ? (struct wref__cb *)(uintptr_t)(w &
					~(WREF_W_CB | WREF_W_SOLO))
			       : NULL;
}
/* control block of @h or NULL; the caller holds a strong ref to @h, or
 * @h is dying on this thread, or @h's memory is otherwise kept (RCU) */
static inline struct wref__cb *wref__cb_peek(struct wref__hdr *h)
{
	/* acquire: pairs with the CAS publishing the block in wref__cb_get() */
	return wref__word_cb(atomic_load_explicit(&h->word,
						  memory_order_acquire));
}
/* mark @obj (held strongly by the caller) as pinnable by the library, so
 * its last release always takes the atomic path */
WREF_HIDDEN void wref__pinnable(void *obj);
/* free the memory of a dead object whose type has WREF__TYPE_OWN_FREE */
WREF_HIDDEN void wref__obj_free(void *obj);
/* internal wref_type.flags bit: destroy frees the memory itself, later,
 * with wref__obj_free (a dying weak ref whose callback is still owed) */
#define WREF__TYPE_OWN_FREE (1u << 31)
/* internal wref_type.flags bit: a type of the library's own whose deaths
 * need more than destroy (a wref_ref's, the shared handle's); the type is
 * the first member of a struct wref__lib_type, and die() calls its hooks,
 * so object.c names no type of a module above it */
#define WREF__TYPE_LIB (1u << 30)
struct wref__lib_type {
	wref_type t;
	/* replaces the whole death: no destroy, no trashcan, no user code
	 * (the shared handle, library memory inside its block) */
	void (*died)(struct wref__hdr *h);
	/* runs first in the death of an object with a block or the PIN bit,
	 * before its block's watches are collected (a wref_ref unpublishes
	 * itself); may be NULL */
	void (*unpublish)(void *obj);
};
/* wref_new without the check of @type's flags: the library's own types,
 * which carry WREF__TYPE_* bits that wref_new refuses to users */
WREF_HIDDEN void *wref__new(const wref_type *type, size_t size);

/* Slow path of a block's upgrade: @old (the count before the increment)
 * was 0, dead, or the increment took it into the saturated zone (old >=
 * SAT - 1, so the warning comes with the increment that saturates).  @h
 * names the object in the warning. */
WREF_HIDDEN bool wref__cnt_tryget_slow(_Atomic uint64_t *cnt, uint64_t old);
/* the upgrade on a block's counter: one fetch_add; fails forever once DEAD
 * (sticky: only the CAS 0 -> DEAD of the release that took the count to 0
 * sets it; an upgrade that finds 0 before that CAS revives the count) */
static inline bool wref__cnt_tryget(_Atomic uint64_t *cnt)
{
	/* relaxed: taking a ref needs no ordering; what the caller reads of
	 * the object was published by whatever handed it the weak ref or
	 * entry; death ordering is carried by the release/acq_rel pair on
	 * the decrement side */
	uint64_t c = atomic_fetch_add_explicit(cnt, 1, memory_order_relaxed);
	if (wref_unlikely(c - 1 >= WREF_SAT - 2))
		return wref__cnt_tryget_slow(cnt, c);
	return true;
}
/* the same with a DEAD pre-check, so a dead count's line is not dirtied */
static inline bool wref__cnt_tryget_checked(_Atomic uint64_t *cnt)
{
	/* relaxed: the fetch_add re-checks */
	if (wref_unlikely(atomic_load_explicit(cnt, memory_order_relaxed) >=
			  WREF_UNDERFLOW_ZONE))
		return false;
	return wref__cnt_tryget(cnt);
}
/* inline-count part of wref__tryget (a CAS loop; a word that turns out to
 * be a block is followed there) */
WREF_HIDDEN bool wref__tryget_word(struct wref__hdr *h, uint64_t w);

/* wref_release(@obj) by a holder that knows nothing can retain or pin
 * @obj concurrently unless it holds a ref too (no watch of its is linked:
 * a fired callback ref): a count of 1 is then the caller's alone, and the
 * release takes no RMW */
WREF_HIDDEN void wref__release_unpinned(void *obj);

/* a snapshot of @h's strong count; 0 once dead */
WREF_HIDDEN uint64_t wref__count(struct wref__hdr *h);

/* Queue @w (a death's callback or finalizer, from a watch's fire()) to run
 * after the dying object's destroy returned; outside a death, wref__defer. */
struct wref__work;
WREF_HIDDEN void wref__defer_death(struct wref__work *w);
/* queue @w to run on the executor (executor.c); where it was queued
 * inline on this thread instead (inline mode, no executor thread), run it
 * now in a death context, or at the outermost level's return if we are
 * inside one.  Never under a lock. */
WREF_HIDDEN void wref__defer(struct wref__work *w);
/* the same for a chain linked through node.next (NULL-terminated), in its
 * order: one splice onto the executor's queue (a death's callbacks) */
WREF_HIDDEN void wref__defer_chain(struct wref__work *first);

/* Death context (trashcan): cascades of deaths on one thread are flattened
 * into a loop.  Inside it, releases that kill an object queue the destroy
 * and the outermost level runs it. */
WREF_HIDDEN void wref__enter(void);
WREF_HIDDEN void wref__leave(void);

#endif /* WREF_OBJECT_H */
