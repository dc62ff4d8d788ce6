## container tests: Check suites per container + stress (make check and
## make check-tsan)
CONTAINER_TEST_SUITES = \
	tests/check_valmap \
	tests/check_keymap \
	tests/check_set \
	tests/stress_containers
TESTS += $(CONTAINER_TEST_SUITES)
check_PROGRAMS += $(CONTAINER_TEST_SUITES)
EXTRA_DIST += tests/containers_test.h

tests_check_valmap_SOURCES = tests/check_valmap.c tests/containers_test.h
tests_check_valmap_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_valmap_LDADD = $(WREF_TEST_LIBS)

tests_check_keymap_SOURCES = tests/check_keymap.c tests/containers_test.h
tests_check_keymap_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_keymap_LDADD = $(WREF_TEST_LIBS)

tests_check_set_SOURCES = tests/check_set.c tests/containers_test.h
tests_check_set_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_set_LDADD = $(WREF_TEST_LIBS)

tests_stress_containers_SOURCES = tests/stress_containers.c tests/containers_test.h
tests_stress_containers_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_containers_LDADD = $(WREF_TEST_LIBS)
