/*
 * alloc_dlopen.c - dlopen() of libwref.so in a fresh process (issue 15):
 * a plugin host or language binding loads the library at run time, when
 * Debian's jemalloc could no longer be loaded (static TLS).  The library
 * has no DT_NEEDED on jemalloc, loads, and serves from the process malloc.
 *
 * usage: tests/alloc_dlopen [path/to/libwref.so]  (default: the build
 * tree's lib/.libs/libwref.so; make installcheck passes the installed one)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <wref.h> /* types only: every function comes from dlsym */

#include "alloc_test.h"

static atomic_int died;
static void on_death(wref_ref *r, void *arg)
{
	(void)r;
	atomic_fetch_add(&died, 1);
	CHECK(arg == (void *)&died);
}

static const wref_type obj_type = { .name = "dlopened" };

#define SYM(h, name) ((__typeof__(&name))sym(h, #name))
static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p) {
		fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : WREF_BUILD_SO;
	if (access(path, F_OK) != 0) {
		printf("%s: not built (--disable-shared?): skipped\n", path);
		return 77;
	}
	CHECK(dlopen("libjemalloc.so.2", RTLD_LAZY | RTLD_NOLOAD) == NULL);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return 1;
	}
	printf("dlopen %s: ok\n", path);
	/* libwref did not pull jemalloc in (it could not have, after start-up) */
	CHECK(dlopen("libjemalloc.so.2", RTLD_LAZY | RTLD_NOLOAD) == NULL);

	__typeof__(&wref_new) new_ = SYM(h, wref_new);
	__typeof__(&wref_ref_new) ref_new = SYM(h, wref_ref_new);
	__typeof__(&wref_ref_get) ref_get = SYM(h, wref_ref_get);
	__typeof__(&wref_release) release = SYM(h, wref_release);
	__typeof__(&wref_flush) flush = SYM(h, wref_flush);

	for (int i = 0; i < 1000; i++) {
		int *o = new_(&obj_type, sizeof(int));
		CHECK(o != NULL);
		*o = i;
		wref_ref *r = ref_new(o, on_death, &died);
		CHECK(r != NULL);
		int *p = ref_get(r);
		CHECK(p == o && *p == i);
		release(p);
		release(o); /* last strong ref: dies */
		CHECK(ref_get(r) == NULL);
		CHECK(flush() == 0);
		CHECK(atomic_load(&died) == i + 1);
		release(r);
	}
	CHECK(flush() == 0);
	printf("1000 objects, weak refs, upgrades, deaths: ok\n");
	return 0;
}
