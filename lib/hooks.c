/*
 * hooks.c - the registry of shutdown hooks: upper layers (at-exit
 * finalizers, valmap's timer thread, the debug build's quarantine) register
 * a function that wref_shutdown() and the exit drain (runtime.c) run after
 * the executor drained.  A leaf: it imports nothing, so any layer may
 * register without an import cycle through runtime.c.
 */
#include "hooks.h"

#include <stdlib.h>

#define MAX_HOOKS 8
static void (*_Atomic hooks[MAX_HOOKS])(void);

void wref__on_shutdown(void (*fn)(void))
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		void (*cur)(void) = NULL;
		/* release: pairs with the acquire in wref__run_shutdown_hooks
		 * (what the registrant set up before happens-before its
		 * hook); relaxed on failure: only compared */
		if (atomic_compare_exchange_strong_explicit(&hooks[i], &cur, fn,
				memory_order_release, memory_order_relaxed) ||
		    cur == fn)
			return;
	}
	abort(); /* more layers than slots: a build error, not a runtime one */
}

void wref__run_shutdown_hooks(void)
{
	for (int i = 0; i < MAX_HOOKS; i++) {
		/* acquire: pairs with the release CAS in wref__on_shutdown */
		void (*fn)(void) = atomic_load_explicit(&hooks[i],
							memory_order_acquire);
		if (fn)
			fn();
	}
}
