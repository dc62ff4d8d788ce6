/*
 * hooks.h - the shutdown hooks of hooks.c. Internal, never installed; split
 * from internal.h (issue 14 item 4).
 */
#ifndef WREF_HOOKS_H
#define WREF_HOOKS_H

#include "common.h"

/* ---- hooks.c ------------------------------------------------------------ */
/* Register @fn to run in wref_shutdown() (and at exit) after the executor
 * drained: upper layers (atexit finalizers) hook in here.  Idempotent. */
WREF_HIDDEN void wref__on_shutdown(void (*fn)(void));
/* run them, in registration order (runtime.c) */
WREF_HIDDEN void wref__run_shutdown_hooks(void);

#endif /* WREF_HOOKS_H */
