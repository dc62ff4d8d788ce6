## peers.mk: the benchmark suite against real peers (issue 6).
##   make bench        full run  -> bench/results/latest.{md,png,tsv}
##                     (the committed table, shown in the README)
##   make bench-quick  5 short rounds, about 15 s -> bench/results/quick.*
## Peers: bench/peers/*.c, *.cc (built here), rust_bench.rs (rustc, if
## installed), py_bench.py (python3); driver: bench/suite.py.
## Debian packages: g++ libglib2.0-dev libck-dev rustc python3 gnuplot-nox
## (each missing optional peer only turns its column into "n/a").

PEERS_COMMON = bench/peers/common.h

## native peers are ordinary programs of the normal build (so they keep
## compiling), but not in sanitizer builds and not without jemalloc (their
## memory figures read jemalloc's stats)
if !WREF_TSAN
if !WREF_ASAN
if WREF_JEMALLOC
noinst_PROGRAMS += bench/peers/wref_bench bench/peers/limit_bench \
	bench/peers/cxx_bench
if HAVE_GLIB
noinst_PROGRAMS += bench/peers/glib_bench
endif
endif
endif
endif

bench_peers_wref_bench_SOURCES = bench/peers/wref_bench.c $(PEERS_COMMON)
bench_peers_wref_bench_CPPFLAGS = $(AM_CPPFLAGS) -DWREF_BENCH_CONFIG \
	-I$(top_builddir)/bench/peers
## the shared libwref.so as pkg-config --libs wref links it; jemalloc first
## on the line, as for every peer: all of them run on jemalloc as the
## process allocator (their memory rows read its statistics)
bench_peers_wref_bench_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
bench_peers_wref_bench_LDADD = $(JEMALLOC_LIBS) lib/libwref.la \
	lib/libwref_jemalloc.la -lpthread -lm

## the weak-value map rows read "n/a" when the library has no valmap yet
bench/peers/wref_bench_config.h: lib/libwref_core.la
	@$(MKDIR_P) bench/peers
	$(AM_V_GEN)if $(NM) lib/.libs/libwref_core.a 2>/dev/null | \
	  grep -q ' T wref_valmap_get_or_create$$'; then \
	  echo '/* generated: the library has wref_valmap */' > $@; else \
	  echo '#define WREF_BENCH_NO_VALMAP 1' > $@; fi
bench/peers/wref_bench-wref_bench.$(OBJEXT): \
	bench/peers/wref_bench_config.h
CLEANFILES += bench/peers/wref_bench_config.h

bench_peers_limit_bench_SOURCES = bench/peers/limit_bench.c $(PEERS_COMMON)
bench_peers_limit_bench_LDADD = $(URCU_LIBS) $(JEMALLOC_LIBS) -lpthread -lm

bench_peers_cxx_bench_SOURCES = bench/peers/cxx_bench.cc $(PEERS_COMMON)
bench_peers_cxx_bench_CXXFLAGS = $(AM_CXXFLAGS) -std=c++20
bench_peers_cxx_bench_LDADD = $(JEMALLOC_LIBS) -lpthread -lm

bench_peers_glib_bench_SOURCES = bench/peers/glib_bench.c $(PEERS_COMMON)
bench_peers_glib_bench_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
bench_peers_glib_bench_LDADD = -lgobject-2.0 $(GLIB_LIBS) $(JEMALLOC_LIBS) \
	-lpthread -lm

## optional peers with no configure check: built on demand by the bench
## targets; a missing compiler or library leaves the column "n/a"
PEERS_RUSTC = $(shell test -x /usr/bin/rustc && echo /usr/bin/rustc || echo rustc)
bench/peers/ck_bench$(EXEEXT): $(srcdir)/bench/peers/ck_bench.c $(PEERS_COMMON)
	@$(MKDIR_P) bench/peers
	$(AM_V_CCLD)$(CC) $(CFLAGS) -std=gnu11 -o $@ \
	  $(srcdir)/bench/peers/ck_bench.c -lck $(JEMALLOC_LIBS) -lpthread -lm \
	  || { rm -f $@; echo "peers: ck_bench not built" \
	  "(apt-get install libck-dev): its column reads n/a"; }
bench/peers/rust_bench$(EXEEXT): $(srcdir)/bench/peers/rust_bench.rs
	@$(MKDIR_P) bench/peers
	$(AM_V_GEN)if command -v $(PEERS_RUSTC) >/dev/null 2>&1; then \
	  $(PEERS_RUSTC) --edition 2021 -C opt-level=3 -o $@ \
	  $(srcdir)/bench/peers/rust_bench.rs || rm -f $@; else \
	  echo "peers: rustc not found (apt-get install rustc): the Rust" \
	  "column reads n/a"; fi
CLEANFILES += bench/peers/ck_bench$(EXEEXT) bench/peers/rust_bench$(EXEEXT)
EXTRA_DIST += bench/suite.py bench/peers/ck_bench.c bench/peers/rust_bench.rs \
	bench/peers/README.md \
	bench/peers/py_bench.py

PYTHON3_PEERS = python3
PEERS_SUITE = $(PYTHON3_PEERS) $(srcdir)/bench/suite.py --bindir . \
	--srcdir $(srcdir)

PEERS_BIN = bench/peers/ck_bench$(EXEEXT) bench/peers/rust_bench$(EXEEXT)
if !WREF_TSAN
if !WREF_ASAN
if WREF_JEMALLOC
PEERS_BIN += bench/peers/wref_bench$(EXEEXT) \
	bench/peers/limit_bench$(EXEEXT) bench/peers/cxx_bench$(EXEEXT)
if HAVE_GLIB
PEERS_BIN += bench/peers/glib_bench$(EXEEXT)
endif
endif
endif
endif
bench-peers-build: $(PEERS_BIN)

bench-peers: bench-peers-build
	$(PEERS_SUITE)
bench-peers-quick: bench-peers-build
	$(PEERS_SUITE) --quick

bench: bench-peers
bench-quick: bench-peers-quick

.PHONY: bench bench-quick bench-peers bench-peers-quick bench-peers-build

## make check: every built peer runs for a moment (no timing checked)
TESTS += bench/peers/smoke.sh
EXTRA_DIST += bench/peers/smoke.sh
