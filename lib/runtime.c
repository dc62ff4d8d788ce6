/*
 * runtime.c - library set-up: configuration, and the shutdown and exit
 * drain (which runs the hooks of lib/hooks.c).  Per-thread state is
 * lib/thread.c's, fork handling lib/fork.c's.
 */
#include "hooks.h"
#include "thread.h"
#include "rcu.h"
#include "executor.h"

#include <stdlib.h>

/* every thread's retired memory, handed to call_rcu by this thread, or
 * by its owner if that one is handing it over right now */
static void retire_all(void)
{
	struct rcu_head *all = wref__threads_take_retired();
	/* outside the registry's lock: handing over may register this
	 * thread */
	wref__rcu_adopt(all);
	/* waiting for a fork in progress: its handlers would leave the list
	 * here, after the barrier that should wait for it (issue 16) */
	wref__rcu_flush_wait();
}

int wref_init(const wref_config *cfg)
{
	return wref__exec_set_mode(cfg ? cfg->exec_mode : WREF_EXEC_THREAD);
}

void wref_shutdown(void)
{
	/* cannot stop the executor from inside it, nor drain work that runs
	 * only once the caller returned (an inline destroy's callbacks) */
	if (wref__exec_cannot_wait())
		return;
	wref_flush();
	wref__run_shutdown_hooks();
	wref_flush();
	wref__executor_stop();
	/* deferred frees of dead objects' memory, retired by any thread, and
	 * what the callbacks run by the barrier retire in turn */
	for (int round = 0; round < 2; round++) {
		retire_all();
		urcu_bp_barrier();
		/* what that barrier's batches handed back to their
		 * threads (rcu.c, "hand-back") */
		wref__rcu_drain_all();
	}
}

/* The automatic shutdown at exit.  exit() called from a callback or a
 * destroy that the library runs (on the executor, or inline) cannot drain
 * nor stop the executor (it may be the executor), but the armed at-exit
 * finalizers still run, on this thread (issue 16 item 14). */
static void exit_shutdown(void)
{
	if (wref__exec_cannot_wait())
		wref__run_shutdown_hooks();
	else
		wref_shutdown();
}

__attribute__((constructor)) static void runtime_init(void)
{
	atexit(exit_shutdown);
}
