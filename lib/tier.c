/*
 * tier.c - the retention tier of the weak-value map (see tier.h): the LRU
 * of retained entries, its expiry and trimming work, the registry of tiers
 * and the timer thread that queues their work, and the tiers' clock.
 */
#include "tier.h"

#include <time.h>

/* Retention state of a node.  The tier's hold (a strong ref to the
 * object, an entry count, one in tier->n) is taken by wref__tier_touch
 * BEFORE it moves the state 0 -> HELD; whoever then moves it off HELD owns
 * the strong ref and the n count: evict (HELD -> 0, CAS) or
 * wref__tier_forget (-> REMOVED, exchange).  REMOVED is sticky: a removed
 * entry is never retained again.  The entry count goes with the list node
 * (dropped by whoever takes the node out of the inbox/list). */
enum { TS_IDLE = 0, TS_HELD = 1, TS_REMOVED = 2 };

/* ---- clock ----------------------------------------------------------------- */

#ifdef WREF_TEST_HOOKS
static uint64_t (*_Atomic clock_fn)(void);
#endif

/* milliseconds of @clock: CLOCK_MONOTONIC_COARSE for the tiers' stamps
 * (wref__clock_ms), CLOCK_MONOTONIC for the timer thread's deadlines */
static uint64_t clock_ms(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t wref__clock_ms(void)
{
#ifdef WREF_TEST_HOOKS
	/* relaxed: a test hook, set before use */
	uint64_t (*fn)(void) = atomic_load_explicit(&clock_fn,
						    memory_order_relaxed);
	if (fn)
		return fn();
#endif
	return clock_ms(CLOCK_MONOTONIC_COARSE);
}

#ifdef WREF_TEST_HOOKS
void wref__clock_set(uint64_t (*fn)(void))
{
	/* relaxed: a test hook, set before use (the load is relaxed too) */
	atomic_store_explicit(&clock_fn, fn, memory_order_relaxed);
}
#endif /* WREF_TEST_HOOKS */

void wref__tier_node_init(struct wref__tier_node *n, struct wref__entry *e)
{
	atomic_init(&n->stamp, 0);
	atomic_init(&n->state, TS_IDLE);
	n->inlist = false;
	n->e = e;
}

/* ---- tiers --------------------------------------------------------------- */

struct wref__tier {
	struct wref__work work;
	_Atomic uint32_t refs;     /* map, queued work, registry scan */
	_Atomic uint32_t queued;   /* work is on the executor */
	_Atomic uint32_t due;      /* inline mode: the timer found work due;
				      the map's next call runs it */
	_Atomic size_t n;          /* retained (inbox + list) */
	_Atomic(struct wref__tier_node *) inbox;
	uint64_t retain_ms;
	size_t retain_max;
	pthread_mutex_t lock;
	struct cds_list_head lru;  /* LRU list, oldest first, under lock */
	bool dead;                    /* under lock: the map is gone */
	struct cds_list_head reg;  /* on reg_list, under reg_lock */
	uint64_t next_poll;           /* registry, under reg_lock */
	uint64_t sync_gen;            /* registry, under reg_lock */
};

/* registry of tiers + the timer thread that queues their work */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static CDS_LIST_HEAD(reg_list);                  /* under reg_lock */
static bool timer_running;                 /* under reg_lock */
static pthread_t timer_th;                 /* under reg_lock, if running */
static uintptr_t timer_gen;                /* under reg_lock: a timer whose
					      generation is not this exits */
static _Atomic uint32_t timer_seq;         /* futex word: kicks */
static uint64_t sync_gen;                  /* under reg_lock */

/* wake the timer thread to look at the registry again */
static void timer_kick(void)
{
	/* release: pairs with the timer's acquire load of timer_seq, read
	 * before it takes reg_lock: a kick it has not seen changes the futex
	 * word it sleeps on; one it has seen is followed by its scan */
	atomic_fetch_add_explicit(&timer_seq, 1, memory_order_release);
	wref__futex_wake(&timer_seq, 1);
}

static void tier_unref(struct wref__tier *tr)
{
	/* acq_rel: every holder's uses happen-before the free */
	if (atomic_fetch_sub_explicit(&tr->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&tr->lock);
	wref__free(tr);
}

static void tier_run(struct wref__work *w);

/* queue the tier's work unless queued; never inside a read-side section */
void wref__tier_schedule(struct wref__tier *tr)
{
	/* seq_cst: Dekker with tier_run (queued cleared, then the inbox
	 * drained) against a toucher (node pushed, then this exchange):
	 * either the run drains the push or the toucher queues a run */
	if (atomic_exchange(&tr->queued, 1))
		return;
	/* relaxed: the caller holds a ref (map pinned or registry lock) */
	atomic_fetch_add_explicit(&tr->refs, 1, memory_order_relaxed);
	tr->work.run = tier_run;
	wref__defer(&tr->work);
}

/* the oldest node of @tr's LRU list, or NULL; under tr->lock */
static struct wref__tier_node *list_oldest(struct wref__tier *tr)
{
	if (cds_list_empty(&tr->lru))
		return NULL;
	return cds_list_first_entry(&tr->lru, struct wref__tier_node, lru);
}

/* move the inbox into the list; under tr->lock */
static void drain_inbox(struct wref__tier *tr)
{
	/* acquire: pairs with the release CAS in tier_touch() */
	struct wref__tier_node *v = atomic_exchange_explicit(&tr->inbox, NULL,
						      memory_order_acquire);
	/* the inbox is LIFO: reverse it to keep access order */
	struct wref__tier_node *rev = NULL;
	while (v) {
		struct wref__tier_node *next = v->inext;
		v->inext = rev;
		rev = v;
		v = next;
	}
	for (v = rev; v; v = rev) {
		rev = v->inext;
		/* acquire: pairs with the exchange in wref__tier_forget() */
		if (atomic_load_explicit(&v->state, memory_order_acquire) ==
		    TS_REMOVED) {
			/* forgotten before its push landed: forget took the
			 * strong ref and the n count; the node's count is
			 * ours (not the last: retire is a call_rcu anyway) */
			wref__entry_put(v->e);
			continue;
		}
		/* relaxed: the stamp is a hint for ordering */
		v->rstamp = atomic_load_explicit(&v->stamp,
						   memory_order_relaxed);
		v->inlist = true;
		cds_list_add_tail(&v->lru, &tr->lru);
	}
}

/* take @v out of the tier; under tr->lock.  Returns the object whose
 * strong ref the caller must release (outside the lock), or NULL if a
 * removal's forget owns it.  The entry's tier count is dropped here (its
 * retire only queues a call_rcu). */
static void *evict(struct wref__tier *tr, struct wref__tier_node *v)
{
	cds_list_del(&v->lru);
	v->inlist = false;
	void *obj = NULL;
	uint32_t held = TS_HELD;
	/* acq_rel: acquire pairs with the toucher's CAS (its hold happened
	 * before); release pairs with a later touch's CAS from 0 (it sees
	 * the node out of the list) */
	if (atomic_compare_exchange_strong_explicit(&v->state, &held,
			TS_IDLE, memory_order_acq_rel, memory_order_relaxed)) {
		obj = wref__payload(v->e->cb->mem);
		/* relaxed: n is a count; the list itself is under tr->lock */
		atomic_fetch_sub_explicit(&tr->n, 1, memory_order_relaxed);
	}
	wref__entry_put(v->e);
	return obj;
}

#define EVICT_BATCH 64

/* One pass of expiry and trimming.  Returns true if it stopped early
 * with a full batch (call again). */
static bool tier_pass(struct wref__tier *tr)
{
	void *objs[EVICT_BATCH];
	size_t k = 0;
	bool more = false;
	uint64_t now = wref__clock_ms();

	pthread_mutex_lock(&tr->lock);
	drain_inbox(tr);
	/* each entry may be moved to the tail once per pass */
	/* relaxed: n is a count (a bound for this pass) */
	size_t budget = atomic_load_explicit(&tr->n, memory_order_relaxed) + 1;
	struct wref__tier_node *v;
	while ((v = list_oldest(tr)) != NULL) {
		/* relaxed: a hint (the access path's store) */
		uint64_t s = atomic_load_explicit(&v->stamp,
						  memory_order_relaxed);
		bool over = tr->dead || (tr->retain_max &&
					 /* relaxed: a count */
					 atomic_load_explicit(&tr->n,
						memory_order_relaxed) >
					 tr->retain_max);
		if (s != v->rstamp && !tr->dead && budget) {
			budget--;
			v->rstamp = s; /* touched since recorded */
			cds_list_del(&v->lru); /* to the young end */
			cds_list_add_tail(&v->lru, &tr->lru);
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
	struct wref__tier *tr = caa_container_of(w, struct wref__tier, work);
	/* seq_cst: Dekker with wref__tier_schedule (see there) */
	atomic_store(&tr->queued, 0);
	while (tier_pass(tr))
		;
	tier_unref(tr);
}

/* Called inside a read-side section with @obj pinned by the caller.
 * Returns true if the tier's work should be queued (after unlock). */
bool wref__tier_touch(struct wref__tier *tr, struct wref__tier_node *v)
{
	uint64_t now = wref__clock_ms();
	/* relaxed: a timestamp read only as an expiry hint; re-store only
	 * when it changed, so hot entries keep their line clean */
	if (atomic_load_explicit(&v->stamp, memory_order_relaxed) != now)
		atomic_store_explicit(&v->stamp, now, memory_order_relaxed);
	/* relaxed pre-check: the common case is already retained (or
	 * removed: TS_REMOVED refuses every touch) */
	if (atomic_load_explicit(&v->state, memory_order_relaxed))
		return false;
	/* the hold first, then the claim (see TS_*): a forget or evict that
	 * moves the state off HELD always finds the hold taken */
	if (!wref__entry_tryhold(v->e))
		return false; /* being retired: not worth retaining */
	void *obj = wref_retain(wref__payload(v->e->cb->mem));
	/* counted before the claim, so that whoever drops it never takes
	 * the count below what the list holds */
	/* relaxed: n is a count; the list itself is under tr->lock */
	size_t n = atomic_fetch_add_explicit(&tr->n, 1,
					     memory_order_relaxed) + 1;
	uint32_t z = TS_IDLE;
	/* acq_rel: release publishes our hold to the evict/forget that
	 * moves the state off HELD; acquire pairs with evict's CAS to 0 */
	if (!atomic_compare_exchange_strong_explicit(&v->state, &z,
			TS_HELD, memory_order_acq_rel, memory_order_relaxed)) {
		/* retained meanwhile, or removed: undo.  Neither put nor
		 * release is the last (the caller pins obj; a valmap retire
		 * only queues a call_rcu, fine inside a read-side section) */
		/* relaxed: n is a count; the list itself is under tr->lock */
		atomic_fetch_sub_explicit(&tr->n, 1, memory_order_relaxed);
		wref_release(obj);
		wref__entry_put(v->e);
		return false;
	}
	/* relaxed: the push's release CAS publishes the entry */
	struct wref__tier_node *h = atomic_load_explicit(&tr->inbox,
						  memory_order_relaxed);
	do
		v->inext = h;
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
void wref__tier_forget(struct wref__tier *tr, struct wref__tier_node *v)
{
	struct wref__entry *e = v->e;
	/* acq_rel: acquire pairs with the toucher's CAS (its hold happened
	 * before); release pairs with the acquire load in drain_inbox() */
	if (atomic_exchange_explicit(&v->state, TS_REMOVED,
				     memory_order_acq_rel) != TS_HELD)
		return;
	/* the tier's strong ref and its n count are ours */
	/* relaxed: n is a count; the list itself is under tr->lock */
	atomic_fetch_sub_explicit(&tr->n, 1, memory_order_relaxed);
	pthread_mutex_lock(&tr->lock);
	drain_inbox(tr); /* drops v's node count if its push landed */
	bool inlist = v->inlist;
	if (inlist) {
		cds_list_del(&v->lru);
		v->inlist = false;
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
static size_t due_tiers(struct wref__tier **out, uint64_t now, uint64_t *next)
{
	size_t n = 0;
	*next = UINT64_MAX;
	struct wref__tier *tr;
	cds_list_for_each_entry(tr, &reg_list, reg) {
		bool all = now == UINT64_MAX;
		/* relaxed: a count; an empty tier is skipped this scan */
		if (all ? tr->sync_gen == sync_gen :
			  !atomic_load_explicit(&tr->n, memory_order_relaxed))
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
 * marks the tier due and the map's next call runs the work (wref__tier_poll). */
static void run_due(struct wref__tier **v, size_t n, bool from_timer)
{
	for (size_t i = 0; i < n; i++) {
		if (from_timer && wref__exec_inline())
			/* relaxed: asks the map's next call for a pass,
			 * which takes the tier lock */
			atomic_store_explicit(&v[i]->due, 1,
					      memory_order_relaxed);
		else
			wref__tier_schedule(v[i]);
		tier_unref(v[i]);
	}
}

/* inline mode: run the expiry the timer found due, on this (program)
 * thread; at the start of every map call, outside locks and read-side
 * sections */
void wref__tier_poll(struct wref__tier *tr)
{
	/* relaxed pre-check: the flag only asks for a pass, which takes the
	 * tier lock; the exchange below claims it */
	if (tr && wref_unlikely(atomic_load_explicit(&tr->due,
						     memory_order_relaxed)) &&
	    /* relaxed: claims the pass; the pass takes the tier lock */
	    atomic_exchange_explicit(&tr->due, 0, memory_order_relaxed))
		wref__tier_schedule(tr);
}

static void *timer_main(void *gen)
{
	for (;;) {
		struct wref__tier *due[SCAN_BATCH];
		/* acquire: pairs with the release in timer_kick() */
		uint32_t seq = atomic_load_explicit(&timer_seq,
						    memory_order_acquire);
		uint64_t now = clock_ms(CLOCK_MONOTONIC), next;
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
		wref__futex_wait_rel(&timer_seq, seq, tp);
	}
	return NULL;
}

/* under reg_lock */
static void timer_start(void)
{
	if (timer_running)
		return;
	if (wref__thread_start(&timer_th, timer_main, (void *)timer_gen) == 0)
		timer_running = true;
}

/* wref_shutdown hook: once no map with a retention tier is left, the
 * timer thread is stopped and joined (a later tier starts a new one) */
static void timer_shutdown_hook(void)
{
	pthread_mutex_lock(&reg_lock);
	pthread_t th = timer_th;
	bool join = timer_running && cds_list_empty(&reg_list);
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
	struct wref__tier *tr;
	pthread_mutex_lock(&reg_lock);
	cds_list_for_each_entry(tr, &reg_list, reg)
		pthread_mutex_lock(&tr->lock);
}
static void reg_unlock_all(void)
{
	struct wref__tier *tr;
	cds_list_for_each_entry(tr, &reg_list, reg)
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
	if (!cds_list_empty(&reg_list))
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

struct wref__tier *wref__tier_new(uint64_t retain_ms, size_t retain_max)
{
	pthread_once(&atfork_once, atfork_register);
	struct wref__tier *tr = wref__zalloc(sizeof *tr);
	if (!tr)
		return NULL;
	atomic_init(&tr->refs, 1);
	tr->retain_ms = retain_ms;
	tr->retain_max = retain_max;
	pthread_mutex_init(&tr->lock, NULL);
	pthread_mutex_lock(&reg_lock);
	CDS_INIT_LIST_HEAD(&tr->lru);
	cds_list_add(&tr->reg, &reg_list);
	tr->next_poll = UINT64_MAX;
	timer_start();
	pthread_mutex_unlock(&reg_lock);
	return tr;
}

/* the objects a dead map's tier held, released on the executor */
struct wref__tier_gone {
	struct wref__work work;
	size_t n;
	void *objs[];
};

static void tier_gone_run(struct wref__work *w)
{
	struct wref__tier_gone *g = caa_container_of(w, struct wref__tier_gone, work);
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
void wref__tier_kill(struct wref__tier *tr)
{
	pthread_mutex_lock(&reg_lock);
	cds_list_del(&tr->reg);
	pthread_mutex_unlock(&reg_lock);
	pthread_mutex_lock(&tr->lock);
	tr->dead = true;
	drain_inbox(tr);
	size_t cap = 0;
	struct wref__tier_node *v;
	cds_list_for_each_entry(v, &tr->lru, lru)
		cap++;
	/* no touch can come any more (the map has no user left), so the
	 * list is all there is */
	struct wref__tier_gone *g = cap ? wref__alloc(sizeof *g +
						cap * sizeof(void *)) : NULL;
	if (g) {
		g->n = 0;
		while ((v = list_oldest(tr)) != NULL) {
			void *obj = evict(tr, v);
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

#ifdef WREF_TEST_HOOKS
void wref__retain_sync(void)
{
	struct wref__tier *due[SCAN_BATCH];
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
#endif /* WREF_TEST_HOOKS */
