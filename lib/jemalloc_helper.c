/*
 * jemalloc_helper.c - libwref_jemalloc: no code of note.  Its one job is its
 * DT_NEEDED on libjemalloc.so.2.  `pkg-config --libs wref` links it after
 * -lwref, so a program loads jemalloc at start-up (where its static TLS
 * fits) as a dependency of a dependency: after libc in the lookup scope,
 * so the program's malloc stays its own, while libwref's weak mallocx
 * binds to jemalloc (lib/alloc.c).  Never dlopen()ed: Debian's jemalloc
 * cannot be loaded after start-up.
 */
#include <stddef.h>

void *mallocx(size_t size, int flags);

/* a reference to jemalloc, so the DT_NEEDED survives --as-needed */
void *(*const wref_jemalloc_mallocx)(size_t, int) = mallocx;
