## extras tests: WeakMethod, finalize, signal (Check suites + stress)
if HAVE_CHECK
EXTRAS_TESTS = \
	tests/integration/check_method \
	tests/integration/check_finalize \
	tests/integration/check_signal \
	tests/stress/stress_extras
check_PROGRAMS += $(EXTRAS_TESTS)
TESTS += $(EXTRAS_TESTS)

tests_integration_check_method_SOURCES = tests/integration/check_method.c tests/core_test.h
tests_integration_check_method_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_method_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_finalize_SOURCES = tests/integration/check_finalize.c tests/core_test.h
tests_integration_check_finalize_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_finalize_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_signal_SOURCES = tests/integration/check_signal.c tests/core_test.h
tests_integration_check_signal_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_signal_LDADD = $(WREF_TEST_LIBS)

tests_stress_stress_extras_SOURCES = tests/stress/stress_extras.c tests/core_test.h
tests_stress_stress_extras_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_stress_extras_LDADD = $(WREF_TEST_LIBS)
endif
