/*
 * signal.c - an observer / event bus whose subscribers are held weakly.
 *
 * Subscriptions live in a cds_lfht keyed by the (control block, function)
 * pair, so connect detects duplicates and disconnect finds its node without
 * a lock.  Each subscription also sits on its object's watch list, owned by
 * the signal: when the object dies, the dying thread removes the node from
 * the table at once, so a dead subscriber leaves len without any
 * unsubscribe call.
 *
 * A subscription node has two references: the table's (dropped by whoever
 * removes the node with a successful cds_lfht_del) and the watch's (dropped
 * by whoever unlinks the watch: wref__watch_del's winner, or the fire).
 * The last one retires the node through call_rcu, since emitters may still
 * be walking past it.
 *
 * Emit pins every live subscriber inside one RCU read-side section, leaves
 * it, sorts the snapshot into connection order and calls each subscriber
 * with no lock held and outside RCU: a subscriber may connect, disconnect,
 * emit, and release anything, the signal included.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <urcu/rculfhash.h>

struct sub {
	struct cds_lfht_node node;
	struct wref__cb *cb;      /* held */
	wref_method_fn fn;
	uint64_t seq;             /* connection order */
	struct wref__watch watch; /* owner: the signal */
	_Atomic unsigned refs;    /* table + watch, see above */
	struct rcu_head rcu;
};

struct wref_signal {
	struct cds_lfht *ht;
	_Atomic size_t len;  /* subscriptions in the table */
	_Atomic uint64_t seq; /* next connection number */
};

struct sub_key {
	const struct wref__cb *cb;
	wref_method_fn fn;
};

static uint64_t sub_hash(const struct sub_key *k)
{
	uint64_t h = wref__hash_ptr(k->cb);
	/* boost::hash_combine: the pair's order matters */
	return h ^ (wref__hash_ptr((const void *)(uintptr_t)k->fn) +
		    UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2));
}

static int sub_match(struct cds_lfht_node *node, const void *key)
{
	const struct sub_key *k = key;
	struct sub *s = caa_container_of(node, struct sub, node);
	/* TSan: pairs with the release before cds_lfht_add_unique() */
	wref__tsan_acquire(s);
	return s->cb == k->cb && s->fn == k->fn;
}

static void sub_free(struct rcu_head *head)
{
	struct sub *s = caa_container_of(head, struct sub, rcu);
	wref__rcu_tsan_after_gp(head);
	wref__cb_unhold(s->cb);
	wref__free(s);
}

static void sub_put(struct sub *s)
{
	/* acq_rel: the two owners' last accesses happen-before the retire */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		wref__call_rcu(&s->rcu, sub_free);
}

/* @s left the table through our cds_lfht_del: drop the table's ref */
static void sub_removed(struct wref_signal *sig, struct sub *s)
{
	atomic_fetch_sub(&sig->len, 1);
	sub_put(s);
}

/* the subscriber died: runs in a read-side section, the signal pinned */
static void sub_fire(struct wref__watch *w)
{
	struct sub *s = caa_container_of(w, struct sub, watch);
	struct wref_signal *sig = w->owner;
	if (cds_lfht_del(sig->ht, &s->node) == 0)
		sub_removed(sig, s); /* else a disconnect got there first */
	sub_put(s); /* the watch's ref: unlinked by the dying thread */
}

static void signal_destroy(void *p)
{
	struct wref_signal *sig = p;
	struct cds_lfht_iter iter;
	struct sub *s;

	if (!sig->ht)
		return;
	/* no fire can be running: each pins the signal, and it is dead.  A
	 * watch the dying thread skipped (it could not pin us) is still
	 * linked, and ours to unlink. */
	wref__rcu_lock();
	cds_lfht_for_each_entry(sig->ht, &iter, s, node) {
		wref__tsan_acquire(s);
		if (cds_lfht_del(sig->ht, &s->node) != 0)
			continue;
		/* read before the puts: the node may go with the last one */
		struct wref__cb *cb = s->cb;
		bool linked = wref__watch_del(cb, &s->watch);
		sub_removed(sig, s);
		if (linked)
			sub_put(s);
	}
	wref__rcu_unlock();
	cds_lfht_destroy(sig->ht, NULL);
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
	sig->ht = cds_lfht_new(8, 8, 0,
			       CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
			       NULL);
	if (!sig->ht) {
		wref_release(sig);
		errno = ENOMEM;
		return NULL;
	}
	return sig;
}

int wref_signal_connect(wref_signal *sig, void *obj, wref_method_fn fn)
{
	if (!sig || !obj || !fn)
		return -EINVAL;
	wref__check(obj, "wref_signal_connect");
	struct wref__cb *cb = wref__cb_get(obj); /* EINVAL for NO_WEAK */
	if (!cb)
		return -errno;
	struct sub *s = wref__zalloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	wref__cb_hold(cb); /* @obj, alive, keeps @cb until here */
	s->cb = cb;
	s->fn = fn;
	s->seq = atomic_fetch_add(&sig->seq, 1);
	s->watch.fire = sub_fire;
	s->watch.owner = sig;
	atomic_init(&s->refs, 2);
	cds_lfht_node_init(&s->node);
	/* watch first: the caller's strong ref keeps @obj alive, so it cannot
	 * fire before the node is in the table; a node in the table always
	 * has its watch linked, which signal_destroy() relies on */
	if (wref__watch_add(cb, &s->watch) < 0) {
		wref__cb_unhold(cb);
		wref__free(s);
		return -ENOENT; /* dead: the caller held no strong ref */
	}
	struct sub_key k = { cb, fn };
	/* before publishing, so len never reads one short of the table */
	atomic_fetch_add(&sig->len, 1);
	/* TSan: pairs with the acquires after lookups and walks */
	wref__tsan_release(s);
	wref__rcu_lock();
	struct cds_lfht_node *got = cds_lfht_add_unique(sig->ht, sub_hash(&k),
							sub_match, &k, &s->node);
	wref__rcu_unlock();
	if (got == &s->node)
		return 0;
	atomic_fetch_sub(&sig->len, 1);
	wref__watch_del(cb, &s->watch); /* linked: @obj is alive */
	wref__cb_unhold(cb);
	wref__free(s); /* never published */
	return -EEXIST;
}

int wref_signal_disconnect(wref_signal *sig, void *obj, wref_method_fn fn)
{
	if (!sig || !obj || !fn)
		return -EINVAL;
	wref__check(obj, "wref_signal_disconnect");
	struct wref__hdr *h = wref__hdr(obj);
	struct wref__cb *cb = wref__cb_peek(h);
	if (!cb)
		return wref__type(h)->flags & WREF_TYPE_NO_WEAK ? -EINVAL
								 : -ENOENT;
	struct sub_key k = { cb, fn };
	struct cds_lfht_iter iter;
	struct sub *s = NULL;
	wref__rcu_lock();
	cds_lfht_lookup(sig->ht, sub_hash(&k), sub_match, &k, &iter);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
	if (node && cds_lfht_del(sig->ht, node) == 0)
		s = caa_container_of(node, struct sub, node);
	wref__rcu_unlock();
	if (!s)
		return -ENOENT;
	/* the table's ref, still ours, keeps @s valid here */
	if (wref__watch_del(cb, &s->watch))
		sub_put(s); /* else the dying thread fires and drops it */
	sub_removed(sig, s);
	return 0;
}

struct pin {
	void *obj;
	wref_method_fn fn;
	uint64_t seq;
};

static int pin_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct pin *)a)->seq;
	uint64_t y = ((const struct pin *)b)->seq;
	return (x > y) - (x < y);
}

size_t wref_signal_emit(wref_signal *sig, void *arg)
{
	struct pin buf[16], *v = buf;
	size_t n = 0, cap = sizeof buf / sizeof buf[0];
	struct cds_lfht_iter iter;
	struct sub *s;

	if (!sig)
		return 0;
	wref__rcu_lock();
	cds_lfht_for_each_entry(sig->ht, &iter, s, node) {
		/* TSan: pairs with the release before cds_lfht_add_unique() */
		wref__tsan_acquire(s);
		if (n == cap) {
			/* grow before pinning: a pin we could not store would
			 * have to be released here, inside the read side */
			struct pin *nv = wref__alloc(2 * cap * sizeof *nv);
			if (!nv)
				break; /* ENOMEM: call those pinned so far */
			memcpy(nv, v, n * sizeof *nv);
			if (v != buf)
				wref__free(v);
			v = nv;
			cap *= 2;
		}
		void *obj = wref__cb_upgrade(s->cb);
		if (obj)
			v[n++] = (struct pin){ obj, s->fn, s->seq };
	}
	wref__rcu_unlock();
	if (n > 1)
		qsort(v, n, sizeof *v, pin_cmp);
	for (size_t i = 0; i < n; i++) {
		v[i].fn(v[i].obj, arg);
		wref_release(v[i].obj);
	}
	if (v != buf)
		wref__free(v);
	return n;
}

size_t wref_signal_len(wref_signal *sig)
{
	return sig ? atomic_load(&sig->len) : 0;
}
