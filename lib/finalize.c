/*
 * finalize.c - Python's weakref.finalize: run fn(arg) once when an object
 * dies, or earlier on demand, or at exit.
 *
 * While armed, the library holds its own strong ref to the finalizer, so it
 * stays armed after the user releases the handle.  An atomic state decides
 * every race: the first CAS out of ARMED (the object's death, an explicit
 * call, a detach, or the at-exit hook) wins, and its winner also owns the
 * library's ref.  fn therefore runs at most once.
 *
 *   death:  the watch fires on the dying thread (no user code there), wins
 *           the CAS and queues the run on the executor;
 *   call:   wins the CAS and runs fn on the calling thread;
 *   detach: wins the CAS and hands the argument back, running nothing;
 *   exit:   the shutdown hook wins the CAS for every armed finalizer in the
 *           at-exit registry, then runs them outside the registry's lock.
 */
#include "internal.h"

enum { FIN_ARMED, FIN_CLAIMED, FIN_DETACHED };

struct wref_finalizer {
	_Atomic int state;        /* FIN_* */
	struct wref__cb *cb;      /* held; NULL only while being built */
	void (*fn)(void *arg);
	void *arg;                /* constant */
	struct wref__watch watch; /* on cb->watches while armed */
	struct wref__work work;   /* the death run on the executor */
	/* at-exit registry link, under reg_lock; pointing to itself while
	 * not listed */
	struct cds_list_head rnode;
};

/* armed finalizers with the at-exit flag; not a hot path */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static CDS_LIST_HEAD(reg_list);

/* fork (fork.c, slot WREF_FORK_FINALIZERS): the child must not inherit
 * reg_lock held by a thread that is gone (its exit runs the at-exit hook,
 * which takes the lock) */
static void reg_fork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

static void reg_fork_release(void)
{
	pthread_mutex_unlock(&reg_lock);
}

__attribute__((constructor)) static void finalize_init(void)
{
	wref__on_fork(WREF_FORK_FINALIZERS, reg_fork_prepare, reg_fork_release,
		      reg_fork_release);
}

static bool reg_listed(struct wref_finalizer *f)
{
	return !cds_list_empty(&f->rnode);
}

/* cds_list_del_init: unlinking twice is harmless */
static void reg_unlink(struct wref_finalizer *f)
{
	cds_list_del_init(&f->rnode);
}

static bool claim(struct wref_finalizer *f, int to)
{
	int armed = FIN_ARMED;
	/* acq_rel: pairs with the other claimers' CAS and with the relaxed
	 * loads in wref_finalizer_alive() (snapshots); the loser reads
	 * nothing through the state, hence relaxed on failure */
	return atomic_compare_exchange_strong_explicit(&f->state, &armed, to,
			memory_order_acq_rel, memory_order_relaxed);
}

/*
 * After a won claim: take @f off the object's watch list and the at-exit
 * registry.  A watch already unlinked by the dying thread fires and loses
 * its claim, harmlessly.
 */
static void disarm(struct wref_finalizer *f)
{
	wref__watch_del(f->cb, &f->watch);
	pthread_mutex_lock(&reg_lock);
	reg_unlink(f);
	pthread_mutex_unlock(&reg_lock);
}

static void fin_destroy(void *p)
{
	struct wref_finalizer *f = p;
	if (!f->cb)
		return;
	/* the library's ref is gone, so a winner already disarmed; but the
	 * at-exit hook may have won while wref_finalize() was still linking
	 * the watch */
	wref__watch_del(f->cb, &f->watch);
	wref__cb_unhold(f->cb);
}

static const wref_type fin_type = {
	.name = "wref_finalizer",
	.destroy = fin_destroy,
};

/* executor: the death run; the claim's winner owns the library's ref */
static void fin_run(struct wref__work *w)
{
	struct wref_finalizer *f =
		caa_container_of(w, struct wref_finalizer, work);
	disarm(f);
	f->fn(f->arg);
	wref_release(f);
}

/* the object died: no user code here, queue the run */
static bool fin_fire(struct wref__watch *w, bool pinned)
{
	struct wref_finalizer *f =
		caa_container_of(w, struct wref_finalizer, watch);
	(void)pinned;
	if (!claim(f, FIN_CLAIMED))
		return false;
	f->work.run = fin_run;
	wref__defer_death(&f->work);
	return false;
}

static const struct wref__watch_ops fin_watch_ops = {
	.fire = fin_fire,
	.off = offsetof(struct wref_finalizer, watch),
};

/* shutdown hook: run every armed at-exit finalizer once, outside the lock,
 * until the registry is empty: those the finalizers arm run too (CPython's
 * atexit semantics; issue 16 item 6).  Each runs at most once (claim). */
static void fin_atexit_hook(void)
{
	for (;;) {
		struct wref_finalizer *f, *next;
		CDS_LIST_HEAD(run);

		pthread_mutex_lock(&reg_lock);
		cds_list_for_each_entry_safe(f, next, &reg_list, rnode) {
			if (!claim(f, FIN_CLAIMED))
				continue; /* its winner unlinks it */
			/* onto our private list: @f is ours now */
			cds_list_move(&f->rnode, &run);
		}
		pthread_mutex_unlock(&reg_lock);
		if (cds_list_empty(&run))
			return;
		cds_list_for_each_entry_safe(f, next, &run, rnode) {
			CDS_INIT_LIST_HEAD(&f->rnode); /* not listed */
			wref__watch_del(f->cb, &f->watch);
			f->fn(f->arg);
			wref_release(f); /* the library's ref */
		}
	}
}

static void hook_once(void)
{
	static _Atomic bool hooked;
	/* relaxed: wref__on_shutdown() is idempotent and itself atomic; the
	 * flag only spares its CAS on later calls */
	if (!atomic_load_explicit(&hooked, memory_order_relaxed)) {
		wref__on_shutdown(fin_atexit_hook);
		atomic_store_explicit(&hooked, true, memory_order_relaxed);
	}
}

/* list or unlist @f for the at-exit run; under reg_lock */
static void set_atexit_locked(struct wref_finalizer *f, bool on)
{
	/* relaxed (both loads): a won claim happens-before its winner's
	 * reg_unlink under this lock, so an ARMED read here is never
	 * re-listed after it; and the at-exit hook claims under this lock,
	 * so a finalizer it moved to its private run list reads claimed
	 * here and is left alone (unlinking it would race with its walk) */
	bool armed = atomic_load_explicit(&f->state, memory_order_relaxed) ==
		     FIN_ARMED;
	if (on && armed && !reg_listed(f))
		cds_list_add(&f->rnode, &reg_list);
	else if (!on && armed)
		reg_unlink(f); /* a claimed one is its winner's to unlink */
}

wref_finalizer *wref_finalize(void *obj, void (*fn)(void *arg), void *arg,
			      unsigned flags)
{
	if (!obj || !fn || (flags & ~(unsigned)WREF_FIN_ATEXIT)) {
		errno = EINVAL;
		return NULL;
	}
	wref__check(obj, "wref_finalize");
	struct wref__cb *cb = wref__cb_get(obj); /* EINVAL for NO_WEAK */
	if (!cb)
		return NULL;
	struct wref_finalizer *f = wref_new(&fin_type, sizeof *f);
	if (!f)
		return NULL;
	wref__cb_hold(cb); /* @obj, alive, keeps @cb until here */
	f->cb = cb;
	f->fn = fn;
	f->arg = arg;
	atomic_init(&f->state, FIN_ARMED);
	CDS_INIT_LIST_HEAD(&f->rnode);
	f->watch.ops = &fin_watch_ops;
	wref_retain(f); /* the library's ref, owned by the claim's winner */
	if (flags & WREF_FIN_ATEXIT) {
		hook_once();
		pthread_mutex_lock(&reg_lock);
		set_atexit_locked(f, true);
		pthread_mutex_unlock(&reg_lock);
	}
	/* the caller holds a strong ref, so @obj cannot be dead; should it
	 * be (misuse), the finalizer runs as for a death */
	if (wref__watch_add(cb, &f->watch) < 0)
		fin_fire(&f->watch, false);
	return f;
}

bool wref_finalizer_alive(wref_finalizer *f)
{
	if (f)
		wref__check(f, "wref_finalizer_alive");
	/* relaxed: a snapshot, nothing is read through it */
	return f && atomic_load_explicit(&f->state, memory_order_relaxed) ==
			    FIN_ARMED;
}

bool wref_finalizer_call(wref_finalizer *f)
{
	if (f)
		wref__check(f, "wref_finalizer_call");
	if (!f || !claim(f, FIN_CLAIMED))
		return false;
	disarm(f);
	f->fn(f->arg);
	wref_release(f); /* the library's ref */
	return true;
}

bool wref_finalizer_detach(wref_finalizer *f, void **arg)
{
	if (f)
		wref__check(f, "wref_finalizer_detach");
	if (!f || !claim(f, FIN_DETACHED))
		return false;
	disarm(f);
	if (arg)
		*arg = f->arg;
	wref_release(f); /* the library's ref */
	return true;
}

bool wref_finalizer_peek(wref_finalizer *f, void **arg)
{
	if (!wref_finalizer_alive(f))
		return false;
	if (arg)
		*arg = f->arg;
	return true;
}

void wref_finalizer_set_atexit(wref_finalizer *f, bool on)
{
	if (!f)
		return;
	wref__check(f, "wref_finalizer_set_atexit");
	if (on)
		hook_once();
	pthread_mutex_lock(&reg_lock);
	set_atexit_locked(f, on);
	pthread_mutex_unlock(&reg_lock);
}
