/*
 * tier.h - the retention tier of the weak-value map (retain_ms,
 * retain_max): keeps recently accessed values alive by holding a strong ref
 * to each, dropping it retain_ms after the last access, or earlier to keep
 * at most retain_max (least recently used first).  Internal, never
 * installed.
 *
 * An entry of a map with a tier carries a struct wref__tier_node.  An
 * access stamps the node's last-access time (a relaxed store) and, if the
 * entry is not yet retained, wins a CAS on the node's state, takes a
 * strong ref to the object and an entry count (wref__entry_tryhold), and
 * pushes the node on the tier's lock-free inbox.  The tier's list (under
 * its mutex, never taken on the access path) is kept in recorded-stamp
 * order; nodes touched since they were recorded are moved to the tail
 * when they reach the head, so the head is the least recently used.
 * Expiry and LRU trimming run as executor work ("tier work", so
 * wref_flush waits for the releases, rule 14), queued by a global timer
 * thread while a tier holds anything, and by the access path when a tier
 * exceeds retain_max.  In inline mode the timer only marks the tier due
 * and the map's next call runs the work (wref__tier_poll: no user code on
 * the timer thread).  Removal and retention agree through the node's
 * state: see tier.c.
 *
 * Lifecycle: the tiers are in a registry served by one timer thread,
 * started with the first tier, stopped by wref_shutdown once no tier is
 * left (a wref__on_shutdown hook), restarted in a fork child if tiers
 * exist (pthread_atfork handlers, registered with the first tier after the
 * core's, hold every tier lock across a fork).
 */
#ifndef WREF_TIER_H
#define WREF_TIER_H

#include "table.h"

#include <urcu/list.h>

struct wref__tier;

/* the retention part of an entry (memory owned by the container) */
struct wref__tier_node {
	_Atomic uint64_t stamp;          /* last access, ms */
	_Atomic uint32_t state;          /* TS_* of tier.c */
	bool inlist;                     /* under the tier's lock */
	uint64_t rstamp;                 /* recorded stamp, lock */
	struct cds_list_head lru;        /* LRU, under the tier's lock */
	struct wref__tier_node *inext;   /* inbox link */
	struct wref__entry *e;           /* the entry this node is part of */
};

/* A tier (one per map); NULL + ENOMEM.  Registers it with the timer. */
WREF_HIDDEN struct wref__tier *wref__tier_new(uint64_t retain_ms,
					      size_t retain_max);
/* Prepare the node of @e (not yet published). */
WREF_HIDDEN void wref__tier_node_init(struct wref__tier_node *n,
				      struct wref__entry *e);
/* An access to @n's entry, whose object the caller pinned (a strong ref),
 * inside a read-side section.  Returns true if the tier's work should be
 * queued with wref__tier_schedule (after the unlock). */
WREF_HIDDEN bool wref__tier_touch(struct wref__tier *tr,
				  struct wref__tier_node *n);
/* queue the tier's work unless queued; outside read-side sections */
WREF_HIDDEN void wref__tier_schedule(struct wref__tier *tr);
/* inline mode: run the expiry the timer found due (at the start of every
 * map call, outside locks and read-side sections) */
WREF_HIDDEN void wref__tier_poll(struct wref__tier *tr);
/* A user-side removal took @n's entry out of the map: drop the tier's
 * hold now (rule 17) and refuse later touches.  Outside read-side
 * sections; the caller holds an entry count. */
WREF_HIDDEN void wref__tier_forget(struct wref__tier *tr,
				   struct wref__tier_node *n);
/* The map is being destroyed (before its table is torn down): take
 * everything the tier holds (the objects are released on the executor)
 * and drop the map's ref to the tier. */
WREF_HIDDEN void wref__tier_kill(struct wref__tier *tr);

/* Millisecond clock of the tiers (CLOCK_MONOTONIC_COARSE) */
WREF_HIDDEN uint64_t wref__clock_ms(void);
/* Test hooks, only in the test build (-DWREF_TEST_HOOKS,
 * lib/libwref_test.la; never in the installed library): wref__clock_set
 * replaces the tiers' clock (NULL restores it); wref__retain_sync runs
 * every retention tier's expiry/eviction now (queued on the executor) and
 * waits for it with wref_flush(). */
WREF_HIDDEN void wref__clock_set(uint64_t (*fn)(void));
WREF_HIDDEN void wref__retain_sync(void);

#endif /* WREF_TIER_H */
