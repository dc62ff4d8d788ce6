/*
 * table.h - the weak-entry table layer shared by the containers (valmap,
 * keymap, set) on liburcu's lock-free resizable hash table (cds_lfht,
 * flavour urcu-bp).  Internal, never installed.
 *
 * An entry (struct wref__entry, embedded first in each container's own
 * entry struct) is an lfht node plus the control block of the object it
 * watches (held with wref__cb_hold) and a watch on that block.  When the
 * object dies, the dying thread fires the watch inside an RCU read-side
 * section: the fire unlinks exactly that node (cds_lfht_del by identity),
 * so a newer entry under the same key is never touched (rule 5).
 *
 * Retirement.  An entry is freed (ops->retire) when its retirement count
 * reaches zero.  The count starts at 2: one for the table link (dropped by
 * whoever succeeds cds_lfht_del: user removal, replace, death fire,
 * container teardown) and one for the watch (dropped by whoever unlinks
 * it: wref__watch_del returning true, or the end of the fire).  Extra
 * counts pin an entry (foreach snapshots, the valmap retention tier) with
 * wref__entry_tryhold/put.  Because the watch count is dropped only when
 * the fire is over, a racing remover never frees an entry that a dying
 * thread is about to fire.  retire() must defer the free past a grace
 * period (wref__entry_free_rcu) since readers may still see the node.
 *
 * len is a counter split over WREF__LEN_SLOTS cache lines (picked by the
 * updater's CPU), changed only by whoever succeeded cds_lfht_add/replace/
 * del; placeholders (cb NULL) are not counted.  Its value is the slots'
 * sum, a snapshot: while adds and removals are in flight it may lag by
 * their number (never below 0).  One shared counter cost every create and
 * every death a contended line (issue 18: two threads creating and
 * killing entries moved it ~1.2 times per get_or_create).
 *
 * Calling rules: lookups, adds, replaces and wref__entry_unlink run
 * inside wref__rcu_lock(); wref__entry_put and wref__entry_removed (which
 * may retire, and retiring may queue executor work) run OUTSIDE read-side
 * sections unless the caller is a watch fire (which runs inside a death
 * context where queued inline work is deferred).
 *
 * Typical user-side removal:
 *	wref__rcu_lock();
 *	e = wref__table_lookup(t, hash, &key);
 *	bool mine = e && wref__entry_unlink(t, e);
 *	wref__rcu_unlock();
 *	if (mine)
 *		wref__entry_removed(e);  // the table count kept e valid
 * Typical insert: alloc, wref__entry_init, wref__entry_arm (the caller
 * holds the object, so the watch cannot fire yet), then under the read
 * lock wref__entry_add_unique/add_replace; a loser is freed with
 * wref__entry_discard, a replaced entry finished with
 * wref__entry_removed after the unlock.
 */
#ifndef WREF_TABLE_H
#define WREF_TABLE_H

#include "internal.h"

#include <sched.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/types.h>

#include <urcu/rculfhash.h>

#ifdef _LGPL_SOURCE
/* liburcu-bp's reader pointer, which the inlined read lock and unlock of
 * every container operation reach, in the initial-exec model: a
 * %fs-relative load instead of a TLS descriptor call per access (3-4% of
 * a map get; -mtls-dialect=gnu2, configure.ac).  libwref.so is STATIC_TLS
 * already (its own thread state); liburcu-bp is its dependency, loaded
 * with it, and adds 80 bytes of static TLS.  A process that dlopen()ed
 * another library using liburcu-bp before dlopen()ing libwref may then
 * fail the latter's load (liburcu-bp's block already dynamic) */
extern __thread struct urcu_bp_reader *urcu_bp_reader
	__attribute__((tls_model("initial-exec")));
#endif

struct wref__table;
struct wref__entry;

/* slots of a table's split length (a power of two): 512 bytes a
 * container; CPUs beyond it share slots */
#define WREF__LEN_SLOTS 8

struct wref__table_ops {
	/* cds_lfht match function: @key is the container's lookup key;
	 * it starts with wref__tsan_acquire(node) (lfht calls it on nodes
	 * found before the lookup returns) */
	int (*match)(struct cds_lfht_node *node, const void *key);
	/* last count dropped: release what the entry holds and free it
	 * after a grace period (wref__entry_free_rcu / own call_rcu) */
	void (*retire)(struct wref__entry *e);
	/* optional: a user-side removal (del, pop, replace, clear,
	 * teardown) took the entry out; called before its counts drop,
	 * outside read-side sections (the valmap drops its retention) */
	void (*forget)(struct wref__entry *e);
};

/* The watch (cold) first and the lookup's hot fields (cb, node) last, so a
 * container can put its key right after them: 48 bytes, and a valmap
 * entry with a 16-byte key fills one 64-byte class (one cache line).
 *
 * The watch is live while the entry is linked on its block; the rcu head
 * and the work item are used only from retirement on, when the watch is
 * unlinked for good (its count was dropped: wref__watch_del returned true,
 * or the fire is over) and nothing reads it again, so they share its
 * memory.  The retirement count follows, outside them.  The watch's ops
 * are the table's own (wops), which name the container: the entry finds
 * its table through them (wref__entry_table).
 *
 * No copy of cb->mem (the entry's 64 bytes have no room for it): the
 * valmap keeps a 4-byte offset of the object's header after short keys
 * instead, for its match's prefetch (valmap.c, hint_at). */
struct wref__entry {
	union {
		struct wref__watch watch; /* fire = prompt removal */
		struct rcu_head rcu;
		struct wref__work work;
	};
	_Atomic uint32_t refs; /* the retirement count (see above) */
	uint32_t aux;          /* the container's word (valmap: key length) */
	/* control block of the watched object, held; NULL for a placeholder
	 * entry that watches nothing (a CREATE_ONCE pending entry) */
	struct wref__cb *cb;
	struct cds_lfht_node node;
};
_Static_assert(sizeof(struct wref__watch) >= sizeof(struct rcu_head) &&
	       sizeof(struct wref__watch) >= sizeof(struct wref__work),
	       "the rcu head and work item fit in the watch");
_Static_assert(sizeof(struct wref__entry) == 48, "a table entry is 48 bytes");

/* the retirement count (see above) */
static inline _Atomic uint32_t *wref__entry_refs(struct wref__entry *e)
{
	return &e->refs;
}

/* A container's payload starts with its struct wref__table (the table is
 * found from an entry through its watch's ops, which saves a pointer per
 * entry). */
struct wref__table {
	struct cds_lfht *ht;
	const struct wref__table_ops *ops;
	/* every entry's watch ops: wops.owner is the container object,
	 * owner of every entry's watch */
	struct wref__watch_ops wops;
	/* the lfht's buckets as we last sized it (a power of two): an add
	 * that takes len to twice this, or a removal that takes it under an
	 * eighth of it, queues a resize (wref__table_grow) */
	_Atomic unsigned long buckets;
	unsigned long min_buckets; /* the initial size: never shrunk below */
	_Atomic uint32_t growing;  /* a resize is queued (grow holds owner) */
	struct wref__work grow;
	/* live entries: changed only by the winner of an lfht add/del (see
	 * above), slot by slot.  Kept off each other, the read-mostly lines
	 * above and the container's fields below by padding, not by
	 * alignment: wref payloads are only 16-byte aligned, and two words
	 * 64 bytes apart never share a line */
	char pad0_[WREF_CACHELINE];
	struct {
		_Atomic intptr_t n;
		char pad_[WREF_CACHELINE - sizeof(intptr_t)];
	} len[WREF__LEN_SLOTS];
};

static inline struct wref__table *wref__entry_table(struct wref__entry *e)
{
	/* the watch's ops are constant from wref__entry_init until the
	 * entry retires, when the rcu head covers them: only a holder of a
	 * count (or the fire) may call this.  An entry merely found under
	 * RCU may be retiring: take its table from the caller (as
	 * wref__entry_unlink does) */
	return caa_container_of(e->watch.ops, struct wref__table, wops);
}

/* Initialise @t for the container object @owner (@t must be at the start
 * of @owner's payload); 0 or -ENOMEM. */
WREF_HIDDEN int wref__table_init(struct wref__table *t, void *owner,
				 size_t initial_size,
				 const struct wref__table_ops *ops);
/*
 * Container teardown (from the container type's destroy; not inside a
 * read-side section): removes every entry (each retired through
 * ops->retire) and destroys the lfht on the executor (cds_lfht_destroy
 * must not run inside a read-side section nor on the call_rcu thread).
 */
WREF_HIDDEN void wref__table_fini(struct wref__table *t);
/* Remove every entry present when it starts (clear; entries inserted
 * meanwhile may stay); not inside a read-side section. */
WREF_HIDDEN void wref__table_clear(struct wref__table *t);

static inline size_t wref__table_len(struct wref__table *t)
{
	/* relaxed: a snapshot.  A node's remover may decrement (in its
	 * slot) before its adder incremented (in another): a slot, and the
	 * sum for a while, can be negative */
	intptr_t n = 0;
	for (int i = 0; i < WREF__LEN_SLOTS; i++)
		n += atomic_load_explicit(&t->len[i].n, memory_order_relaxed);
	return n < 0 ? 0 : (size_t)n;
}

/* the calling thread's CPU, a hint: the kernel's copy in glibc's rseq
 * area (a %fs-relative load; sched_getcpu's call was 1.3% of a churned
 * get_or_create), else sched_getcpu() */
static inline unsigned wref__cpu_hint(void)
{
#if defined(__GLIBC_HAVE_KERNEL_RSEQ) && (defined(__x86_64__) || defined(__aarch64__))
	if (wref_likely(__rseq_size != 0)) {
		const struct rseq *rs = (const struct rseq *)(const void *)
			((const char *)__builtin_thread_pointer() +
			 __rseq_offset);
		/* volatile: the kernel rewrites it when the thread migrates */
		return *(const volatile uint32_t *)&rs->cpu_id;
	}
#endif
	int cpu = sched_getcpu();
	return cpu < 0 ? 0 : (unsigned)cpu;
}

/* the calling thread's slot of @t's length (its CPU's; a thread that
 * migrates meanwhile only shares a line for a while) */
static inline _Atomic intptr_t *wref__table_len_slot(struct wref__table *t)
{
	return &t->len[wref__cpu_hint() & (WREF__LEN_SLOTS - 1)].n;
}

/* Queue a resize of the lfht to the largest power of two <= len (load
 * factor 1 to 2; never below the initial size), unless one is queued;
 * outside read-side sections. */
WREF_HIDDEN void wref__table_grow(struct wref__table *t);
/* After an insert or a user-side removal (outside the read-side section;
 * never from the container's teardown): resize the lfht if len reached
 * twice its buckets or fell under an eighth of them.  The tables are
 * created without liburcu's AUTO_RESIZE and ACCOUNTING: its policy
 * resizes only when a committed count (per-CPU batches of 1024) is a
 * power of two and 8 times the size, lazily (after a burst of inserts a
 * table could stay at any load up to 8, and lookups walk those chains:
 * issue 18 item 1); its small-table growth on chains of 3 ran on its own
 * worker thread, whose allocator cache then kept the bucket arrays' spare
 * regions (~150 KiB per process); and ACCOUNTING costs every add and del
 * a per-CPU counter update.  A map emptied by deaths alone shrinks at its
 * next inserts or removals (within buckets / 64 of them).  The length's
 * sum reads every slot's line, which other CPUs write: it is taken only
 * when this thread's slot (a line it just wrote) is at a multiple of the
 * check step, buckets / 64 (every time in a table of up to 64 buckets),
 * so a table grows once its length passes twice its buckets by at most
 * WREF__LEN_SLOTS steps (an eighth of its buckets) and shrinks likewise. */
static inline void wref__table_grow_check(struct wref__table *t)
{
	/* relaxed: hints; wref__table_grow's exchange decides, and its work
	 * re-reads both */
	unsigned long b = atomic_load_explicit(&t->buckets,
					       memory_order_relaxed);
	unsigned long step = b / 64 ? b / 64 : 1;
	/* relaxed: a hint (our own slot, as we last left it) */
	intptr_t mine = atomic_load_explicit(wref__table_len_slot(t),
					     memory_order_relaxed);
	if (wref_likely((unsigned long)mine & (step - 1)))
		return;
	size_t n = wref__table_len(t);
	if (wref_unlikely(n >= 2 * b || (n < b / 8 && b > t->min_buckets)))
		wref__table_grow(t);
}

/* Prepare @e (memory owned by the caller, zeroed or not) for @t, watching
 * @cb (NULL for a placeholder).  Takes a hold on @cb.  Count = 2. */
WREF_HIDDEN void wref__entry_init(struct wref__table *t,
				  struct wref__entry *e, struct wref__cb *cb);
/* The same for the entry embedded in @cb's allocation at its creation
 * (wref__key_cb_embed): its watch is already linked, and the block's
 * creation took the entry's hold on it. */
WREF_HIDDEN void wref__entry_init_linked(struct wref__entry *e,
					 struct wref__cb *cb);
/* Arm the watch of an entry that was linked into the table (caller holds
 * a strong ref to the watched object, so this cannot fail).  A placeholder
 * has no watch: its watch count is dropped here. */
WREF_HIDDEN void wref__entry_arm(struct wref__entry *e);
/* Free an entry that never got linked right away (unarming it); the
 * caller first releases what its own part holds.  Entries are allocated
 * with the struct wref__entry at the start of the allocation. */
WREF_HIDDEN void wref__entry_discard(struct wref__entry *e);

/* cds_lfht_add_unique of @e; inside a read-side section.  Returns @e
 * (linked, len counted) or the existing node's entry. */
WREF_HIDDEN struct wref__entry *wref__entry_add_unique(struct wref__entry *e,
		uint64_t hash, const void *key);
/* cds_lfht_add_replace of @e; inside a read-side section.  Returns the
 * replaced entry (its table count is now the caller's to drop via
 * wref__entry_removed()) or NULL. */
WREF_HIDDEN struct wref__entry *wref__entry_add_replace(struct wref__entry *e,
		uint64_t hash, const void *key);
/* cds_lfht_replace of the exact node @old by @e; inside a read-side
 * section.  true on success (then treat @old as in add_replace). */
WREF_HIDDEN bool wref__entry_replace(struct wref__entry *old,
				     struct wref__entry *e, uint64_t hash,
				     const void *key);
/* cds_lfht_del of exactly @e of @t (inside a read-side section; @e may be
 * retiring, so its table comes from the caller); on success
 * len is decremented and the caller owns the table count (drop it with
 * wref__entry_removed() outside the read-side section, or inside a fire). */
WREF_HIDDEN bool wref__entry_unlink(struct wref__table *t,
				    struct wref__entry *e);
/* After a successful unlink/replace by a user-side removal: unarm the
 * watch (dropping its count if we unlinked it) and drop the table count. */
WREF_HIDDEN void wref__entry_removed(struct wref__entry *e);

/* Pin an entry seen under RCU against retirement; false if retiring. */
static inline bool wref__entry_tryhold(struct wref__entry *e)
{
	/* relaxed: the entry's memory is protected by the read-side section;
	 * what we read through it afterwards was published by the add */
	_Atomic uint32_t *refs = wref__entry_refs(e);
	uint32_t r = atomic_load_explicit(refs, memory_order_relaxed);
	while (r != 0)
		if (atomic_compare_exchange_weak_explicit(refs, &r, r + 1,
				memory_order_relaxed, memory_order_relaxed))
			return true;
	return false;
}
static inline void wref__entry_hold(struct wref__entry *e)
{
	/* relaxed: the caller already holds a count */
	atomic_fetch_add_explicit(wref__entry_refs(e), 1,
				  memory_order_relaxed);
}
/* Drop a count; the last one calls ops->retire. */
WREF_HIDDEN void wref__entry_put(struct wref__entry *e);
/* Drop @n counts at once (one RMW) */
WREF_HIDDEN void wref__entry_put_n(struct wref__entry *e, uint32_t n);

/* Free @e (its whole allocation, @e is its start) after a grace period,
 * unholding its control block. */
WREF_HIDDEN void wref__entry_free_rcu(struct wref__entry *e);

/*
 * foreach (rule 7): inside one read-side section, hold every live entry
 * (memory only, so its key stays valid; the objects are not pinned); then,
 * outside any section, for each entry still linked whose object is still
 * alive, pin the object, call @visit(pin, @ctx) and release it, until
 * @visit returns non-zero; then drop the holds.  The walk holds the
 * container itself until the end (fn may release its last user ref).
 * Returns what @visit returned last (0 after a full walk), or -ENOMEM.
 */
struct wref__pin {
	struct wref__entry *e;
	void *obj;
};
WREF_HIDDEN int wref__table_foreach(struct wref__table *t,
		int (*visit)(const struct wref__pin *p, void *ctx), void *ctx);
/* the common part of the container constructors: checks @opt's flags
 * against @allowed, allocates a @size-byte object of @type whose payload
 * starts with its table, and initialises the table */
WREF_HIDDEN void *wref__container_new(const wref_type *type, size_t size,
				      const wref_map_options *opt,
				      unsigned allowed,
				      const struct wref__table_ops *ops);
/* the destroy of a container whose payload is only its table (set,
 * keymap): finishes the table */
WREF_HIDDEN void wref__container_destroy(void *p);
/* first node / next node of a walk, inside a read-side section
 * (TSan-annotated) */
WREF_HIDDEN struct wref__entry *wref__table_first(struct wref__table *t,
						 struct cds_lfht_iter *it);
WREF_HIDDEN struct wref__entry *wref__table_next(struct wref__table *t,
						struct cds_lfht_iter *it);
/* lookup inside a read-side section */
static inline struct wref__entry *wref__table_lookup(struct wref__table *t,
		uint64_t hash, const void *key)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->ht, hash, t->ops->match, key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n)
		return NULL;
	wref__tsan_acquire(n);
	return caa_container_of(n, struct wref__entry, node);
}

/* Upgrade the entry's object (inside a read-side section); NULL if dead
 * or a placeholder.  The payload was published to us by the entry's
 * publication (the lfht add, a release; our lookup, a dependency-ordered
 * load). */
static inline void *wref__entry_upgrade(struct wref__entry *e)
{
	struct wref__cb *cb = e->cb;
	return cb ? wref__cb_upgrade(cb) : NULL;
}

/* ---- helpers ---------------------------------------------------------- */

/* hash of a byte string of more than 16 bytes (wref__hash_bytes) */
WREF_HIDDEN uint64_t wref__hash_long(const void *p, size_t n);

/* 64x64 -> 128-bit multiply, folded (wyhash's mum) */
static inline uint64_t wref__mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* hash of a byte string (keys of valmap).  Keys up to 16 bytes (most map
 * keys) inline: two whole, possibly overlapping loads and two dependent
 * 128-bit multiplies, as wyhash finishes; longer ones in
 * wref__hash_long */
static inline uint64_t wref__hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	if (wref_unlikely(n > 16))
		return wref__hash_long(p, n);
	uint64_t a = 0, b = 0;
	if (n >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
	} else if (n >= 4) {
		uint32_t x, y;
		memcpy(&x, s, 4);
		memcpy(&y, s + n - 4, 4);
		a = x;
		b = y;
	} else if (n) {
		a = (uint64_t)s[0] << 16 | (uint64_t)s[n / 2] << 8 | s[n - 1];
	}
	return wref__mum(UINT64_C(0xa0761d6478bd642f) ^ n,
			 wref__mum(a ^ UINT64_C(0xe7037ed1a0b428db),
				   b ^ UINT64_C(0x8ebc6af09c88c6e3)));
}

/* The key object's control block for an insert (EINVAL for NULL, NO_WEAK,
 * or @by_value without hash/equal), or NULL.  With @t: if this call makes
 * the block, *@mem is @size bytes in its allocation for the object's
 * first entry in @t, to be set up with wref__entry_init_linked (one
 * allocation and no block-lock trip instead of two and one); else NULL. */
WREF_HIDDEN struct wref__cb *wref__key_cb_embed(void *obj, bool by_value,
						struct wref__table *t,
						size_t size, void **mem);
static inline struct wref__cb *wref__key_cb(void *obj, bool by_value)
{
	return wref__key_cb_embed(obj, by_value, NULL, 0, NULL);
}

/* Lookup key for object-keyed tables (keymap, set). */
struct wref__objkey {
	const void *obj;         /* the key object (caller holds it) */
	struct wref__cb *cb;     /* its block (NULL: never weakly used) */
	bool by_value;
};
WREF_HIDDEN int wref__objkey_match(struct cds_lfht_node *node,
				   const void *key);
/* Fill @k for a lookup of @obj (held by the caller): 0, -EINVAL (NULL,
 * or by value without hash/equal), or -ENOENT (identity and @obj was
 * never weakly used, so no entry can name it). */
WREF_HIDDEN int wref__objkey_init(struct wref__objkey *k, const void *obj,
				  bool by_value);
/* hash of @k (identity, or the type's hash by value) */
WREF_HIDDEN uint64_t wref__objkey_hash(const struct wref__objkey *k);

#endif /* WREF_TABLE_H */
