/*
 * internal.h - libwref internals shared by the lib/ sources (never installed).
 * "rule N" in lib/, include/ and tests/ is rule N of docs/design.md.
 *
 * Layers import only downward: alloc/rcu -> object -> ref -> executor ->
 * table -> containers -> method/finalize/signal.
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
/* Test hook: the @n-th allocation from now fails (0 = the next one);
 * negative disables.  Also set by the WREF_FAIL_ALLOC environment variable. */
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
struct wref__tstats;
/* fork: stop new hand-overs to call_rcu and queue operations (then wait
 * for in_submit == 0 on every thread), and let them go again */
WREF_HIDDEN void wref__rcu_fork_block(bool on);
WREF_HIDDEN bool wref__forking(void);
/* Bracket an operation on a liburcu queue that a fork() must not cut in
 * half (call_rcu, the executor's queue): fork_prepare waits until no
 * thread is inside one.  _try returns NULL while a fork is in progress
 * (the caller must then not touch the queue); _enter waits for the fork,
 * so only a thread holding no read lock and no library lock may use it.
 * Not re-entrant; never around user code. */
WREF_HIDDEN struct wref__tstats *wref__fork_guard_try(void);
WREF_HIDDEN struct wref__tstats *wref__fork_guard_enter(void);
WREF_HIDDEN void wref__fork_guard_leave(struct wref__tstats *me);
/* take @s's retired list (any thread's), without handing it over */
WREF_HIDDEN struct rcu_head *wref__rcu_steal(struct wref__tstats *s);
/* @list with @more appended */
WREF_HIDDEN struct rcu_head *wref__rcu_chain(struct rcu_head *list,
					     struct rcu_head *more);
/* make a stolen list this thread's own pending retirements */
WREF_HIDDEN void wref__rcu_adopt(struct rcu_head *list);
/* an exiting thread: hand its retired list to call_rcu, waiting for a
 * fork in progress (it will not get another chance) */
WREF_HIDDEN void wref__rcu_flush_exiting(struct wref__tstats *s);
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

/* Sticky strong counter (Linux rcuref_t / Anderson-Blelloch-Wei).
 * bit 63 DEAD: set by the one CAS that owns destruction; sticky.
 * [2^62, 2^63): saturated zone: the object is pinned forever. */
#define WREF_DEAD (UINT64_C(1) << 63)
#define WREF_SAT (UINT64_C(1) << 62)
#define WREF_SAT_MID (WREF_SAT + (UINT64_C(1) << 61))
/* counts in [WREF_UNDERFLOW_ZONE, 2^64) are dead: DEAD plus failed
 * upgrades' increments, or a dead count an over-release pushed below DEAD */
#define WREF_UNDERFLOW_ZONE (WREF_DEAD - (UINT64_C(1) << 40))

struct wref__cb;

struct wref__hdr {
	_Atomic uint64_t strong;
	/* the type pointer, or the control block | WREF_TC_CB once weakly
	 * referenced, plus WREF_TC_PIN once the library may pin the object
	 * with wref__tryget (watch owners, shared refs); bits are only ever
	 * set, and only while a strong ref is held */
	_Atomic uintptr_t tc;
#ifdef WREF_DEBUG
	uint64_t magic;
	uint64_t pad; /* keep the payload 16-byte aligned */
#endif
};
#define WREF_TC_CB ((uintptr_t)1)
#define WREF_TC_PIN ((uintptr_t)2)
#define WREF_TC_MASK (WREF_TC_CB | WREF_TC_PIN)
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
/* control block of @h or NULL; caller holds a strong ref to @h */
static inline struct wref__cb *wref__cb_peek(struct wref__hdr *h)
{
	/* acquire: pairs with the CAS publishing the block in wref__cb_get() */
	uintptr_t tc = atomic_load_explicit(&h->tc, memory_order_acquire);
	return (tc & WREF_TC_CB) ? (struct wref__cb *)(tc & ~WREF_TC_MASK)
				 : NULL;
}
/* mark @obj (held strongly by the caller) as pinnable by the library, so
 * its last release always takes the atomic path */
WREF_HIDDEN void wref__pinnable(void *obj);
/* free the memory of a dead object whose type has WREF__TYPE_OWN_FREE */
WREF_HIDDEN void wref__obj_free(void *obj);
/* internal wref_type.flags bit: destroy frees the memory itself, later,
 * with wref__obj_free (a dying weak ref whose callback is still owed) */
#define WREF__TYPE_OWN_FREE (1u << 31)

/* Slow path of wref__tryget: @old (the count before the increment) was 0,
 * dead, or the increment took it into the saturated zone (old >= SAT - 1,
 * so the warning comes with the increment that saturates). */
WREF_HIDDEN bool wref__tryget_slow(struct wref__hdr *h, uint64_t old);

/*
 * wref__tryget - the upgrade: one fetch_add on the fast path; fails forever
 * once DEAD (the last release moves the count from 1 straight to DEAD, so
 * there is no zero to revive).  @h must be protected from reclamation (RCU
 * read side, or a lock that the object's destroy takes).
 */
/* the fetch_add alone; wref__tryget() adds the DEAD pre-check */
static inline bool wref__tryget_nocheck(struct wref__hdr *h)
{
	/* relaxed: taking a ref needs no ordering; the payload was published
	 * through the acquire load of cb->obj; death ordering is carried by
	 * the release/acquire pair on the decrement side */
	uint64_t c = atomic_fetch_add_explicit(&h->strong, 1,
					       memory_order_relaxed);
	if (wref_unlikely(c - 1 >= WREF_SAT - 2))
		return wref__tryget_slow(h, c);
	return true;
}

static inline bool wref__tryget(struct wref__hdr *h)
{
	/* relaxed pre-check: a dead object's line is not dirtied; the
	 * fetch_add below re-checks */
	uint64_t c = atomic_load_explicit(&h->strong, memory_order_relaxed);
	if (wref_unlikely(c >= WREF_UNDERFLOW_ZONE))
		return false;
	/* relaxed: taking a ref needs no ordering; the payload was published
	 * through the acquire load of cb->obj; death ordering is carried by
	 * the release/acquire pair on the decrement side */
	c = atomic_fetch_add_explicit(&h->strong, 1, memory_order_relaxed);
	if (wref_unlikely(c - 1 >= WREF_SAT - 2))
		return wref__tryget_slow(h, c);
	return true;
}

/* Queue @w (a death's callback or finalizer, from a watch's fire()) to run
 * after the dying object's destroy returned; outside a death, wref__defer. */
struct wref__work;
WREF_HIDDEN void wref__defer_death(struct wref__work *w);

/* Death context (trashcan): cascades of deaths on one thread are flattened
 * into a loop.  Inside it, releases that kill an object queue the destroy
 * and the outermost level runs it. */
WREF_HIDDEN void wref__enter(void);
WREF_HIDDEN void wref__leave(void);

/* ---- per-thread statistics ------------------------------------------- */
enum {
	WREF_ST_CREATED,
	WREF_ST_DIED,
	WREF_ST_CB_ALLOC,
	WREF_ST_CB_FREE,
	WREF_ST_QUEUED,
	WREF_ST_RUN,
	WREF_ST_N
};
struct wref__tstats {
	_Atomic uint64_t v[WREF_ST_N];
	/* memory this thread retired, not yet handed to call_rcu (rcu.c);
	 * wref_shutdown() may take it from another thread */
	_Atomic(struct rcu_head *) retired;
	unsigned nretired; /* owner only: the batch threshold */
	/* inside call_rcu() or an executor queue operation: fork() waits
	 * until no thread is (liburcu cannot finish an enqueue, a splice or
	 * a dequeue that a vanished thread began) */
	_Atomic int in_submit;
	struct wref__tstats *next;
	bool registered;
	bool exited; /* its key destructor ran: later calls use wref__late */
};
WREF_HIDDEN extern __thread struct wref__tstats wref__tls_stats
	__attribute__((tls_model("initial-exec")));
/* The block of threads whose statistics destructor already ran (a later
 * pthread-key destructor calls the library): never a thread's TLS, always
 * registered; counters by atomic RMW, in_submit a count of threads. */
WREF_HIDDEN extern struct wref__tstats wref__late;
/* register this thread's block; false (nothing done) if the thread is
 * exiting and must use wref__late */
WREF_HIDDEN bool wref__stats_register(void);
WREF_HIDDEN void wref__stat_add_late(int i, uint64_t n);
static inline void wref__stat_add(int i, uint64_t n)
{
	struct wref__tstats *s = &wref__tls_stats;
	if (wref_unlikely(!s->registered) && !wref__stats_register()) {
		wref__stat_add_late(i, n);
		return;
	}
	/* relaxed load+store, not an RMW: only this thread writes its slot;
	 * wref_stats() reads it with relaxed loads (a snapshot) */
	atomic_store_explicit(&s->v[i],
		atomic_load_explicit(&s->v[i], memory_order_relaxed) + n,
		memory_order_relaxed);
}
/* fork child: fold the vanished threads' counters; returns what they had
 * retired, for wref__rcu_adopt() once call_rcu works in the child */
WREF_HIDDEN struct rcu_head *wref__stats_atfork_child(void);

/* ---- ref.c: control block and watches --------------------------------- */

/*
 * A watch is internal library code run when a referent dies: a callback
 * ref's queueing, a container's prompt removal of an entry.  Watches sit on
 * the control block's list under its lock; at death the dying thread pins
 * each watch's owner (a wref object: the ref, the container) with a
 * tryget, unlinks the watch and, after dropping the lock, calls fire().
 * An owner that cannot be pinned is dying; its destroy unlinks the watch.
 */
struct wref__watch {
	struct wref__watch *next, **pprev; /* under cb->lock; pprev NULL =
					      not linked */
	/* runs with no lock held, the owner pinned, inside an RCU read-side
	 * section (so it may cds_lfht_del; it must not block or call user
	 * code: queue that with wref__defer) */
	void (*fire)(struct wref__watch *w);
	void *owner;                         /* wref object (payload ptr) */
	struct wref__watch *fnext;           /* private to the dying thread */
	bool is_ref;                         /* a wref_ref (getweakrefs) */
	bool pinned; /* set before fire(): the dying thread pinned owner */
};

struct wref__cb {
	/* back pointer, cleared at death: upgraders read it under RCU */
	_Atomic(struct wref__hdr *) obj;
	/* holds: 1 for the object until its memory is freed, 1 per weak ref
	 * handle, 1 per container entry / watch owner that needs the block */
	_Atomic uint64_t holds;
	struct wref__hdr *mem;     /* the object's memory (constant) */
	const wref_type *type;
	uint64_t hash;
	wref__lock_t lock;
	bool dead;                 /* under lock */
	struct wref__watch *watches; /* under lock */
	struct wref_ref *shared;   /* the shared callback-less ref, under lock */
	size_t nrefs;              /* live wref_ref handles, under lock */
	struct rcu_head rcu;       /* frees the object's memory after death */
};

/* the control block of the live object @obj (created on first use);
 * NULL + errno EINVAL (NO_WEAK) or ENOMEM.  Does not take a hold. */
WREF_HIDDEN struct wref__cb *wref__cb_get(void *obj);
WREF_HIDDEN void wref__cb_hold(struct wref__cb *cb);
WREF_HIDDEN void wref__cb_unhold(struct wref__cb *cb);
/* identity hash of a pointer (also the default hash of a block) */
WREF_HIDDEN uint64_t wref__hash_ptr(const void *p);
/* new strong ref to the referent, or NULL; lock-free */
static inline void *wref__cb_upgrade(struct wref__cb *cb)
{
	void *ret = NULL;
	wref__rcu_lock();
	/* acquire (what rcu_dereference does, spelt for _Atomic): pairs with
	 * the release CAS publishing the block, so the header is initialised */
	struct wref__hdr *h = atomic_load_explicit(&cb->obj,
						   memory_order_acquire);
	/* the DEAD pre-check is the NULL test: cb->obj is cleared at death,
	 * on the block's line, so a dead object's line is not dirtied (only
	 * an upgrade racing the death itself reaches its count); a second
	 * load of the count before the fetch_add would cost a coherence
	 * round trip under contention */
	if (h && wref__tryget_nocheck(h))
		ret = wref__payload(h);
	wref__rcu_unlock();
	return ret;
}
/* link @w on @cb; -ENOENT if the referent is already dead.  The caller
 * holds a strong ref to w->owner (which becomes pinnable). */
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

/* ---- runtime.c ------------------------------------------------------------ */
/* Register @fn to run in wref_shutdown() (and at exit) after the executor
 * drained: upper layers (atexit finalizers) hook in here.  Idempotent. */
WREF_HIDDEN void wref__on_shutdown(void (*fn)(void));

#endif /* WREF_INTERNAL_H */
