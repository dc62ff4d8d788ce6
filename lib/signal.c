/*
 * signal.c - an observer / event bus whose subscribers are held weakly.
 *
 * Subscriptions are weak entries of the table layer (table.h) keyed by the
 * (control block, function) pair: connect detects duplicates and
 * disconnect finds its entry without a lock, and when a subscriber dies
 * the dying thread removes its entries at once, so it leaves len without
 * any unsubscribe call.
 *
 * Emit pins every live subscriber inside one RCU read-side section, leaves
 * it, sorts the snapshot into connection order and calls each subscriber
 * with no lock held and outside RCU: a subscriber may connect, disconnect,
 * emit, and release anything, the signal included.
 */
#include "table.h"

#include <string.h>

struct sub {
	struct wref__entry e; /* first: the table layer frees from here */
	wref_method_fn fn;
	uint64_t seq;         /* connection order */
};

struct wref_signal {
	struct wref__table t;
	_Atomic uint64_t seq; /* next connection number */
};

struct sub_key {
	const struct wref__cb *cb;
	wref_method_fn fn;
};

static uint64_t sub_hash(const struct sub_key *k)
{
	uint64_t h = wref__hash_ptr(k->cb);
	/* boost::hash_combine of the pair */
	return h ^ (wref__hash_ptr((const void *)(uintptr_t)k->fn) +
		    UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2));
}

static int sub_match(struct cds_lfht_node *node, const void *key)
{
	const struct sub_key *k = key;
	/* TSan: lfht calls us on nodes before handing them out; pairs with
	 * the release in wref__entry_add_unique() */
	wref__tsan_acquire(node);
	struct sub *s = caa_container_of(node, struct sub, e.node);
	return s->e.cb == k->cb && s->fn == k->fn;
}

static void sub_retire(struct wref__entry *e)
{
	wref__entry_free_rcu(e);
}

static const struct wref__table_ops sub_ops = {
	.match = sub_match,
	.retire = sub_retire,
};

static void signal_destroy(void *p)
{
	struct wref_signal *sig = p;
	/* no watch can be firing: each fire pins the signal, and it is
	 * dead; a watch the dying thread skipped is unlinked here */
	if (sig->t.ht)
		wref__table_fini(&sig->t);
}

static const wref_type signal_type = {
	.name = "wref_signal",
	.destroy = signal_destroy,
};

wref_signal *wref_signal_new(void)
{
	struct wref_signal *sig = wref_new(&signal_type, sizeof *sig);
	if (!sig)
		return NULL;
	int r = wref__table_init(&sig->t, sig, 0, &sub_ops);
	if (r < 0) {
		wref_release(sig);
		errno = -r;
		return NULL;
	}
	return sig;
}

int wref_signal_connect(wref_signal *sig, void *obj, wref_method_fn fn)
{
	if (!sig || !obj || !fn)
		return -EINVAL;
	wref__check(sig, "wref_signal_connect");
	wref__check(obj, "wref_signal_connect");
	struct wref__cb *cb = wref__cb_get(obj); /* EINVAL for NO_WEAK */
	if (!cb)
		return -errno;
	struct sub *s = wref__alloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	wref__entry_init(&sig->t, &s->e, cb);
	s->fn = fn;
	/* relaxed: a unique, increasing delivery order; it publishes
	 * nothing (the entry's publication does) */
	s->seq = atomic_fetch_add_explicit(&sig->seq, 1, memory_order_relaxed);
	/* armed before it is published: the caller's strong ref keeps @obj
	 * alive, so it cannot fire yet, and a disconnect racing with us can
	 * never leave a linked watch behind an entry no longer in the
	 * table (signal_destroy would miss it) */
	wref__entry_arm(&s->e);
	struct sub_key k = { cb, fn };
	wref__rcu_lock();
	struct wref__entry *got = wref__entry_add_unique(&s->e, sub_hash(&k),
							 &k);
	wref__rcu_unlock();
	if (got == &s->e)
		return 0;
	wref__entry_discard(&s->e); /* never published */
	return -EEXIST;
}

int wref_signal_disconnect(wref_signal *sig, void *obj, wref_method_fn fn)
{
	if (!sig || !obj || !fn)
		return -EINVAL;
	wref__check(sig, "wref_signal_disconnect");
	wref__check(obj, "wref_signal_disconnect");
	struct wref__hdr *h = wref__hdr(obj);
	struct wref__cb *cb = wref__cb_peek(h);
	if (!cb)
		return wref__type(h)->flags & WREF_TYPE_NO_WEAK ? -EINVAL
								 : -ENOENT;
	struct sub_key k = { cb, fn };
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&sig->t, sub_hash(&k), &k);
	bool ours = e && wref__entry_unlink(&sig->t, e);
	wref__rcu_unlock();
	if (!ours)
		return -ENOENT;
	wref__entry_removed(e); /* the table count keeps @e valid until here */
	return 0;
}

struct pin {
	void *obj;
	wref_method_fn fn;
	uint64_t seq;
};

static void insertion_sort(struct pin *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct pin p = v[i];
		size_t j = i;
		for (; j > 0 && v[j - 1].seq > p.seq; j--)
			v[j] = v[j - 1];
		v[j] = p;
	}
}

/*
 * Sort the snapshot into connection order (the table walks in hash order).
 * Insertion-sorted runs merged bottom-up through @tmp (room for @n pins,
 * or NULL when n <= RUN): no indirect compares, no allocation.
 */
#define RUN 16
static void pins_sort(struct pin *v, struct pin *tmp, size_t n)
{
	for (size_t lo = 0; lo < n; lo += RUN)
		insertion_sort(v + lo, n - lo < RUN ? n - lo : RUN);
	struct pin *src = v, *dst = tmp;
	for (size_t w = RUN; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t i = lo, mid = lo + w < n ? lo + w : n;
			size_t j = mid, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t k = lo;
			while (i < mid && j < hi)
				dst[k++] = src[j].seq < src[i].seq ? src[j++]
								   : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		struct pin *t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof *v);
}

/* a heap snapshot of @cap pins plus as many for the merge; NULL on ENOMEM */
static struct pin *pins_alloc(size_t cap)
{
	return wref__alloc(2 * cap * sizeof(struct pin));
}

size_t wref_signal_emit(wref_signal *sig, void *arg)
{
	if (sig)
		wref__check(sig, "wref_signal_emit");
	struct pin buf[RUN], *v = buf;
	size_t n = 0, cap = RUN;
	bool partial = false;
	struct cds_lfht_iter it;

	if (!sig)
		return 0;
	/* size the snapshot from len up front (it may still grow below) */
	size_t want = wref__table_len(&sig->t) + 4;
	if (want > cap) {
		struct pin *nv = pins_alloc(want);
		if (nv) {
			v = nv;
			cap = want;
		}
	}
	wref__rcu_lock();
	for (struct wref__entry *e = wref__table_first(&sig->t, &it); e;
	     e = wref__table_next(&sig->t, &it)) {
		struct sub *s = caa_container_of(e, struct sub, e);
		if (n == cap) {
			/* grow before pinning: a pin we could not store would
			 * have to be released here, inside the read side */
			struct pin *nv = pins_alloc(2 * cap);
			if (!nv) {
				partial = true; /* call those pinned so far */
				break;
			}
			memcpy(nv, v, n * sizeof *nv);
			if (v != buf)
				wref__free(v);
			v = nv;
			cap *= 2;
		}
		void *obj = wref__entry_upgrade(e);
		if (obj)
			v[n++] = (struct pin){ obj, s->fn, s->seq };
	}
	wref__rcu_unlock();
	/* on the heap the merge space follows the snapshot; on the stack
	 * n <= RUN and no merge is needed */
	pins_sort(v, v == buf ? NULL : v + cap, n);
	for (size_t i = 0; i < n; i++) {
		v[i].fn(v[i].obj, arg);
		wref_release(v[i].obj);
	}
	if (v != buf)
		wref__free(v);
	errno = partial ? ENOMEM : 0; /* after the calls: they may set it */
	return n;
}

size_t wref_signal_len(wref_signal *sig)
{
	if (sig)
		wref__check(sig, "wref_signal_len");
	return sig ? wref__table_len(&sig->t) : 0;
}
