/*
 * alloc_test.h - the check macro of the allocator-route test programs
 * (alloc_route.c, alloc_dlopen.c): plain programs, no Check framework,
 * since one is also built against the installed library by installcheck.
 */
#ifndef WREF_ALLOC_TEST_H
#define WREF_ALLOC_TEST_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                           \
	do {                                                               \
		if (!(c)) {                                                \
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__,   \
				__LINE__, #c);                             \
			exit(1);                                           \
		}                                                          \
	} while (0)

#endif /* WREF_ALLOC_TEST_H */
