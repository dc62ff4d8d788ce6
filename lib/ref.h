/*
 * ref.h - ref.c's internal interface: the creation of an object's control
 * block (its first weak use) and the identity hash.  The wref_ref API
 * itself is public (wref.h).  Internal, never installed; split from
 * internal.h (issue 14 item 4).
 */
#ifndef WREF_REF_H
#define WREF_REF_H

#include "common.h"
#include "block.h"

/* the hash of @cb's object: the type's (by-value types), else identity */
WREF_HIDDEN uint64_t wref__hash_ptr(const void *p);
static inline uint64_t wref__cb_hash(struct wref__cb *cb)
{
	if (wref__cb_flags(cb) & WREF_CB_BYVAL)
		return wref__cb_byval(cb)->hash;
	return wref__hash_ptr(wref__payload(cb->mem));
}

/* the control block of the live object @obj (created on first use);
 * NULL + errno EINVAL (NO_WEAK) or ENOMEM.  Does not take a hold. */
WREF_HIDDEN struct wref__cb *wref__cb_get(void *obj);
/* the same; if this call makes the block, its allocation also holds @size
 * bytes for the object's first container entry, at *@mem (else *@mem is
 * NULL), whose watch (at the entry's start) is linked with @ops, the
 * block flagged RCU_WATCH and EMBED, and the memory's hold taken: the
 * caller initialises the entry with wref__entry_init_linked */
WREF_HIDDEN struct wref__cb *wref__cb_get_embed(void *obj, size_t size,
		const struct wref__watch_ops *ops, void **mem);
/* tests: the sticky counter of @obj's block (created if need be), where
 * the strong count lives once the object is weakly referenced */
static inline _Atomic uint64_t *wref__test_cnt(void *obj)
{
	struct wref__cb *cb = wref__cb_get(obj);
	return cb ? &cb->strong : NULL;
}

#endif /* WREF_REF_H */
