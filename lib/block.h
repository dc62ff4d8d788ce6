/*
 * block.h - the control block ("side table", docs/core.md) and its watch
 * list: layout, counts, holds, the death's collection (object.c), the
 * upgrade.  Created by the object's first weak use (ref.c, ref.h).
 * Internal, never installed; split from internal.h (issue 14 item 4).
 */
#ifndef WREF_BLOCK_H
#define WREF_BLOCK_H

#include "common.h"
#include "lock.h"
#include "object.h"

/* ---- object.c: the control block and its watches ---------------------- */

/*
 * A watch is internal library code run when a referent dies: a callback
 * ref's queueing, a container's prompt removal of an entry.  Watches sit on
 * the control block's list under its lock; at death the dying thread pins
 * each watch's owner (a wref object: the ref, the container) with a
 * tryget, unlinks the watch and, after dropping the lock, calls fire().
 * An owner that cannot be pinned is dying; its destroy unlinks the watch.
 *
 * Two words: the list is singly linked (new watches at the head), so an
 * unlink walks the list up to the watch under cb->lock.  Most objects have
 * one or two watches; an object watched by k entries costs a removal O(k)
 * (k user-side removals of those entries O(k^2) in all; a death collects
 * them all in one walk, O(k)).  What the kind of watch does and who owns it
 * is in a constant ops struct: a static one per kind, or (container
 * entries) the table's own, which names the container, so an entry needs
 * no owner pointer.
 */
struct wref__watch;
struct wref__watch_ops {
	/* runs with no lock held, the owner pinned if @pinned, inside an
	 * RCU read-side section (so it may cds_lfht_del; it must not block
	 * or call user code: queue that with wref__defer).  Returns true if
	 * it kept the dying thread's pin (hands that strong ref on) */
	bool (*fire)(struct wref__watch *w, bool pinned);
	/* the owner (wref object payload) of every watch with these ops, or
	 * NULL: the owner is the object the watch is embedded in, @off bytes
	 * before it */
	void *owner;
	size_t off;
	bool is_ref; /* a wref_ref (getweakrefs) */
	/* refs only: the dying thread could not pin the owner (its last
	 * release ran): true if the fire is still wanted (its callback is
	 * owed, and the ref keeps its memory for it).  Under cb->lock. */
	bool (*owed)(const struct wref__watch *w);
};
struct wref__watch {
	/* under cb->lock: 0 while not linked, else the next watch's address
	 * | 1 (its low bit: linked; the list's last has just the bit) */
	uintptr_t link;
	const struct wref__watch_ops *ops;
};
#define WREF__WATCH_LINKED ((uintptr_t)1)
static inline void *wref__watch_owner(const struct wref__watch *w)
{
	const struct wref__watch_ops *o = w->ops;
	return o->owner ? o->owner : (void *)((char *)w - o->off);
}

/*
 * The control block ("side table", docs/core.md): 64 bytes, one jemalloc
 * size class, and it is also the object's shared callback-less weak ref:
 * the handle wref_ref_new(obj, NULL, NULL) returns is &cb->sh's payload, a
 * wref object of ref.c's shared_type living inside the block.  Types
 * with hash and equal (by-value container members) get a struct
 * wref__cb_byval instead: the type's hash, computed once, and an rcu_head
 * for the deferred free of a by-value member's memory.
 */
struct wref__cb {
	struct wref__hdr *mem;     /* the object's memory (constant) */
	/* the shared weak ref's header: its strong count (users' refs to
	 * the shared handle) and ref.c's shared_type | WREF_TC_PIN.  At
	 * offset 8 of a 16-aligned block, so the handle's address has bit 3
	 * set and a callback ref's (a 16-aligned header + 1) has it clear:
	 * wref_ref_get tells them apart without a load (wref__ref_is_shared) */
	struct wref__hdr sh;
	/* the object's strong count from the block's creation on (sticky:
	 * see "Strong counts" above); upgrades need no RCU section, as the
	 * weak ref, entry or watch owner that upgrades holds the block */
	_Atomic uint64_t strong;
	/* under lock; read without it only by the dying thread, which
	 * skips the lock when there is no watch (wref__cb_kill) */
	_Atomic(struct wref__watch *) watches;
	/* holds: 1 for the object until its memory is freed, 1 per arming
	 * of the shared handle until that arming's death, 1 per callback ref, container entry, method,
	 * finalizer or connection, 1 per revival ticket (object.c).  32
	 * bits: each hold is an allocation of 48 bytes or more */
	_Atomic uint32_t holds;
	wref__lock_t lock;
	_Atomic uint16_t flags;    /* WREF_CB_*, see below */
	uint16_t pad16_;
	uint32_t pad32_;
	/* trashcan link while the dying object waits for its destroy in
	 * the out-of-memory spill (object.c; the dying thread's only) */
	struct wref__hdr *spill;
};
#ifndef WREF_DEBUG
_Static_assert(sizeof(struct wref__cb) == 64, "a control block is 64 bytes");
#endif
_Static_assert(offsetof(struct wref__cb, sh) % 16 == 8,
	       "the shared handle's header sits at 8 mod 16 (wref__ref_is_shared)");
/* @r (a wref_ref handle) is a block's shared handle, not a callback ref:
 * every allocation is 16-aligned (wref__alloc), a callback ref's header is
 * one, and the shared handle's header is at 8 mod 16 in its block.  No
 * load: a load from the shared handle's header would fetch the block's
 * line before the upgrade's RMW, twice the line transfers when threads
 * upgrade one object (docs/core.md) */
static inline bool wref__ref_is_shared(const void *r)
{
	return ((uintptr_t)wref__hdr(r) & 8) != 0;
}
struct wref__cb_byval {
	struct wref__cb cb;
	uint64_t hash;             /* the type's hash of the object */
	struct rcu_head rcu;       /* frees a by-value member after a GP */
};
/* flags: DEAD under lock, stored by the dying thread (no strong holder is
 * left to set MEM_RCU or RCU_WATCH beside it); MEM_RCU by an RMW without
 * the lock; RCU_WATCH by an RMW under it; BYVAL constant */
#define WREF_CB_DEAD 1u    /* watches collected: no new watch links */
/* a watch other than a callback ref's was ever linked: the death collects
 * inside an RCU read-side section (wref__cb_kill) */
#define WREF_CB_RCU_WATCH 2u
#define WREF_CB_MEM_RCU 4u /* see wref__cb_mem_rcu */
#define WREF_CB_BYVAL 8u   /* a struct wref__cb_byval */
/* the block's allocation holds, at wref__cb_embed_off, the first
 * container entry of its object (ref.c wref__cb_get_embed) */
#define WREF_CB_EMBED 16u
/* a watch was linked after the block's creation (wref__watch_link): with
 * it clear, a block's only watch ever is its embedded callback ref's,
 * which the death fires without the lock (wref__cb_kill) */
#define WREF_CB_LATE_WATCH 32u
static inline uint32_t wref__cb_flags(struct wref__cb *cb)
{
	/* relaxed: DEAD is read under the lock that orders it; MEM_RCU by
	 * the dying thread, see wref__cb_mem_rcu */
	return atomic_load_explicit(&cb->flags, memory_order_relaxed);
}
static inline struct wref__cb_byval *wref__cb_byval(struct wref__cb *cb)
{
	return caa_container_of(cb, struct wref__cb_byval, cb);
}
/* where a block's allocation embeds its object's first callback ref (the
 * ref's header) or container entry: after the block, 16-aligned (a ref
 * tells itself from a shared handle by address, wref__ref_is_shared) */
static inline size_t wref__cb_embed_off(bool byval)
{
	size_t sz = byval ? sizeof(struct wref__cb_byval)
			  : sizeof(struct wref__cb);
	return (sz + 15) & ~(size_t)15;
}
/* where @cb's allocation embeds its first callback ref's header or first
 * container entry (if it has one) */
static inline void *wref__cb_embedded(struct wref__cb *cb)
{
	return (char *)cb + wref__cb_embed_off(wref__cb_flags(cb) &
					       WREF_CB_BYVAL);
}
/* @p is the container entry embedded in @cb's allocation: its memory is
 * one more hold on the block (WREF_CB_EMBED is constant, and no other
 * allocation can sit inside the block's) */
static inline bool wref__cb_embeds(struct wref__cb *cb, const void *p)
{
	return (wref__cb_flags(cb) & WREF_CB_EMBED) &&
	       p == wref__cb_embedded(cb);
}

WREF_HIDDEN void wref__cb_hold(struct wref__cb *cb);
WREF_HIDDEN void wref__cb_unhold(struct wref__cb *cb);
/* drop @n holds at once (an embedded callback ref's own and its memory's) */
WREF_HIDDEN void wref__cb_unhold_n(struct wref__cb *cb, uint32_t n);
/* @cb's object (held strongly by the caller) joins a by-value container,
 * whose lookups call equal on members' memory under RCU without a ref:
 * its memory is then freed after a grace period (wref__obj_free) */
static inline void wref__cb_mem_rcu(struct wref__cb *cb)
{
	/* relaxed: the caller holds a strong ref, and its release happens-
	 * before the death that reads the flag (release/acq_rel on the
	 * count) */
	if (!(wref__cb_flags(cb) & WREF_CB_MEM_RCU))
		atomic_fetch_or_explicit(&cb->flags, WREF_CB_MEM_RCU,
					 memory_order_relaxed);
}
/* new strong ref to the referent, or NULL; lock-free */
static inline void *wref__cb_upgrade(struct wref__cb *cb)
{
	/* one RMW on memory the caller's hold keeps alive; no pre-check (a
	 * failed upgrade's increment stays dead), and cb->mem read only
	 * after it: under contention a load before the RMW fetches the
	 * block's line a second time */
	if (wref__cnt_tryget(&cb->strong))
		return wref__payload(cb->mem);
	return NULL;
}
/* true once the block's object died (a snapshot) */
static inline bool wref__cb_dead(struct wref__cb *cb)
{
	/* relaxed: a snapshot; DEAD is sticky */
	return atomic_load_explicit(&cb->strong, memory_order_relaxed) >=
	       WREF_UNDERFLOW_ZONE;
}
/*
 * wref__tryget - a new strong ref to @h unless it is dead.  @h's memory
 * must be protected from reclamation (RCU read side, or a lock that the
 * object's destroy takes).
 */
static inline bool wref__tryget(struct wref__hdr *h)
{
	/* acquire: pairs with the CAS publishing a block (wref__cb_get) */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
	if (w & WREF_W_CB)
		return wref__cnt_tryget_checked(&wref__word_cb(w)->strong);
	return wref__tryget_word(h, w);
}
/* ---- a block's watch list (object.c; under cb->lock) ---- */
/* the first watch on @cb's list (under cb->lock) */
static inline struct wref__watch *wref__watch_first(struct wref__cb *cb)
{
	/* relaxed: under cb->lock, which orders the list */
	return atomic_load_explicit(&cb->watches, memory_order_relaxed);
}

static inline struct wref__watch *wref__watch_next(const struct wref__watch *w)
{
	return (struct wref__watch *)(w->link & ~WREF__WATCH_LINKED);
}

static inline void wref__watch_link(struct wref__cb *cb, struct wref__watch *w)
{
	/* relaxed: under cb->lock; the linker holds a strong ref, whose
	 * release orders the flag before the death that reads it */
	if (!(wref__cb_flags(cb) & WREF_CB_LATE_WATCH))
		atomic_fetch_or_explicit(&cb->flags, WREF_CB_LATE_WATCH,
					 memory_order_relaxed);
	w->link = (uintptr_t)wref__watch_first(cb) | WREF__WATCH_LINKED;
	/* relaxed: under cb->lock; the dying thread's lock-free look at
	 * the list (wref__cb_kill) is ordered by the count, see there */
	atomic_store_explicit(&cb->watches, w, memory_order_relaxed);
}

/* unlink @w, whose predecessor on the list is @prev (NULL: @w is the
 * head, which the dying thread may read without the lock: stored
 * atomically); under cb->lock */
static inline void wref__watch_unlink_after(struct wref__cb *cb, struct wref__watch *prev,
			       struct wref__watch *w)
{
	struct wref__watch *next = wref__watch_next(w);
	if (!prev)
		/* relaxed: as in wref__watch_link */
		atomic_store_explicit(&cb->watches, next,
				      memory_order_relaxed);
	else
		prev->link = (uintptr_t)next | WREF__WATCH_LINKED;
	w->link = 0;
}

/* unlink the linked watch @w: a walk from the head (see struct
 * wref__watch); under cb->lock */
static inline void wref__watch_unlink(struct wref__cb *cb, struct wref__watch *w)
{
	struct wref__watch *prev = NULL, *p = wref__watch_first(cb);
	while (p != w) {
		prev = p;
		p = wref__watch_next(p);
	}
	wref__watch_unlink_after(cb, prev, w);
}

/* Before @w is linked on a block (by wref__watch_add, or by the block's
 * creation for an embedded entry): the death pins @w's owner with a
 * tryget, so the owner (held strongly by the caller) must take the atomic
 * path at its last release; returns the flag the block needs for @w
 * (RCU_WATCH for a watch other than a callback ref's, 0) */
static inline uint32_t wref__watch_prepare(struct wref__watch *w)
{
	wref__pinnable(wref__watch_owner(w));
	return w->ops->is_ref ? 0 : WREF_CB_RCU_WATCH;
}

/* link @w on @cb; -ENOENT if the referent is already dead.  The caller
 * holds a strong ref to w->owner (which becomes pinnable) and to @cb's
 * object (the dying thread relies on it: wref__cb_kill) */
WREF_HIDDEN int wref__watch_add(struct wref__cb *cb, struct wref__watch *w);
/* unlink @w; false if it was not linked (already fired or firing) */
WREF_HIDDEN bool wref__watch_del(struct wref__cb *cb, struct wref__watch *w);
/* death: called by the thread that set DEAD, before destroy */
WREF_HIDDEN void wref__cb_kill(struct wref__cb *cb);

#endif /* WREF_BLOCK_H */
