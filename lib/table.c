/*
 * table.c - the weak-entry table layer (see table.h): entries on cds_lfht
 * with prompt removal by identity, the retirement count, container
 * teardown, key hashing, foreach and the container constructor.
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

/* ---- entries ------------------------------------------------------------ */

static bool entry_fire(struct wref__watch *w, bool pinned)
{
	struct wref__entry *e = caa_container_of(w, struct wref__entry, watch);
	(void)pinned;
	/* inside the dying thread's read-side section, the owner pinned:
	 * remove exactly this node; a newer entry under the key survives.
	 * Then drop the watch count (the fire is over) and, if we unlinked
	 * it, the table count, in one RMW */
	uint32_t n = wref__entry_unlink(wref__entry_table(e), e) ? 2 : 1;
	wref__entry_put_n(e, n);
	return false;
}

void wref__entry_init(struct wref__table *t, struct wref__entry *e,
		      struct wref__cb *cb)
{
	cds_lfht_node_init(&e->node);
	e->cb = cb;
	e->watch.link = 0;
	e->watch.ops = &t->wops;
	atomic_init(wref__entry_refs(e), cb ? 2 : 1);
	if (cb)
		wref__cb_hold(cb);
}

void wref__entry_init_linked(struct wref__entry *e, struct wref__cb *cb)
{
	/* the watch (@t's wops) was linked by wref__cb_get_embed */
	cds_lfht_node_init(&e->node);
	e->cb = cb;
	atomic_init(wref__entry_refs(e), 2);
}

/* let go of @e's block hold and its memory: an embedded entry's memory is
 * one more hold on the block (wref__cb_get_embed) */
static void entry_release_mem(struct wref__entry *e)
{
	struct wref__cb *cb = e->cb;
	if (cb && wref__cb_embeds(cb, e)) {
		wref__cb_unhold_n(cb, 2);
		return;
	}
	if (cb)
		wref__cb_unhold(cb);
	wref__free(e);
}

void wref__entry_arm(struct wref__entry *e)
{
	if (e->cb) {
		int r = wref__watch_add(e->cb, &e->watch);
		/* the caller holds a strong ref: the object cannot be dead */
		(void)r;
	}
}

void wref__entry_discard(struct wref__entry *e)
{
	if (e->cb)
		wref__watch_del(e->cb, &e->watch);
	entry_release_mem(e);
}

struct wref__entry *wref__entry_add_unique(struct wref__entry *e,
					   uint64_t hash, const void *key)
{
	struct wref__table *t = wref__entry_table(e);
	/* TSan: publication through lfht; pairs with the acquire in
	 * wref__table_lookup()/first/next */
	wref__tsan_release(&e->node);
	struct cds_lfht_node *n = cds_lfht_add_unique(t->ht, hash,
						      t->ops->match, key,
						      &e->node);
	if (n == &e->node) {
		if (e->cb)
			/* relaxed: len is a snapshot (table.h) */
			atomic_fetch_add_explicit(wref__table_len_slot(t), 1,
						  memory_order_relaxed);
		return e;
	}
	wref__tsan_acquire(n);
	return caa_container_of(n, struct wref__entry, node);
}

struct wref__entry *wref__entry_add_replace(struct wref__entry *e,
					    uint64_t hash, const void *key)
{
	struct wref__table *t = wref__entry_table(e);
	wref__tsan_release(&e->node);
	struct cds_lfht_node *n = cds_lfht_add_replace(t->ht, hash,
						       t->ops->match, key,
						       &e->node);
	struct wref__entry *old = n ? caa_container_of(n, struct wref__entry,
						       node) : NULL;
	if (old)
		wref__tsan_acquire(n);
	long d = (e->cb != NULL) - (old && old->cb);
	if (d)
		/* relaxed: len is a snapshot (table.h) */
		atomic_fetch_add_explicit(wref__table_len_slot(t), d,
					  memory_order_relaxed);
	return old;
}

bool wref__entry_replace(struct wref__entry *old, struct wref__entry *e,
			 uint64_t hash, const void *key)
{
	struct wref__table *t = wref__entry_table(e);
	struct cds_lfht_iter it;
	/* an iterator on exactly @old (among duplicates of the key); replace
	 * fails (-ENOENT) if @old is removed meanwhile */
	cds_lfht_lookup(t->ht, hash, t->ops->match, key, &it);
	while (it.node && it.node != &old->node)
		cds_lfht_next_duplicate(t->ht, t->ops->match, key, &it);
	if (!it.node)
		return false;
	wref__tsan_release(&e->node);
	if (cds_lfht_replace(t->ht, &it, hash, t->ops->match, key,
			     &e->node) != 0)
		return false;
	long d = (e->cb != NULL) - (old->cb != NULL);
	if (d)
		/* relaxed: len is a snapshot (table.h) */
		atomic_fetch_add_explicit(wref__table_len_slot(t), d,
					  memory_order_relaxed);
	return true;
}

bool wref__entry_unlink(struct wref__table *t, struct wref__entry *e)
{
	if (cds_lfht_del(t->ht, &e->node) != 0)
		return false;
	if (e->cb)
		/* relaxed: len is a snapshot (table.h) */
		atomic_fetch_sub_explicit(wref__table_len_slot(t), 1,
					  memory_order_relaxed);
	return true;
}

void wref__entry_removed(struct wref__entry *e)
{
	const struct wref__table_ops *ops = wref__entry_table(e)->ops;
	if (ops->forget)
		ops->forget(e);
	/* false: the dying thread took the watch and drops its count when
	 * its fire is over.  Ours (the watch's, if we unlinked it, and the
	 * table's) go in one RMW */
	wref__entry_put_n(e, e->cb && wref__watch_del(e->cb, &e->watch) ?
				     2 : 1);
}

void wref__entry_put_n(struct wref__entry *e, uint32_t n)
{
	/* acq_rel: every putter's uses of the entry happen-before retire
	 * (an RMW rather than release + fence: TSan does not model fences) */
	if (atomic_fetch_sub_explicit(wref__entry_refs(e), n,
				      memory_order_acq_rel) != n)
		return;
	wref__entry_table(e)->ops->retire(e);
}

void wref__entry_put(struct wref__entry *e)
{
	wref__entry_put_n(e, 1);
}

static void entry_free_cb(struct rcu_head *head)
{
	struct wref__entry *e = caa_container_of(head, struct wref__entry,
						 rcu);
	wref__rcu_tsan_after_gp(head);
	entry_release_mem(e);
}

void wref__entry_free_rcu(struct wref__entry *e)
{
	wref__call_rcu(&e->rcu, entry_free_cb);
}

/* ---- walks ------------------------------------------------------------- */

struct wref__entry *wref__table_first(struct wref__table *t,
				      struct cds_lfht_iter *it)
{
	cds_lfht_first(t->ht, it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(it);
	if (!n)
		return NULL;
	wref__tsan_acquire(n);
	return caa_container_of(n, struct wref__entry, node);
}

struct wref__entry *wref__table_next(struct wref__table *t,
				     struct cds_lfht_iter *it)
{
	cds_lfht_next(t->ht, it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(it);
	if (!n)
		return NULL;
	wref__tsan_acquire(n);
	return caa_container_of(n, struct wref__entry, node);
}

/* ---- table ------------------------------------------------------------- */

struct table_gone {
	struct wref__work work;
	struct cds_lfht *ht;
};

int wref__table_init(struct wref__table *t, void *owner, size_t initial_size,
		     const struct wref__table_ops *ops)
{
	unsigned long init = 1;
	while (init < initial_size && init < (1UL << 30))
		init <<= 1;
	if (init < 16)
		init = 16;
	if ((void *)t != owner)
		abort(); /* a layout error of a container, not a runtime one */
	t->ops = ops;
	t->wops.fire = entry_fire;
	t->wops.owner = owner;
	t->wops.off = 0;
	t->wops.is_ref = false;
	t->wops.owed = NULL;
	for (int i = 0; i < WREF__LEN_SLOTS; i++)
		atomic_init(&t->len[i].n, 0);
	atomic_init(&t->buckets, init);
	t->min_buckets = init;
	atomic_init(&t->growing, 0);
	/* the flavour is urcu-bp (included first by internal.h): no thread
	 * registration needed; liburcu registers its fork handlers with the
	 * flavour on the first table */
	t->ht = cds_lfht_new(init, 16, 0, 0, NULL); /* we resize: grow_run */
	if (!t->ht)
		return -ENOMEM;
	return 0;
}

/* jemalloc's control call: weak, NULL unless some loaded object defines it
 * (as for mallocx in alloc.c) */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
		   size_t newlen) __attribute__((weak));

/* A resize allocates the lfht's bucket arrays for the new orders (up to
 * 8 KiB in small size classes), and a jemalloc thread cache fills each
 * class with several regions at once: after a table's growth from 16 to
 * 16384 buckets the resizing thread kept ~150 KiB of spare regions nobody
 * else uses (7 bytes per entry of a 20000-entry map).  Hand them back;
 * resizes are rare (log2 of the table's size in all). */
static void trim_tcache(void)
{
	if (mallctl)
		(void)mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
}

static void grow_run(struct wref__work *w)
{
	struct wref__table *t = caa_container_of(w, struct wref__table, grow);
	for (;;) {
		size_t n = wref__table_len(t);
		/* relaxed: only this work writes buckets */
		unsigned long b = atomic_load_explicit(&t->buckets,
						       memory_order_relaxed);
		unsigned long nb = b;
		if (n >= 2 * b && b < (1UL << 30)) {
			while (2 * nb <= n && nb < (1UL << 30))
				nb <<= 1;
		} else if (n < b / 8 && b > t->min_buckets) {
			while (nb > n && nb > t->min_buckets)
				nb >>= 1;
		} else {
			break;
		}
		b = nb;
		/* on the executor: not inside a read-side section, as
		 * cds_lfht_resize (a grace period) requires */
		cds_lfht_resize(t->ht, b);
		atomic_store_explicit(&t->buckets, b, memory_order_relaxed);
		trim_tcache();
	}
	/* release: pairs with the exchange in wref__table_grow (a later grow
	 * sees our buckets) */
	atomic_store_explicit(&t->growing, 0, memory_order_release);
	wref_release(t->wops.owner); /* may destroy the container: last */
}

void wref__table_grow(struct wref__table *t)
{
	/* acq_rel: acquire pairs with grow_run's release (the work item is
	 * free again); release is not needed but harmless */
	if (atomic_exchange_explicit(&t->growing, 1, memory_order_acq_rel))
		return;
	wref_retain(t->wops.owner); /* the work keeps the container */
	t->grow.run = grow_run;
	wref__defer(&t->grow);
}

/* the entries a clear walk unlinked, finished after its read-side
 * section (the entry's own memory has no link to spare: its watch may
 * still be armed, see struct wref__entry) */
#define CLEAR_STACK 64
struct clear_list {
	struct wref__entry **v;
	size_t n, cap;
	struct wref__entry *stack[CLEAR_STACK];
};

/* room for one more; false if out of memory */
static bool clear_room(struct clear_list *l)
{
	if (l->n < l->cap)
		return true;
	struct wref__entry **v = wref__alloc(2 * l->cap * sizeof *v);
	if (!v)
		return false;
	for (size_t i = 0; i < l->n; i++)
		v[i] = l->v[i];
	if (l->v != l->stack)
		wref__free(l->v);
	l->v = v;
	l->cap *= 2;
	return true;
}

/* One walk of the table: unlink every entry it meets inside one read-side
 * section, collecting them (we own each one's table count, so none can
 * retire), then finish them outside it (retirement may queue executor
 * work).  A single walk ends even while inserts continue; it meets every
 * entry present during the whole walk, unless the list cannot grow (out
 * of memory): then it stops early and *@more is set.  Returns how many
 * entries it unlinked. */
static size_t clear_walk(struct wref__table *t, bool *more)
{
	struct clear_list l = { .cap = CLEAR_STACK };
	l.v = l.stack;
	*more = false;
	struct cds_lfht_iter it;
	wref__rcu_lock();
	for (struct wref__entry *e = wref__table_first(t, &it); e;
	     e = wref__table_next(t, &it)) {
		if (!clear_room(&l)) {
			*more = true;
			break;
		}
		if (wref__entry_unlink(t, e))
			l.v[l.n++] = e;
	}
	wref__rcu_unlock();
	for (size_t i = 0; i < l.n; i++)
		wref__entry_removed(l.v[i]);
	if (l.v != l.stack)
		wref__free(l.v);
	return l.n;
}

/* Remove every entry present when the call starts (entries inserted
 * meanwhile may stay).  The old form repeated passes until one unlinked
 * nothing, which never ends while inserts outpace it (issue 16); a walk
 * is repeated only when it ran out of memory. */
void wref__table_clear(struct wref__table *t)
{
	bool more;
	do
		clear_walk(t, &more);
	while (more);
	wref__table_grow_check(t);
}

static void table_gone_run(struct wref__work *w)
{
	struct table_gone *g = caa_container_of(w, struct table_gone, work);
	/* on the executor: never inside a read-side section nor on the
	 * call_rcu thread, as cds_lfht_destroy requires */
	cds_lfht_destroy(g->ht, NULL);
	wref__free(g);
}

void wref__table_fini(struct wref__table *t)
{
	if (!t->ht)
		return;
	/* nobody inserts any more (the container is dying; deaths only
	 * unlink): walk until a walk finds nothing */
	bool more;
	while (clear_walk(t, &more) || more)
		;
	struct table_gone *g = wref__alloc(sizeof *g);
	if (!g) {
		/* out of memory: destroy here (we are not inside a
		 * read-side section; the callers are user threads) */
		cds_lfht_destroy(t->ht, NULL);
	} else {
		g->ht = t->ht;
		g->work.run = table_gone_run;
		wref__defer(&g->work);
	}
	t->ht = NULL;
}

/* ---- keys ---------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 32;
	x *= UINT64_C(0xd6e8feb86659fd93);
	x ^= x >> 32;
	x *= UINT64_C(0xd6e8feb86659fd93);
	x ^= x >> 32;
	return x;
}

/* keys longer than 16 bytes (wref__hash_bytes has the short ones) */
uint64_t wref__hash_long(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ (n * UINT64_C(0xff51afd7ed558ccd));
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = (h ^ mix64(v)) * UINT64_C(0x9fb21c651e98df25);
		s += 8;
		n -= 8;
	}
	if (n) {
		/* the tail in whole loads: a variable-length memcpy into a
		 * word compiles to byte stores reloaded as one word, a
		 * store-forwarding stall (a third of a short-key get) */
		uint64_t v;
		if (s - (const unsigned char *)p >= 8 - (ptrdiff_t)n) {
			memcpy(&v, s + n - 8, 8); /* overlaps the last word */
		} else if (n >= 4) {
			uint32_t a, b;
			memcpy(&a, s, 4);
			memcpy(&b, s + n - 4, 4);
			v = (uint64_t)a << 32 | b;
		} else {
			v = (uint64_t)s[0] << 16 | (uint64_t)s[n / 2] << 8 |
			    s[n - 1];
		}
		h = (h ^ mix64(v ^ n)) * UINT64_C(0x9fb21c651e98df25);
	}
	return mix64(h);
}

struct wref__cb *wref__key_cb_embed(void *obj, bool by_value,
				    struct wref__table *t, size_t size,
				    void **mem)
{
	if (mem)
		*mem = NULL;
	if (!obj) {
		errno = EINVAL;
		return NULL;
	}
	wref__check(obj, "container insert");
	if (by_value) {
		const wref_type *ty = wref__type(wref__hdr(obj));
		if (!ty->hash || !ty->equal) {
			errno = EINVAL;
			return NULL;
		}
	}
	struct wref__cb *cb = t ? wref__cb_get_embed(obj, size, &t->wops, mem)
				: wref__cb_get(obj);
	if (cb && by_value)
		wref__cb_mem_rcu(cb); /* objkey_match reads its memory */
	return cb;
}

int wref__objkey_init(struct wref__objkey *k, const void *obj, bool by_value)
{
	if (!obj)
		return -EINVAL;
	wref__check(obj, "container lookup");
	struct wref__hdr *h = wref__hdr(obj);
	k->obj = obj;
	k->by_value = by_value;
	k->cb = wref__cb_peek(h);
	if (by_value) {
		const wref_type *ty = wref__type(h);
		if (!ty->hash || !ty->equal)
			return -EINVAL;
		return 0;
	}
	return k->cb ? 0 : -ENOENT;
}

uint64_t wref__objkey_hash(const struct wref__objkey *k)
{
	if (!k->by_value)
		return wref__hash_ptr(k->obj);
	if (k->cb)
		return wref__cb_hash(k->cb); /* the type's, computed once */
	return wref__type(wref__hdr(k->obj))->hash(k->obj);
}

int wref__objkey_match(struct cds_lfht_node *node, const void *key)
{
	const struct wref__objkey *k = key;
	struct wref__entry *e = caa_container_of(node, struct wref__entry,
						 node);
	/* TSan: lfht calls match on nodes it meets; pairs with the release
	 * before the node's add */
	wref__tsan_acquire(node);
	if (e->cb == k->cb)
		return 1;
	if (!k->by_value)
		return 0;
	/* a dead entry never matches.  Its memory stays valid for the
	 * read-side section all the same: a by-value member's block has
	 * MEM_RCU (wref__key_cb), so its header (type) and payload are freed
	 * after a grace period */
	if (wref__cb_dead(e->cb))
		return 0;
	struct wref__hdr *mem = e->cb->mem;
	const wref_type *kt = wref__type(wref__hdr(k->obj));
	if (wref__type(mem)->equal != kt->equal)
		return 0;
	return kt->equal(wref__payload(mem), k->obj);
}

/* ---- foreach ------------------------------------------------------------- */

static void unhold(struct wref__entry **v, size_t n);

/* Hold every entry of a real object (memory only: the objects are not
 * pinned, so the walk keeps no member alive but the one being visited) */
static ssize_t snapshot(struct wref__table *t, struct wref__entry ***out)
{
	size_t cap = wref__table_len(t) + 16, n;
	struct wref__entry **v;
	for (;;) {
		v = wref__alloc(cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		struct cds_lfht_iter it;
		bool full = false;
		n = 0;
		wref__rcu_lock();
		for (struct wref__entry *e = wref__table_first(t, &it); e;
		     e = wref__table_next(t, &it)) {
			if (n == cap) {
				full = true;
				break;
			}
			/* placeholders and retiring entries are not members */
			if (e->cb && wref__entry_tryhold(e))
				v[n++] = e;
		}
		wref__rcu_unlock();
		if (!full)
			break;
		unhold(v, n);
		cap *= 2; /* the table grew under us */
	}
	*out = v;
	return (ssize_t)n;
}

/* drop a snapshot's entry holds and free it */
static void unhold(struct wref__entry **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		wref__entry_put(v[i]);
	wref__free(v);
}

int wref__table_foreach(struct wref__table *t,
		int (*visit)(const struct wref__pin *p, void *ctx), void *ctx)
{
	/* fn may release the container's last user ref: the walk holds its
	 * own until its last entry hold is dropped (a retire reads the ops
	 * through the container) */
	void *owner = wref_retain(t->wops.owner);
	struct wref__entry **v;
	ssize_t n = snapshot(t, &v);
	if (n < 0) {
		wref_release(owner);
		return (int)n;
	}
	int ret = 0;
	for (ssize_t i = 0; i < n && !ret; i++) {
		struct wref__entry *e = v[i];
		/* removed since the snapshot (del, replace, death): skip; our
		 * hold keeps the node's memory valid for the flag read */
		if (cds_lfht_is_node_deleted(&e->node))
			continue;
		/* pin the object only around its own fn call; the entry's
		 * hold keeps its control block valid */
		void *obj = wref__cb_upgrade(e->cb);
		if (!obj)
			continue; /* died since the snapshot */
		struct wref__pin p = { e, obj };
		ret = visit(&p, ctx);
		wref_release(obj);
	}
	unhold(v, (size_t)n);
	wref_release(owner); /* may destroy the container: last */
	return ret;
}

void wref__container_destroy(void *p)
{
	wref__table_fini(p); /* the payload starts with its table */
}

void *wref__container_new(const wref_type *type, size_t size,
			  const wref_map_options *opt, unsigned allowed,
			  const struct wref__table_ops *ops)
{
	static const wref_map_options def;
	if (!opt)
		opt = &def;
	if (opt->flags & ~allowed) {
		errno = EINVAL;
		return NULL;
	}
	void *c = wref_new(type, size);
	if (!c)
		return NULL;
	if (wref__table_init(c, c, opt->initial_size, ops) != 0) {
		wref_release(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}
