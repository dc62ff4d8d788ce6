/*
 * ref.c - an object's first weak use, and weak references.
 *
 * The control block (docs/core.md: the side table; lib/block.h) is
 * allocated here on an object's first weak use and CASed into its header,
 * taking over the strong count.  It is itself the shared callback-less
 * ref (its arming, revival and death are here too); callback refs are
 * wref objects of their own with a watch on the block.  The block's
 * holds, watch list and death collection are object.c's.  Its memory lives
 * until the last hold goes: the object's hold is dropped when the object's
 * memory is freed (at death), each ref and entry holds one.
 */
#include "ref.h"
#include "block.h"
#include "object.h"
#include "alloc.h"
#include "executor.h"
#include "lock.h"
#include "thread.h"

#include <stdlib.h>

struct wref_ref {
	struct wref__cb *cb; /* NULL until attached */
	wref_callback fn;
	void *arg;
	/* the executor item reuses the watch's two words: a ref is queued
	 * only once its watch is unlinked for good (ref_fire, or an owed
	 * ref that the death skipped), and after that nothing reads the
	 * watch (ref_unpublish sees fired or owed first) */
	union {
		struct wref__watch watch; /* on cb->watches while armed */
		struct wref__work work;   /* the callback's executor item */
	};
	/* set under cb->lock when the user let go of the ref after its
	 * referent died but before the callbacks were collected: the callback
	 * is still owed, so the ref's memory outlives its destroy */
	bool owed;
	/* the object's first callback ref lives in its block's allocation
	 * (block_new): its memory is one more hold on the block, dropped
	 * with the ref's own (ref_free); constant */
	bool embedded;
	/* set by the dying thread when it unlinked the watch for good and
	 * fired it: the ref's release then needs no lock (ref_unpublish) */
	_Atomic bool fired;
	/* owed refs: the destroy and the callback run each drop one; the
	 * last frees the memory */
	_Atomic int owed_parties;
};
#ifndef WREF_DEBUG
/* with its 16-byte header, one 64-byte line and allocation class */
_Static_assert(sizeof(struct wref_ref) == 48, "a callback ref is 48 bytes");
#endif
static const struct wref__watch_ops ref_watch_ops;

/* the two handle types (defined below): tentative definitions */
static const struct wref__lib_type ref_type, shared_type;

uint64_t wref__hash_ptr(const void *p)
{
	/* splitmix64 finaliser: spreads aligned addresses over all bits */
	uint64_t x = (uint64_t)(uintptr_t)p;
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* the block @cb of a dying or dead object reads dead: ENOENT */
static struct wref__cb *live_block(struct wref__cb *cb)
{
	if (wref_unlikely(wref__cb_dead(cb))) {
		errno = ENOENT;
		return NULL;
	}
	return cb;
}

/* make @cb's shared handle live with one user ref; under cb->lock, or
 * before the block is published */
static void shared_arm(struct wref__cb *cb)
{
	/* relaxed: nobody holds the dead (or new) handle: its readers pin
	 * it under cb->lock, which we hold or which is not reachable yet */
	atomic_store_explicit(&cb->sh.word, WREF_INL(1), memory_order_relaxed);
#ifdef WREF_DEBUG
	cb->sh.magic = WREF_MAGIC;
#endif
}

/* a callback ref's fields, or (fn NULL) a container entry's size and
 * watch ops: what a new block embeds */
struct ref_init {
	wref_callback fn;
	void *arg;
	size_t size;
	const struct wref__watch_ops *ops;
};

/* a new block for @obj, private until published; born with its shared
 * handle live (@shared), or with a callback ref (@ri) inside its own
 * allocation, watch linked: one allocation, and one free on the thread
 * that drops the last hold, where a separate ref cost two of each (issue
 * 18).  The handle's hold, or the ref's and its memory's (two), are
 * counted beside the object's */
static struct wref__cb *block_new(void *obj, const wref_type *t, bool shared,
				  const struct ref_init *ri)
{
	bool byval = t->hash && t->equal;
	size_t off = wref__cb_embed_off(byval);
	bool entry = ri && !ri->fn;
	uint32_t flags = byval ? WREF_CB_BYVAL : 0;
	struct wref__cb *n = wref__alloc(entry ? off + ri->size
				 : ri ? off + sizeof(struct wref__hdr) +
					sizeof(struct wref_ref)
				 : byval ? sizeof(struct wref__cb_byval)
					 : sizeof(struct wref__cb));
	if (!n)
		return NULL;
	/* zeroed by four inline 16-byte stores rather than a memset call
	 * (the rcu_head of a by-value block is written by call_rcu) */
	*n = (struct wref__cb){ .mem = wref__hdr(obj) };
	/* an embedded ref's or entry's hold and its memory's beside the
	 * object's (wref__entry_init_linked takes none) */
	atomic_init(&n->holds, ri ? 3 : shared ? 2 : 1);
	if (entry) {
		/* linked before the block is published, as a callback ref's
		 * watch below; the caller pins the object until the entry
		 * around the watch is initialised (its fire needs a death) */
		struct wref__watch *w = (struct wref__watch *)((char *)n + off);
		*w = (struct wref__watch){ .link = WREF__WATCH_LINKED,
					   .ops = ri->ops };
		atomic_init(&n->watches, w);
		/* as wref__watch_add does (without the pinnable owner, a
		 * container whose only inserts were embedded kept the
		 * sole-owner release, which raced the dying thread's pin:
		 * make torture found an over-release) */
		flags |= WREF_CB_EMBED | wref__watch_prepare(w);
	} else if (ri) {
		struct wref__hdr *rh = (struct wref__hdr *)((char *)n + off);
		struct wref_ref *r = wref__payload(rh);
		atomic_init(&rh->word, WREF_INL(1));
		/* PIN: cb_kill pins refs, so their last release must take
		 * the atomic path (wref__pinnable) */
		atomic_init(&rh->tc, (uintptr_t)&ref_type.t | WREF_TC_PIN);
#ifdef WREF_DEBUG
		rh->magic = WREF_MAGIC;
#endif
		*r = (struct wref_ref){
			.cb = n, .fn = ri->fn, .arg = ri->arg,
			.watch = { .link = WREF__WATCH_LINKED, /* the only */
				   .ops = &ref_watch_ops },
			.embedded = true,
		};
		atomic_init(&n->watches, &r->watch);
	}
	atomic_init(&n->flags, flags);
	atomic_init(&n->sh.tc, (uintptr_t)&shared_type.t | WREF_TC_PIN);
	if (shared)
		shared_arm(n);
	else
		atomic_init(&n->sh.word, WREF_DEAD);
	if (byval)
		wref__cb_byval(n)->hash = t->hash(obj);
	return n;
}

/*
 * The first weak use moves the strong count out of the header word into a
 * new block: the block's counter is set to the inline count n, then one CAS
 * replaces INL(n) by the block's address.  Inline counts change only by
 * CAS, so a racing retain or release makes ours fail and we copy the new
 * count (docs/core.md; formal-model/side_table.pml checks it).  With
 * @shared the new block's shared handle is born live (*@made set): a first
 * wref_ref_new(obj, NULL, NULL) takes no lock.
 *
 * A dead object (e.g. called from its own destroy) gets ENOENT: it must
 * neither grow a block its running death would never clear nor get a new
 * watch or ref on the block it has (its watches were collected).
 */
static struct wref__cb *cb_get(void *obj, bool shared,
			       const struct ref_init *ri, bool *made)
{
	struct wref__hdr *h = wref__hdr(obj);
	/* acquire: pairs with the CAS publishing the block (below, in the
	 * winning thread), so a block is read initialised */
	uint64_t w = atomic_load_explicit(&h->word, memory_order_acquire);
	if (wref_likely(w & WREF_W_CB))
		return live_block(wref__word_cb(w));
	if (w >= WREF_UNDERFLOW_ZONE || w < WREF_INL(1)) {
		errno = ENOENT;
		return NULL;
	}
	const wref_type *t = wref__type(h);
	if (t->flags & WREF_TYPE_NO_WEAK) {
		errno = EINVAL;
		return NULL;
	}
	/* an embedded ref names its block before the CAS publishes both:
	 * wref_weak_refs may hand it to another thread as soon as the block
	 * is reachable */
	struct wref__cb *n = block_new(obj, t, shared, ri);
	if (!n)
		return NULL;
	for (;;) {
		/* relaxed: the block is private until the CAS publishes it */
		atomic_store_explicit(&n->strong,
			w >= WREF_SAT ? WREF_SAT_MID : w >> 1,
			memory_order_relaxed);
		/* release: publishes the initialised block, its counter
		 * included (pairs with the acquire loads of the word); acquire
		 * on failure, to read a winner's block */
		if (atomic_compare_exchange_strong_explicit(&h->word, &w,
				(uint64_t)(uintptr_t)n | WREF_W_CB |
				(ri && ri->fn ? WREF_W_SOLO : 0),
				memory_order_acq_rel, memory_order_acquire)) {
			wref__stat_add(WREF_ST_CB_ALLOC, 1);
			if (shared || (ri && ri->fn)) /* the handle counts
							  * as an object */
				wref__stat_add(WREF_ST_CREATED, 1);
			*made = true;
			return n;
		}
		if (w & WREF_W_CB)
			break; /* another thread's block won */
		if (w >= WREF_UNDERFLOW_ZONE || w < WREF_INL(1)) {
			/* cannot happen while the caller holds its ref */
			wref__free(n); /* and an embedded ref, never seen */
			errno = ENOENT;
			return NULL;
		}
		/* a racing retain or release: copy the new count */
	}
	wref__free(n); /* and an embedded ref, never seen */
	return live_block(wref__word_cb(w));
}

struct wref__cb *wref__cb_get(void *obj)
{
	bool made = false;
	return cb_get(obj, false, NULL, &made);
}

struct wref__cb *wref__cb_get_embed(void *obj, size_t size,
				    const struct wref__watch_ops *ops,
				    void **mem)
{
	bool made = false;
	struct ref_init ei = { .size = size, .ops = ops };
	struct wref__cb *cb = cb_get(obj, false, &ei, &made);
	*mem = made ? wref__cb_embedded(cb) : NULL;
	return cb;
}

/* the embedded callback ref of a block cb_get made for @ri */
static struct wref_ref *embedded_ref(struct wref__cb *cb)
{
	return wref__payload((struct wref__hdr *)wref__cb_embedded(cb));
}

/* ---- wref_ref ------------------------------------------------------------ */

/* the dead ref @r lets go of its block and its memory */
static void ref_free(struct wref_ref *r)
{
	struct wref__cb *cb = r->cb;
	if (!r->embedded) {
		if (cb)
			wref__cb_unhold(cb);
		wref__obj_free(r);
		return;
	}
	/* wref__obj_free's work but the memory's, which is the block's:
	 * a ref is never by-value (no MEM_RCU on a block of its own) */
	struct wref__hdr *h = wref__hdr(r);
	struct wref__cb *own = wref__cb_peek(h);
#ifdef WREF_DEBUG
	h->magic = WREF_MAGIC_DEAD;
#endif
	if (own) /* the ref itself was weakly referenced */
		wref__cb_unhold(own);
	wref__cb_unhold_n(cb, 2); /* the ref's hold and its memory's */
}

/* an owed ref's memory goes when both its destroy and its callback ran */
static void ref_owed_done(struct wref_ref *r)
{
	/* acq_rel: the two parties' accesses to the ref happen-before the
	 * free by whichever comes last */
	if (atomic_fetch_sub_explicit(&r->owed_parties, 1,
				      memory_order_acq_rel) == 1)
		ref_free(r);
}

static void ref_destroy(void *p)
{
	struct wref_ref *r = p;
	if (r->owed) {
		ref_owed_done(r);
		return;
	}
	ref_free(r);
}

static void ref_unpublish(void *ref);
/* a callback ref: die() unpublishes it at once (not deferred) */
static const struct wref__lib_type ref_type = {
	.t = {
		.name = "wref_ref",
		.destroy = ref_destroy,
		.flags = WREF__TYPE_OWN_FREE | WREF__TYPE_LIB,
	},
	.unpublish = ref_unpublish,
};

static void ref_run(struct wref__work *work)
{
	struct wref_ref *r = caa_container_of(work, struct wref_ref, work);
	r->fn(r, r->arg);
	if (r->owed)
		ref_owed_done(r);
	else
		/* the dying thread's pin: our watch is unlinked for good, so
		 * nothing pins the ref again (usually the user's ref went
		 * inside the callback and this is the last) */
		wref__release_unpinned(r);
}

static void ref_queue(struct wref_ref *r)
{
	r->work.run = ref_run;
	wref__defer_death(&r->work);
}

static bool ref_fire(struct wref__watch *w, bool pinned)
{
	struct wref_ref *r = caa_container_of(w, struct wref_ref, watch);
	(void)pinned;
	/* release: pairs with the acquire in ref_unpublish, after our
	 * unlink under cb->lock */
	atomic_store_explicit(&r->fired, true, memory_order_release);
	ref_queue(r);
	/* keep the dying thread's pin: the handle stays valid inside the
	 * callback, and ref_run releases it (an owed ref has no pin) */
	return true;
}

/* the dying thread could not pin @w's ref: does it still want the fire?
 * (under cb->lock: owed is set under it) */
static bool ref_owed(const struct wref__watch *w)
{
	return caa_container_of(w, struct wref_ref, watch)->owed;
}

static const struct wref__watch_ops ref_watch_ops = {
	.fire = ref_fire,
	.off = offsetof(struct wref_ref, watch),
	.is_ref = true,
	.owed = ref_owed,
};

/* has the referent died (DEAD set) without its watches collected yet?
 * Under cb->lock with WREF_CB_DEAD clear, so its memory is still there. */
static bool referent_dying(struct wref__cb *cb)
{
	/* under cb->lock; the dying thread takes the lock after setting
	 * DEAD when there are watches (ours is linked), so a count seen as
	 * live is ordered before it.  Its lone path (object.c kill_lone)
	 * takes none, but only with our ref pinned: we cannot be running
	 * then, and run afterwards only to find the ref fired */
	return wref__cb_dead(cb);
}

/*
 * The user's last ref to the callback ref @ref is gone: called at once by
 * the releasing thread (never deferred), so the ref's release linearises
 * here.  An armed callback is cancelled if the referent is alive; if the
 * referent already died, the callback is owed: either cb_kill has yet to
 * collect it (it fires owed refs it cannot pin) or it already skipped it
 * (we queue it).
 */
static void ref_unpublish(void *ref)
{
	struct wref_ref *r = ref;
	struct wref__cb *cb = r->cb;
	bool queue = false;
	if (!cb)
		return; /* never attached (wref_ref_new failed) */
	/* acquire: pairs with the release in ref_fire: the watch was
	 * unlinked for good and the callback queued, nothing to cancel (the
	 * usual last release, from inside or after the callback) */
	if (atomic_load_explicit(&r->fired, memory_order_acquire))
		return;
	wref__lock(&cb->lock);
	if (r->watch.link) {
		if (wref__cb_flags(cb) & WREF_CB_DEAD) {
			wref__watch_unlink(cb, &r->watch); /* skipped by cb_kill */
			r->owed = queue = true;
		} else if (referent_dying(cb)) {
			r->owed = true; /* cb_kill will fire it */
		} else {
			wref__watch_unlink(cb, &r->watch); /* cancelled before death */
		}
		if (r->owed)
			atomic_init(&r->owed_parties, 2);
	}
	wref__unlock(&cb->lock);
	if (queue)
		ref_queue(r);
}

/* ---- the shared callback-less ref: the block itself ---------------------- */

static struct wref__cb *shared_block(const wref_ref *r)
{
	return caa_container_of(wref__hdr(r), struct wref__cb, sh);
}

/* the block a handle upgrades through */
static inline struct wref__cb *ref_block(const wref_ref *r)
{
	if (wref__ref_is_shared(r))
		return shared_block(r);
	return r->cb;
}

static void shared_destroy(void *p)
{
	(void)p; /* never called: die() hands the handle to shared_died */
}

static void shared_died(struct wref__hdr *h);
/* the shared handle: die() hands its whole death to shared_died */
static const struct wref__lib_type shared_type = {
	.t = {
		.name = "wref_ref",
		.destroy = shared_destroy,
		.flags = WREF_TYPE_NO_WEAK | WREF__TYPE_OWN_FREE |
			 WREF__TYPE_LIB,
	},
	.died = shared_died,
};

/*
 * The shared handle's last user ref went (its count is DEAD).  Its memory
 * is the block's: the handle is not freed, and its death only drops the
 * hold its arming took, which may free the block.  No lock: a
 * wref_ref_new that finds the handle DEAD before this runs arms it again
 * with a hold of its own (shared_get), so each death owns exactly one
 * hold whatever the order (formal-model/shared_handle.pml; its variant
 * BROKEN_REVIVE_TAKEOVER is the protocol this replaced, in which a
 * revival took a pending death's hold over, and a death skipping the lock
 * freed the block under the lock word of one still inside it).
 */
static void shared_died(struct wref__hdr *h)
{
	struct wref__cb *cb = caa_container_of(h, struct wref__cb, sh);
	wref__stat_add(WREF_ST_DIED, 1);
#ifdef WREF_DEBUG
	/* misuse checks: mark it dead unless it was armed again meanwhile
	 * (under the lock that arming takes; our hold keeps the block) */
	wref__lock(&cb->lock);
	/* relaxed: under cb->lock, which orders armings */
	if (atomic_load_explicit(&h->word, memory_order_relaxed) == WREF_DEAD)
		h->magic = WREF_MAGIC_DEAD;
	wref__unlock(&cb->lock);
#endif
	wref__cb_unhold(cb); /* this arming's hold */
}

/* a new user ref to @cb's shared handle, arming it (again) if it is DEAD;
 * under cb->lock, which serialises armings.  Each arming takes a hold,
 * which the death of that arming drops (shared_died): a death still on
 * its way to shared_died keeps its own */
static wref_ref *shared_get(struct wref__cb *cb)
{
	struct wref__hdr *h = &cb->sh;
	if (wref__tryget(h))
		return wref__payload(h);
	wref__stat_add(WREF_ST_CREATED, 1);
	wref__cb_hold(cb);
	shared_arm(cb);
	return wref__payload(h);
}

wref_ref *wref_ref_new(void *obj, wref_callback fn, void *arg)
{
	if (!obj) {
		errno = EINVAL;
		return NULL;
	}
	wref__check(obj, "wref_ref_new");
	bool made = false;
	if (!fn) {
		struct wref__cb *cb = cb_get(obj, true, NULL, &made);
		if (!cb)
			return NULL;
		if (made)
			return wref__payload(&cb->sh); /* born live: no lock */
		wref__lock(&cb->lock);
		wref_ref *r = shared_get(cb);
		wref__unlock(&cb->lock);
		return r;
	}
	/* the object's first weak use: a new block is published with the
	 * ref inside it, its watch linked and its holds counted, no lock */
	const struct ref_init ri = { .fn = fn, .arg = arg };
	struct wref__cb *cb = cb_get(obj, false, &ri, &made);
	if (!cb)
		return NULL;
	if (made)
		return embedded_ref(cb);
	struct wref_ref *n = wref__new(&ref_type.t, sizeof *n);
	if (!n)
		return NULL;
	/* relaxed: @n is ours alone until returned; cb_kill pins refs, so
	 * their last release must take the atomic path (wref__pinnable) */
	atomic_store_explicit(&wref__hdr(n)->tc,
			      (uintptr_t)&ref_type.t | WREF_TC_PIN,
			      memory_order_relaxed);
	n->fn = fn;
	n->arg = arg;
	n->watch.ops = &ref_watch_ops;
	n->cb = cb; /* n is still private: its watch is linked below */
	wref__cb_hold(cb);
	wref__lock(&cb->lock);
	if (!(wref__cb_flags(cb) & WREF_CB_DEAD))
		wref__watch_link(cb, &n->watch);
	wref__unlock(&cb->lock);
	return n;
}

void *wref_ref_get(wref_ref *r)
{
	if (wref_unlikely(!r))
		return NULL;
	wref__check(r, "wref_ref_get");
	return wref__cb_upgrade(ref_block(r));
}

bool wref_ref_alive(const wref_ref *r)
{
	if (!r)
		return false;
	wref__check(r, "wref_ref_alive");
	/* the ref's hold keeps its block; no read-side section needed */
	return !wref__cb_dead(ref_block(r));
}

int wref_ref_call(wref_ref *r, int (*fn)(void *obj, void *arg), void *arg)
{
	if (!r || !fn)
		return -EINVAL;
	wref__check(r, "wref_ref_call");
	void *obj = wref_ref_get(r);
	if (!obj)
		return -ENOENT;
	int ret = fn(obj, arg);
	wref_release(obj);
	return ret;
}

uint64_t wref_ref_hash(const wref_ref *r)
{
	return r ? wref__cb_hash(ref_block(r)) : 0;
}

bool wref_ref_equal(const wref_ref *a, const wref_ref *b)
{
	if (a == b)
		return true;
	return a && b && ref_block(a) == ref_block(b);
}

/* count @h (a live handle), and pin it into @out while there is room;
 * under cb->lock */
static void collect(struct wref__hdr *h, wref_ref **out, size_t cap,
		    size_t *total)
{
	if (*total < cap) {
		if (wref__tryget(h))
			out[(*total)++] = wref__payload(h);
		return;
	}
	if (wref__count(h) != 0) /* a snapshot for the count */
		(*total)++;
}

/* the live handles of @cb (wref_weak_count / wref_weak_refs); under
 * cb->lock.  A callback ref is live while its watch is linked (its
 * release unlinks it or marks it owed; a death unlinks it after pinning
 * it, and the referent is then dead, which callers exclude). */
static size_t handles(struct wref__cb *cb, wref_ref **out, size_t cap)
{
	size_t total = 0;
	collect(&cb->sh, out, cap, &total); /* DEAD unless armed: skipped */
	for (struct wref__watch *w = wref__watch_first(cb); w; w = wref__watch_next(w)) {
		struct wref_ref *r = wref__watch_owner(w);
		if (w->ops->is_ref && !r->owed)
			collect(wref__hdr(r), out, cap, &total);
	}
	return total;
}

size_t wref_weak_count(const void *obj)
{
	if (!obj)
		return 0;
	struct wref__cb *cb = wref__cb_peek(wref__hdr(obj));
	if (!cb)
		return 0;
	wref__lock(&cb->lock);
	size_t n = handles(cb, NULL, 0);
	wref__unlock(&cb->lock);
	return n;
}

size_t wref_weak_refs(void *obj, wref_ref **out, size_t cap)
{
	if (!obj || (!out && cap))
		return 0;
	struct wref__cb *cb = wref__cb_peek(wref__hdr(obj));
	if (!cb)
		return 0;
	wref__lock(&cb->lock);
	size_t total = handles(cb, out, cap);
	wref__unlock(&cb->lock);
	return total;
}
