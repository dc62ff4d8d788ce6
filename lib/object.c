/*
 * object.c - the object header: sticky strong counter, the control block's
 * holds and watch list (lib/block.h; the block is created by ref.c),
 * death, and the per-thread "trashcan" that flattens cascades of deaths
 * into a loop (which also runs the work the executor queued inline).
 */
#include "object.h"
#include "block.h"
#include "alloc.h"
#include "executor.h"
#include "lock.h"
#include "rcu.h"
#include "thread.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_flag warned_saturation = ATOMIC_FLAG_INIT;
static atomic_flag warned_misuse = ATOMIC_FLAG_INIT;

static const char *type_name(const struct wref__hdr *h)
{
	const wref_type *t = wref__type(h);
	return t && t->name ? t->name : "(unnamed type)";
}

__attribute__((format(printf, 2, 3)))
static void misuse(const struct wref__hdr *h, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
#ifdef WREF_DEBUG
	fprintf(stderr, "libwref: misuse: %s (object %p of type %s)\n", msg,
		(const void *)(h + 1), type_name(h));
	abort();
#else
	/* relaxed: a print-once flag; it orders nothing */
	if (!atomic_flag_test_and_set_explicit(&warned_misuse,
					       memory_order_relaxed))
		fprintf(stderr, "libwref: misuse: %s (object %p); further "
			"misuse is not reported\n", msg, (const void *)(h + 1));
#endif
}

#ifdef WREF_DEBUG
void wref__check_slow(const void *obj, const char *what)
{
	const struct wref__hdr *h = wref__hdr(obj);
	if (h->magic == WREF_MAGIC)
		return;
	fprintf(stderr, "libwref: misuse: %s(%p): %s\n", what, obj,
		h->magic == WREF_MAGIC_DEAD ? "object is dead (released too "
		"often)" : "not an object from wref_new()");
	abort();
}
#endif

const wref_type *wref__type(const struct wref__hdr *h)
{
	/* relaxed: the type is written before the object is handed out and
	 * never changes (only the PIN bit is ever set) */
	uintptr_t tc = atomic_load_explicit(
		&((struct wref__hdr *)h)->tc, memory_order_relaxed);
	return (const wref_type *)(tc & ~WREF_TC_PIN);
}

static void warn_saturated(struct wref__hdr *h)
{
	/* relaxed: a print-once flag; it orders nothing */
	if (!atomic_flag_test_and_set_explicit(&warned_saturation,
					       memory_order_relaxed))
		fprintf(stderr, "libwref: warning: strong count of %p (type "
			"%s) saturated; the object is pinned forever\n",
			(void *)(h + 1), type_name(h));
}

/* a block's counter reached the saturated zone: pin it */
static void saturate_cnt(_Atomic uint64_t *cnt, struct wref__hdr *h)
{
	/* relaxed: the count is pinned; any value in the zone will do */
	atomic_store_explicit(cnt, WREF_SAT_MID, memory_order_relaxed);
	warn_saturated(h);
}

bool wref__cnt_tryget_slow(_Atomic uint64_t *cnt, uint64_t old)
{
	/* every tried count is a block's (the fast path does not read the
	 * block's mem before its RMW: see wref__cb_upgrade) */
	struct wref__cb *cb = caa_container_of(cnt, struct wref__cb, strong);
	/* dead, sticky: the stray increment stays inside the dead zone */
	if (old >= WREF_UNDERFLOW_ZONE)
		return false;
	if (old == 0) {
		/* revived a count a release took to 0 but has not yet marked
		 * DEAD: that releaser's CAS 0 -> DEAD will fail and drop one
		 * hold on the block, which must outlive the CAS: this is that
		 * hold (the "ticket"; our own hold on the block keeps it
		 * allocated until then).  formal-model: BROKEN_NO_TICKET */
		wref__cb_hold(cb);
		return true;
	}
	saturate_cnt(cnt, cb->mem);
	return true;
}

/* one more strong ref on an inline count (a CAS loop: inline counts change
 * only by CAS, so none slips past the CAS that moves it into a block) */
enum { INC_DONE, INC_DEAD, INC_BLOCK };
static int word_inc(struct wref__hdr *h, uint64_t *wp)
{
	uint64_t w = *wp;
	for (;;) {
		*wp = w;
		if (w & WREF_W_CB)
			return INC_BLOCK; /* the count moved: *wp names it */
		if (w < WREF_INL(1) || w >= WREF_UNDERFLOW_ZONE)
			return INC_DEAD; /* dead (or not an object) */
		if (w >= WREF_SAT)
			return INC_DONE; /* pinned: the count stays */
		uint64_t n = w + WREF_INL(1) >= WREF_SAT ? WREF_SAT_MID
							 : w + WREF_INL(1);
		/* acquire (on failure): the word may have become a block,
		 * pairs with its publishing CAS; the increment itself needs
		 * no ordering (as wref__cnt_tryget), but C11 wants the
		 * success order at least as strong */
		if (atomic_compare_exchange_weak_explicit(&h->word, &w, n,
				memory_order_acquire, memory_order_acquire)) {
			if (wref_unlikely(n == WREF_SAT_MID))
				warn_saturated(h);
			return INC_DONE;
		}
	}
}

/* inline word: one more strong ref unless dead; a word that became a
 * block is followed there */
bool wref__tryget_word(struct wref__hdr *h, uint64_t w)
{
	switch (word_inc(h, &w)) {
	case INC_DONE:
		return true;
	case INC_BLOCK:
		return wref__cnt_tryget_checked(&wref__word_cb(w)->strong);
	default:
		return false;
	}
}

uint64_t wref__count(struct wref__hdr *h)
{
	/* acquire: pairs with the CAS publishing a block */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
	if (w & WREF_W_CB) {
		/* relaxed: a snapshot */
		uint64_t c = atomic_load_explicit(&wref__word_cb(w)->strong,
						  memory_order_relaxed);
		return c >= WREF_UNDERFLOW_ZONE ? 0 : c;
	}
	if (w >= WREF_UNDERFLOW_ZONE)
		return 0;
	return w >= WREF_SAT ? w : w >> 1; /* pinned: a huge count */
}

void wref__pinnable(void *obj)
{
	struct wref__hdr *h = wref__hdr(obj);
	/* relaxed: a flag bit only the release fast path reads; the caller
	 * holds a strong ref, so that path cannot be running concurrently
	 * (it needs the count to be 1) */
	if (!(atomic_load_explicit(&h->tc, memory_order_relaxed) & WREF_TC_PIN))
		atomic_fetch_or_explicit(&h->tc, WREF_TC_PIN,
					 memory_order_relaxed);
}

/* ---- creation ---------------------------------------------------------- */

void *wref_new(const wref_type *type, size_t size)
{
	if (!type || (type->flags & ~WREF_TYPE_NO_WEAK)) {
		errno = EINVAL;
		return NULL;
	}
	return wref__new(type, size);
}

void *wref__new(const wref_type *type, size_t size)
{
	if (size > SIZE_MAX - sizeof(struct wref__hdr) - 8) {
		errno = ENOMEM;
		return NULL;
	}
	/* whole words, so the payload can be zeroed a word at a time */
	struct wref__hdr *h = wref__alloc(sizeof *h + ((size + 7) & ~(size_t)7));
	if (!h)
		return NULL;
	/* small payloads are zeroed inline: a memset call costs more than the
	 * stores (measured: +2.6 ns per object) */
	if (size <= 64) {
		/* the payload is 16-byte aligned and allocated in whole words;
		 * a switch, because a loop would become rep stos, slower
		 * still for a few words */
		uint64_t *w = (uint64_t *)(h + 1);
		switch ((size + 7) / 8) {
		case 8: w[7] = 0; /* fall through */
		case 7: w[6] = 0; /* fall through */
		case 6: w[5] = 0; /* fall through */
		case 5: w[4] = 0; /* fall through */
		case 4: w[3] = 0; /* fall through */
		case 3: w[2] = 0; /* fall through */
		case 2: w[1] = 0; /* fall through */
		case 1: w[0] = 0; /* fall through */
		default: break;
		}
	} else {
		memset(h + 1, 0, size);
	}
	atomic_init(&h->word, WREF_INL(1));
	atomic_init(&h->tc, (uintptr_t)type);
#ifdef WREF_DEBUG
	h->magic = WREF_MAGIC;
#endif
	wref__stat_add(WREF_ST_CREATED, 1);
	return h + 1;
}

static void retain_misuse(struct wref__hdr *h, uint64_t c)
{
	if (c == 0)
		misuse(h, "wref_retain of a pointer whose strong count is 0: "
		       "not an object from wref_new()");
	else
		misuse(h, "wref_retain of an object with no strong ref (dead "
		       "or dying)");
}

void *wref_retain(void *obj)
{
	if (!obj)
		return NULL;
	wref__check(obj, "wref_retain");
	struct wref__hdr *h = wref__hdr(obj);
	/* acquire: pairs with the CAS publishing a block (wref__cb_get) */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
	if (!(w & WREF_W_CB)) {
		int r = word_inc(h, &w);
		if (r == INC_DONE)
			return obj;
		if (r == INC_DEAD) {
			retain_misuse(h, w);
			return obj;
		}
	}
	/* a block's counter: as an upgrade (saturation included), but the
	 * caller holds a ref, so failing means misuse (dead) */
	if (!wref__cnt_tryget(&wref__word_cb(w)->strong))
		retain_misuse(h, WREF_DEAD);
	return obj;
}

const wref_type *wref_type_of(const void *obj)
{
	if (!obj)
		return NULL;
	wref__check(obj, "wref_type_of");
	return wref__type(wref__hdr(obj));
}

size_t wref_strong_count(const void *obj)
{
	if (!obj)
		return 0;
	return (size_t)wref__count(wref__hdr(obj));
}

/* ---- the control block: holds, watches, the death's collection ------ */
/* (created by the object's first weak use: ref.c cb_get) */

void wref__cb_hold(struct wref__cb *cb)
{
	/* relaxed: the caller already has the block through a hold */
	atomic_fetch_add_explicit(&cb->holds, 1, memory_order_relaxed);
}

void wref__cb_unhold_n(struct wref__cb *cb, uint32_t n)
{
	/* acquire: pairs with the release half of the other holders'
	 * fetch_sub below.  Seeing n, the n holds we drop are the only ones
	 * left, and a hold is only ever added by a holder (or by a strong
	 * holder of the object, which holds it too): nobody can add one now,
	 * so the last unhold skips its RMW (as libstdc++'s _M_release does) */
	if (atomic_load_explicit(&cb->holds, memory_order_acquire) != n &&
	    /* acq_rel: every holder's accesses happen-before the free by
	     * the last one (an RMW rather than a fence: TSan does not model
	     * fences) */
	    atomic_fetch_sub_explicit(&cb->holds, n,
				      memory_order_acq_rel) != n)
		return;
	wref__free(cb); /* an embedded callback ref with it (ref.c) */
	wref__stat_add(WREF_ST_CB_FREE, 1);
}

void wref__cb_unhold(struct wref__cb *cb)
{
	wref__cb_unhold_n(cb, 1);
}

int wref__watch_add(struct wref__cb *cb, struct wref__watch *w)
{
	int ret = -ENOENT;
	uint32_t add = wref__watch_prepare(w);
	wref__lock(&cb->lock);
	uint32_t f = wref__cb_flags(cb);
	if (!(f & WREF_CB_DEAD)) {
		/* relaxed: under cb->lock; the dying thread reads it after
		 * the count's acq_rel (our caller holds a strong ref) */
		if (add & ~f)
			atomic_fetch_or_explicit(&cb->flags, add,
						 memory_order_relaxed);
		wref__watch_link(cb, w);
		ret = 0;
	}
	wref__unlock(&cb->lock);
	return ret;
}

bool wref__watch_del(struct wref__cb *cb, struct wref__watch *w)
{
	bool linked;
	wref__lock(&cb->lock);
	linked = w->link != 0;
	if (linked)
		wref__watch_unlink(cb, w);
	wref__unlock(&cb->lock);
	return linked;
}

/*
 * Watches are collected and fired in batches, each inside one read-side
 * section opened BEFORE cb->lock is taken: a remover that finds a watch
 * unlinked (wref__watch_del false) may retire its memory with call_rcu,
 * and the grace period then waits for us.  Everything needed after the
 * section (the owners to release) is copied out before fire(), which may
 * retire the watch: no watch field is read after the section ends.
 * A block that only ever had callback refs' watches (no RCU_WATCH) needs
 * no section: a ref's memory is freed at once, never through RCU, and we
 * fire only refs we pinned or whose callback is owed (either keeps the
 * memory until the callback ran).
 */
#define KILL_BATCH 16

/*
 * The block's only watch ever linked is its embedded callback ref's (the
 * flags @f say so: no LATE_WATCH, no RCU_WATCH, no embedded entry;
 * docs/core.md "The lone death"), the common death of an
 * object whose first weak use had a callback.  Once the dying thread pins
 * the ref, nobody else can touch the list: linkers need a strong ref to
 * the object (none is left), and the ref's only remover is its own
 * unpublish, which its death runs and the pin keeps away (after the
 * pin, it finds the ref fired).  So no lock, two RMWs fewer per death.
 * False if the pin failed (the ref is dying: its unpublish takes the
 * lock and decides, as with the locked walk).
 */
static bool kill_lone(struct wref__cb *cb, uint32_t f)
{
	/* read again: the ref's unpublish may have cancelled it (unlinked
	 * under the lock, its referent still read alive) since our caller
	 * saw the list non-empty.  Not NULL, it is the ref's watch, whose
	 * memory is the block's: make torture found the NULL (UBSan, seed
	 * 59384013850380, a 180 s ASan run) */
	struct wref__watch *w = wref__watch_first(cb);
	if (!w)
		return true; /* nothing left to fire, as for an empty list */
	void *owner = wref__watch_owner(w);
	/* the pin, on the ref's inline count only: its memory is the
	 * block's, alive.  A ref weakly referenced itself counts in a block
	 * of its own, which its death may free once it has unpublished: the
	 * locked walk then, where a linked watch proves that unpublish has
	 * not finished (the TSan build's tests/stress/torture found the lone
	 * path reading such a freed block, seed 11138646217306).  Acquire: as
	 * wref__tryget */
	struct wref__hdr *rh = wref__hdr(owner);
	uint64_t rw = atomic_load_explicit(&rh->word, memory_order_acquire);
	if (word_inc(rh, &rw) != INC_DONE)
		return false; /* dying, or a block of its own */
	/* relaxed: no other thread reads the flags' DEAD or the list now
	 * (see above); a later reader is ordered by the ref's fired flag
	 * (release in its fire) or by the lock taken after it */
	atomic_store_explicit(&cb->flags, f | WREF_CB_DEAD,
			      memory_order_relaxed);
	wref__watch_unlink_after(cb, NULL, w);
	if (!w->ops->fire(w, true))
		wref_release(owner);
	return true;
}

void wref__cb_kill(struct wref__cb *cb)
{
	struct wref__watch *batch[KILL_BATCH], *w, *next, *prev;
	void *pinned[KILL_BATCH];
	size_t n, i;

	/* relaxed: every watch was linked by a strong holder of the object
	 * (wref__watch_add), whose release happens-before this death (the
	 * acq_rel CAS that set DEAD): an empty list stays empty, and no
	 * remover can find a watch of ours to race with, so no lock */
	if (!atomic_load_explicit(&cb->watches, memory_order_relaxed))
		return; /* WREF_CB_DEAD only matters to linked watches */
	/* RCU_WATCH and LATE_WATCH are set only while a strong ref is held
	 * (as the watches are linked), so they are ordered before us like
	 * the list */
	uint32_t f = wref__cb_flags(cb);
	if (!(f & (WREF_CB_LATE_WATCH | WREF_CB_RCU_WATCH | WREF_CB_EMBED)) &&
	    kill_lone(cb, f))
		return;
	bool rcu = f & WREF_CB_RCU_WATCH;
	do {
		n = 0;
		prev = NULL; /* the last watch left linked */
		if (rcu)
			wref__rcu_lock();
		wref__lock(&cb->lock);
		/* relaxed: under cb->lock; a store, not an RMW: the flags'
		 * other writers hold a strong ref, and none is left */
		atomic_store_explicit(&cb->flags,
				      wref__cb_flags(cb) | WREF_CB_DEAD,
				      memory_order_relaxed);
		for (w = wref__watch_first(cb); w && n < KILL_BATCH; w = next) {
			next = wref__watch_next(w);
			void *owner = wref__watch_owner(w);
			/* an owner we cannot pin is dying: its destroy
			 * unlinks, unless it is a ref whose callback is still
			 * owed (it keeps its memory for the callback) */
			bool pin = wref__tryget(wref__hdr(owner));
			if (!pin && !(w->ops->owed && w->ops->owed(w))) {
				prev = w;
				continue;
			}
			wref__watch_unlink_after(cb, prev, w);
			pinned[n] = pin ? owner : NULL;
			batch[n++] = w;
		}
		wref__unlock(&cb->lock);
		/* a fire that keeps the owner's pin (a callback ref hands it
		 * to its callback) says so; the watch is readable inside the
		 * section (pinned, held, or retired through RCU), and its
		 * ops are read before fire() may retire it */
		for (i = 0; i < n; i++)
			if (batch[i]->ops->fire(batch[i], pinned[i] != NULL))
				pinned[i] = NULL;
		if (rcu)
			wref__rcu_unlock();
		for (i = 0; i < n; i++)
			wref_release(pinned[i]); /* NULL: not pinned */
	} while (n == KILL_BATCH);
}

/* ---- the trashcan ------------------------------------------------------ */

/* a queued destroy, and the death's callbacks held until it has run */
struct can_item {
	struct wref__hdr *h;
	struct wref__work *held;
};
struct trashcan {
	unsigned depth;
	size_t n, cap;
	struct can_item *v;
	struct can_item buf[32];
	/* set while this thread collects a death's watches (die): callback
	 * work queued then is held until the object's destroy returned */
	struct wref__work **hold_tail;
	/* queued destroys the array could not take (out of memory), chained
	 * through the dead objects themselves, and the callbacks their
	 * deaths held: see spill_push() */
	struct wref__hdr *spill;
	struct wref__work *spill_held;
};
static __thread struct trashcan tls_can
	__attribute__((tls_model("initial-exec")));

static void destroy_and_free(struct wref__hdr *h);

void wref__enter(void)
{
	tls_can.depth++;
}

void wref__defer(struct wref__work *w)
{
	if (wref__exec_queue(w)) {
		wref__enter(); /* runs it now, or when the outermost returns */
		wref__leave();
	}
}

void wref__defer_chain(struct wref__work *w)
{
	if (wref__exec_queue_chain(w)) {
		wref__enter();
		wref__leave();
	}
}

void wref__defer_death(struct wref__work *w)
{
	struct trashcan *t = &tls_can;
	if (!t->hold_tail) {
		wref__defer(w);
		return;
	}
	w->node.next = NULL;
	*t->hold_tail = w;
	t->hold_tail = (struct wref__work **)&w->node.next;
}

/* queue what a death held, in the order it was held, in one splice */
static void submit_held(struct wref__work *w)
{
	if (w)
		wref__defer_chain(w); /* re-initialises each w->node */
}

/*
 * When the trashcan cannot grow, a dying object is chained through its own
 * dead memory, so destroys still loop instead of recursing (rule 9, also
 * out of memory): an object with a control block through the block's spill
 * link (unused otherwise), one without through its dead header word, which
 * becomes DEAD | link >> 4: still in the dead zone, which no reader ever
 * writes (misuse reports only read it).  Headers are 16-byte aligned
 * (malloc's alignment); an allocator that did otherwise makes us run the
 * destroy now instead.  The callbacks such a death held wait on the
 * thread's spill_held chain until the queued destroys ran: still after
 * their own destroy.
 */
static void held_append(struct wref__work **chain, struct wref__work *held)
{
	while (*chain)
		chain = (struct wref__work **)(void *)&(*chain)->node.next;
	*chain = held;
}

static bool spill_push(struct trashcan *t, struct wref__hdr *h,
		       struct wref__work *held)
{
	/* relaxed: we own the dead object; a block was published to us */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_relaxed);
	struct wref__cb *cb = wref__word_cb(w);
	if (cb) {
		cb->spill = t->spill;
	} else {
		if ((uintptr_t)t->spill & 15)
			return false; /* cannot happen: see above */
		/* relaxed: only this thread reads the link back */
		atomic_store_explicit(&h->word,
			WREF_DEAD | ((uint64_t)(uintptr_t)t->spill >> 4),
			memory_order_relaxed);
	}
	held_append(&t->spill_held, held);
	t->spill = h;
	return true;
}

static bool spill_pop(struct trashcan *t, struct can_item *out)
{
	struct wref__hdr *h = t->spill;
	if (!h)
		return false;
	/* relaxed: written by this thread (spill_push) */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_relaxed);
	struct wref__cb *cb = wref__word_cb(w);
	if (cb) {
		t->spill = cb->spill;
		cb->spill = NULL;
	} else {
		t->spill = (struct wref__hdr *)(uintptr_t)((w - WREF_DEAD) << 4);
		atomic_store_explicit(&h->word, WREF_DEAD, memory_order_relaxed);
	}
	out->h = h;
	out->held = NULL; /* on t->spill_held */
	return true;
}

static bool can_pop(struct trashcan *t, struct can_item *out)
{
	if (!t->n)
		return spill_pop(t, out);
	*out = t->v[--t->n];
	return true;
}

/* outermost level: run queued destroys (and, in inline mode, queued
 * callbacks) while still inside, so that what they release is queued here
 * rather than recursing */
static void can_drain(struct trashcan *t)
{
	for (;;) {
		struct can_item it;
		if (can_pop(t, &it)) {
			destroy_and_free(it.h);
			submit_held(it.held);
			continue;
		}
		if (t->spill_held) {
			struct wref__work *held = t->spill_held;
			t->spill_held = NULL;
			submit_held(held);
			continue;
		}
		if (!wref__inline_pending())
			break;
		wref__inline_drain();
	}
	if (t->v != t->buf) {
		wref__free(t->v);
		t->v = t->buf;
		t->cap = sizeof t->buf / sizeof t->buf[0];
	}
}

/* destroys or inline work queued behind the current death */
static inline bool can_queued(const struct trashcan *t)
{
	return t->n || t->spill || wref__inline_pending();
}

void wref__leave(void)
{
	struct trashcan *t = &tls_can;
	if (t->depth == 1)
		can_drain(t);
	t->depth--;
}

/* queue @h's destroy (and the work its death held) for the outermost
 * level; false if it must run now */
static bool can_push(struct wref__hdr *h, struct wref__work *held)
{
	struct trashcan *t = &tls_can;
	if (!t->v) {
		t->v = t->buf;
		t->cap = sizeof t->buf / sizeof t->buf[0];
	}
	if (t->n == t->cap) {
		struct can_item *nv = wref__alloc(2 * t->cap * sizeof *nv);
		if (!nv)
			return spill_push(t, h, held); /* out of memory */
		for (size_t i = 0; i < t->n; i++)
			nv[i] = t->v[i];
		if (t->v != t->buf)
			wref__free(t->v);
		t->v = nv;
		t->cap *= 2;
	}
	t->v[t->n++] = (struct can_item){ h, held };
	return true;
}

/* ---- death --------------------------------------------------------------- */

#ifdef WREF_DEBUG
/*
 * --enable-debug: a dead object's memory is kept, magic DEAD, for the next
 * QUARANTINE frees of any thread before it is really freed, so a release,
 * retain or use of it soon after its death finds the dead magic and aborts
 * naming the misuse (a release build frees at once: such a call is then a
 * use-after-free that only ASan or valgrind can see).  Lock-free: a ring of
 * slots claimed by fetch_add; what a slot held is freed by its new owner.
 */
#define QUARANTINE 4096
static _Atomic(struct wref__hdr *) quarantine[QUARANTINE];
static _Atomic size_t q_next;

static void quarantine_drain(void)
{
	for (size_t i = 0; i < QUARANTINE; i++) {
		/* acquire: pairs with the acq_rel exchange that parked it */
		struct wref__hdr *h = atomic_exchange_explicit(&quarantine[i],
				NULL, memory_order_acquire);
		if (h)
			wref__free(h);
	}
}

static void mem_free(struct wref__hdr *h)
{
	static atomic_flag hooked = ATOMIC_FLAG_INIT;
	/* relaxed: wref__on_shutdown is idempotent and locks its own
	 * registry; the flag only saves the call */
	if (!atomic_flag_test_and_set_explicit(&hooked, memory_order_relaxed))
		wref__on_shutdown(quarantine_drain);
	/* relaxed: only spreads the slots; the exchange orders the memory */
	size_t i = atomic_fetch_add_explicit(&q_next, 1,
					     memory_order_relaxed) % QUARANTINE;
	/* acq_rel: our writes to @h (the dead magic) happen-before its free
	 * by a later owner of the slot, and theirs before ours */
	struct wref__hdr *old = atomic_exchange_explicit(&quarantine[i], h,
							 memory_order_acq_rel);
	if (old)
		wref__free(old);
}

__attribute__((destructor)) static void quarantine_at_exit(void)
{
	quarantine_drain();
}
#else
static inline void mem_free(struct wref__hdr *h)
{
	wref__free(h);
}
#endif

static void free_after_gp(struct rcu_head *head)
{
	struct wref__cb_byval *b = caa_container_of(head,
			struct wref__cb_byval, rcu);
	wref__rcu_tsan_after_gp(head);
	mem_free(b->cb.mem);
	wref__cb_unhold(&b->cb); /* the object's own hold */
}

void wref__obj_free(void *obj)
{
	struct wref__hdr *h = wref__hdr(obj);
	struct wref__cb *cb = wref__cb_peek(h);
#ifdef WREF_DEBUG
	h->magic = WREF_MAGIC_DEAD;
#endif
	if (!cb) {
		mem_free(h);
		return;
	}
	/* MEM_RCU read relaxed: set by a strong holder, whose release
	 * happens-before our death (its release and the CAS that set DEAD) */
	if (wref__cb_flags(cb) & WREF_CB_MEM_RCU) {
		/* a by-value container's lookups may still read it (the flag
		 * implies a struct wref__cb_byval: such types have equal) */
		wref__call_rcu(&wref__cb_byval(cb)->rcu, free_after_gp);
		return;
	}
	/* nothing reaches a dead object's memory but its strong holders
	 * (none are left) and the lock-protected pins of watch owners,
	 * whose destroy unlinked them: upgrades read the block only
	 * (docs/core.md, "Who frees what") */
	mem_free(h);
	wref__cb_unhold(cb); /* the object's own hold */
}

static void destroy_and_free(struct wref__hdr *h)
{
	const wref_type *t = wref__type(h);
	if (t->destroy)
		t->destroy(wref__payload(h));
	if (!(t->flags & WREF__TYPE_OWN_FREE))
		wref__obj_free(wref__payload(h));
}

/* Called once, by the thread that owns destruction (it set DEAD). */
static void die(struct wref__hdr *h)
{
	struct trashcan *t = &tls_can;
	/* relaxed: written while strong refs were held; we own the object */
	uintptr_t tc = atomic_load_explicit(&h->tc, memory_order_relaxed);
	const wref_type *ty = (const wref_type *)(tc & ~WREF_TC_PIN);
	const struct wref__lib_type *lt = NULL;
	if (wref_unlikely(ty->flags & WREF__TYPE_LIB)) {
		lt = caa_container_of(ty, struct wref__lib_type, t);
		if (lt->died) {
			/* e.g. a shared weak ref: no destroy and no user
			 * code, so no trashcan either */
			lt->died(h);
			return;
		}
	}
	wref__stat_add(WREF_ST_DIED, 1);
	t->depth++;
	/* unpublish now, so weak refs and containers read dead as soon as
	 * the release returns; destroy is queued behind any outer death.
	 * The callbacks and finalizers the death fires are held until the
	 * destroy has returned (destroy happens-before them, wref.h). */
	struct wref__work *held = NULL;
	/* relaxed: we set DEAD; a block was published to us by that CAS */
	struct wref__cb *cb = wref__word_cb(atomic_load_explicit(&h->word,
						memory_order_relaxed));
	if (cb || (tc & WREF_TC_PIN)) {
		if (lt && lt->unpublish)
			lt->unpublish(wref__payload(h));
		if (cb) {
			struct wref__work **outer = t->hold_tail;
			t->hold_tail = &held;
			wref__cb_kill(cb);
			t->hold_tail = outer;
		}
	}
	if (t->depth == 1) {
		destroy_and_free(h);
		submit_held(held);
		if (can_queued(t))
			can_drain(t);
	} else if (!can_push(h, held)) {
		destroy_and_free(h);
		submit_held(held);
	}
	t->depth--;
}

/* die() for an object with neither a block nor the PIN bit (the sole-owner
 * release path): no watches, no callbacks, no unpublishing */
__attribute__((noinline)) static void die_plain(struct wref__hdr *h)
{
	struct trashcan *t = &tls_can;
	const wref_type *ty = wref__type(h);
	if (wref_unlikely(t->depth || (ty->flags & WREF__TYPE_OWN_FREE))) {
		die(h); /* nested (the trashcan queues it) or frees itself */
		return;
	}
	wref__stat_add(WREF_ST_DIED, 1);
	if (ty->destroy) {
		t->depth = 1;
		ty->destroy(wref__payload(h));
	}
#ifdef WREF_DEBUG
	h->magic = WREF_MAGIC_DEAD;
#endif
	mem_free(h);
	if (ty->destroy) {
		/* what the destroy released was queued here (rule 9) */
		if (can_queued(t))
			can_drain(t);
		t->depth = 0;
	}
}

static void release_slow(struct wref__hdr *h, uint64_t c)
{
	if (c == 0) {
		/* no live object has a count of 0 (the last release moves
		 * it from 1 to DEAD) */
		misuse(h, "wref_release of a pointer whose strong count is 0: "
		       "not an object from wref_new()");
		return;
	}
	if (c >= WREF_UNDERFLOW_ZONE) {
		misuse(h, "wref_release of an object with no strong ref "
		       "(over-release)");
		return;
	}
	/* c >= WREF_SAT: saturated, pinned forever; leave the count alone */
}

/* release on a block's counter (the object was weakly referenced): slow
 * path of release_cnt, @c the count before our decrement */
static void release_cnt_slow(struct wref__hdr *h, _Atomic uint64_t *cnt,
			     uint64_t c)
{
	if (c == 1) {
		/* we took it to 0: mark it DEAD unless an upgrade revived it
		 * meanwhile (and took a hold on the block for this CAS) */
		uint64_t z = 0;
		/* acq_rel: every holder's release (their fetch_subs, one
		 * release sequence) happens-before destroy; exactly one
		 * thread ever sets DEAD */
		if (atomic_compare_exchange_strong_explicit(cnt, &z, WREF_DEAD,
				memory_order_acq_rel, memory_order_relaxed)) {
			die(h);
			return;
		}
		/* revived (or killed by the reviver's own last release):
		 * drop the ticket the reviver took for us */
		wref__cb_unhold(caa_container_of(cnt, struct wref__cb, strong));
		return;
	}
	/* relaxed: undo our decrement; only counts are at stake here */
	atomic_fetch_add_explicit(cnt, 1, memory_order_relaxed);
	/* a block count of 0 is the window before a DEAD: an over-release,
	 * reported as one of a dead count; else dead or saturated (pinned) */
	release_slow(h, c == 0 ? WREF_DEAD : c);
}

/* One fetch_sub, as Linux's rcuref_t: the count passes through 0 only in
 * the window before the releaser's CAS 0 -> DEAD, where an upgrade may
 * revive it (docs/core.md, formal-model/side_table.pml). */
static inline void release_cnt(struct wref__hdr *h, _Atomic uint64_t *cnt)
{
	/* release: pairs with the acq_rel CAS that sets DEAD */
	uint64_t c = atomic_fetch_sub_explicit(cnt, 1, memory_order_release);
	if (wref_likely(c - 2 < WREF_SAT - 2))
		return;
	release_cnt_slow(h, cnt, c);
}

/* release_cnt for a block made for a callback ref (WREF_W_SOLO): its last
 * release is usually its only one, and a CAS 1 -> DEAD is one RMW where
 * the fetch_sub to 0 and the CAS 0 -> DEAD are two.  The load only picks
 * the path (a guess; the CAS decides), and would cost a second line
 * transfer under contention: hence the hint, which shared handles' and
 * containers' blocks never carry (formal-model/side_table.pml SOLO) */
static inline void release_cnt_solo(struct wref__hdr *h,
				    _Atomic uint64_t *cnt)
{
	/* relaxed: a guess, re-checked by the CAS */
	uint64_t c = atomic_load_explicit(cnt, memory_order_relaxed);
	/* acq_rel: as release_cnt_slow's CAS 0 -> DEAD: every holder's
	 * release happens-before destroy; exactly one thread sets DEAD (an
	 * upgrade that came first makes it fail; one that comes after finds
	 * DEAD).  Relaxed on failure: the fetch_sub below orders */
	if (c == 1 &&
	    atomic_compare_exchange_strong_explicit(cnt, &c, WREF_DEAD,
			memory_order_acq_rel, memory_order_relaxed)) {
		die(h);
		return;
	}
	release_cnt(h, cnt);
}

void wref__release_unpinned(void *obj)
{
	struct wref__hdr *h = wref__hdr(obj);
	/* acquire: pairs with the release CAS of the other holders' last
	 * releases, so their writes happen-before destroy */
	if (atomic_load_explicit(&h->word, memory_order_acquire) ==
	    WREF_INL(1)) {
		/* relaxed: ours alone (see object.h); as wref_release's
		 * sole-owner path */
		atomic_store_explicit(&h->word, WREF_DEAD,
				      memory_order_relaxed);
		die(h);
		return;
	}
	wref_release(obj);
}

/*
 * An inline count never passes through 0: the last release moves it from
 * 1 straight to DEAD with one CAS (decrements are CASes, so two releasers
 * can never both see themselves last); a block's count may, for the window
 * release_cnt describes.  A releaser touches the header only while its
 * own ref still counts, so the memory cannot be freed under it.  An
 * inline count is changed only by CASes (retain included), so the CAS that
 * moves it into a block (wref__cb_get) cannot lose a concurrent change: a
 * releaser whose CAS fails on a word that became a block follows it there.
 */
void wref_release(void *obj)
{
	if (!obj)
		return;
	wref__check(obj, "wref_release");
	struct wref__hdr *h = wref__hdr(obj);
	/* acquire: pairs with the release CAS of earlier holders, so their
	 * writes happen-before destroy on the sole-owner path; and with the
	 * CAS publishing a block */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
	/* relaxed: the PIN bit is set only while a strong ref is held, and
	 * we are ordered after every other holder's release by the load */
	if (w == WREF_INL(1) &&
	    !(atomic_load_explicit(&h->tc, memory_order_relaxed) &
	      WREF_TC_PIN)) {
		/* sole owner of an object never weakly referenced nor pinnable
		 * by the library: nobody can upgrade or retain concurrently,
		 * so no RMW is needed */
		atomic_store_explicit(&h->word, WREF_DEAD,
				      memory_order_relaxed);
		die_plain(h);
		return;
	}
	for (;;) {
		if (w & WREF_W_CB) {
			if (w & WREF_W_SOLO)
				release_cnt_solo(h, &wref__word_cb(w)->strong);
			else
				release_cnt(h, &wref__word_cb(w)->strong);
			return;
		}
		if (wref_likely(w - WREF_INL(2) < WREF_SAT - WREF_INL(2))) {
			/* release: pairs with the acq_rel of the CAS that
			 * sets DEAD; acquire on failure: the word may have
			 * become a block (pairs with its publishing CAS) */
			if (atomic_compare_exchange_weak_explicit(&h->word, &w,
					w - WREF_INL(1), memory_order_release,
					memory_order_acquire))
				return;
			continue;
		}
		if (w == WREF_INL(1)) {
			/* acq_rel: every other holder's release happens-before
			 * destroy; exactly one thread ever sets DEAD */
			if (atomic_compare_exchange_weak_explicit(&h->word, &w,
					WREF_DEAD, memory_order_acq_rel,
					memory_order_acquire)) {
				die(h);
				return;
			}
			continue;
		}
		release_slow(h, w); /* 0, dead, or saturated (pinned) */
		return;
	}
}
