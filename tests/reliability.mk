## reliability.mk: misuse catalogue, allocation-failure sweep, torture test,
## fuzz harness (corpus replay in make check), check-valgrind.
## Included by Makefile.am.

## ---- Check suites --------------------------------------------------------
if HAVE_CHECK
TESTS += tests/regression/misuse tests/integration/check_alloc_fail
check_PROGRAMS += tests/regression/misuse tests/integration/check_alloc_fail
tests_regression_misuse_SOURCES = tests/regression/misuse.c
tests_regression_misuse_CFLAGS = $(WREF_TEST_CFLAGS)
tests_regression_misuse_LDADD = $(WREF_TEST_LIBS)

## the same catalogue against an --enable-debug copy of the library, so
## the debug build's promises (abort naming the misuse, the quarantine that
## catches plain double releases) are checked by every make check
if !WREF_DEBUG
check_LTLIBRARIES += lib/libwref_debug.la
lib_libwref_debug_la_SOURCES = $(lib_libwref_core_la_SOURCES)
lib_libwref_debug_la_CFLAGS = $(lib_libwref_core_la_CFLAGS) -DWREF_DEBUG=1
lib_libwref_debug_la_LIBADD = $(lib_libwref_core_la_LIBADD)
TESTS += tests/regression/misuse_debug
check_PROGRAMS += tests/regression/misuse_debug
tests_regression_misuse_debug_SOURCES = tests/regression/misuse.c
tests_regression_misuse_debug_CFLAGS = $(WREF_TEST_CFLAGS) -DWREF_DEBUG=1
tests_regression_misuse_debug_LDADD = lib/libwref_debug.la $(CHECK_LIBS) -lpthread
endif
tests_integration_check_alloc_fail_SOURCES = tests/integration/check_alloc_fail.c
tests_integration_check_alloc_fail_CFLAGS = $(WREF_TEST_CFLAGS)
tests_integration_check_alloc_fail_LDADD = $(WREF_TEST_LIBS)
## the sweep observes every allocation of the (static) core library
tests_integration_check_alloc_fail_LDFLAGS = $(AM_LDFLAGS) \
	-Wl,--wrap=wref__alloc -Wl,--wrap=wref__zalloc
endif

## ---- torture: short in make check, `make torture SECONDS=600` for long ----
TESTS += tests/stress/torture
check_PROGRAMS += tests/stress/torture
tests_stress_torture_SOURCES = tests/stress/torture.c
tests_stress_torture_CFLAGS = $(AM_CFLAGS)
tests_stress_torture_LDADD = lib/libwref_core.la -lpthread
SECONDS ?= 600
THREADS ?= 0
torture: tests/stress/torture$(EXEEXT)
	./tests/stress/torture$(EXEEXT) -s $(SECONDS) -t $(THREADS) $(SEED)
.PHONY: torture

## ---- fuzzing ---------------------------------------------------------------
## The harness decodes bytes into API call sequences and checks every result
## against a reference model.  make check replays tests/fuzz/corpus with a
## plain (gcc) build of it; `make fuzz` builds it with clang-14 libFuzzer +
## ASan/UBSan (library sources compiled in, instrumented) and fuzzes for
## FUZZ_SECONDS (new inputs land in tests/fuzz/new-corpus; `make fuzz-merge`
## folds them into tests/fuzz/corpus).  FUZZ_EXTRA adds compiler flags.
TESTS += tests/fuzz/fuzz_replay
check_PROGRAMS += tests/fuzz/fuzz_replay
tests_fuzz_fuzz_replay_SOURCES = tests/fuzz/fuzz_api.c tests/fuzz/replay.c
tests_fuzz_fuzz_replay_CFLAGS = $(AM_CFLAGS)
tests_fuzz_fuzz_replay_LDADD = lib/libwref_core.la -lpthread
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/README tests/fuzz/clang_compat.h \
	tests/fuzz/ubsan.ignore

FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer \
	-fsanitize-ignorelist=$(srcdir)/tests/fuzz/ubsan.ignore $(FUZZ_EXTRA)
FUZZ_LIBSRC = $(filter %.c,$(lib_libwref_core_la_SOURCES))
tests/fuzz/fuzz_api: $(srcdir)/tests/fuzz/fuzz_api.c \
		$(srcdir)/tests/fuzz/clang_compat.h \
		$(srcdir)/tests/fuzz/ubsan.ignore \
		$(addprefix $(srcdir)/,$(FUZZ_LIBSRC))
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC)" \
	  "not found; on Debian: apt-get install -y clang-14" \
	  "libclang-rt-14-dev" >&2; exit 1; }
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -include $(srcdir)/tests/fuzz/clang_compat.h \
	  -I$(top_srcdir)/include -I$(top_srcdir)/lib \
	  $(URCU_CFLAGS) -o $@ $(srcdir)/tests/fuzz/fuzz_api.c \
	  $(addprefix $(srcdir)/,$(FUZZ_LIBSRC)) $(URCU_LIBS) -lpthread
fuzz: tests/fuzz/fuzz_api
	@$(MKDIR_P) tests/fuzz/new-corpus
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./tests/fuzz/fuzz_api \
	  -max_total_time=$(FUZZ_SECONDS) \
	  -max_len=512 -print_final_stats=1 \
	  tests/fuzz/new-corpus $(srcdir)/tests/fuzz/corpus
## keep the corpus small: merge what was found into the source corpus
fuzz-merge: tests/fuzz/fuzz_api
	./tests/fuzz/fuzz_api -merge=1 $(srcdir)/tests/fuzz/corpus \
	  tests/fuzz/new-corpus
CLEANFILES += tests/fuzz/fuzz_api
clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/new-corpus build-valgrind
.PHONY: fuzz fuzz-merge clean-fuzz

## ---- valgrind memcheck over the single-threaded suites ----------------------
## A fresh distdir built with libc malloc (memcheck cannot see jemalloc's
## mallocx), every Check suite run under memcheck (definite and indirect
## leaks are errors).  Stress and torture programs are left out (memcheck
## serialises threads; names containing "stress" are skipped, other areas
## add theirs to VALGRIND_SKIP).  Check's fork mode stays on by default
## (VALGRIND_CK_FORK=yes): memcheck follows the forked test children, and
## several suites rely on per-test process isolation; VALGRIND_CK_FORK=no
## runs each suite in one process.  Test time limits are stretched x20.
## liburcu-bp falls back from sys_membarrier under valgrind by itself.
VALGRIND_SKIP = tests/stress/torture examples/check_examples.sh tests/integration/wrefd_test.sh
VALGRIND_TESTS = $(filter-out $(VALGRIND_SKIP),$(foreach t,$(TESTS),$(if $(findstring stress,$(t)),,$(t))))
VALGRIND_CK_FORK = yes
VALGRIND_CMD = valgrind -q --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect \
	--suppressions=$(abs_top_srcdir)/tests/valgrind.supp
check-valgrind:
	rm -rf build-valgrind && mkdir -p build-valgrind && \
	  $(MAKE) $(AM_MAKEFLAGS) distdir distdir=build-valgrind/src
	cd build-valgrind/src && ./configure --without-jemalloc --quiet && \
	  $(MAKE) $(AM_MAKEFLAGS) check TESTS="$(VALGRIND_TESTS)" \
	  TESTS_ENVIRONMENT="CK_FORK=$(VALGRIND_CK_FORK) CK_TIMEOUT_MULTIPLIER=20 WREF_STRESS_SCALE=0.2 $(VALGRIND_CMD)"
EXTRA_DIST += tests/valgrind.supp
.PHONY: check-valgrind
