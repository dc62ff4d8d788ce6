## extras tests: WeakMethod, finalize, signal (Check suites + stress)
if HAVE_CHECK
EXTRAS_TESTS = \
	tests/check_method \
	tests/check_finalize \
	tests/check_signal \
	tests/stress_extras
check_PROGRAMS += $(EXTRAS_TESTS)
TESTS += $(EXTRAS_TESTS)

tests_check_method_SOURCES = tests/check_method.c tests/core_test.h
tests_check_method_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_method_LDADD = $(WREF_TEST_LIBS)

tests_check_finalize_SOURCES = tests/check_finalize.c tests/core_test.h
tests_check_finalize_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_finalize_LDADD = $(WREF_TEST_LIBS)

tests_check_signal_SOURCES = tests/check_signal.c tests/core_test.h
tests_check_signal_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_signal_LDADD = $(WREF_TEST_LIBS)

tests_stress_extras_SOURCES = tests/stress_extras.c tests/core_test.h
tests_stress_extras_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_extras_LDADD = $(WREF_TEST_LIBS)
endif
