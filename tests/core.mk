## core tests: objects, weak refs, executor (Check suites + stress)
CORE_TEST_SUITES = \
	tests/integration/check_object \
	tests/integration/check_ref \
	tests/integration/check_executor \
	tests/stress/stress_upgrade \
	tests/stress/stress_callbacks
TESTS += $(CORE_TEST_SUITES)
check_PROGRAMS += $(CORE_TEST_SUITES) tests/integration/test_exit
EXTRA_DIST += tests/core_test.h

tests_integration_check_object_SOURCES = tests/integration/check_object.c tests/core_test.h
tests_integration_check_object_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_object_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_ref_SOURCES = tests/integration/check_ref.c tests/core_test.h
tests_integration_check_ref_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_ref_LDADD = $(WREF_TEST_LIBS)

tests_integration_check_executor_SOURCES = tests/integration/check_executor.c tests/core_test.h
tests_integration_check_executor_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_executor_LDADD = $(WREF_TEST_LIBS)

tests_stress_stress_upgrade_SOURCES = tests/stress/stress_upgrade.c tests/core_test.h
tests_stress_stress_upgrade_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_stress_upgrade_LDADD = $(WREF_TEST_LIBS)

tests_stress_stress_callbacks_SOURCES = tests/stress/stress_callbacks.c tests/core_test.h
tests_stress_stress_callbacks_CFLAGS = $(WREF_TEST_CFLAGS)
tests_stress_stress_callbacks_LDADD = $(WREF_TEST_LIBS)

## helper run by check_executor (rule 13: drain at exit)
tests_integration_test_exit_SOURCES = tests/integration/test_exit.c
tests_integration_test_exit_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_test_exit_LDADD = $(WREF_TEST_LIBS)

## issue 16 regressions: calls from an object's own destroy; destroy before
## the death's callbacks
CORE_TEST_SUITES += tests/regression/check_death_calls
tests_regression_check_death_calls_SOURCES = tests/regression/check_death_calls.c tests/core_test.h
tests_regression_check_death_calls_CFLAGS = $(WREF_TEST_CFLAGS)
tests_regression_check_death_calls_LDADD = $(WREF_TEST_LIBS)

## issue 12: the upgrade fast path in the built libwref.so (objdump)
TESTS += tests/build/check_disasm.sh
EXTRA_DIST += tests/build/check_disasm.sh

## issue 14: the test hooks are in lib/libwref_test.la only, never in the
## built libwref.so (nm, strings)
TESTS += tests/build/check_hooks.sh
EXTRA_DIST += tests/build/check_hooks.sh

## issue 14: lib/ imports only downward: the symbol-level import graph of
## the static core library has no cycle (nm; prints the layers)
TESTS += tests/build/check_imports.py
EXTRA_DIST += tests/build/check_imports.py

## unit tests of modules on their own (tests/unit/): the futex lock
## (lib/lock.c) and the hashes (wref__hash_ptr, wref__hash_bytes); the fork
## order of lib/fork.c as an upper layer's slot sees it; the table layer
## (lib/table.h) and the retention tier (lib/tier.h) through a minimal test
## container; rcu.c's hand-back of retired memory to the thread that
## retired it.  tests/unit/alloc_core is in tests/alloc.mk.
UNIT_TESTS = tests/unit/lock_hash tests/unit/fork_order tests/unit/table_tier \
	tests/unit/rcu_handback
TESTS += $(UNIT_TESTS)
check_PROGRAMS += $(UNIT_TESTS)
tests_unit_lock_hash_SOURCES = tests/unit/lock_hash.c tests/core_test.h
tests_unit_lock_hash_CFLAGS = $(WREF_TEST_CFLAGS)
tests_unit_lock_hash_LDADD = $(WREF_TEST_LIBS)
tests_unit_fork_order_SOURCES = tests/unit/fork_order.c tests/core_test.h
tests_unit_fork_order_CFLAGS = $(WREF_TEST_CFLAGS)
tests_unit_fork_order_LDADD = $(WREF_TEST_LIBS)
tests_unit_rcu_handback_SOURCES = tests/unit/rcu_handback.c tests/core_test.h
tests_unit_rcu_handback_CFLAGS = $(WREF_TEST_CFLAGS)
tests_unit_rcu_handback_LDADD = $(WREF_TEST_LIBS)
tests_unit_table_tier_SOURCES = tests/unit/table_tier.c tests/core_test.h
tests_unit_table_tier_CFLAGS = $(WREF_TEST_CFLAGS)
tests_unit_table_tier_LDADD = $(WREF_TEST_LIBS)
