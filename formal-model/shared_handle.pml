/*
 * shared_handle.pml - SPIN model of the shared callback-less weak ref that
 * lives inside an object's control block (docs/core.md, "The
 * callback-less shared weak ref is the side table itself"; lib/ref.c
 * shared_get, shared_died, wref_ref_new; lib/object.c wref_release,
 * release_cnt_slow, wref__cb_unhold, wref__cnt_tryget_slow).
 *
 * The block exists (published) from the start; the object's strong count
 * S lives in it.  Its fields, each read or written by the C code as one
 * load, store or RMW (one statement here; each atomic { } is one atomic
 * instruction, every other statement one plain load or store):
 *   S      the object's strong count: fetch_sub to 0, then CAS 0 -> DEAD
 *          (sticky: [DEAD, ...) is dead); an upgrade is one fetch_add,
 *          and one that finds 0 revives it and takes a hold for the
 *          releaser's CAS (the ticket, formal-model/side_table.pml)
 *   HW     the shared handle's own count word (users' refs to the
 *          handle): INL(n) = 2n; retain/tryget/release by CAS; the
 *          release from INL(1) CASes it to HDEAD and calls shared_died
 *   H      holds: 1 for the object until its memory is freed, 1 per
 *          arming of the handle until that arming's death, 1 per revival
 *          ticket of S
 *   LK     cb->lock, which serialises armings (shared_get)
 * Every access to a block field first asserts that the block is not
 * freed (CB()).
 *
 * The protocol: wref_ref_new (by a strong holder of the object) takes the
 * lock, tries a ref on HW, and if HW is dead arms it again (HW = INL(1))
 * with a new hold; the death of an arming (its last user ref CASes HW to
 * HDEAD) drops one hold, with no lock.  A death still on its way to
 * shared_died when the handle is armed again keeps its own hold.
 *
 * Threads, every interleaving: A and B each hold one strong ref, get the
 * handle with wref_ref_new, then release the handle and their strong ref
 * in either order, so the handle's deaths land before, during and after
 * the object's death.  A may instead be the thread whose wref_ref_new
 * made the block: the handle is born live with A's ref (no lock).  C
 * holds a strong ref, gets the handle, releases its strong ref, then
 * upgrades through the handle: an upgrade may find S at 0 (between a
 * release's fetch_sub and its CAS) and revive the object, and then C, a
 * strong holder again, gets the handle a second time (it may arm it
 * again); then it releases what it holds in every order.
 * Safety (assertions, checked in every state that reaches them):
 *   H1 the block is freed exactly once, and no field of it is accessed
 *      after the free (CB());
 *   H2 the handle's hold is dropped exactly once per arming (never more
 *      unholds than armings; equal at the end);
 *   H4 arming rewrites HW only while it is dead (nobody holds the
 *      handle), a release never finds HW dead (no ref is lost), and no
 *      wref_ref_new runs for a dead object;
 *   H5 at the end (all threads done) the block is freed: nothing leaks.
 * Broken variants (each must make SPIN report an error; `make
 * check-model` checks that it does):
 *   BROKEN_REVIVE_TAKEOVER  the protocol this one replaced (commit
 *                           1fe1e6b): cb->shared and cb->revived under the
 *                           lock, a rearming of a handle whose death has
 *                           not reached the lock takes that death over
 *                           (no hold), and shared_died skips the lock
 *                           when the object is dead and no takeover is
 *                           pending.  A death that took its takeover back
 *                           (revived-- under the lock) has not unlocked
 *                           yet when another death, after the object's,
 *                           reads revived == 0, drops the last hold and
 *                           frees the block: the first one's unlock
 *                           writes freed memory (CB() in unlock())
 *   BROKEN_ARM_NO_HOLD      an arming takes no hold: the block is freed
 *                           under a live handle
 *   BROKEN_ARM_UNLOCKED     armings are not serialised: two wref_ref_new
 *                           both find HW dead and both arm it, so one of
 *                           the two refs handed out is lost
 *   BROKEN_UNHOLD_SHORTCUT  the unhold shortcut frees when it reads
 *                           H <= 2, i.e. also when another hold is left
 * (Found by this model: the BROKEN_REVIVE_TAKEOVER bug, in the code of
 * 1fe1e6b, 96 steps, before it was ever seen in a test.)
 */

#define INL(n)   (2 * (n))   /* inline count word */
#define HDEAD    99          /* the handle's word once its count died */
#define DEAD     64          /* S: [DEAD, ...) is dead */

byte S = 3;                  /* A, B and C hold one strong ref each */
byte HW = HDEAD;             /* the handle: not armed */
byte H = 1;                  /* the object's hold */
bool LK = false;
#ifdef BROKEN_REVIVE_TAKEOVER
bool SH = false;             /* cb->shared, under LK */
byte RV = 0;                 /* cb->revived, under LK */
#endif

bool cb_freed = false;
bool obj_freed = false;
byte arms = 0;               /* ghost: holds taken for the handle */
byte hunholds = 0;           /* ghost: the handle's holds dropped */
bool born = false;           /* A's wref_ref_new made the block */
byte done = 0;

/* every access to a field of the block checks it is not freed (H1); a
 * dead local is zeroed in the step after its last use (fewer states) */
#define CB()  assert(!cb_freed)

/* wref__lock / wref__unlock: one CAS, one exchange */
inline lock()   { atomic { !LK -> CB(); LK = true; c = 0 } }
inline unlock() { atomic { CB(); LK = false } }

/* wref__cb_hold: one relaxed fetch_add */
inline hold()   { atomic { CB(); H++ } }

/* the rest of wref__cb_unhold, h = the acquire load of H: reading 1
 * (ours is the only hold: nobody can add one) skips the RMW; else one
 * fetch_sub, and the last hold frees the block */
inline unhold_rest()
{
	if
#ifdef BROKEN_UNHOLD_SHORTCUT
	:: h <= 2 ->
#else
	:: h == 1 ->
#endif
		atomic { assert(!cb_freed); cb_freed = true; h = 0 }
	:: else ->
		atomic { CB(); assert(H > 0); h = H; H-- };
		if
		:: h == 1 -> atomic { assert(!cb_freed); cb_freed = true; h = 0 }
		:: else -> h = 0
		fi
	fi
}
inline unhold() { atomic { CB(); h = H }; unhold_rest() }
/* the same, dropping the handle's hold (H2: at most one per arming) */
inline handle_unhold()
{
	atomic { CB(); h = H; assert(hunholds < arms); hunholds++;
		 c = 0; rv = 0; ok = false };
	unhold_rest()
}

/* the object's death, by the thread that set DEAD: wref__cb_kill reads
 * an empty watch list (no lock), destroy, free of the object's memory,
 * then the object's hold goes */
inline die_obj()
{
	atomic { CB(); w = 0; assert(!obj_freed); obj_freed = true;
		 ok = false };
	unhold()
}

/* wref_release of a strong ref: release_cnt, release_cnt_slow */
inline release_strong()
{
	atomic { CB(); c = S; S--; assert(c > 0 && c < DEAD) };
	if
	:: c == 1 ->
		atomic { CB(); c = 0;
			 if :: S == 0 -> S = DEAD; ok = true
			    :: else -> ok = false fi };
		if
		:: ok -> die_obj()
		:: else -> unhold()     /* the reviver's ticket */
		fi
	:: else -> c = 0
	fi
}

/* wref_ref_get through the handle (a ref to it is held): one fetch_add;
 * one that finds 0 revives the object and takes the releaser's ticket */
inline upgrade()
{
	atomic { CB(); c = S; S++; ok = (c < DEAD) };
	if
	:: c == 0 -> atomic { CB(); H++; c = 0 }
	:: else -> c = 0
	fi
}

/* shared_arm: one store; nobody holds a DEAD handle (H4) */
inline arm()
{
	atomic { CB(); assert(HW == HDEAD); HW = INL(1); ok = false; w = 0 }
}

/* shared_died: the handle's count was just CASed to HDEAD */
inline shared_died()
{
#ifndef BROKEN_REVIVE_TAKEOVER
	/* every death owns its arming's hold: drop it, no lock */
	handle_unhold()
#else
	atomic { CB(); c = S; ok = false };     /* acquire */
	atomic { CB(); rv = RV };               /* relaxed */
	if
	:: c >= DEAD && rv == 0 -> ok = true    /* no lock; SH stays set */
	:: else ->
		lock();
		atomic { CB(); rv = RV };
		if
		:: rv > 0 ->
			/* a rearming took this death over */
			atomic { CB(); assert(rv > 0); RV = rv - 1; rv = 0 };
			unlock();
			ok = false
		:: else ->
			atomic { CB(); SH = false; rv = 0 };
			unlock();
			ok = true
		fi
	fi;
	if
	:: ok -> handle_unhold() /* the handle's hold */
	:: else -> skip
	fi
#endif
}

/* wref_release of a ref to the handle (its type word has the PIN bit:
 * no sole-owner store, the CAS loop of an inline count) */
inline release_handle()
{
	do
	:: atomic { CB(); w = HW; assert(w != HDEAD && w >= INL(1)) };
	   if
	   :: w == INL(1) ->
		atomic { CB();
			 if :: HW == w -> HW = HDEAD; ok = true
			    :: else -> ok = false fi; w = 0 };
		if :: ok -> shared_died(); break :: else -> skip fi
	   :: else ->
		atomic { CB();
			 if :: HW == w -> HW = w - 2; ok = true
			    :: else -> ok = false fi; w = 0 };
		if :: ok -> ok = false; break :: else -> skip fi
	   fi
	od
}

#ifdef BROKEN_ARM_UNLOCKED
#define ARM_LOCK()    skip
#define ARM_UNLOCK()  skip
#else
#define ARM_LOCK()    lock()
#define ARM_UNLOCK()  unlock()
#endif

/* wref_ref_new(obj, NULL, NULL) by a strong holder, the block published:
 * live_block's load, then shared_get under the lock */
inline ref_new()
{
	atomic { CB(); c = S; assert(c > 0 && c < DEAD); ok = false };
	ARM_LOCK();
	/* wref__tryget on the handle's word: a CAS loop unless it is dead */
	do
	:: atomic { CB(); w = HW };
	   if
	   :: w == HDEAD -> break
	   :: else ->
		atomic { CB();
			 if :: HW == w -> HW = w + 2; ok = true
			    :: else -> skip fi; w = 0 };
		if :: ok -> break :: else -> skip fi
	   fi
	od;
	if
	:: ok -> ok = false
	:: else ->
#ifndef BROKEN_REVIVE_TAKEOVER
		/* dead: arm it again, with a hold of its own */
		atomic { CB(); arms++ };
#ifndef BROKEN_ARM_NO_HOLD
		hold();
#endif
		arm()
#else
		atomic { CB(); ok = SH; w = 0 };
		if
		:: !ok ->
			/* not armed: arm it, with a new hold */
			arm();
			atomic { CB(); SH = true; arms++ };
			hold()
		:: else ->
			/* its death has not reached the lock: rearm it
			 * and count the takeover */
			arm();
			atomic { CB(); rv = RV };
			atomic { CB(); RV = rv + 1; rv = 0 }
		fi
#endif
	fi;
	ARM_UNLOCK()
}

#define END()  atomic { done++; w = 0; c = 0; h = 0; rv = 0; ok = false }

/* A (id 0), B (id 1) and C (id 2) */
proctype T(byte id)
{
	byte w, c, h, rv, nh, ns; bool ok;
	if
	:: id == 0 && born -> skip  /* our wref_ref_new made the block */
	:: else -> ref_new()
	fi;
	nh = 1;                  /* refs to the handle held */
	ns = 1;                  /* strong refs held */
	if
	:: id == 2 ->
		release_strong();
		upgrade();       /* through the handle */
		if
		:: ok -> ref_new(); nh = 2  /* a strong holder again */
		:: else -> ns = 0
		fi
	:: else -> skip
	fi;
	/* release what is held, in every order */
	do
	:: nh > 0 -> release_handle(); nh--
	:: ns > 0 -> release_strong(); ns--
	:: nh == 0 && ns == 0 -> break
	od;
	END()
}

init
{
	if
	:: skip                  /* the block was made by another weak use */
	:: HW = INL(1); H = 2; arms = 1; born = true;
#ifdef BROKEN_REVIVE_TAKEOVER
	   SH = true;
#endif
		/* by A's wref_ref_new: the handle born live with A's ref */
	fi;
	atomic { run T(0); run T(1); run T(2) };
	done == 3;
	/* H1, H5: the block freed, the object dead and freed */
	assert(cb_freed && obj_freed && S >= DEAD);
	/* H2: one unhold per arming */
	assert(hunholds == arms)
#ifdef BROKEN_REVIVE_TAKEOVER
	;
	assert(RV == 0)
#endif
}
