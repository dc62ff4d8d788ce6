## container tests: Check suites per container + stress (make check and
## make check-tsan)
CONTAINER_TEST_SUITES = \
	tests/check_valmap
TESTS += $(CONTAINER_TEST_SUITES)
check_PROGRAMS += $(CONTAINER_TEST_SUITES)
EXTRA_DIST += tests/containers_test.h

tests_check_valmap_SOURCES = tests/check_valmap.c tests/containers_test.h
tests_check_valmap_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_valmap_LDADD = $(WREF_TEST_LIBS)
