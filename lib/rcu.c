/*
 * rcu.c - the RCU flavour (urcu-bp: no thread registration needed), the
 * TSan model of grace periods, and fork handling for liburcu.
 */
#include "internal.h"

int wref__tsan_rcu_sync;

void wref__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	/* TSan: what this thread wrote before retiring @head happens-before
	 * the callback (paired with wref__rcu_tsan_after_gp()) */
	wref__tsan_release(head);
	urcu_bp_call_rcu(head, fn);
}
