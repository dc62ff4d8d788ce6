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
 * Retention (retain_ms, retain_max): the map's tier (tier.h) is touched
 * by every access that returns a value and forgets an entry a user-side
 * removal takes out.
 */
#include "table.h"
#include "tier.h"

#include <limits.h>
#include <string.h>

struct wref_valmap {
	struct wref__table t;
	unsigned flags;
	struct wref__tier *tier; /* NULL: no retention */
};

enum { PEND_WAIT, PEND_DONE, PEND_FAILED };

/* The key follows the table entry's hot fields (cb, node) directly; its
 * length is the entry's aux word.  A plain entry is VM_KEY + len bytes
 * rounded up to the allocator's 16-byte step: 64 with a key of 4 to 16
 * bytes (jemalloc's 64-byte class, one cache line).  When that rounding
 * leaves 4 bytes after the key (key lengths 1..12 mod 16), they hold the
 * object header's offset from the entry (hint_at): a lookup's match
 * prefetches the header, which the caller's wref_release of the value
 * loads, beside the block (the upgrade's RMW), instead of after it.  The
 * retention part (tier maps) or the placeholder part (CREATE_ONCE) sits
 * after the key and hint, 8-byte aligned, and exists only when needed. */
struct vm_entry {
	struct wref__entry e;
	unsigned char key[];
};
#define VM_KEY offsetof(struct vm_entry, key)

/* offset of the header hint after a key of @len bytes (4-aligned) */
static inline size_t hint_off(size_t len)
{
	return (VM_KEY + len + 3) & ~(size_t)3;
}
/* an entry with a key of @len bytes has a hint: it fits in the 16-byte
 * rounding of VM_KEY + len (a length from a match: never huge) */
static inline bool has_hint(size_t len)
{
	return hint_off(len) + 4 <= ((VM_KEY + len + 15) & ~(size_t)15);
}

union vm_part {
	struct wref__tier_node r; /* a real entry of a tier map */
	struct vm_pend { /* a placeholder (e.cb NULL, CREATE_ONCE) */
		_Atomic uint32_t state;         /* futex word: PEND_* */
		int err;                        /* make's errno */
		pthread_t maker;                /* the thread running make */
	} p;
};

/* offset of the part after a key of @len bytes (and its hint) */
static inline size_t part_off(size_t len)
{
	size_t end = has_hint(len) ? hint_off(len) + 4 : VM_KEY + len;
	return (end + 7) & ~(size_t)7;
}

/* the header hint's slot of @v (has_hint(v->e.aux)) */
static inline int32_t *hint_at(struct vm_entry *v)
{
	return (int32_t *)(void *)((char *)v + hint_off(v->e.aux));
}

/* the hint for @v watching @cb: the object header's offset from the entry
 * in 16-byte units (both are 16-aligned), or 0 (no hint: the offset does
 * not fit, a prefetch of the entry itself) */
static inline int32_t hint_of(struct vm_entry *v, struct wref__cb *cb)
{
	intptr_t d = (intptr_t)cb->mem - (intptr_t)v;
	if (d % 16 || d / 16 < INT32_MIN || d / 16 > INT32_MAX)
		return 0;
	return (int32_t)(d / 16);
}

static inline union vm_part *vm_part(struct vm_entry *v)
{
	return (union vm_part *)(void *)((char *)v + part_off(v->e.aux));
}

/* the retention node of an entry of a tier map */
static inline struct wref__tier_node *tnode(struct vm_entry *v)
{
	return &vm_part(v)->r;
}

/* the placeholder part of a CREATE_ONCE pending entry */
static inline struct vm_pend *pend(struct vm_entry *v)
{
	return &vm_part(v)->p;
}

struct vkey {
	const void *p;
	size_t n;
};

static inline struct vm_entry *vm_entry_of(struct wref__entry *e)
{
	return caa_container_of(e, struct vm_entry, e);
}

/* memcmp(a, b, n) == 0, inline for short keys: whole overlapping loads
 * instead of a call (keys are rarely longer than 16 bytes) */
static inline bool key_eq(const unsigned char *a, const unsigned char *b,
			  size_t n)
{
	uint64_t x, y, u, w;
	if (n > 16)
		return !memcmp(a, b, n);
	if (n >= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		memcpy(&u, a + n - 8, 8);
		memcpy(&w, b + n - 8, 8);
		return ((x ^ y) | (u ^ w)) == 0;
	}
	if (n >= 4) {
		uint32_t p, q, r, t;
		memcpy(&p, a, 4);
		memcpy(&q, b, 4);
		memcpy(&r, a + n - 4, 4);
		memcpy(&t, b + n - 4, 4);
		return ((p ^ q) | (r ^ t)) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static int vm_match(struct cds_lfht_node *node, const void *key)
{
	const struct vkey *k = key;
	struct vm_entry *v = vm_entry_of(caa_container_of(node,
					 struct wref__entry, node));
	/* TSan: lfht calls match on nodes it meets; pairs with the release
	 * before the node's add */
	wref__tsan_acquire(node);
	if (v->e.aux != k->n)
		return 0;
	/* lfht calls match only on a node whose hash is ours: almost surely
	 * the hit, so start its next miss now, in the shadow of the key
	 * compare and the rest of the lookup: the block's line (the
	 * upgrade's RMW).  Prefetches never fault */
	__builtin_prefetch(v->e.cb, 1);
	/* and the object's header (the caller's release loads its word), in
	 * parallel rather than after the block.  The hint is written before
	 * the entry's publication and never changes; it is only a prefetch
	 * address (stale or wrong costs a useless prefetch, never a fault) */
	if (has_hint(k->n))
		__builtin_prefetch((char *)v + 16 * (intptr_t)*hint_at(v), 0);
	return key_eq(v->key, k->p, k->n);
}

static void vm_retire(struct wref__entry *e)
{
	wref__entry_free_rcu(e);
}

/* a user-side removal: the tier drops its hold now (rule 17) */
static void vm_forget(struct wref__entry *e)
{
	struct wref_valmap *m = (struct wref_valmap *)wref__entry_table(e);
	if (m->tier && e->cb)
		wref__tier_forget(m->tier, tnode(vm_entry_of(e)));
}

static const struct wref__table_ops vm_ops = {
	.match = vm_match,
	.retire = vm_retire,
	.forget = vm_forget,
};

/* bytes of an entry for @k (@real: not a placeholder) */
static size_t vm_size(struct wref_valmap *m, const struct vkey *k, bool real)
{
	if (!real || m->tier)
		return part_off(k->n) + sizeof(union vm_part);
	return has_hint(k->n) ? hint_off(k->n) + 4 : VM_KEY + k->n;
}

/* set up @v (vm_size bytes) for @k watching @cb (NULL: a placeholder);
 * @linked: @v is the entry embedded in @cb's allocation */
static struct vm_entry *vm_init(struct wref_valmap *m, struct vm_entry *v,
				const struct vkey *k, struct wref__cb *cb,
				bool linked)
{
	bool hint = has_hint(k->n);
	if (linked)
		wref__entry_init_linked(&v->e, cb);
	else
		wref__entry_init(&m->t, &v->e, cb);
	v->e.aux = (uint32_t)k->n;
	if (k->n)
		memcpy(v->key, k->p, k->n);
	if (hint)
		*hint_at(v) = cb ? hint_of(v, cb) : 0;
	if (!cb) {
		atomic_init(&pend(v)->state, PEND_WAIT);
		pend(v)->err = 0;
		pend(v)->maker = pthread_self();
	} else if (m->tier) {
		wref__tier_node_init(tnode(v), &v->e);
	}
	return v;
}

static struct vm_entry *vm_alloc(struct wref_valmap *m, const struct vkey *k,
				 struct wref__cb *cb)
{
	if (k->n > UINT32_MAX) { /* the length is 32 bits */
		errno = ENOMEM;
		return NULL;
	}
	struct vm_entry *v = wref__alloc(vm_size(m, k, cb != NULL));
	return v ? vm_init(m, v, k, cb, false) : NULL;
}

/* @obj's block and a new entry for @k watching it, armed: the entry
 * embedded in the block's allocation if this makes the block; NULL with
 * errno */
static struct vm_entry *vm_entry_for(struct wref_valmap *m,
				     const struct vkey *k, void *obj)
{
	if (k->n > UINT32_MAX) { /* the length is 32 bits */
		errno = ENOMEM;
		return NULL;
	}
	void *mem;
	struct wref__cb *cb = wref__key_cb_embed(obj, false, &m->t,
						 vm_size(m, k, true), &mem);
	if (!cb)
		return NULL;
	if (mem)
		return vm_init(m, mem, k, cb, true);
	struct vm_entry *v = wref__alloc(vm_size(m, k, true)); /* ENOMEM */
	if (!v)
		return NULL;
	wref__entry_arm(&vm_init(m, v, k, cb, false)->e);
	return v;
}

/* the entry's object, a new strong ref, or NULL (dead, or a placeholder);
 * inside a read-side section */
static inline void *upgrade(struct wref__entry *e)
{
	struct wref__cb *cb = e->cb;
	return cb ? wref__cb_upgrade(cb) : NULL;
}

/* an access to @v's entry, whose object the caller pinned, inside a
 * read-side section: true if the tier's work is to be queued */
static inline bool touch(struct wref_valmap *m, struct vm_entry *v)
{
	return m->tier && wref__tier_touch(m->tier, tnode(v));
}

static inline void vm_poll(struct wref_valmap *m)
{
	if (m->tier)
		wref__tier_poll(m->tier);
}

/* ---- the map ---------------------------------------------------------------- */

static void valmap_destroy(void *p)
{
	struct wref_valmap *m = p;
	if (m->tier)
		wref__tier_kill(m->tier);
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
	if (opt->retain_ms && !(m->tier = wref__tier_new(opt->retain_ms,
							   opt->retain_max))) {
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
	vm_poll(m);
	struct vkey k = { key, len };
	uint64_t h = wref__hash_bytes(key, len);
	bool kick = false;
	wref__rcu_lock();
	struct wref__entry *e = wref__table_lookup(&m->t, h, &k);
	void *obj = e ? upgrade(e) : NULL;
	if (obj)
		kick = touch(m, vm_entry_of(e));
	wref__rcu_unlock();
	if (kick)
		wref__tier_schedule(m->tier);
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
	vm_poll(m);
	struct vkey k = { key, len };
	struct vm_entry *v = vm_entry_for(m, &k, obj);
	if (!v)
		return -errno;
	uint64_t h = wref__hash_bytes(key, len);
	bool kick = false;
	wref__rcu_lock();
	struct wref__entry *old = wref__entry_add_replace(&v->e, h, &k);
	kick = touch(m, v);
	wref__rcu_unlock();
	if (old)
		wref__entry_removed(old);
	else
		wref__table_grow_check(&m->t);
	if (kick)
		wref__tier_schedule(m->tier);
	return 0;
}

/* Wait for the placeholder @p (pinned) to be resolved.  Returns false
 * with errno set if its make failed. */
static bool pend_wait(struct vm_entry *p)
{
	uint32_t s;
	/* acquire: pairs with the release store in pend_resolve() */
	while ((s = atomic_load_explicit(&pend(p)->state, memory_order_acquire)) ==
	       PEND_WAIT)
		wref__futex_wait(&pend(p)->state, PEND_WAIT);
	int err = pend(p)->err;
	wref__entry_put(&p->e);
	if (s == PEND_FAILED) {
		errno = err;
		return false;
	}
	return true;
}

static void pend_resolve(struct vm_entry *p, uint32_t state, int err)
{
	pend(p)->err = err;
	/* release: pairs with the acquire in pend_wait() */
	atomic_store_explicit(&pend(p)->state, state, memory_order_release);
	wref__futex_wake(&pend(p)->state, INT_MAX);
}

/* ---- get_or_create --------------------------------------------------------
 * A loop of steps on a struct goc: find (one read-side section: a live
 * value, a placeholder to wait for, or a vacancy that our entry fills),
 * prepare (our entry, outside any section), and with CREATE_ONCE make
 * behind our linked placeholder, then publish the real entry. */

struct goc {
	struct wref_valmap *m;
	struct vkey k;
	uint64_t h;
	void *(*make)(const void *key, size_t len, void *arg);
	void *arg;
	bool once;                /* WREF_MAP_CREATE_ONCE */
	bool kick;                /* queue the tier's work at the end */
	bool added;               /* we linked an entry: the table grew */
	struct vm_entry *p;       /* our placeholder (CREATE_ONCE) */
	struct vm_entry *v;       /* our real entry (armed) */
	void *mine;               /* our object (v's referent) */
	void *ret;                /* the result (a strong ref) */
	struct wref__entry *gone; /* dead entry we replaced */
};

enum goc_step { GOC_HIT, GOC_WAIT, GOC_AGAIN, GOC_PREPARE, GOC_LINKED };

/* One read-side section: GOC_HIT (g->ret), GOC_WAIT (*@wait pinned),
 * GOC_AGAIN, GOC_PREPARE (our entry is needed first) or GOC_LINKED.
 * Before our entry exists, a lookup; once it does, its add_unique is the
 * lookup (one walk of the chain instead of a lookup and then an add: a
 * create used to walk it three times), and an entry found there is
 * treated as the lookup's would be: a dead one is replaced by ours. */
static enum goc_step goc_find(struct goc *g, struct vm_entry **wait)
{
	enum goc_step step;
	struct vm_entry *ours = g->once ? g->p : g->v;
	struct wref__entry *e;
	wref__rcu_lock();
	if (ours) {
		e = wref__entry_add_unique(&ours->e, g->h, &g->k);
		if (e == &ours->e) {
			g->added = true;
			if (!g->once)
				g->kick |= touch(g->m, g->v);
			step = GOC_LINKED;
			goto out;
		}
	} else {
		e = wref__table_lookup(&g->m->t, g->h, &g->k);
	}
	if (e && e->cb && (g->ret = upgrade(e))) {
		g->kick |= touch(g->m, vm_entry_of(e));
		step = GOC_HIT; /* a live value */
	} else if (e && !e->cb) {
		/* someone is making it; a placeholder retiring: look again */
		*wait = wref__entry_tryhold(e) ? vm_entry_of(e) : NULL;
		step = *wait ? GOC_WAIT : GOC_AGAIN;
	} else if (!ours) {
		step = GOC_PREPARE; /* absent or dead: ours is needed */
	} else if (wref__entry_replace(e, &ours->e, g->h, &g->k)) {
		g->gone = e; /* the dead entry we displaced */
		if (!g->once)
			g->kick |= touch(g->m, g->v);
		step = GOC_LINKED;
	} else {
		step = GOC_AGAIN; /* it left meanwhile: add again */
	}
out:
	wref__rcu_unlock();
	return step;
}

/* wait for the placeholder @wait (pinned) to be resolved; false with
 * errno if that cannot be (our own make asks for its key) or its make
 * failed */
static bool goc_wait(struct vm_entry *wait)
{
	if (pthread_equal(pend(wait)->maker, pthread_self())) {
		/* make asked for its own key: waiting would never end */
		wref__entry_put(&wait->e);
		errno = EDEADLK;
		return false;
	}
	return pend_wait(wait);
}

/* call make and build our real entry (armed); false with errno */
static bool goc_make(struct goc *g)
{
	errno = 0;
	g->mine = g->make(g->k.p, g->k.n, g->arg);
	if (!g->mine) {
		if (!errno)
			errno = ENOMEM;
		return false;
	}
	if (!(g->v = vm_entry_for(g->m, &g->k, g->mine))) {
		int err = errno ? errno : ENOMEM;
		wref_release(g->mine);
		g->mine = NULL;
		errno = err;
		return false;
	}
	return true;
}

/* our entry, before linking it: a placeholder (CREATE_ONCE), or the made
 * object's entry; false with errno */
static bool goc_prepare(struct goc *g)
{
	if (!g->once)
		return goc_make(g);
	g->p = vm_alloc(g->m, &g->k, NULL);
	if (!g->p)
		return false;
	wref__entry_hold(&g->p->e); /* ours */
	return true;
}

/* make failed behind our placeholder: take it out, fail its waiters */
static void goc_once_failed(struct goc *g)
{
	int err = errno;
	wref__rcu_lock();
	bool un = wref__entry_unlink(&g->m->t, &g->p->e);
	wref__rcu_unlock();
	if (un)
		wref__entry_removed(&g->p->e);
	pend_resolve(g->p, PEND_FAILED, err);
	wref__entry_put(&g->p->e);
	g->p = NULL;
	errno = err;
}

/* Our real entry replaces our placeholder, or, if a clear took the
 * placeholder away, is inserted normally (an entry found live is the
 * result: an access too).  Inside a read-side section; true if ours got
 * linked.  *@p_out: the placeholder was replaced. */
static bool goc_publish_link(struct goc *g, bool *p_out)
{
	*p_out = wref__entry_replace(&g->p->e, &g->v->e, g->h, &g->k);
	if (*p_out)
		return true;
	struct wref__entry *other = wref__entry_add_unique(&g->v->e, g->h,
							   &g->k);
	if (other == &g->v->e)
		return g->added = true;
	g->ret = wref__entry_upgrade(other);
	if (!g->ret && wref__entry_replace(other, &g->v->e, g->h, &g->k)) {
		g->gone = other;
		return true;
	}
	if (g->ret) /* the old code skipped this touch (issue 16 suspect) */
		g->kick |= touch(g->m, vm_entry_of(other));
	return false;
}

/* CREATE_ONCE, our placeholder linked: make outside any lock and
 * read-side section, publish, wake the waiters.  GOC_HIT: done (g->ret,
 * or NULL with errno); GOC_AGAIN: lost to a racing set and death around a
 * clear, start over. */
static enum goc_step goc_once(struct goc *g)
{
	if (g->gone) {
		wref__entry_removed(g->gone);
		g->gone = NULL;
	}
	if (!goc_make(g)) {
		goc_once_failed(g);
		return GOC_HIT;
	}
	bool p_out;
	wref__rcu_lock();
	bool linked = goc_publish_link(g, &p_out);
	if (linked)
		g->kick |= touch(g->m, g->v);
	wref__rcu_unlock();
	if (p_out)
		wref__entry_removed(&g->p->e);
	if (linked) {
		g->ret = g->mine;
		g->mine = NULL;
		g->v = NULL;
	}
	pend_resolve(g->p, PEND_DONE, 0);
	wref__entry_put(&g->p->e);
	g->p = NULL;
	if (g->ret)
		return GOC_HIT;
	wref__entry_discard(&g->v->e);
	g->v = NULL;
	wref_release(g->mine);
	g->mine = NULL;
	return GOC_AGAIN;
}

/* release what the call still holds but does not return */
static void goc_finish(struct goc *g)
{
	if (g->gone)
		wref__entry_removed(g->gone);
	if (g->v)
		wref__entry_discard(&g->v->e);
	if (g->p)
		wref__entry_discard(&g->p->e);
	if (g->mine) {
		int err = errno;
		wref_release(g->mine); /* a loser's object, before return */
		errno = err;
	}
	if (g->kick)
		wref__tier_schedule(g->m->tier);
	if (g->added)
		wref__table_grow_check(&g->m->t);
}

/* the loop of steps; returns with g->ret set, or NULL and errno */
static void goc_run(struct goc *g)
{
	for (;;) {
		struct vm_entry *wait = NULL;
		switch (goc_find(g, &wait)) {
		case GOC_HIT:
			return;
		case GOC_WAIT:
			if (!goc_wait(wait))
				return; /* its make failed: so do we */
			break;
		case GOC_AGAIN:
			break;
		case GOC_PREPARE:
			if (!goc_prepare(g))
				return;
			break;
		case GOC_LINKED:
			if (!g->once) {
				g->ret = g->mine;
				g->mine = NULL;
				g->v = NULL;
				return;
			}
			if (goc_once(g) == GOC_HIT)
				return;
			break;
		}
	}
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
	vm_poll(m);
	struct goc g = {
		.m = m, .k = { key, len }, .h = wref__hash_bytes(key, len),
		.make = make, .arg = arg,
		.once = m->flags & WREF_MAP_CREATE_ONCE,
	};
	goc_run(&g);
	goc_finish(&g);
	return g.ret;
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
		bool un = obj && wref__entry_unlink(&m->t, e);
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
	vm_poll(m);
	struct wref__entry *e;
	void *obj = take(m, key, len, &e);
	if (obj) {
		wref__entry_removed(e);
		wref__table_grow_check(&m->t);
	}
	return obj;
}

int wref_valmap_del(wref_valmap *m, const void *key, size_t len)
{
	if (m)
		wref__check(m, "wref_valmap_del");
	if (bad_args(m, key, len))
		return -EINVAL;
	vm_poll(m);
	struct wref__entry *e;
	void *obj = take(m, key, len, &e);
	if (!obj)
		return -ENOENT;
	wref__entry_removed(e);
	wref__table_grow_check(&m->t);
	wref_release(obj);
	return 0;
}

size_t wref_valmap_len(wref_valmap *m)
{
	if (!m)
		return 0;
	wref__check(m, "wref_valmap_len");
	vm_poll(m);
	return wref__table_len(&m->t);
}

void wref_valmap_clear(wref_valmap *m)
{
	if (m)
		wref__check(m, "wref_valmap_clear");
	if (m) {
		vm_poll(m);
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
	return w->fn(vm_entry_of(p->e)->key, vm_entry_of(p->e)->e.aux, p->obj, w->arg);
}

int wref_valmap_foreach(wref_valmap *m,
		int (*fn)(const void *key, size_t len, void *obj, void *arg),
		void *arg)
{
	if (m)
		wref__check(m, "wref_valmap_foreach");
	if (!m || !fn)
		return -EINVAL;
	vm_poll(m);
	/* fn runs outside any read-side section: it may modify the map or
	 * release anything */
	struct vm_walk w = { fn, arg };
	return wref__table_foreach(&m->t, vm_visit, &w);
}
