## reliability.mk: misuse catalogue, allocation-failure sweep, torture test,
## fuzz harness (corpus replay in make check), check-valgrind.
## Included by Makefile.am.

## ---- Check suites --------------------------------------------------------
if HAVE_CHECK
TESTS += tests/misuse tests/check_alloc_fail
check_PROGRAMS += tests/misuse tests/check_alloc_fail
tests_misuse_SOURCES = tests/misuse.c
tests_misuse_CFLAGS = $(WREF_TEST_CFLAGS)
tests_misuse_LDADD = $(WREF_TEST_LIBS)
tests_check_alloc_fail_SOURCES = tests/check_alloc_fail.c
tests_check_alloc_fail_CFLAGS = $(WREF_TEST_CFLAGS)
tests_check_alloc_fail_LDADD = $(WREF_TEST_LIBS)
## the sweep observes every allocation of the (static) core library
tests_check_alloc_fail_LDFLAGS = $(AM_LDFLAGS) \
	-Wl,--wrap=wref__alloc -Wl,--wrap=wref__zalloc
endif

## ---- valgrind memcheck over the single-threaded suites ----------------------
## A fresh distdir built with libc malloc (memcheck cannot see jemalloc's
## mallocx), each suite run with CK_FORK=no under memcheck.  Stress and
## torture programs are left out (memcheck serialises threads): other areas
## add theirs to VALGRIND_SKIP.
VALGRIND_SKIP = tests/torture
VALGRIND_TESTS = $(filter-out $(VALGRIND_SKIP),$(foreach t,$(TESTS),$(if $(findstring stress,$(t)),,$(t))))
VALGRIND_CMD = valgrind -q --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --track-fds=no \
	--child-silent-after-fork=yes --suppressions=$(abs_top_srcdir)/tests/valgrind.supp
check-valgrind:
	rm -rf build-valgrind && $(MAKE) $(AM_MAKEFLAGS) distdir distdir=build-valgrind/src
	cd build-valgrind/src && ./configure --without-jemalloc --quiet && \
	  $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(VALGRIND_TESTS)" \
	  TESTS_ENVIRONMENT="CK_FORK=no CK_DEFAULT_TIMEOUT=600 WREF_STRESS_SCALE=0 $(VALGRIND_CMD)"
EXTRA_DIST += tests/valgrind.supp
.PHONY: check-valgrind
