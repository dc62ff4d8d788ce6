/*
 * handback.pml - SPIN model of the hand-back of retired memory (lib/rcu.c
 * "hand-back", hand_over, run_batch, home_return, home_step,
 * flush_exiting; lib/thread.c thread_exit, wref__threads_take_ready;
 * lib/thread.h struct wref__home, wref__home_put).
 *
 * One thread T retires two batches (B0, B1).  Each hand-over takes a ref
 * on T's home for the batch; liburcu's call_rcu thread C later runs the
 * batch: on time it frees it; late it returns it to the home unless the
 * home is full (HOME_CAP) or T is gone: it pushes the batch on the home's
 * ready list, then re-reads gone and, if T is gone by then, takes the
 * whole list (exchange) and frees it.  T frees what came back whenever it
 * retires more (a step: take the list if its own is empty, free one
 * batch), and at its exit: it stores gone, then frees everything that is
 * on the list or its own; then (thread_exit) it leaves the registry under
 * the registry lock and drops its ref on the home.  A third thread D is
 * wref_shutdown: under the registry lock, if T is still registered, it
 * takes T's list (exchange) and frees it.  Freeing a batch drops its ref
 * on the home; the last ref frees the home.  Each atomic { } is one atomic
 * instruction (the C code's seq_cst store of gone, CAS push, exchange,
 * fetch_sub); every access to a home field first asserts that the home is
 * not freed (HOME()).
 *
 * Safety (assertions, every interleaving):
 *   K1 every batch is freed exactly once (never twice; at the end, once);
 *   K2 no home field is accessed after the home is freed (HOME());
 *   K3 at the end the home is freed: nothing leaks.
 * Broken variants (each must make SPIN report an error; `make
 * check-model` checks that it does):
 *   BROKEN_NO_RECHECK   home_return does not re-read gone after its push:
 *                       a batch pushed after T's exit drained the list
 *                       is never freed (K1 at the end)
 *   BROKEN_GONE_LATE    T's exit frees what came back before storing
 *                       gone: the same batch is lost (K1)
 *   BROKEN_NO_BATCH_REF a hand-over takes no ref on the home: T's exit
 *                       frees it while a batch is in flight, and C's
 *                       return touches it (K2)
 *   BROKEN_PUT_IN_STEP  T drops its ref in the exit step, before leaving
 *                       the registry: the shutdown's walk reads the
 *                       freed home (K2)
 *   BROKEN_PUSH_NO_REF  home_return takes no ref of its own around its
 *                       push and re-read: once pushed, the batch is T's
 *                       to free, and T may free it and exit, dropping
 *                       the last ref, before C re-reads gone (K2)
 * (Found by this model: BROKEN_PUSH_NO_REF was the first version of
 * home_return, about 75 steps, before any test saw it.)
 * Promela note: a condition is read into a local inside its atomic { }
 * and tested after; an `atomic { HOME(); cond } ->` guard would be
 * executable at once (its first statement is) and then wait for cond,
 * which hid BROKEN_GONE_LATE in a first draft of this model.
 */

#define NB        2
#define HOME_CAP  1

bit gone = 0;
byte ready = 0;         /* bitmask of batches on the home's ready list */
byte nready = 0;        /* the cap's estimate */
byte refs = 1;          /* T's ref */
bit home_freed = 0;
bit registered = 1;     /* T on the registry (under reglk) */
bit reglk = 0;

byte handed = 0;        /* bitmask: handed over, not yet run by C */
byte freed[NB];
bit t_done = 0;
bit c_done = 0;
bit d_done = 0;

#define HOME()  assert(!home_freed)

inline lock(l)   { atomic { l == 0 -> l = 1 } }
inline unlock(l) { l = 0 }

/* wref__home_put: fetch_sub, the last frees */
inline home_put() {
	atomic {
		HOME();
		refs--;
		if
		:: refs == 0 -> home_freed = 1
		:: else -> skip
		fi
	}
}

/* free_batch(b): its heads, then its ref on the home */
inline free_batch(b) {
	assert(freed[b] == 0);      /* K1: never twice */
	freed[b]++;
#ifdef BROKEN_NO_BATCH_REF
	skip
#else
	home_put()
#endif
}

/* free every batch in the bitmask @m (the taker's private list) */
inline free_all(m, i) {
	i = 0;
	do
	:: i < NB ->
		if
		:: (m & (1 << i)) -> m = m & ~(1 << i); free_batch(i)
		:: else -> skip
		fi;
		i++
	:: else -> break
	od
}

proctype T()
{
	byte own = 0, taken, b, i;
	/* retire and hand over two batches, with steps in between */
	b = 0;
	do
	:: b < NB ->
		atomic {
#ifndef BROKEN_NO_BATCH_REF
			HOME(); refs++;     /* hand_over: the batch's ref */
#endif
			handed = handed | (1 << b)
		};
		b++;
		/* a retirement's step: take the list if ours is empty, free
		 * one batch */
		if
		:: own == 0 ->
			atomic { HOME(); taken = ready; ready = 0 };
			own = taken
		:: else -> skip
		fi;
		if
		:: own & 1 -> own = own & ~1; atomic { HOME(); nready-- }; free_batch(0)
		:: (own & 2) && !(own & 1) -> own = own & ~2; atomic { HOME(); nready-- }; free_batch(1)
		:: else -> skip
		fi
	:: else -> break
	od;
	/* flush_exiting */
#ifdef BROKEN_GONE_LATE
	atomic { HOME(); taken = ready; ready = 0 };
	own = own | taken;
	free_all(own, i);
	atomic { HOME(); gone = 1 };
#else
	atomic { HOME(); gone = 1 };
	atomic { HOME(); taken = ready; ready = 0 };
	own = own | taken;
	free_all(own, i);
#endif
#ifdef BROKEN_PUT_IN_STEP
	home_put();
	lock(reglk); registered = 0; unlock(reglk);
#else
	/* thread_exit: leave the registry, then drop the thread's ref */
	lock(reglk); registered = 0; unlock(reglk);
	home_put();
#endif
	t_done = 1
}

proctype C()
{
	byte b, taken, i;
	bit late, g;
	b = 0;
	do
	:: b < NB ->
		/* run_batch, after the batch's grace period */
		atomic { (handed & (1 << b)) -> handed = handed & ~(1 << b) };
		if
		:: late = 0
		:: late = 1
		fi;
		if
		:: late ->
			/* home_return */
			atomic { HOME(); g = gone || nready >= HOME_CAP };
			if
			:: g -> free_batch(b)
			:: else ->
#ifndef BROKEN_PUSH_NO_REF
				/* our own ref: once pushed, the batch (and its
				 * ref) is the taker's */
				atomic { HOME(); refs++ };
#endif
				atomic { HOME(); nready++ };
				atomic { HOME(); ready = ready | (1 << b) };
#ifndef BROKEN_NO_RECHECK
				atomic { HOME(); g = gone };
				if
				:: g ->
					atomic { HOME(); taken = ready; ready = 0 };
					free_all(taken, i)
				:: else -> skip
				fi;
#endif
#ifndef BROKEN_PUSH_NO_REF
				home_put()
#else
				skip
#endif
			fi
		:: else -> free_batch(b)
		fi;
		b++
	:: else -> break
	od;
	c_done = 1
}

/* wref_shutdown's walk (wref__threads_take_ready): under the registry
 * lock, a registered thread's home is alive */
proctype D()
{
	byte taken, i;
	lock(reglk);
	if
	:: registered ->
		atomic { HOME(); taken = ready; ready = 0 };
		unlock(reglk);
		free_all(taken, i)
	:: else -> unlock(reglk)
	fi;
	d_done = 1
}

init {
	atomic { run T(); run C(); run D() };
	(t_done && c_done && d_done);
	assert(freed[0] == 1 && freed[1] == 1);   /* K1: each once */
	assert(home_freed);                         /* K3 */
}
