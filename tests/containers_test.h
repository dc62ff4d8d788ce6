/*
 * containers_test.h - helpers shared by the container suites: test object
 * types (plain, by-value, NO_WEAK) and a controllable clock.
 */
#ifndef WREF_CONTAINERS_TEST_H
#define WREF_CONTAINERS_TEST_H

#include "core_test.h"
#include "table.h"
#include "tier.h"

struct item {
	uint64_t id;
	_Atomic int *destroyed; /* incremented by destroy if set */
};

static void item_destroy(void *p)
{
	struct item *it = p;
	if (it->destroyed)
		atomic_fetch_add(it->destroyed, 1);
}

static const wref_type item_type = {
	.name = "item",
	.destroy = item_destroy,
};

static uint64_t item_hash(const void *p)
{
	return ((const struct item *)p)->id * UINT64_C(0x9e3779b97f4a7c15);
}

static bool item_equal(const void *a, const void *b)
{
	return ((const struct item *)a)->id == ((const struct item *)b)->id;
}

/* compared by id under WREF_MAP_BY_VALUE */
static const wref_type vitem_type = {
	.name = "vitem",
	.destroy = item_destroy,
	.hash = item_hash,
	.equal = item_equal,
};

static const wref_type noweak_type = {
	.name = "noweak",
	.flags = WREF_TYPE_NO_WEAK,
};

static inline struct item *item_new(const wref_type *t, uint64_t id,
				    _Atomic int *destroyed)
{
	struct item *it = wref_new(t, sizeof *it);
	ck_assert_ptr_nonnull(it);
	it->id = id;
	it->destroyed = destroyed;
	return it;
}

/* the controllable clock (milliseconds) */
static _Atomic uint64_t fake_now;
static inline uint64_t fake_clock(void)
{
	return atomic_load(&fake_now);
}

#endif /* WREF_CONTAINERS_TEST_H */
