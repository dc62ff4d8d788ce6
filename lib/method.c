/*
 * method.c - WeakMethod: a weakly bound (object, function) pair.
 *
 * The method holds the object's control block (never the object), so a
 * call is one lock-free upgrade; the function runs outside any lock or RCU
 * read-side section with the object pinned by a strong ref.
 */
#include "internal.h"

struct wref_method {
	struct wref__cb *cb; /* held; NULL only while being built */
	wref_method_fn fn;
};

static void method_destroy(void *p)
{
	struct wref_method *m = p;
	if (m->cb)
		wref__cb_unhold(m->cb);
}

static const wref_type method_type = {
	.name = "wref_method",
	.destroy = method_destroy,
};

wref_method *wref_method_new(void *obj, wref_method_fn fn)
{
	if (!obj || !fn) {
		errno = EINVAL;
		return NULL;
	}
	wref__check(obj, "wref_method_new");
	struct wref__cb *cb = wref__cb_get(obj); /* EINVAL for NO_WEAK */
	if (!cb)
		return NULL;
	struct wref_method *m = wref_new(&method_type, sizeof *m);
	if (!m)
		return NULL;
	/* the caller's strong ref keeps the object, hence its block, alive
	 * until this hold is taken */
	wref__cb_hold(cb);
	m->cb = cb;
	m->fn = fn;
	return m;
}

int wref_method_call(wref_method *m, void *arg)
{
	if (!m)
		return -EINVAL;
	wref__check(m, "wref_method_call");
	void *obj = wref__cb_upgrade(m->cb);
	if (!obj)
		return -ENOENT;
	m->fn(obj, arg);
	wref_release(obj);
	return 0;
}
