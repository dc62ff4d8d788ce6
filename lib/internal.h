/*
 * internal.h - libwref internals shared by the lib/ sources (never installed).
 * "rule N" in lib/, include/ and tests/ is rule N of docs/design.md.
 *
 * Layers import only downward (file level; docs/design.md, "Layers"):
 * alloc, lock, hooks, thread -> rcu -> object -> ref -> executor -> fork ->
 * table -> valmap/keymap/set -> method/finalize/signal -> runtime.
 * Still open (issue 14): object <-> ref and object <-> executor.
 */
#ifndef WREF_INTERNAL_H
#define WREF_INTERNAL_H

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

/* ---- rcu.c: RCU flavour wrapper ---------------------------------------
 * urcu-bp: threads register lazily on their first read lock and are
 * unregistered at thread exit (rule 10). */
WREF_HIDDEN extern int wref__tsan_rcu_sync; /* TSan model of grace periods */
static inline void wref__rcu_lock(void)
{
	urcu_bp_read_lock();
}
static inline void wref__rcu_unlock(void)
{
	/* TSan: every read-side section happens-before every grace period
	 * that ends after it (paired with the acquire in wref__call_rcu's
	 * callbacks). */
	wref__tsan_release(&wref__tsan_rcu_sync);
	urcu_bp_read_unlock();
}
/* Runs @fn(@head) after a grace period on liburcu's call_rcu thread
 * (batched per thread: see rcu.c). */
WREF_HIDDEN void wref__call_rcu(struct rcu_head *head,
				void (*fn)(struct rcu_head *));
/* hand this thread's partial batch of retired memory to call_rcu (left
 * for later while a fork is in progress) */
WREF_HIDDEN void wref__rcu_flush_local(void);
/* the same, waiting for a fork in progress: only for a thread holding no
 * read lock and no library lock (wref_shutdown) */
WREF_HIDDEN void wref__rcu_flush_wait(void);
/* make a list of retired heads (taken from other threads: shutdown, the
 * fork child) this thread's own pending retirements */
WREF_HIDDEN void wref__rcu_adopt(struct rcu_head *list);
#define wref__rcu_tsan_after_gp(h)                                         \
	do {                                                               \
		wref__tsan_acquire(&wref__tsan_rcu_sync);                  \
		wref__tsan_acquire(h);                                     \
	} while (0)

/* ---- lock.c: a tiny futex mutex (per control block, never global) ---- */
typedef struct {
	_Atomic uint32_t v; /* 0 free, 1 locked, 2 locked with waiters */
} wref__lock_t;
WREF_HIDDEN void wref__lock_slow(wref__lock_t *l);
WREF_HIDDEN void wref__unlock_slow(wref__lock_t *l);
static inline void wref__lock(wref__lock_t *l)
{
	uint32_t z = 0;
	/* acquire: pairs with the release in wref__unlock() */
	if (!atomic_compare_exchange_strong_explicit(&l->v, &z, 1,
			memory_order_acquire, memory_order_relaxed))
		wref__lock_slow(l);
}
static inline void wref__unlock(wref__lock_t *l)
{
	/* release: pairs with the acquire in wref__lock() */
	if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
		wref__unlock_slow(l);
}
WREF_HIDDEN int wref__futex_wait(_Atomic uint32_t *addr, uint32_t val);
WREF_HIDDEN void wref__futex_wake(_Atomic uint32_t *addr, int n);

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
	return (w & WREF_W_CB) ? (struct wref__cb *)(uintptr_t)(w - WREF_W_CB)
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

/* Slow path of a block's upgrade: @old (the count before the increment)
 * was 0, dead, or the increment took it into the saturated zone (old >=
 * SAT - 1, so the warning comes with the increment that saturates).  @h
 * names the object in the warning. */
WREF_HIDDEN bool wref__cnt_tryget_slow(_Atomic uint64_t *cnt, uint64_t old,
				       struct wref__hdr *h);
/* the upgrade on a block's counter: one fetch_add; fails forever once DEAD
 * (sticky: only the CAS 0 -> DEAD of the release that took the count to 0
 * sets it; an upgrade that finds 0 before that CAS revives the count) */
static inline bool wref__cnt_tryget(_Atomic uint64_t *cnt,
				    struct wref__hdr *h)
{
	/* relaxed: taking a ref needs no ordering; what the caller reads of
	 * the object was published by whatever handed it the weak ref or
	 * entry; death ordering is carried by the release/acq_rel pair on
	 * the decrement side */
	uint64_t c = atomic_fetch_add_explicit(cnt, 1, memory_order_relaxed);
	if (wref_unlikely(c - 1 >= WREF_SAT - 2))
		return wref__cnt_tryget_slow(cnt, c, h);
	return true;
}
/* the same with a DEAD pre-check, so a dead count's line is not dirtied */
static inline bool wref__cnt_tryget_checked(_Atomic uint64_t *cnt,
					    struct wref__hdr *h)
{
	/* relaxed: the fetch_add re-checks */
	if (wref_unlikely(atomic_load_explicit(cnt, memory_order_relaxed) >=
			  WREF_UNDERFLOW_ZONE))
		return false;
	return wref__cnt_tryget(cnt, h);
}
/* inline-count part of wref__tryget (a CAS loop; a word that turns out to
 * be a block is followed there) */
WREF_HIDDEN bool wref__tryget_word(struct wref__hdr *h, uint64_t w);

/* a snapshot of @h's strong count; 0 once dead */
WREF_HIDDEN uint64_t wref__count(struct wref__hdr *h);

/* Queue @w (a death's callback or finalizer, from a watch's fire()) to run
 * after the dying object's destroy returned; outside a death, wref__defer. */
struct wref__work;
WREF_HIDDEN void wref__defer_death(struct wref__work *w);

/* Death context (trashcan): cascades of deaths on one thread are flattened
 * into a loop.  Inside it, releases that kill an object queue the destroy
 * and the outermost level runs it. */
WREF_HIDDEN void wref__enter(void);
WREF_HIDDEN void wref__leave(void);

/* ---- thread.c: per-thread state ---------------------------------------
 * One struct wref__thread per thread that used the library (its TLS), on a
 * registry that wref_stats, wref_shutdown and the fork handlers walk: the
 * thread's statistics, the memory it retired (rcu.c) and its fork-guard
 * flag.  Registered on first use (rule 10), unregistered at thread exit. */
enum {
	WREF_ST_CREATED,
	WREF_ST_DIED,
	WREF_ST_CB_ALLOC,
	WREF_ST_CB_FREE,
	WREF_ST_QUEUED,
	WREF_ST_RUN,
	WREF_ST_N
};
struct wref__thread {
	/* statistics: only this thread writes its slots (wref__late's: by
	 * RMW); wref_stats() sums snapshots */
	_Atomic uint64_t stats[WREF_ST_N];
	/* memory this thread retired, not yet handed to call_rcu (rcu.c),
	 * linked through rcu_head.next.next; wref_shutdown() and the fork
	 * child may take it from another thread */
	_Atomic(struct rcu_head *) retired;
	unsigned nretired; /* owner only: the batch threshold */
	/* fork guard: inside call_rcu() or an executor queue operation;
	 * fork() waits until no thread is (liburcu cannot finish an
	 * enqueue, a splice or a dequeue that a vanished thread began) */
	_Atomic int in_submit;
	struct cds_list_head node; /* the registry, under its lock */
	bool registered;
	bool exited; /* its exit ran: later calls use wref__late */
};
WREF_HIDDEN extern __thread struct wref__thread wref__tls_thread
	__attribute__((tls_model("initial-exec")));
/* The block of threads whose exit already ran (a later pthread-key
 * destructor calls the library): never a thread's TLS, always registered;
 * counters by atomic RMW, in_submit a count of threads. */
WREF_HIDDEN extern struct wref__thread wref__late;
/* register this thread's block; false (nothing done) if the thread is
 * exiting and must use wref__late */
WREF_HIDDEN bool wref__thread_register(void);
/* the step run at a registered thread's exit before it leaves the
 * registry (rcu.c: hand over its retired memory); set once, at load */
WREF_HIDDEN void wref__thread_set_exit_step(void (*fn)(struct wref__thread *));
WREF_HIDDEN void wref__stat_add_late(int i, uint64_t n);
static inline void wref__stat_add(int i, uint64_t n)
{
	struct wref__thread *t = &wref__tls_thread;
	if (wref_unlikely(!t->registered) && !wref__thread_register()) {
		wref__stat_add_late(i, n);
		return;
	}
	/* relaxed load+store, not an RMW: only this thread writes its slot;
	 * wref_stats() reads it with relaxed loads (a snapshot) */
	atomic_store_explicit(&t->stats[i],
		atomic_load_explicit(&t->stats[i], memory_order_relaxed) + n,
		memory_order_relaxed);
}
/* retired lists: linked through rcu_head.next.next */
static inline struct rcu_head *wref__retired_next(struct rcu_head *h)
{
	return (struct rcu_head *)h->next.next;
}
/* @list with @more appended */
WREF_HIDDEN struct rcu_head *wref__retired_chain(struct rcu_head *list,
						 struct rcu_head *more);
/* take @t's retired list (any thread's), without handing it over */
WREF_HIDDEN struct rcu_head *wref__thread_take_retired(struct wref__thread *t);
/* shutdown: take every thread's retired list, after waiting for owners
 * that are handing theirs over right now */
WREF_HIDDEN struct rcu_head *wref__threads_take_retired(void);
/* Fork guard.  Bracket an operation on a liburcu queue that a fork() must
 * not cut in half (call_rcu, the executor's queue): the fork handler waits
 * until no thread is inside one.  _try returns NULL while a fork is in
 * progress (the caller must then not touch the queue); _enter waits for
 * the fork, so only a thread holding no read lock and no library lock may
 * use it.  Not re-entrant; never around user code. */
WREF_HIDDEN struct wref__thread *wref__fork_guard_try(void);
WREF_HIDDEN struct wref__thread *wref__fork_guard_enter(void);
WREF_HIDDEN void wref__fork_guard_leave(struct wref__thread *me);
/* the fork flag: set by the prepare handler, cleared after the fork */
WREF_HIDDEN void wref__fork_block(bool on);
WREF_HIDDEN bool wref__forking(void);
/* fork.c's steps: wait until no thread is inside a guard (after the flag
 * is set); hold the registry across fork(); release it in the parent; in
 * the child, fold the vanished threads' counters and return what they had
 * retired (for wref__rcu_adopt once call_rcu works in the child) */
WREF_HIDDEN void wref__threads_wait_guards(void);
WREF_HIDDEN void wref__threads_fork_lock(void);
WREF_HIDDEN void wref__threads_fork_parent(void);
WREF_HIDDEN struct rcu_head *wref__threads_fork_child(void);

/* ---- ref.c: control block and watches --------------------------------- */

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
 * wref object of type wref__shared_type living inside the block.  Types
 * with hash and equal (by-value container members) get a struct
 * wref__cb_byval instead: the type's hash, computed once, and an rcu_head
 * for the deferred free of a by-value member's memory.
 */
struct wref__cb {
	/* the shared weak ref's header: its strong count (users' refs to
	 * the shared handle) and wref__shared_type | WREF_TC_PIN */
	struct wref__hdr sh;
	/* the object's strong count from the block's creation on (sticky:
	 * see "Strong counts" above); upgrades need no RCU section, as the
	 * weak ref, entry or watch owner that upgrades holds the block */
	_Atomic uint64_t strong;
	struct wref__hdr *mem;     /* the object's memory (constant) */
	/* under lock; read without it only by the dying thread, which
	 * skips the lock when there is no watch (wref__cb_kill) */
	_Atomic(struct wref__watch *) watches;
	/* holds: 1 for the object until its memory is freed, 1 for the
	 * live shared handle, 1 per callback ref, container entry, method,
	 * finalizer or connection, 1 per revival ticket (object.c).  32
	 * bits: each hold is an allocation of 48 bytes or more */
	_Atomic uint32_t holds;
	wref__lock_t lock;
	_Atomic uint16_t flags;    /* WREF_CB_*, see below */
	bool shared;               /* the shared handle is live (under lock) */
	bool pad_;
	/* deaths of the shared handle taken over by a revival, not yet
	 * accounted by their wref__shared_died (under lock) */
	uint32_t revived;
	/* trashcan link while the dying object waits for its destroy in
	 * the out-of-memory spill (object.c; the dying thread's only) */
	struct wref__hdr *spill;
};
#ifndef WREF_DEBUG
_Static_assert(sizeof(struct wref__cb) == 64, "a control block is 64 bytes");
#endif
struct wref__cb_byval {
	struct wref__cb cb;
	uint64_t hash;             /* the type's hash of the object */
	struct rcu_head rcu;       /* frees a by-value member after a GP */
};
/* flags: DEAD under lock (an atomic RMW, so MEM_RCU can be set beside it
 * without the lock); BYVAL constant */
#define WREF_CB_DEAD 1u    /* watches collected: no new watch links */
#define WREF_CB_MEM_RCU 4u /* see wref__cb_mem_rcu */
#define WREF_CB_BYVAL 8u   /* a struct wref__cb_byval */
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
/* the shared weak ref handle of type wref__shared_type */
WREF_HIDDEN extern const wref_type wref__shared_type;
/* its death (from die(): no destroy, no trashcan, no user code) */
WREF_HIDDEN void wref__shared_died(struct wref__hdr *h);
/* the hash of @cb's object: the type's (by-value types), else identity */
WREF_HIDDEN uint64_t wref__hash_ptr(const void *p);
static inline uint64_t wref__cb_hash(struct wref__cb *cb)
{
	if (wref__cb_flags(cb) & WREF_CB_BYVAL)
		return wref__cb_byval(cb)->hash;
	return wref__hash_ptr(wref__payload(cb->mem));
}

/* the control block of the live object @obj (created on first use);
 * NULL + errno EINVAL (NO_WEAK) or ENOMEM.  Does not take a hold. */
WREF_HIDDEN struct wref__cb *wref__cb_get(void *obj);
WREF_HIDDEN void wref__cb_hold(struct wref__cb *cb);
WREF_HIDDEN void wref__cb_unhold(struct wref__cb *cb);
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
	 * second access to the line would cost a coherence round trip under
	 * contention, and a failed upgrade's increment stays dead) */
	if (wref__cnt_tryget(&cb->strong, cb->mem))
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
		return wref__cnt_tryget_checked(&wref__word_cb(w)->strong, h);
	return wref__tryget_word(h, w);
}
/* tests: the sticky counter of @obj's block (created if need be), where
 * the strong count lives once the object is weakly referenced */
static inline _Atomic uint64_t *wref__test_cnt(void *obj)
{
	struct wref__cb *cb = wref__cb_get(obj);
	return cb ? &cb->strong : NULL;
}
/* link @w on @cb; -ENOENT if the referent is already dead.  The caller
 * holds a strong ref to w->owner (which becomes pinnable) and to @cb's
 * object (the dying thread relies on it: wref__cb_kill) */
WREF_HIDDEN int wref__watch_add(struct wref__cb *cb, struct wref__watch *w);
/* unlink @w; false if it was not linked (already fired or firing) */
WREF_HIDDEN bool wref__watch_del(struct wref__cb *cb, struct wref__watch *w);
/* death: called by the thread that set DEAD, before destroy */
WREF_HIDDEN void wref__cb_kill(struct wref__cb *cb);
/* the wref_ref type; its death is unpublished at once (not deferred) */
WREF_HIDDEN extern const wref_type wref__ref_type;
WREF_HIDDEN void wref__ref_unpublish(void *ref);

/* ---- executor.c -------------------------------------------------------- */
struct wref__work {
	struct cds_wfcq_node node;
	void (*run)(struct wref__work *w);
};
/* queue @w to run on the executor (or inline mode); never under a lock */
WREF_HIDDEN void wref__defer(struct wref__work *w);
WREF_HIDDEN bool wref__in_callback(void);
/* a callback runs on this thread, or inline items wait on it for the
 * caller to return: wref_flush cannot wait (-EDEADLK) */
WREF_HIDDEN bool wref__exec_cannot_wait(void);
WREF_HIDDEN bool wref__exec_inline(void);
/* inline mode: run what this thread queued (called by wref__leave) */
WREF_HIDDEN void wref__inline_drain(void);
WREF_HIDDEN extern __thread struct wref__work *wref__tls_inl_head
	__attribute__((tls_model("initial-exec")));
static inline bool wref__inline_pending(void)
{
	return wref__tls_inl_head != NULL;
}
WREF_HIDDEN void wref__executor_atfork_prepare(void);
WREF_HIDDEN void wref__executor_atfork_parent(void);
WREF_HIDDEN void wref__executor_atfork_child(void);
WREF_HIDDEN void wref__executor_stop(void);
WREF_HIDDEN int wref__exec_set_mode(int mode);

/* ---- hooks.c ------------------------------------------------------------ */
/* Register @fn to run in wref_shutdown() (and at exit) after the executor
 * drained: upper layers (atexit finalizers) hook in here.  Idempotent. */
WREF_HIDDEN void wref__on_shutdown(void (*fn)(void));
/* run them, in registration order (runtime.c) */
WREF_HIDDEN void wref__run_shutdown_hooks(void);

/* ---- fork.c ---------------------------------------------------------------- */
/* Upper layers' fork steps, in fixed slots of fork.c's documented order
 * (prepare: slots in this order, before the core's steps; parent and
 * child: after the core's, in the reverse order).  Registering again
 * replaces a slot's steps; a NULL step is skipped. */
enum wref__fork_slot {
	WREF_FORK_TIERS,      /* valmap retention tiers: registry + tier locks */
	WREF_FORK_FINALIZERS, /* finalize.c: the at-exit registry lock */
	WREF_FORK_NSLOTS
};
WREF_HIDDEN void wref__on_fork(enum wref__fork_slot slot, void (*prepare)(void),
			       void (*parent)(void), void (*child)(void));

#endif /* WREF_INTERNAL_H */
