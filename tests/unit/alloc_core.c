/*
 * alloc_core.c - the allocator lib/alloc.c chose, in the tests'
 * configuration (static core, -ljemalloc on the program's line): jemalloc
 * in a jemalloc build, the process malloc in --without-jemalloc and the
 * sanitizer builds, and the process malloc whenever WREF_ALLOCATOR=malloc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int main(int argc, char **argv)
{
	const char *env = getenv("WREF_ALLOCATOR");
	const char *want = "malloc";
#ifdef WREF_USE_JEMALLOC
	if (!env || strcmp(env, "malloc") != 0)
		want = "jemalloc";
#endif
	void *p = wref__alloc(100);
	void *z = wref__zalloc(100);
	if (!p || !z)
		return 1;
	for (int i = 0; i < 100; i++)
		if (((unsigned char *)z)[i])
			return 1;
	wref__free(p);
	wref__free(z);
	/* every block is 16-aligned, whatever its size: a shared weak ref is
	 * told from a callback ref by bit 3 of its address (internal.h,
	 * wref__ref_is_shared); 1-byte steps, allocations kept live so the
	 * allocator cannot hand one slot back each time */
	void *blk[300];
	for (size_t n = 0; n < 300; n++) {
		blk[n] = n % 2 ? wref__zalloc(n) : wref__alloc(n);
		if (!blk[n] || ((uintptr_t)blk[n] & 15)) {
			printf("wref__alloc(%zu) = %p: not 16-aligned\n", n,
			       blk[n]);
			return 1;
		}
	}
	for (size_t n = 0; n < 300; n++)
		wref__free(blk[n]);
	printf("allocator: %s (expected %s)\n", wref__allocator(), want);
	if (strcmp(wref__allocator(), want) != 0)
		return 1;
	/* the same once more with the process malloc forced */
	if (argc == 1 && (!env || strcmp(env, "malloc") != 0)) {
		fflush(stdout);
		setenv("WREF_ALLOCATOR", "malloc", 1);
		execl(argv[0], argv[0], "again", (char *)NULL);
		perror("execl");
		return 1;
	}
	return 0;
}
