/*
 * fork.c - the library's one pthread_atfork registration: every module's
 * fork step, run in the one order below (rules 12 and 18; docs/design.md).
 *
 * Prepare, in this order:
 *   P1  upper layers' slots, in enum wref__fork_slot order (wref__on_fork):
 *       valmap's retention tiers (tier registry + every tier's lock), then
 *       finalize.c's at-exit registry lock.  Before liburcu's locks (P5): a
 *       tier lock holder may be inside call_rcu.  Held across fork() and
 *       released on both sides (re-initialising a held mutex upsets TSan).
 *   P2  liburcu's default call_rcu data is created now: call_rcu creates it
 *       on first use under the mutex that call_rcu_before_fork holds.
 *   P3  executor: ex_mutex taken (no executor start or stop across fork).
 *   P4  the fork flag set (wref__fork_block), then wait until no thread is
 *       inside a fork guard (an operation on a liburcu queue, call_rcu's or
 *       the executor's: a vanished thread's half-done enqueue would hang
 *       the child).  Before P5, which waits for grace periods: a thread
 *       that sees the flag inside a read-side section parks its work and
 *       goes on instead of waiting.
 *   P5  liburcu: urcu_bp_call_rcu_before_fork, urcu_bp_before_fork.
 *   P6  the thread registry's lock (lib/thread.c), last: the registry stays
 *       free while P5's grace periods run; the child gets it whole.
 * Parent: P6 released, P5 undone (urcu_bp_after_fork_parent, then
 *   call_rcu's), P4 flag cleared, P3 executor released (then it queues what
 *   was parked during the fork), P1 slots in reverse order.
 * Child: our own state first, as it reads memory of the parent's other
 *   threads (their TLS blocks, flush barriers on their stacks), and
 *   liburcu's child steps create threads, which glibc may give those
 *   threads' stacks and TLS:
 *   C6  the registry: vanished threads' counters folded, their retired
 *       lists taken, its lock released;
 *   C3  executor: its queues recovered, ex_mutex released (it restarts
 *       lazily: rule 18);
 *   C5  liburcu: urcu_bp_after_fork_child, then call_rcu's;
 *   C4  the fork flag cleared, then the vanished threads' retired memory
 *       handed to call_rcu (it works again);
 *   C1  slots in reverse order (valmap's restarts its timer thread).
 *
 * Imports: thread.c, rcu.c, executor.c, liburcu; upper layers call
 * wref__on_fork, so nothing here calls up into them by name.
 */
#include "fork.h"
#include "executor.h"
#include "rcu.h"
#include "thread.h"

struct fork_steps {
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(void);
};

/* slot registrations, under slots_lock; the prepare handler holds it
 * until the parent or child handler is done, so a registration never
 * lands between a slot's prepare and its parent/child step */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fork_steps slots[WREF_FORK_NSLOTS];

void wref__on_fork(enum wref__fork_slot slot, void (*prepare)(void),
		   void (*parent)(void), void (*child)(void))
{
	pthread_mutex_lock(&slots_lock);
	slots[slot] = (struct fork_steps){ prepare, parent, child };
	pthread_mutex_unlock(&slots_lock);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&slots_lock); /* released by parent/child */
	for (int i = 0; i < WREF_FORK_NSLOTS; i++) /* P1 */
		if (slots[i].prepare)
			slots[i].prepare();
	(void)urcu_bp_get_default_call_rcu_data(); /* P2 */
	wref__executor_atfork_prepare();          /* P3 */
	wref__fork_block(true);                    /* P4 */
	wref__threads_wait_guards();
	urcu_bp_call_rcu_before_fork();            /* P5 */
	urcu_bp_before_fork();
	wref__threads_fork_lock();                 /* P6 */
}

static void fork_parent(void)
{
	wref__threads_fork_parent();               /* P6 */
	urcu_bp_after_fork_parent();               /* P5 */
	urcu_bp_call_rcu_after_fork_parent();
	wref__fork_block(false);                   /* P4 */
	wref__executor_atfork_parent();            /* P3: queues the parked */
	for (int i = WREF_FORK_NSLOTS - 1; i >= 0; i--) /* P1 */
		if (slots[i].parent)
			slots[i].parent();
	pthread_mutex_unlock(&slots_lock);
}

static void fork_child(void)
{
	struct rcu_head *orphans = wref__threads_fork_child(); /* C6 */
	wref__executor_atfork_child();                         /* C3 */
	urcu_bp_after_fork_child();                            /* C5 */
	urcu_bp_call_rcu_after_fork_child();
	wref__fork_block(false);                               /* C4 */
	wref__rcu_adopt(orphans);
	for (int i = WREF_FORK_NSLOTS - 1; i >= 0; i--)        /* C1 */
		if (slots[i].child)
			slots[i].child();
	pthread_mutex_unlock(&slots_lock);
}

__attribute__((constructor)) static void fork_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}
