/*
 * wref.h - libwref: thread-safe weak references and weak containers for C.
 *
 * The only public header of libwref.  Everything the library hands out
 * (objects, weak refs, finalizers, methods, maps, sets, signals) is a wref
 * object: it is created with a strong count of 1 and released with the one
 * call wref_release().
 *
 * Conventions for every call below:
 *  - Pointer-returning calls return NULL and set errno (ENOMEM, EINVAL).
 *  - int-returning calls return 0 or a negative errno value; a dead referent
 *    is -ENOENT.
 *  - Every call is thread-safe unless it says otherwise.  Threads never need
 *    to register with the library (or with RCU): the library registers a
 *    thread on first use and unregisters it at thread exit.
 *  - No user code (destroy, callbacks, factories, foreach functions, hash and
 *    equal) runs while a library lock is held.  hash and equal may run inside
 *    RCU read-side sections, so they must be pure and must not block.
 *  - A call that returns a "new strong ref" hands the caller one reference
 *    it must give back with wref_release().
 *
 * Memory ordering: a successful upgrade (wref_ref_get, container get) is an
 * acquire of the referent's publication: everything written to the object
 * before it was first made reachable through a weak ref or container is
 * visible.  Release of the last strong ref happens-before destroy.
 */
#ifndef WREF_H
#define WREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WREF_API __attribute__((visibility("default")))
#else
#define WREF_API
#endif

/* Opaque handle types.  Each is a wref object: wref_release() frees it. */
typedef struct wref_ref wref_ref;
typedef struct wref_method wref_method;
typedef struct wref_finalizer wref_finalizer;
typedef struct wref_valmap wref_valmap;
typedef struct wref_keymap wref_keymap;
typedef struct wref_set wref_set;
typedef struct wref_signal wref_signal;

/* ------------------------------------------------------------------ */
/* Objects                                                            */
/* ------------------------------------------------------------------ */

/* wref_type.flags: the type refuses weak references and container entries
 * (Python's TypeError for objects without __weakref__). */
#define WREF_TYPE_NO_WEAK 0x1u

typedef struct wref_type {
	const char *name;                       /* for diagnostics */
	void (*destroy)(void *obj);             /* optional, runs once at death */
	uint64_t (*hash)(const void *obj);      /* optional, WREF_MAP_BY_VALUE */
	bool (*equal)(const void *a, const void *b); /* optional, with hash */
	unsigned flags;                         /* WREF_TYPE_* */
} wref_type;

/*
 * wref_new - allocate an object with a zeroed payload of @size bytes.
 * @type must outlive the object (normally a static const).  Returns the
 * payload with strong count 1 (owned by the caller), or NULL with errno
 * ENOMEM, or EINVAL when @type is NULL or its flags has bits other than
 * WREF_TYPE_*.
 */
WREF_API void *wref_new(const wref_type *type, size_t size);

/*
 * wref_retain - take one more strong ref on a live @obj; returns @obj.
 * The caller must already hold a strong ref.  Past 2^61 refs (2^62 once
 * the object was weakly referenced) the count saturates: the object is
 * pinned forever (a leak, never a use-after-free) and a one-time warning
 * is printed.  NULL is returned unchanged.
 */
WREF_API void *wref_retain(void *obj);

/*
 * wref_release - drop one strong ref; NULL is a no-op.  Dropping the last
 * ref kills the object: from then on no weak ref upgrades it, weak-ref and
 * container entries read dead at once, destroy runs exactly once on this
 * thread (cascades are flattened, never deep recursion), and then, once
 * destroy has returned, the death's callbacks and finalizers are queued to
 * the executor: destroy happens-before each of them.
 * Misuse: a release or retain that finds the count dead while the memory
 * is still there (from the object's own destroy, or before the deferred
 * free of an object that had weak refs) or finds a count of 0 (not an
 * object from wref_new) prints a one-time "libwref: misuse:" warning naming
 * it and changes nothing.  Once a release build has freed the memory
 * (at death, or a grace period later), any further use is undefined: build
 * with --enable-debug, which keeps dead objects' memory in a quarantine of
 * the last 4096 frees and aborts naming the call (wref_release, wref_ref_get,
 * ...), or use ASan/valgrind.
 */
WREF_API void wref_release(void *obj);

/* wref_type_of - the type @obj was created with (NULL for NULL). */
WREF_API const wref_type *wref_type_of(const void *obj);

/* wref_strong_count - snapshot of @obj's strong count (0 once dead). */
WREF_API size_t wref_strong_count(const void *obj);

/*
 * wref_weak_count - number of live wref_ref handles to @obj (Python's
 * getweakrefcount): a shared callback-less ref counts once; methods,
 * finalizers and container entries are not counted.  Snapshot.  The
 * caller holds a strong ref to @obj (or runs in its destroy).
 */
WREF_API size_t wref_weak_count(const void *obj);

/*
 * wref_weak_refs - getweakrefs: stores up to @cap live refs to @obj in @out,
 * each a new strong ref the caller must release, and returns the total
 * number of live refs (which may exceed @cap).  @out may be NULL if @cap is 0.
 * The caller holds a strong ref to @obj (or runs in its destroy).
 */
WREF_API size_t wref_weak_refs(void *obj, wref_ref **out, size_t cap);

/* ------------------------------------------------------------------ */
/* Weak references                                                    */
/* ------------------------------------------------------------------ */

/* Death callback: runs on the executor thread once the referent died,
 * with @ref still valid for the call (wref_ref_get(ref) there is NULL).
 * If the user released @ref after the referent died but before the
 * callback was queued, the callback still runs (the ref was held at death)
 * but the handle has no strong ref left: do not wref_retain it there. */
typedef void (*wref_callback)(wref_ref *ref, void *arg);

/*
 * wref_ref_new - a weak ref to the live object @obj (caller holds a strong
 * ref).  With @cb, @cb(ref, @arg) runs exactly once on the executor if the
 * ref is still held when @obj dies; releasing the ref first cancels it.
 * Without @cb the ref is shared: every call returns the same handle,
 * retained once more; it lives in the object's control block (no memory of
 * its own) and cannot itself be weakly referenced (EINVAL, like Python's
 * weakref.ref objects; a callback ref can be).  Returns a new strong ref to
 * the handle, or NULL with
 * errno EINVAL (NULL @obj, WREF_TYPE_NO_WEAK type), ENOENT (@obj is dead,
 * e.g. called from its own destroy: so are every container insert, method,
 * finalizer and signal connection on it) or ENOMEM.
 */
WREF_API wref_ref *wref_ref_new(void *obj, wref_callback cb, void *arg);

/*
 * wref_ref_get - upgrade: a new strong ref to the referent, or NULL once it
 * died (forever after).  Lock-free: one atomic RMW on the fast path.
 * Never returns an object whose destroy has begun.  NULL @ref gives NULL.
 */
WREF_API void *wref_ref_get(wref_ref *ref);

/* wref_ref_alive - true while the referent is alive (a snapshot; use
 * wref_ref_get to act on it). */
WREF_API bool wref_ref_alive(const wref_ref *ref);

/*
 * wref_ref_call - proxy-style use: runs @fn(obj, @arg) with the referent
 * pinned by a strong ref for the duration, returns what @fn returns.
 * -ENOENT if dead (Python's ReferenceError), -EINVAL for NULL arguments.
 */
WREF_API int wref_ref_call(wref_ref *ref, int (*fn)(void *obj, void *arg),
			   void *arg);

/* wref_ref_hash - hash of the referent (its type's hash, else identity);
 * computed when the first weak ref is made, stable after death. */
WREF_API uint64_t wref_ref_hash(const wref_ref *ref);

/* wref_ref_equal - true when both refs name the same referent (alive or
 * dead).  Two NULLs are equal. */
WREF_API bool wref_ref_equal(const wref_ref *a, const wref_ref *b);

/* ------------------------------------------------------------------ */
/* WeakMethod                                                         */
/* ------------------------------------------------------------------ */

typedef void (*wref_method_fn)(void *obj, void *arg);

/*
 * wref_method_new - a weakly bound (@obj, @fn) pair (Python's WeakMethod).
 * Holds @obj weakly (its control block, never the payload; not counted by
 * wref_weak_count); the caller holds a strong ref to @obj.  Every call
 * returns a new, unshared handle.  Returns a new strong ref, or NULL with
 * EINVAL (NULL argument, NO_WEAK type) or ENOMEM.
 */
WREF_API wref_method *wref_method_new(void *obj, wref_method_fn fn);

/*
 * wref_method_call - calls fn(obj, @arg) on this thread with obj pinned by
 * a strong ref for the duration (fn may release every other ref to obj,
 * and the method itself); no library lock is held and no RCU read-side
 * section is open during fn.  0 if called, -ENOENT (calls nothing) if obj
 * died, -EINVAL for NULL @m.  Lock-free: one upgrade.
 */
WREF_API int wref_method_call(wref_method *m, void *arg);

/* ------------------------------------------------------------------ */
/* finalize                                                           */
/* ------------------------------------------------------------------ */

/* wref_finalize flags: also run at exit / wref_shutdown if still alive. */
enum { WREF_FIN_ATEXIT = 1 };

/*
 * wref_finalize - arrange for @fn(@arg) to run once when @obj dies (on the
 * executor; wref_flush waits for it), or earlier via wref_finalizer_call,
 * or at exit / wref_shutdown with WREF_FIN_ATEXIT.  The caller holds a
 * strong ref to @obj; @obj is held weakly (not counted by wref_weak_count).
 * The finalizer stays armed after the handle is released: the library
 * keeps its own ref until it runs or is detached.  Death, call, detach and
 * the at-exit run race safely: exactly one of them wins, so @fn runs at
 * most once.  @arg must not be @obj: its memory is gone when a death-time
 * finalizer runs.  Returns a new strong ref to the handle, or NULL with
 * EINVAL (NULL @obj or @fn, unknown @flags, NO_WEAK type) or ENOMEM.
 */
WREF_API wref_finalizer *wref_finalize(void *obj, void (*fn)(void *arg),
				       void *arg, unsigned flags);

/* wref_finalizer_alive - true while the finalizer has not run (nor begun
 * to) nor been detached.  A snapshot; false for NULL. */
WREF_API bool wref_finalizer_alive(wref_finalizer *f);

/* wref_finalizer_call - runs fn(arg) now on this thread if still alive and
 * disarms it; true if it ran.  Races safely with death: exactly one wins
 * (the loser returns false, or does not run).  False for NULL, and when
 * called from inside its own fn. */
WREF_API bool wref_finalizer_call(wref_finalizer *f);

/* wref_finalizer_detach - disarms without running; true if it was alive,
 * and then stores the argument in *@arg (if @arg is not NULL) for the
 * caller to clean up.  False (and *@arg untouched) otherwise. */
WREF_API bool wref_finalizer_detach(wref_finalizer *f, void **arg);

/* wref_finalizer_peek - true if alive, storing the argument in *@arg (if
 * not NULL); does not disarm. */
WREF_API bool wref_finalizer_peek(wref_finalizer *f, void **arg);

/* wref_finalizer_set_atexit - turn the at-exit run on or off (a no-op once
 * the finalizer ran or was detached, and for NULL).  At-exit finalizers
 * run on the thread calling wref_shutdown (exit's thread at exit), after
 * the executor drained (at once if exit() is called from a callback or a
 * destroy the library runs), each at most once and in no particular order,
 * until none is left: one armed while they run (by one of them) runs too. */
WREF_API void wref_finalizer_set_atexit(wref_finalizer *f, bool on);

/* ------------------------------------------------------------------ */
/* Containers                                                         */
/* ------------------------------------------------------------------ */

/*
 * Common rules for wref_valmap, wref_keymap and wref_set:
 *  - Each container is a wref object (wref_release frees it) built on a
 *    lock-free RCU hash table.  get/contains and get_or_create hits take no
 *    lock: one lookup and one upgrade.
 *  - Entries on weakly held objects never keep them alive, and disappear
 *    from len/get/contains/foreach as soon as the object's last strong
 *    release returns (no later traffic needed).  The entry removed is the
 *    one made for that object: a newer entry under the same key survives.
 *  - Entry inserts (set/add) on a WREF_TYPE_NO_WEAK object are EINVAL.
 *  - len is a snapshot; while inserts and removals run concurrently it may
 *    lag by their number.
 *  - foreach is weakly consistent: it visits the entries live when it
 *    starts and not removed meanwhile (inserts made during the walk may or
 *    may not be seen), never a dead object; each object is pinned by a
 *    strong ref while fn runs on it, and only then (a walk keeps no other
 *    member alive); fn runs with no library lock held and may modify the
 *    container or release anything, including the container.
 *    A non-zero return of fn stops the walk and is returned; -EINVAL for
 *    NULL arguments, -ENOMEM if the snapshot could not be allocated.
 *  - Releasing a container while other containers and weak refs still
 *    name its objects loses nothing: only its own entries go; values it
 *    held (keymap) and objects its retention tier held are released on the
 *    executor, so wref_flush() waits for them (rule 14).
 *  - hash/equal of key types (WREF_MAP_BY_VALUE) may be called inside RCU
 *    read-side sections, also on an object that is dying concurrently: they
 *    must be pure, must not block, and must read only fields that stay
 *    valid until the object's memory is freed.
 */

/* wref_map_options.flags */
/* keymap/set: compare keys with the key type's hash/equal (default:
 * identity).  An insert or lookup with a type lacking either is EINVAL. */
#define WREF_MAP_BY_VALUE 0x1u
/* valmap: get_or_create runs make at most once per key at a time; other
 * callers for that key wait (outside any lock) and get its object, or its
 * failure (NULL with make's errno).  make asking for its own key gets NULL
 * with EDEADLK. */
#define WREF_MAP_CREATE_ONCE 0x2u

typedef struct wref_map_options {
	size_t initial_size; /* buckets hint, 0 = default; the table grows */
	unsigned flags;      /* WREF_MAP_*; other bits are EINVAL */
	uint64_t retain_ms;  /* valmap: keep each object strongly alive for at
				least retain_ms after its last get, set or
				get_or_create (0 = off) */
	size_t retain_max;   /* with retain_ms: at most this many objects
				retained, the least recently used dropped
				first (0 = no limit) */
} wref_map_options;

/*
 * Weak-value map (Python's WeakValueDictionary).  Keys are byte strings of
 * any length (0 and 1 MiB included), copied; a NULL key with length 0 is
 * the empty key; a NULL key with non-zero length is EINVAL.  Values are
 * wref objects held weakly.
 *
 * Retention tier (retain_ms): an access keeps the object strongly held by
 * the map for retain_ms after it (a TTL cache over the weak cache), without
 * a lock on the access path.  Expiry runs off the access path (a timer
 * thread queues it on the executor); at most retain_max objects are held
 * (the trim runs on the executor right after the access that exceeded it,
 * so wref_flush() returns with the limit met).  del, pop, clear and a
 * replacing set drop the tier's hold at once.  In WREF_EXEC_INLINE mode
 * the timer thread runs no user code: expiry found due is performed by the
 * map's next wref_valmap_* call, on the calling thread (and wref_flush()
 * does not run it).
 *
 *	static void *open_conn(const void *key, size_t len, void *arg)
 *	{ return conn_connect(key, len); }   // a new strong ref, or NULL
 *
 *	wref_map_options o = { .retain_ms = 30000, .retain_max = 1000,
 *			       .flags = WREF_MAP_CREATE_ONCE };
 *	wref_valmap *pool = wref_valmap_new(&o);
 *	struct conn *c = wref_valmap_get_or_create(pool, host, strlen(host),
 *						   open_conn, NULL);
 *	if (c) { conn_send(c, msg); wref_release(c); }
 *	// idle connections die 30 s after their last use, or when the pool
 *	// holds 1000 and they are the least recently used
 */
/* wref_valmap_new - new map (@opt NULL = defaults); NULL + errno EINVAL
 * (unknown flags) or ENOMEM. */
WREF_API wref_valmap *wref_valmap_new(const wref_map_options *opt);
/* wref_valmap_get - new strong ref to the live value under key, or NULL
 * (errno ENOENT if absent or dead, EINVAL for bad arguments).  Lock-free. */
WREF_API void *wref_valmap_get(wref_valmap *m, const void *key, size_t len);
/* wref_valmap_set - maps key to @obj (held weakly), replacing any entry;
 * 0, -EINVAL (NULL map or obj, NULL key with len, NO_WEAK type) or
 * -ENOMEM. */
WREF_API int wref_valmap_set(wref_valmap *m, const void *key, size_t len,
			     void *obj);
/* wref_valmap_get_or_create - the live value under key, or the result of
 * @make(key, len, arg) (which returns a new strong ref) inserted
 * atomically.  All concurrent callers for one key get the same object,
 * also while the previous object under that key is dying.  Without
 * WREF_MAP_CREATE_ONCE, make may run in several racing callers; the
 * losers' objects are released before they return.  make runs with no
 * library lock held and outside RCU read-side sections.  Returns a new
 * strong ref, or NULL with errno: make's failure (errno as make left it,
 * ENOMEM if it left none), EINVAL (bad arguments, make returned a NO_WEAK
 * object, which is released), ENOMEM. */
WREF_API void *wref_valmap_get_or_create(wref_valmap *m, const void *key,
		size_t len, void *(*make)(const void *key, size_t len, void *arg),
		void *arg);
/* wref_valmap_pop - removes the entry and returns a strong ref to its live
 * value, or NULL (errno ENOENT if absent or dead, EINVAL). */
WREF_API void *wref_valmap_pop(wref_valmap *m, const void *key, size_t len);
/* wref_valmap_del - removes the entry; 0, -ENOENT if absent or dead (or
 * still being created under CREATE_ONCE), -EINVAL. */
WREF_API int wref_valmap_del(wref_valmap *m, const void *key, size_t len);
/* wref_valmap_len - number of live entries (snapshot; 0 for NULL). */
WREF_API size_t wref_valmap_len(wref_valmap *m);
/* wref_valmap_foreach - @fn(key, len, obj, arg) for each live entry, with
 * obj pinned and key valid for the call (see the common rules). */
WREF_API int wref_valmap_foreach(wref_valmap *m,
		int (*fn)(const void *key, size_t len, void *obj, void *arg),
		void *arg);
/* wref_valmap_clear - removes every entry present when it starts (entries
 * inserted concurrently may stay; NULL is a no-op). */
WREF_API void wref_valmap_clear(wref_valmap *m);

/*
 * Weak-key map (Python's WeakKeyDictionary).  Keys are wref objects held
 * weakly (identity, or the type's hash/equal with WREF_MAP_BY_VALUE);
 * values are wref objects held strongly by the entry until the key dies or
 * the entry is removed or replaced; the value is then released on the
 * executor (wref_flush waits for it).  A value that holds its own key
 * strongly keeps both alive until the entry is removed (as in Python).
 * With WREF_MAP_BY_VALUE, set with a key equal to a present one replaces
 * that entry: the entry then follows the new key object's life.
 *
 *	wref_keymap *meta = wref_keymap_new(NULL);
 *	wref_keymap_set(meta, widget, info);   // info retained by the map
 *	wref_release(info);
 *	...
 *	wref_release(widget);  // the entry goes; info released on the executor
 */
/* wref_keymap_new - new map; NULL + errno EINVAL (unknown flags), ENOMEM. */
WREF_API wref_keymap *wref_keymap_new(const wref_map_options *opt);
/* wref_keymap_set - key -> value (retained), replacing any entry (whose
 * value is released); 0, -EINVAL (NULL argument, NO_WEAK key, by value
 * without hash/equal), -ENOMEM. */
WREF_API int wref_keymap_set(wref_keymap *m, void *key, void *value);
/* wref_keymap_get - new strong ref to the value, or NULL (errno ENOENT,
 * EINVAL). */
WREF_API void *wref_keymap_get(wref_keymap *m, const void *key);
/* wref_keymap_pop - removes the entry and returns its value as a strong
 * ref, or NULL (errno ENOENT, EINVAL). */
WREF_API void *wref_keymap_pop(wref_keymap *m, const void *key);
/* wref_keymap_del - removes the entry; 0, -ENOENT if absent, -EINVAL. */
WREF_API int wref_keymap_del(wref_keymap *m, const void *key);
/* wref_keymap_len - entries whose key is alive (snapshot; 0 for NULL). */
WREF_API size_t wref_keymap_len(wref_keymap *m);
/* wref_keymap_foreach - @fn(key, value, arg) with both pinned (see the
 * common rules). */
WREF_API int wref_keymap_foreach(wref_keymap *m,
		int (*fn)(void *key, void *value, void *arg), void *arg);

/*
 * Weak set (Python's WeakSet).  Members are wref objects held weakly,
 * compared by identity or, with WREF_MAP_BY_VALUE, by hash/equal.
 *
 *	wref_set *live = wref_set_new(NULL);
 *	wref_set_add(live, session);           // not retained
 *	if (wref_set_contains(live, session)) ...
 *	wref_release(session);                 // gone from the set at once
 */
/* wref_set_new - new set; NULL + errno EINVAL (unknown flags), ENOMEM. */
WREF_API wref_set *wref_set_new(const wref_map_options *opt);
/* wref_set_add - 0, -EEXIST if an equal live member is present, -EINVAL
 * (NULL, NO_WEAK, by value without hash/equal), -ENOMEM. */
WREF_API int wref_set_add(wref_set *s, void *obj);
/* wref_set_discard - 0, -ENOENT if absent, -EINVAL. */
WREF_API int wref_set_discard(wref_set *s, const void *obj);
/* wref_set_contains - true if an equal live member is present (lock-free;
 * false for bad arguments). */
WREF_API bool wref_set_contains(wref_set *s, const void *obj);
/* wref_set_len - live members (snapshot; 0 for NULL). */
WREF_API size_t wref_set_len(wref_set *s);
/* wref_set_foreach - @fn(obj, arg) with obj pinned (see the common
 * rules). */
WREF_API int wref_set_foreach(wref_set *s, int (*fn)(void *obj, void *arg),
			      void *arg);

/* ------------------------------------------------------------------ */
/* Signal: observer / event bus with weak subscribers                 */
/* ------------------------------------------------------------------ */

/* wref_signal_new - an empty signal; NULL with errno ENOMEM. */
WREF_API wref_signal *wref_signal_new(void);
/* wref_signal_connect - subscribe the pair (@obj held weakly, @fn); the
 * caller holds a strong ref to @obj.  One object may subscribe several
 * functions.  When @obj dies its subscriptions leave the signal at once
 * (len drops before the killing release returns); no disconnect needed.
 * -EEXIST for a duplicate pair, -EINVAL for NULL/NO_WEAK, -ENOMEM. */
WREF_API int wref_signal_connect(wref_signal *s, void *obj, wref_method_fn fn);
/* wref_signal_disconnect - removes the pair; -ENOENT if it is not
 * connected, -EINVAL for NULL arguments or a NO_WEAK @obj. */
WREF_API int wref_signal_disconnect(wref_signal *s, void *obj,
				    wref_method_fn fn);
/*
 * wref_signal_emit - calls fn(obj, @arg) for each live subscriber with obj
 * pinned, on this thread, in connection order; returns how many were
 * called.  The subscribers are a snapshot taken at the start: one
 * connected during the emit is not called by it; one disconnected during
 * the emit may still be (pinned by the snapshot, it cannot die first).
 * No lock is held and no RCU section is open during the calls: a
 * subscriber may connect, disconnect, emit, and release anything, the
 * signal included.  Lock-free against concurrent connects, disconnects,
 * deaths and other emits.  errno is 0 on return when every live
 * subscriber was called; ENOMEM when the snapshot could not grow and only
 * those pinned so far were called (the rest were not).
 */
WREF_API size_t wref_signal_emit(wref_signal *s, void *arg);
/* wref_signal_len - live subscriptions (snapshot); 0 for NULL. */
WREF_API size_t wref_signal_len(wref_signal *s);

/* ------------------------------------------------------------------ */
/* Runtime                                                            */
/* ------------------------------------------------------------------ */

/* wref_config.exec_mode */
enum {
	WREF_EXEC_THREAD = 0, /* callbacks run on the executor thread (default) */
	WREF_EXEC_INLINE = 1  /* callbacks run on the thread that queued them,
				 right after the release returns from library
				 code (single-threaded programs, tests) */
};

typedef struct wref_config {
	int exec_mode; /* WREF_EXEC_* */
} wref_config;

/*
 * wref_init - optional configuration, before any other call (or after
 * wref_shutdown).  @cfg NULL = defaults.  -EINVAL for an unknown mode,
 * -EBUSY if callbacks are already pending under another mode: queued or
 * running, on the executor or inline on any thread (so also when called
 * from a callback).
 */
WREF_API int wref_init(const wref_config *cfg);

/*
 * wref_flush - waits until every callback queued before the call has run,
 * and the library's own deferred work queued before it (values released
 * when weak keys die, retention-tier evictions, releases of objects that a
 * released container held).  -EDEADLK when called from a callback, and
 * in inline mode when work queued on this thread can run only after the
 * caller returns (from a destroy, e.g. the value release of a weak key
 * that died inside it).  A dying object's own callbacks are queued only
 * after its destroy returned, so a flush inside that destroy does not
 * wait for them.  It also frees the memory this thread retired whose grace
 * period has ended (a thread frees its own when the grace period came
 * late, e.g. when threads outnumber cores: a thread that stops calling the
 * library keeps that memory until its next flush or its exit).
 */
WREF_API int wref_flush(void);

/*
 * wref_shutdown - drains the executor, runs armed WREF_FIN_ATEXIT
 * finalizers, stops the executor thread and waits for deferred frees.
 * Also runs automatically at exit.  The library restarts lazily after it.
 * Nothing runs twice.  Does nothing where wref_flush() returns -EDEADLK
 * (from a callback, or an inline destroy with callbacks queued); at exit
 * from there (exit() in a callback or a destroy the library runs), only
 * the armed WREF_FIN_ATEXIT finalizers run, on the exiting thread.
 */
WREF_API void wref_shutdown(void);

/* A struct tag, not a typedef: the name wref_stats is the function. */
struct wref_stats {
	uint64_t objects_live;     /* created and not yet dead */
	uint64_t objects_created;
	uint64_t blocks_live;      /* control blocks (objects ever weakly
				      referenced, until their last weak ref) */
	uint64_t callbacks_queued; /* total queued to the executor */
	uint64_t callbacks_run;    /* total run */
};

/* wref_stats - snapshot of library counters into *@out. */
WREF_API void wref_stats(struct wref_stats *out);

/*
 * Fork: after fork() the child may use the library; its executor restarts
 * lazily, and callbacks queued in the parent before the fork run in the
 * child too (the child owns a copy of that state), as they do in the parent.
 * Any thread may fork at any time, even while other threads are inside
 * library calls or wait in wref_flush(); the callback running on the
 * executor at that instant runs in the parent only.
 */

#ifdef __cplusplus
}
#endif

#endif /* WREF_H */
