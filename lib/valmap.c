/*
 * valmap.c - the weak-value map (WeakValueDictionary): byte-string keys,
 * copied; values held weakly through the table layer (table.h).
 *
 * get/get_or_create hits are one lfht lookup and one upgrade inside a
 * read-side section: no lock, no write to shared memory but the object's
 * count (and, with the retention tier, a relaxed timestamp store).
 *
 * WREF_MAP_CREATE_ONCE: the first caller for a missing key links a
 * placeholder entry (cb NULL) and runs make outside any lock or read-side
 * section; later callers pin the placeholder and sleep on its futex word
 * until the creator replaces it by the real entry (or fails).
 *
 * Retention tier (retain_ms, retain_max): an access stamps the entry's
 * last-access time (relaxed store) and, if the entry is not yet retained,
 * wins a CAS on its tier state, takes a strong ref to the object and an
 * entry count, and pushes the entry on the tier's lock-free inbox.  The
 * tier's list (under its mutex, never taken on the access path) is kept
 * in recorded-stamp order; entries touched since they were recorded are
 * moved to the tail when they reach the head, so the head is the least
 * recently used.  Expiry and LRU trimming run as executor work ("tier
 * work", so wref_flush waits for the releases, rule 14), queued by a
 * global timer thread while a tier holds anything, and by the access path
 * when a tier exceeds retain_max.  In inline mode the timer only marks the
 * tier due and the map's next call runs the work (no user code on the
 * timer thread).  Removal and retention agree through the entry's tstate
 * (TS_*): see tier_touch and vm_forget.
 */
#include "table.h"

#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct tier;

struct wref_valmap {
	struct wref__table t;
	unsigned flags;
	struct tier *tier; /* NULL: no retention */
};

enum { PEND_WAIT, PEND_DONE, PEND_FAILED };

/* Retention state of an entry.  The tier's hold (a strong ref to the
 * object, an entry count, one in tier->n) is taken by tier_touch BEFORE
 * it moves the state 0 -> HELD; whoever then moves it off HELD owns the
 * strong ref and the n count: evict (HELD -> 0, CAS) or vm_forget
 * (-> REMOVED, exchange).  REMOVED is sticky: a removed entry is never
 * retained again.  The entry count goes with the list node (dropped by
 * whoever takes the node out of the inbox/list). */
enum { TS_IDLE = 0, TS_HELD = 1, TS_REMOVED = 2 };

/* The key follows the table entry's hot fields (mem, node) directly; the
 * retention part (tier maps) or the placeholder part (CREATE_ONCE) sits
 * after the key, 8-byte aligned, and exists only when needed. */
struct vm_entry {
	struct wref__entry e;
	size_t len;
	unsigned char key[];
};

union vm_part {
	struct vm_ret { /* a real entry of a tier map */
		_Atomic uint64_t stamp;         /* last access, ms */
		_Atomic uint32_t tstate;        /* TS_* (see tier_touch) */
		bool inlist;                    /* under tier->lock */
		uint64_t rstamp;                /* recorded stamp, lock */
		struct vm_entry *tnext, *tprev; /* LRU, under lock */
		struct vm_entry *inext;         /* inbox link */
	} r;
	struct vm_pend { /* a placeholder (e.cb NULL, CREATE_ONCE) */
		_Atomic uint32_t state;         /* futex word: PEND_* */
		int err;                        /* make's errno */
		pthread_t maker;                /* the thread running make */
	} p;
};

static inline size_t key_room(size_t len)
{
	return (len + 7) & ~(size_t)7;
}

static inline struct vm_ret *R(struct vm_entry *v)
{
	return &((union vm_part *)(void *)(v->key + key_room(v->len)))->r;
}

static inline struct vm_pend *P(struct vm_entry *v)
{
	return &((union vm_part *)(void *)(v->key + key_room(v->len)))->p;
}

struct vkey {
	const void *p;
	size_t n;
};

static inline struct vm_entry *vm(struct wref__entry *e)
{
	return caa_container_of(e, struct vm_entry, e);
}

static int vm_match(struct cds_lfht_node *node, const void *key)
{
	const struct vkey *k = key;
	struct vm_entry *v = vm(caa_container_of(node, struct wref__entry,
						 node));
	/* TSan: lfht calls match on nodes it meets; pairs with the release
	 * before the node's add */
	wref__tsan_acquire(node);
	return v->len == k->n && (k->n == 0 || !memcmp(v->key, k->p, k->n));
}

static void vm_retire(struct wref__entry *e)
{
	wref__entry_free_rcu(e);
}

static void vm_forget(struct wref__entry *e);

static const struct wref__table_ops vm_ops = {
	.match = vm_match,
	.retire = vm_retire,
	.forget = vm_forget,
};

static struct vm_entry *vm_alloc(struct wref_valmap *m, const struct vkey *k,
				 struct wref__cb *cb)
{
	bool part = !cb || m->tier;
	if (k->n > SIZE_MAX - sizeof(struct vm_entry) - sizeof(union vm_part)
			- 8) {
		errno = ENOMEM;
		return NULL;
	}
	struct vm_entry *v = wref__alloc(sizeof *v + key_room(k->n) +
					 (part ? sizeof(union vm_part) : 0));
	if (!v)
		return NULL;
	wref__entry_init(&m->t, &v->e, cb);
	v->len = k->n;
	if (k->n)
		memcpy(v->key, k->p, k->n);
	if (!cb) {
		atomic_init(&P(v)->state, PEND_WAIT);
		P(v)->err = 0;
		P(v)->maker = pthread_self();
	} else if (m->tier) {
		atomic_init(&R(v)->stamp, 0);
		atomic_init(&R(v)->tstate, 0);
		R(v)->inlist = false;
	}
	return v;
}

/* ---- retention tier ------------------------------------------------------- */

struct tier {
	struct wref__work work;
	_Atomic uint32_t refs;     /* map, queued work, registry scan */
	_Atomic uint32_t queued;   /* work is on the executor */
	_Atomic uint32_t due;      /* inline mode: the timer found work due;
				      the map's next call runs it */
	_Atomic size_t n;          /* retained (inbox + list) */
	_Atomic(struct vm_entry *) inbox;
	uint64_t retain_ms;
	size_t retain_max;
	pthread_mutex_t lock;
	struct vm_entry *head, *tail; /* LRU list, under lock */
	bool dead;                    /* under lock: the map is gone */
	struct wref_valmap *m;        /* valid while !dead */
	struct tier *rnext, **rpprev; /* registry, under reg_lock */
	uint64_t next_poll;           /* registry, under reg_lock */
	uint64_t sync_gen;            /* registry, under reg_lock */
};

/* registry of tiers + the timer thread that queues their work */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tier *reg_head;              /* under reg_lock */
static bool timer_running;                 /* under reg_lock */
static pthread_t timer_th;                 /* under reg_lock, if running */
static uintptr_t timer_gen;                /* under reg_lock: a timer whose
					      generation is not this exits */
static _Atomic uint32_t timer_seq;         /* futex word: kicks */
static uint64_t sync_gen;                  /* under reg_lock */

/* wake the timer thread to look at the registry again */
static void timer_kick(void)
{
	atomic_fetch_add(&timer_seq, 1);
	wref__futex_wake(&timer_seq, 1);
}

static void tier_unref(struct tier *tr)
{
	/* acq_rel: every holder's uses happen-before the free */
	if (atomic_fetch_sub_explicit(&tr->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&tr->lock);
	wref__free(tr);
}

static void tier_run(struct wref__work *w);

/* queue the tier's work unless queued; never inside a read-side section */
static void tier_schedule(struct tier *tr)
{
	if (atomic_exchange(&tr->queued, 1))
		return;
	/* relaxed: the caller holds a ref (map pinned or registry lock) */
	atomic_fetch_add_explicit(&tr->refs, 1, memory_order_relaxed);
	tr->work.run = tier_run;
	wref__defer(&tr->work);
}

static void list_append(struct tier *tr, struct vm_entry *v)
{
	R(v)->tnext = NULL;
	R(v)->tprev = tr->tail;
	if (tr->tail)
		R(tr->tail)->tnext = v;
	else
		tr->head = v;
	tr->tail = v;
}

static void list_unlink(struct tier *tr, struct vm_entry *v)
{
	if (R(v)->tprev)
		R(R(v)->tprev)->tnext = R(v)->tnext;
	else
		tr->head = R(v)->tnext;
	if (R(v)->tnext)
		R(R(v)->tnext)->tprev = R(v)->tprev;
	else
		tr->tail = R(v)->tprev;
}

/* move the inbox into the list; under tr->lock */
static void drain_inbox(struct tier *tr)
{
	/* acquire: pairs with the release CAS in tier_touch() */
	struct vm_entry *v = atomic_exchange_explicit(&tr->inbox, NULL,
						      memory_order_acquire);
	/* the inbox is LIFO: reverse it to keep access order */
	struct vm_entry *rev = NULL;
	while (v) {
		struct vm_entry *next = R(v)->inext;
		R(v)->inext = rev;
		rev = v;
		v = next;
	}
	for (v = rev; v; v = rev) {
		rev = R(v)->inext;
		/* acquire: pairs with the exchange in vm_forget() */
		if (atomic_load_explicit(&R(v)->tstate, memory_order_acquire) ==
		    TS_REMOVED) {
			/* forgotten before its push landed: forget took the
			 * strong ref and the n count; the node's count is
			 * ours (not the last: retire is a call_rcu anyway) */
			wref__entry_put(&v->e);
			continue;
		}
		/* relaxed: the stamp is a hint for ordering */
		R(v)->rstamp = atomic_load_explicit(&R(v)->stamp,
						   memory_order_relaxed);
		R(v)->inlist = true;
		list_append(tr, v);
	}
}

/* take @v out of the tier; under tr->lock.  Returns the object whose
 * strong ref the caller must release (outside the lock), or NULL if a
 * removal's forget owns it.  The entry's tier count is dropped here (its
 * retire only queues a call_rcu). */
static void *evict(struct tier *tr, struct vm_entry *v)
{
	list_unlink(tr, v);
	R(v)->inlist = false;
	void *obj = NULL;
	uint32_t held = TS_HELD;
	/* acq_rel: acquire pairs with the toucher's CAS (its hold happened
	 * before); release pairs with a later touch's CAS from 0 (it sees
	 * the node out of the list) */
	if (atomic_compare_exchange_strong_explicit(&R(v)->tstate, &held,
			TS_IDLE, memory_order_acq_rel, memory_order_relaxed)) {
		obj = wref__payload(v->e.cb->mem);
		atomic_fetch_sub(&tr->n, 1);
	}
	wref__entry_put(&v->e);
	return obj;
}

#define EVICT_BATCH 64

/* One pass of expiry and trimming.  Returns true if it stopped early
 * with a full batch (call again). */
static bool tier_pass(struct tier *tr)
{
	void *objs[EVICT_BATCH];
	size_t k = 0;
	bool more = false;
	uint64_t now = wref__clock_ms();

	pthread_mutex_lock(&tr->lock);
	drain_inbox(tr);
	/* each entry may be moved to the tail once per pass */
	size_t budget = atomic_load(&tr->n) + 1;
	while (tr->head) {
		struct vm_entry *v = tr->head;
		/* relaxed: a hint (the access path's store) */
		uint64_t s = atomic_load_explicit(&R(v)->stamp,
						  memory_order_relaxed);
		bool over = tr->dead || (tr->retain_max &&
					 atomic_load(&tr->n) > tr->retain_max);
		if (s != R(v)->rstamp && !tr->dead && budget) {
			budget--;
			R(v)->rstamp = s; /* touched since recorded */
			list_unlink(tr, v);
			list_append(tr, v);
			continue;
		}
		if (!over && (s > now || now - s < tr->retain_ms))
			break; /* the oldest is still young */
		if (k == EVICT_BATCH) {
			more = true;
			break;
		}
		objs[k++] = evict(tr, v);
	}
	pthread_mutex_unlock(&tr->lock);
	for (size_t i = 0; i < k; i++)
		wref_release(objs[i]);
	return more;
}

static void tier_run(struct wref__work *w)
{
	struct tier *tr = caa_container_of(w, struct tier, work);
	atomic_store(&tr->queued, 0);
	while (tier_pass(tr))
		;
	tier_unref(tr);
}

/* Called inside a read-side section with @obj pinned by the caller.
 * Returns true if the tier's work should be queued (after unlock). */
static bool tier_touch(struct tier *tr, struct vm_entry *v)
{
	uint64_t now = wref__clock_ms();
	/* relaxed: a timestamp read only as an expiry hint; re-store only
	 * when it changed, so hot entries keep their line clean */
	if (atomic_load_explicit(&R(v)->stamp, memory_order_relaxed) != now)
		atomic_store_explicit(&R(v)->stamp, now, memory_order_relaxed);
	/* relaxed pre-check: the common case is already retained (or
	 * removed: TS_REMOVED refuses every touch) */
	if (atomic_load_explicit(&R(v)->tstate, memory_order_relaxed))
		return false;
	/* the hold first, then the claim (see TS_*): a forget or evict that
	 * moves the state off HELD always finds the hold taken */
	if (!wref__entry_tryhold(&v->e))
		return false; /* being retired: not worth retaining */
	void *obj = wref_retain(wref__payload(v->e.cb->mem));
	/* counted before the claim, so that whoever drops it never takes
	 * the count below what the list holds */
	size_t n = atomic_fetch_add(&tr->n, 1) + 1;
	uint32_t z = TS_IDLE;
	/* acq_rel: release publishes our hold to the evict/forget that
	 * moves the state off HELD; acquire pairs with evict's CAS to 0 */
	if (!atomic_compare_exchange_strong_explicit(&R(v)->tstate, &z,
			TS_HELD, memory_order_acq_rel, memory_order_relaxed)) {
		/* retained meanwhile, or removed: undo.  Neither put nor
		 * release is the last (the caller pins obj; a valmap retire
		 * only queues a call_rcu, fine inside a read-side section) */
		atomic_fetch_sub(&tr->n, 1);
		wref_release(obj);
		wref__entry_put(&v->e);
		return false;
	}
	/* relaxed: the push's release CAS publishes the entry */
	struct vm_entry *h = atomic_load_explicit(&tr->inbox,
						  memory_order_relaxed);
	do
		R(v)->inext = h;
	/* release: pairs with the acquire exchange in drain_inbox() */
	while (!atomic_compare_exchange_weak_explicit(&tr->inbox, &h, v,
			memory_order_release, memory_order_relaxed));
	if (n == 1) {
		/* the tier was empty: the timer may sleep without a deadline */
		timer_kick();
	}
	return tr->retain_max && n > tr->retain_max;
}

/* a user-side removal: drop the tier's hold now (rule 17).  The exchange
 * to TS_REMOVED both refuses later touches and decides who owns a hold:
 * the old code read the state, then evicted, so a touch between the two
 * (or whose push landed after the drain) kept the removed entry retained
 * for up to retain_ms (issue 16 item 4). */
static void vm_forget(struct wref__entry *e)
{
	struct wref_valmap *m = e->watch.owner;
	struct tier *tr = m->tier;
	struct vm_entry *v = vm(e);
	if (!tr || !e->cb)
		return;
	/* acq_rel: acquire pairs with the toucher's CAS (its hold happened
	 * before); release pairs with the acquire load in drain_inbox() */
	if (atomic_exchange_explicit(&R(v)->tstate, TS_REMOVED,
				     memory_order_acq_rel) != TS_HELD)
		return;
	/* the tier's strong ref and its n count are ours */
	atomic_fetch_sub(&tr->n, 1);
	pthread_mutex_lock(&tr->lock);
	drain_inbox(tr); /* drops v's node count if its push landed */
	bool inlist = R(v)->inlist;
	if (inlist) {
		list_unlink(tr, v);
		R(v)->inlist = false;
	}
	pthread_mutex_unlock(&tr->lock);
	/* neither is the last: the caller holds the table count, and the
	 * object is held by us (a push still in flight is reaped by the next
	 * drain, which sees TS_REMOVED) */
	if (inlist)
		wref__entry_put(e);
	wref_release(wref__payload(e->cb->mem));
}

#define SCAN_BATCH 32

/* Collect (with a ref each) up to SCAN_BATCH tiers due at @now (all with
 * @now == UINT64_MAX); under reg_lock.  *@next: the earliest next poll. */
static size_t due_tiers(struct tier **out, uint64_t now, uint64_t *next)
{
	size_t n = 0;
	*next = UINT64_MAX;
	for (struct tier *tr = reg_head; tr; tr = tr->rnext) {
		bool all = now == UINT64_MAX;
		if (all ? tr->sync_gen == sync_gen : !atomic_load(&tr->n))
			continue;
		uint64_t period = tr->retain_ms / 4 ? tr->retain_ms / 4 : 1;
		if (!all && tr->next_poll > now + period)
			tr->next_poll = now + period; /* newly non-empty */
		if (all || tr->next_poll <= now) {
			if (n == SCAN_BATCH) {
				*next = 0; /* more: scan again at once */
				break;
			}
			/* relaxed: the registry lock keeps @tr alive */
			atomic_fetch_add_explicit(&tr->refs, 1,
						  memory_order_relaxed);
			out[n++] = tr;
			if (all)
				tr->sync_gen = sync_gen;
			else
				tr->next_poll = now + period;
		}
		if (!all && tr->next_poll < *next)
			*next = tr->next_poll;
	}
	return n;
}

/* queue the work of the tiers collected by due_tiers, outside reg_lock.
 * Inline mode runs queued work on the queuing thread: the timer thread
 * must not (user destroys would run there, issue 16 item 13), so it only
 * marks the tier due and the map's next call runs the work (tier_poll). */
static void run_due(struct tier **v, size_t n, bool from_timer)
{
	for (size_t i = 0; i < n; i++) {
		if (from_timer && wref__exec_inline())
			atomic_store(&v[i]->due, 1);
		else
			tier_schedule(v[i]);
		tier_unref(v[i]);
	}
}

/* inline mode: run the expiry the timer found due, on this (program)
 * thread; at the start of every map call, outside locks and read-side
 * sections */
static inline void tier_poll(struct wref_valmap *m)
{
	struct tier *tr = m->tier;
	/* relaxed pre-check: the flag only asks for a pass, which takes the
	 * tier lock; the exchange below claims it */
	if (tr && wref_unlikely(atomic_load_explicit(&tr->due,
						     memory_order_relaxed)) &&
	    atomic_exchange(&tr->due, 0))
		tier_schedule(tr);
}

static void *timer_main(void *gen)
{
	for (;;) {
		struct tier *due[SCAN_BATCH];
		uint32_t seq = atomic_load(&timer_seq);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000 +
			       (uint64_t)ts.tv_nsec / 1000000, next;
		pthread_mutex_lock(&reg_lock);
		if ((uintptr_t)gen != timer_gen) { /* stopped by the hook */
			pthread_mutex_unlock(&reg_lock);
			return NULL;
		}
		size_t n = due_tiers(due, now, &next);
		pthread_mutex_unlock(&reg_lock);
		run_due(due, n, true);
		if (next <= now)
			continue;
		struct timespec to, *tp = NULL;
		if (next != UINT64_MAX) {
			uint64_t d = next - now;
			to.tv_sec = (time_t)(d / 1000);
			to.tv_nsec = (long)(d % 1000) * 1000000;
			tp = &to;
		}
		syscall(SYS_futex, &timer_seq, FUTEX_WAIT_PRIVATE, seq, tp,
			NULL, 0);
	}
	return NULL;
}

/* under reg_lock */
static void timer_start(void)
{
	if (timer_running)
		return;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&timer_th, NULL, timer_main,
			   (void *)timer_gen) == 0)
		timer_running = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* wref_shutdown hook: once no map with a retention tier is left, the
 * timer thread is stopped and joined (a later tier starts a new one) */
static void timer_shutdown_hook(void)
{
	pthread_mutex_lock(&reg_lock);
	pthread_t th = timer_th;
	bool join = timer_running && !reg_head;
	if (join) {
		timer_running = false;
		timer_gen++;
	}
	pthread_mutex_unlock(&reg_lock);
	if (join) {
		timer_kick();
		pthread_join(th, NULL);
	}
}

/* fork: the registry lock and every tier's lock are held across the fork
 * (no tier is mid-update in the child) and released on both sides, as the
 * core does with its locks (re-initialising a held mutex upsets TSan) */
static void reg_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
	for (struct tier *tr = reg_head; tr; tr = tr->rnext)
		pthread_mutex_lock(&tr->lock);
}
static void reg_unlock_all(void)
{
	for (struct tier *tr = reg_head; tr; tr = tr->rnext)
		pthread_mutex_unlock(&tr->lock);
}
static void reg_parent(void)
{
	reg_unlock_all();
	pthread_mutex_unlock(&reg_lock);
}
static void reg_child(void)
{
	reg_unlock_all();
	/* the timer thread is gone: restart it if tiers exist */
	timer_running = false;
	if (reg_head)
		timer_start();
	pthread_mutex_unlock(&reg_lock);
}

/* registered on the first tier, in fork.c's tier slot: its prepare takes
 * the tier locks before the core takes liburcu's (a tier lock holder may
 * be inside call_rcu) */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_register(void)
{
	wref__on_fork(WREF_FORK_TIERS, reg_prepare, reg_parent, reg_child);
	wref__on_shutdown(timer_shutdown_hook);
}

static struct tier *tier_new(struct wref_valmap *m,
			     const wref_map_options *opt)
{
	pthread_once(&atfork_once, atfork_register);
	struct tier *tr = wref__zalloc(sizeof *tr);
	if (!tr)
		return NULL;
	atomic_init(&tr->refs, 1);
	tr->retain_ms = opt->retain_ms;
	tr->retain_max = opt->retain_max;
	tr->m = m;
	pthread_mutex_init(&tr->lock, NULL);
	pthread_mutex_lock(&reg_lock);
	tr->rnext = reg_head;
	if (reg_head)
		reg_head->rpprev = &tr->rnext;
	tr->rpprev = &reg_head;
	reg_head = tr;
	tr->next_poll = UINT64_MAX;
	timer_start();
	pthread_mutex_unlock(&reg_lock);
	return tr;
}

/* the objects a dead map's tier held, released on the executor */
struct tier_gone {
	struct wref__work work;
	size_t n;
	void *objs[];
};

static void tier_gone_run(struct wref__work *w)
{
	struct tier_gone *g = caa_container_of(w, struct tier_gone, work);
	for (size_t i = 0; i < g->n; i++)
		wref_release(g->objs[i]);
	wref__free(g);
}

/* The map is being destroyed (before its table is torn down, so that the
 * teardown's forget finds nothing held): take everything the tier holds.
 * The entries' puts happen here, while the table exists; the objects are
 * released on the executor (the header's promise: not inside the
 * caller's wref_release, which may hold a lock their destroy takes; the
 * old code released them right here, issue 16 item 7). */
static void tier_kill(struct tier *tr)
{
	pthread_mutex_lock(&reg_lock);
	*tr->rpprev = tr->rnext;
	if (tr->rnext)
		tr->rnext->rpprev = tr->rpprev;
	pthread_mutex_unlock(&reg_lock);
	pthread_mutex_lock(&tr->lock);
	tr->dead = true;
	drain_inbox(tr);
	size_t cap = 0;
	for (struct vm_entry *v = tr->head; v; v = R(v)->tnext)
		cap++;
	/* no touch can come any more (the map has no user left), so the
	 * list is all there is */
	struct tier_gone *g = cap ? wref__alloc(sizeof *g +
						cap * sizeof(void *)) : NULL;
	if (g) {
		g->n = 0;
		while (tr->head) {
			void *obj = evict(tr, tr->head);
			if (obj)
				g->objs[g->n++] = obj;
		}
	}
	pthread_mutex_unlock(&tr->lock);
	if (g) {
		g->work.run = tier_gone_run;
		wref__defer(&g->work);
	} else {
		/* empty, or out of memory: release here (cascades of this
		 * death, flattened by the trashcan) */
		while (tier_pass(tr))
			;
	}
	tier_unref(tr);
}

void wref__retain_sync(void)
{
	struct tier *due[SCAN_BATCH];
	uint64_t next;
	size_t n;
	pthread_mutex_lock(&reg_lock);
	sync_gen++;
	pthread_mutex_unlock(&reg_lock);
	do {
		pthread_mutex_lock(&reg_lock);
		n = due_tiers(due, UINT64_MAX, &next);
		pthread_mutex_unlock(&reg_lock);
		run_due(due, n, false);
	} while (next == 0);
	wref_flush();
}

/* ---- the map ---------------------------------------------------------------- */

static void valmap_destroy(void *p)
{
	struct wref_valmap *m = p;
	if (m->tier)
		tier_kill(m->tier);
	wref__table_fini(&m->t);
}

static const wref_type valmap_type = {
	.name = "wref_valmap",
	.destroy = valmap_destroy,
};

wref_valmap *wref_valmap_new(const wref_map_options *opt)
{
	struct wref_valmap *m = wref__container_new(&valmap_type, sizeof *m,
			opt, WREF_MAP_BY_VALUE | WREF_MAP_CREATE_ONCE, &vm_ops);
	if (!m || !opt)
		return m;
	m->flags = opt->flags;
	if (opt->retain_ms && !(m->tier = tier_new(m, opt))) {
		wref_release(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

static inline bool bad_args(wref_valmap *m, const void *key, size_t len)
{
	if (wref_unlikely(!m || (!key && len))) {
		errno = EINVAL;
		return true;
	}
	return false;
}

void *wref_valmap_get(wref_valmap *m, const void *key, size_t len)
{
	if (m)
		wref__check(m, "wref_valmap_get");
	if (bad_args(m, key, len))
		return NULL;
	tier_poll(m);
	struct vkey k = { key, len };
	uint64_t h = wref__hash_bytes(key, len);
	bool kick = false;
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&m->t, h, &k);
	void *obj = e ? wref__entry_upgrade(e) : NULL;
	if (obj && m->tier)
		kick = tier_touch(m->tier, vm(e));
	wref__rcu_unlock();
	if (kick)
		tier_schedule(m->tier);
	if (!obj)
		errno = ENOENT;
	return obj;
}

int wref_valmap_set(wref_valmap *m, const void *key, size_t len, void *obj)
{
	if (m)
		wref__check(m, "wref_valmap_set");
	if (!m || (!key && len) || !obj)
		return -EINVAL;
	tier_poll(m);
	struct wref__cb *cb = wref__key_cb(obj, false);
	if (!cb)
		return -errno;
	struct vkey k = { key, len };
	struct vm_entry *v = vm_alloc(m, &k, cb);
	if (!v)
		return -ENOMEM;
	uint64_t h = wref__hash_bytes(key, len);
	bool kick = false;
	wref__entry_arm(&v->e);
	wref__rcu_lock();
	struct wref__entry *old = wref__entry_add_replace(&v->e, h, &k);
	if (m->tier)
		kick = tier_touch(m->tier, v);
	wref__rcu_unlock();
	if (old)
		wref__entry_removed(old);
	if (kick)
		tier_schedule(m->tier);
	return 0;
}

/* Wait for the placeholder @p (pinned) to be resolved.  Returns false
 * with errno set if its make failed. */
static bool pend_wait(struct vm_entry *p)
{
	uint32_t s;
	/* acquire: pairs with the release store in pend_resolve() */
	while ((s = atomic_load_explicit(&P(p)->state, memory_order_acquire)) ==
	       PEND_WAIT)
		wref__futex_wait(&P(p)->state, PEND_WAIT);
	int err = P(p)->err;
	wref__entry_put(&p->e);
	if (s == PEND_FAILED) {
		errno = err;
		return false;
	}
	return true;
}

static void pend_resolve(struct vm_entry *p, uint32_t state, int err)
{
	P(p)->err = err;
	/* release: pairs with the acquire in pend_wait() */
	atomic_store_explicit(&P(p)->state, state, memory_order_release);
	wref__futex_wake(&P(p)->state, INT_MAX);
}

void *wref_valmap_get_or_create(wref_valmap *m, const void *key, size_t len,
		void *(*make)(const void *key, size_t len, void *arg),
		void *arg)
{
	if (m)
		wref__check(m, "wref_valmap_get_or_create");
	if (bad_args(m, key, len))
		return NULL;
	if (!make) {
		errno = EINVAL;
		return NULL;
	}
	tier_poll(m);
	struct vkey k = { key, len };
	uint64_t h = wref__hash_bytes(key, len);
	bool once = m->flags & WREF_MAP_CREATE_ONCE;
	struct vm_entry *p = NULL;   /* our placeholder (CREATE_ONCE) */
	struct vm_entry *v = NULL;   /* our real entry */
	void *mine = NULL;           /* our object (v's referent) */
	void *ret = NULL;
	struct wref__entry *gone = NULL; /* dead entry we replaced */
	bool kick = false;

	for (;;) {
		struct vm_entry *wait = NULL;
		wref__rcu_lock();
		struct wref__entry *e = wref__table_lookup(&m->t, h, &k);
		if (e && e->cb) {
			ret = wref__entry_upgrade(e);
			if (ret) {
				if (m->tier)
					kick = tier_touch(m->tier, vm(e));
				wref__rcu_unlock();
				break; /* a live value */
			}
		} else if (e && wref__entry_tryhold(e)) {
			wait = vm(e); /* someone is making it */
		}
		if (wait) {
			wref__rcu_unlock();
			if (pthread_equal(P(wait)->maker, pthread_self())) {
				/* make asked for its own key: waiting would
				 * never end */
				wref__entry_put(&wait->e);
				errno = EDEADLK;
				goto out;
			}
			if (!pend_wait(wait))
				goto out; /* its make failed: so do we */
			continue;
		}
		if (e && !e->cb) {
			wref__rcu_unlock(); /* a placeholder retiring */
			continue;
		}
		/* absent or dead: link ours */
		struct vm_entry *mineent = once ? p : v;
		if (!mineent) {
			wref__rcu_unlock();
			if (once) {
				p = vm_alloc(m, &k, NULL);
				if (!p)
					goto out;
				wref__entry_hold(&p->e); /* ours */
			} else {
				errno = 0;
				mine = make(key, len, arg);
				if (!mine) {
					if (!errno)
						errno = ENOMEM;
					goto out;
				}
				struct wref__cb *cb = wref__key_cb(mine, false);
				if (!cb || !(v = vm_alloc(m, &k, cb))) {
					int err = errno;
					wref_release(mine);
					mine = NULL;
					errno = err;
					goto out;
				}
				wref__entry_arm(&v->e);
			}
			continue;
		}
		bool linked;
		if (e)
			linked = wref__entry_replace(e, &mineent->e, h, &k);
		else
			linked = wref__entry_add_unique(&mineent->e, h, &k) ==
				 &mineent->e;
		if (linked && mineent == v && m->tier)
			kick = tier_touch(m->tier, v);
		wref__rcu_unlock();
		if (!linked)
			continue;
		if (e)
			gone = e; /* the dead entry we displaced */
		if (!once) {
			ret = mine;
			mine = NULL;
			v = NULL;
			break;
		}
		/* CREATE_ONCE: our placeholder is linked; make outside any
		 * lock and read-side section */
		if (gone) {
			wref__entry_removed(gone);
			gone = NULL;
		}
		errno = 0;
		mine = make(key, len, arg);
		struct wref__cb *cb = mine ? wref__key_cb(mine, false) : NULL;
		if (cb)
			v = vm_alloc(m, &k, cb);
		if (!v) {
			int err = errno ? errno : ENOMEM;
			wref_release(mine);
			mine = NULL;
			wref__rcu_lock();
			bool un = wref__entry_unlink(&p->e);
			wref__rcu_unlock();
			if (un)
				wref__entry_removed(&p->e);
			pend_resolve(p, PEND_FAILED, err);
			wref__entry_put(&p->e);
			p = NULL;
			errno = err;
			goto out;
		}
		wref__entry_arm(&v->e);
		wref__rcu_lock();
		bool p_out = wref__entry_replace(&p->e, &v->e, h, &k);
		linked = p_out;
		if (!linked) {
			/* our placeholder was cleared away: insert normally */
			struct wref__entry *other;
			other = wref__entry_add_unique(&v->e, h, &k);
			if (other == &v->e) {
				linked = true;
			} else {
				ret = wref__entry_upgrade(other);
				if (!ret && wref__entry_replace(other, &v->e,
								h, &k)) {
					gone = other;
					linked = true;
				} else if (ret && m->tier) {
					/* we return other's object: that is
					 * an access too (the old code skipped
					 * it, issue 16 suspect) */
					kick = tier_touch(m->tier, vm(other));
				}
			}
		}
		if (linked && m->tier)
			kick = tier_touch(m->tier, v);
		wref__rcu_unlock();
		if (p_out)
			wref__entry_removed(&p->e);
		if (linked) {
			ret = mine;
			mine = NULL;
			v = NULL;
		}
		pend_resolve(p, PEND_DONE, 0);
		wref__entry_put(&p->e);
		p = NULL;
		if (ret)
			break;
		/* lost to a racing set and death around a clear: start over */
		wref__entry_discard(&v->e);
		v = NULL;
		wref_release(mine);
		mine = NULL;
	}
out:
	if (gone)
		wref__entry_removed(gone);
	if (v)
		wref__entry_discard(&v->e);
	if (p)
		wref__entry_discard(&p->e);
	if (mine) {
		int err = errno;
		wref_release(mine); /* a loser's object, before return */
		errno = err;
	}
	if (kick)
		tier_schedule(m->tier);
	return ret;
}

/* Unlink the live entry under key; returns its object (a strong ref) and
 * the entry (to finish with wref__entry_removed), or NULL (errno). */
static void *take(wref_valmap *m, const void *key, size_t len,
		  struct wref__entry **out)
{
	struct vkey k = { key, len };
	uint64_t h = wref__hash_bytes(key, len);
	for (;;) {
		wref__rcu_lock();
		struct wref__entry *e = wref__table_lookup(&m->t, h, &k);
		void *obj = e ? wref__entry_upgrade(e) : NULL;
		bool un = obj && wref__entry_unlink(e);
		wref__rcu_unlock();
		if (un) {
			*out = e;
			return obj;
		}
		if (!obj) {
			errno = ENOENT; /* absent, dead, or being created */
			return NULL;
		}
		wref_release(obj); /* replaced meanwhile: look again */
	}
}

void *wref_valmap_pop(wref_valmap *m, const void *key, size_t len)
{
	if (m)
		wref__check(m, "wref_valmap_pop");
	if (bad_args(m, key, len))
		return NULL;
	tier_poll(m);
	struct wref__entry *e;
	void *obj = take(m, key, len, &e);
	if (obj)
		wref__entry_removed(e);
	return obj;
}

int wref_valmap_del(wref_valmap *m, const void *key, size_t len)
{
	if (m)
		wref__check(m, "wref_valmap_del");
	if (bad_args(m, key, len))
		return -EINVAL;
	tier_poll(m);
	struct wref__entry *e;
	void *obj = take(m, key, len, &e);
	if (!obj)
		return -ENOENT;
	wref__entry_removed(e);
	wref_release(obj);
	return 0;
}

size_t wref_valmap_len(wref_valmap *m)
{
	if (!m)
		return 0;
	wref__check(m, "wref_valmap_len");
	tier_poll(m);
	return wref__table_len(&m->t);
}

void wref_valmap_clear(wref_valmap *m)
{
	if (m)
		wref__check(m, "wref_valmap_clear");
	if (m) {
		tier_poll(m);
		wref__table_clear(&m->t);
	}
}

struct vm_walk {
	int (*fn)(const void *key, size_t len, void *obj, void *arg);
	void *arg;
};

static int vm_visit(const struct wref__pin *p, void *ctx)
{
	struct vm_walk *w = ctx;
	/* the walk holds the entry: its key stays valid */
	return w->fn(vm(p->e)->key, vm(p->e)->len, p->obj, w->arg);
}

int wref_valmap_foreach(wref_valmap *m,
		int (*fn)(const void *key, size_t len, void *obj, void *arg),
		void *arg)
{
	if (m)
		wref__check(m, "wref_valmap_foreach");
	if (!m || !fn)
		return -EINVAL;
	tier_poll(m);
	/* fn runs outside any read-side section: it may modify the map or
	 * release anything */
	struct vm_walk w = { fn, arg };
	return wref__table_foreach(&m->t, vm_visit, &w);
}
