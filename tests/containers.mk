## container tests: Check suites per container + stress (make check and
## make check-tsan)
CONTAINER_TEST_SUITES = \
	tests/integration/check_valmap \
	tests/integration/check_keymap \
	tests/integration/check_set \
	tests/stress/stress_containers
TESTS += $(CONTAINER_TEST_SUITES)
check_PROGRAMS += $(CONTAINER_TEST_SUITES)
EXTRA_DIST += tests/containers_test.h

tests_integration_check_valmap_SOURCES = tests/integration/check_valmap.c tests/containers_test.h
tests_integration_check_valmap_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_valmap_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_keymap_SOURCES = tests/integration/check_keymap.c tests/containers_test.h
tests_integration_check_keymap_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_keymap_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_set_SOURCES = tests/integration/check_set.c tests/containers_test.h
tests_integration_check_set_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_set_LDADD = $(WREF_TEST_LIBS)

tests_stress_stress_containers_SOURCES = tests/stress/stress_containers.c tests/containers_test.h
tests_stress_stress_containers_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_stress_containers_LDADD = $(WREF_TEST_LIBS)
