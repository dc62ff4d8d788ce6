/*
 * side_table.pml - SPIN model of libwref's side-table core protocol
 * (docs/core.md): an object's strong count lives inline in its header word
 * until the first weak reference, which moves it, with one CAS, into a
 * side table that weak refs keep alive; upgrades are one fetch_add on the
 * side table's sticky counter and never touch the object's memory, so the
 * object's memory is freed at death without a grace period.
 *
 * Three threads, every interleaving (each atomic { } is one atomic
 * instruction of the C code; every other statement is one plain load or
 * store):
 *   A  holds one strong ref; makes the first weak ref (with a death
 *      callback: the side table is created and the count migrated), hands
 *      it to C, then releases its strong ref;
 *   B  holds one strong ref; retains once more and releases twice, racing
 *      A's migration (its RMWs may hit the inline word or the side table);
 *   C  upgrades through the weak ref (twice: an upgrade may find the
 *      count at 0, between a release's fetch_sub and its CAS to DEAD, and
 *      revive it), uses and releases what it got, and releases the weak
 *      ref (racing the death: the callback must be queued exactly once iff
 *      the ref is still held at death).
 * The side table here is made for a callback ref, so it carries the SOLO
 * hint (object.c release_cnt_solo): every release first loads the count
 * and, seeing 1, tries one CAS 1 -> DEAD; otherwise (or if the CAS fails)
 * it takes the fetch_sub path.  Its only watch is the callback ref's, so
 * the death takes the lone path (object.c kill_lone): it pins the ref
 * (a tryget on the ref's own count) and, pinned, fires it without the
 * lock; the pin goes when the callback has run.  The ref's release that
 * takes its count to 0 unpublishes it: nothing if it was fired, else
 * under the lock.
 * Safety (assertions, checked in every state that reaches them):
 *   S1 no upgrade succeeds once the object is dead (sticky death), and no
 *      upgrade returns an object whose destroy has begun;
 *   S2 destroy runs exactly once; the object's memory is freed once and
 *      nobody reads the header word after the free;
 *   S3 the side table is freed exactly once, after its last hold, and
 *      never touched after;
 *   S4 the callback is queued exactly once iff the weak ref was held when
 *      the object died;
 *   S5 at the end nothing leaks (object and side table freed);
 *   S6 the lone death's unlocked writes never overlap a critical section
 *      of the ref's unpublish (the pin keeps it away).
 * Broken variants (each must make SPIN report an error; `make
 * check-model` checks that it does):
 *   BROKEN_MIGRATE_STORE  publish the side table with a plain store, not a
 *                         CAS against the inline count it copied (a racing
 *                         retain or release is lost)
 *   BROKEN_NOT_STICKY     the release that takes the count to 0 destroys
 *                         the object without marking the count DEAD, so
 *                         an upgrade that finds 0 revives a dead object
 *   BROKEN_NO_TICKET      an upgrade that revives a count of 0 takes no
 *                         hold on the side table for the releaser whose
 *                         CAS 0 -> DEAD is still to come (that CAS can
 *                         then touch a freed side table)
 *   BROKEN_CB_NOLOCK      the weak ref's release cancels its callback and
 *                         lets go without the side table's lock (the
 *                         death's collection of armed callbacks races it)
 *   BROKEN_ST_NOHOLD      the object's death frees the side table instead
 *                         of dropping its hold (the weak ref still uses it)
 *   BROKEN_SOLO_STORE     the SOLO release stores DEAD after loading 1
 *                         instead of a CAS 1 -> DEAD (an upgrade between
 *                         the load and the store revives a dying object)
 *   BROKEN_LONE_NOPIN     the lone death fires the ref without the lock
 *                         whether or not its pin succeeded (the ref's
 *                         unpublish may be running, or done)
 *   BROKEN_LONE_STALE_HEAD the lone death trusts the first look at the
 *                         list: the ref may have been cancelled since
 */

#define INL(n)   (2 * (n))   /* header word: inline count n */
#define SIDE     1           /* header word: points at the side table */
#define DEAD_INL 99          /* header word: died inline */
#define DEAD     64          /* side table count: [DEAD, ...) is dead */

byte W = INL(2);             /* A and B hold one strong ref each */
bool obj_freed = false;
byte destroyed = 0;

bool st_alloc = false;       /* side table allocated */
bool st_freed = false;
byte st_strong = 0;          /* sticky counter, valid once st_alloc */
byte st_holds = 0;           /* object's hold + the weak ref's hold */
bool st_lock = false;
bool st_dead = false;        /* under st_lock: watches collected */

bool ref_made = false;       /* A published the weak ref to C */
bool ref_armed = false;      /* callback armed, under st_lock */
bool ref_held = false;       /* C has not released the weak ref */
bool held_at_death = false;  /* ghost: was the ref held at the death */
byte cb_queued = 0;
byte done = 0;
byte ref_cnt = 0;            /* the callback ref's own strong count */
bool fired = false;          /* the death fired the ref (lone path) */
bool in_cs = false;          /* ghost: unpublish is inside st_lock */

#define OBJ_ALIVE()  assert(!obj_freed)
#define ST_LIVE()    assert(st_alloc && !st_freed)

inline lock()   { atomic { !st_lock -> st_lock = true } }
inline unlock() { st_lock = false }

inline st_unhold()
{
	ST_LIVE();
	atomic { st_holds--; last = (st_holds == 0) };
	if
	:: last -> assert(!st_freed); st_freed = true
	:: else -> skip
	fi
}

/* the callback ref's unpublish, by the release that took its count to 0 */
inline unpublish()
{
	if
	:: fired -> ref_held = false  /* fired by the lone death: no lock */
	:: else ->
		lock();
		in_cs = true;
		if :: !st_dead -> ref_armed = false :: else -> skip fi;
		ref_held = false;   /* the ref's release linearises here */
		in_cs = false;
		unlock()
	fi
}

/* a release of the callback ref (C's, or the pin after the callback) */
inline ref_put()
{
	atomic { ref_cnt--; last = (ref_cnt == 0) };
	if
	:: last -> unpublish(); st_unhold()  /* the ref's hold on the table */
	:: else -> skip
	fi
}

/* the thread that made the count dead: collect callbacks, destroy, free */
inline die_side()
{
	ST_LIVE();
	pinned = false;
	if
	:: !ref_armed ->
		/* no watch linked (read without the lock): every link was
		 * made by a strong holder before its release, so none can
		 * appear now; the ref's release already cancelled it */
		skip
	:: else ->
		/* lone: read the head again (kill_lone) and pin the ref it
		 * names (a tryget on its count).  The head may be empty by
		 * now: the ref's unpublish may have cancelled it under the
		 * lock, reading the object alive.  BROKEN_LONE_STALE_HEAD
		 * uses the first read (C: a NULL dereference, which make
		 * torture found) */
#ifdef BROKEN_LONE_STALE_HEAD
		assert(ref_armed);
#endif
		if
		:: ref_armed ->
			atomic { if :: ref_cnt > 0 -> ref_cnt++; pinned = true
				    :: else -> skip fi }
		:: else -> skip
		fi;
#ifdef BROKEN_LONE_NOPIN
		if :: !pinned -> lone = true :: else -> skip fi;
#endif
		if
		:: pinned || lone ->
			assert(!in_cs);   /* S6 */
			st_dead = true;
			held_at_death = ref_held;
			assert(!in_cs);   /* S6 */
			ref_armed = false;
			fired = true;
			cb_queued++
		:: else ->
			lock();
			st_dead = true;
			held_at_death = ref_held;
			if
			:: ref_armed -> ref_armed = false; cb_queued++
			:: else -> skip
			fi;
			unlock()
		fi
	fi;
	destroyed++;
	assert(destroyed == 1);
	assert(!obj_freed);
	obj_freed = true;        /* at once: no upgrade reads the object */
#ifdef BROKEN_ST_NOHOLD
	st_freed = true;
#else
	st_unhold();
#endif
	/* the callback ran: its pin goes */
	if :: pinned -> ref_put() :: else -> skip fi
}

inline die_inline()
{
	destroyed++;
	assert(destroyed == 1);
	assert(!obj_freed);
	obj_freed = true
}

/* retain by a strong holder */
inline retain()
{
	do
	:: OBJ_ALIVE(); w = W;
	   if
	   :: w == SIDE ->
		ST_LIVE();
		atomic { c = st_strong; st_strong++ };
		assert(c > 0 && c < DEAD);   /* we hold a ref: alive */
		break
	   :: else ->
		assert(w != DEAD_INL && w > 0);
		atomic { if :: W == w -> W = w + 2; ok = true
			    :: else -> ok = false fi };
		if :: ok -> break :: else -> skip fi
	   fi
	od
}

/* release by a strong holder */
inline release()
{
	do
	:: OBJ_ALIVE(); w = W;
	   if
	   :: w == SIDE ->
		/* SOLO: a load picks the path; seeing 1, one CAS 1 -> DEAD */
		ST_LIVE();
		c = st_strong;
		if
		:: c == 1 ->
#ifdef BROKEN_SOLO_STORE
			st_strong = DEAD; ok = true
#else
			atomic { if :: st_strong == 1 -> st_strong = DEAD; ok = true
				    :: else -> ok = false fi }
#endif
		:: else -> ok = false
		fi;
		if :: ok -> die_side(); break :: else -> skip fi;
		/* one fetch_sub; the thread that takes it to 0 then tries
		 * one CAS 0 -> DEAD (rcuref_t): an upgrade may revive 0 in
		 * between, and then takes a hold on the table for us */
		ST_LIVE();
		atomic { c = st_strong; st_strong-- };
		assert(c > 0 && c < DEAD);
		if
		:: c == 1 ->
#ifdef BROKEN_NOT_STICKY
			die_side()   /* dies at 0, never marks it DEAD */
#else
			ST_LIVE();   /* S3: the CAS touches the table */
			atomic { if :: st_strong == 0 -> st_strong = DEAD; ok = true
				    :: else -> ok = false fi };
			if
			:: ok -> die_side()
#ifdef BROKEN_NO_TICKET
			:: else -> skip
#else
			:: else -> st_unhold()  /* the reviver's ticket */
#endif
			fi
#endif
		:: else -> skip
		fi;
		break
   :: else ->
		assert(w != DEAD_INL && w > 0);
		if
		:: w == INL(1) ->
			atomic { if :: W == w -> W = DEAD_INL; ok = true
				    :: else -> ok = false fi };
			if :: ok -> die_inline(); break :: else -> skip fi
		:: else ->
			atomic { if :: W == w -> W = w - 2; ok = true
				    :: else -> ok = false fi };
			if :: ok -> break :: else -> skip fi
		fi
	   fi
	od
}

proctype A()
{
	byte w, c, n; bool ok, last, pinned, lone;
	/* first weak ref: allocate and initialise the side table, then
	 * publish it by a CAS against the inline count it copied */
	st_holds = 2;            /* the object's hold + the weak ref's */
	ref_armed = true;
	ref_held = true;
	ref_cnt = 1;             /* C's handle */
	st_alloc = true;         /* not yet reachable by anyone else */
	do
	:: OBJ_ALIVE(); w = W;
	   assert(w != SIDE && w != DEAD_INL);
	   n = w / 2;
	   st_strong = n;        /* private until the publication */
#ifdef BROKEN_MIGRATE_STORE
	   W = SIDE; break
#else
	   atomic { if :: W == w -> W = SIDE; ok = true
		       :: else -> ok = false fi };
	   if :: ok -> break :: else -> skip fi
#endif
	od;
	ref_made = true;         /* hand the weak ref to C */
	release();
	done++
}

proctype B()
{
	byte w, c; bool ok, last, pinned, lone;
	retain();
	release();
	release();
	done++
}

proctype C()
{
	byte c, w, k; bool ok, last, pinned, lone;
	ref_made;
	k = 0;
	do
	:: k < 2 ->
		k++;
		/* upgrade: one fetch_add on memory the weak ref keeps alive */
		ST_LIVE();
		atomic { c = st_strong; st_strong++ };
		if
		:: c < DEAD ->
			if
			:: c == 0 ->
				/* revived a count whose releaser has yet to
				 * try its CAS: hold the table for it */
#ifndef BROKEN_NO_TICKET
				ST_LIVE();
				atomic { st_holds++ }
#else
				skip
#endif
			:: else -> skip
			fi;
			/* S1: a live, undestroyed object */
			assert(destroyed == 0 && !obj_freed);
			release()
		:: else -> skip  /* dead: the increment stays in the dead zone */
		fi
	:: k < 2 -> break   /* stop upgrading at any point */
	:: else -> break
	od;
	/* release the weak ref: cancel the callback if not yet collected */
	ST_LIVE();
#ifdef BROKEN_CB_NOLOCK
	if :: !st_dead -> ref_armed = false :: else -> skip fi;
	ref_held = false;
	atomic { ref_cnt--; last = (ref_cnt == 0) };
	if :: last -> st_unhold() :: else -> skip fi;
#else
	atomic { ref_cnt--; last = (ref_cnt == 0) };
	if :: last -> unpublish(); st_unhold() :: else -> skip fi;
#endif
	done++
}

init
{
	atomic { run A(); run B(); run C() };
	done == 3;
	/* S2, S5: exactly one death, everything freed */
	assert(destroyed == 1 && obj_freed);
	assert(st_freed);
	/* S4: the callback ran iff the ref was held at death */
	assert(cb_queued == (held_at_death -> 1 : 0));
	assert(!ref_armed)
}
