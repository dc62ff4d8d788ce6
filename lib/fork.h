/*
 * fork.h - the fork slots of fork.c (upper layers' steps in its documented
 * order). Internal, never installed; split from internal.h (issue 14 item
 * 4).
 */
#ifndef WREF_FORK_H
#define WREF_FORK_H

#include "common.h"

/* ---- fork.c ---------------------------------------------------------------- */
/* Upper layers' fork steps, in fixed slots of fork.c's documented order
 * (prepare: slots in this order, before the core's steps; parent and
 * child: after the core's, in the reverse order).  Registering again
 * replaces a slot's steps; a NULL step is skipped. */
enum wref__fork_slot {
	WREF_FORK_TIERS,      /* valmap retention tiers: registry + tier locks */
	WREF_FORK_FINALIZERS, /* finalize.c: the at-exit registry lock */
	WREF_FORK_NSLOTS
};
WREF_HIDDEN void wref__on_fork(enum wref__fork_slot slot, void (*prepare)(void),
			       void (*parent)(void), void (*child)(void));

#endif /* WREF_FORK_H */
