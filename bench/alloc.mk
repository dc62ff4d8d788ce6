## allocator benchmarks (issue 15)
##   make bench-alloc        the table: create+release, create+weak+release,
##                           death with callback, for libwref on jemalloc in
##                           a glibc program (pkg-config link), libwref on
##                           the process malloc (WREF_ALLOCATOR=malloc, the
##                           --without-jemalloc path), program on jemalloc
##   make bench-alloc-entry  jemalloc entry points, ns per pair
## Both have -quick variants, part of make bench-quick.
if !WREF_TSAN
if !WREF_ASAN
noinst_PROGRAMS += bench/alloc
if WREF_JEMALLOC
noinst_PROGRAMS += bench/alloc_jeapp bench/alloc_entry
endif
endif
endif

## as `pkg-config --libs wref` links
bench_alloc_SOURCES = bench/alloc.c
bench_alloc_CFLAGS = $(AM_CFLAGS) -O2
bench_alloc_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
bench_alloc_LDADD = lib/libwref.la $(BENCH_ALLOC_JEHELPER) $(DL_LIBS) -lpthread
if WREF_JEMALLOC
BENCH_ALLOC_JEHELPER = lib/libwref_jemalloc.la
endif

## the program on jemalloc: -ljemalloc first
bench_alloc_jeapp_SOURCES = bench/alloc.c
bench_alloc_jeapp_CFLAGS = $(AM_CFLAGS) -O2
bench_alloc_jeapp_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
bench_alloc_jeapp_LDADD = $(JEMALLOC_LIBS) lib/libwref.la \
	lib/libwref_jemalloc.la $(DL_LIBS) -lpthread

bench_alloc_entry_SOURCES = bench/alloc_entry.c
bench_alloc_entry_CFLAGS = $(AM_CFLAGS) -O2
bench_alloc_entry_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
bench_alloc_entry_LDADD = lib/libwref_jemalloc.la $(DL_LIBS)

bench-alloc: bench/alloc$(EXEEXT)
	./bench/alloc$(EXEEXT)
bench-alloc-quick: bench/alloc$(EXEEXT)
	./bench/alloc$(EXEEXT) --quick
bench-alloc-entry: bench/alloc_entry$(EXEEXT)
	./bench/alloc_entry$(EXEEXT)
bench-alloc-entry-quick: bench/alloc_entry$(EXEEXT)
	./bench/alloc_entry$(EXEEXT) --quick
bench: bench-alloc bench-alloc-entry
bench-quick: bench-alloc-quick
.PHONY: bench-alloc bench-alloc-quick bench-alloc-entry bench-alloc-entry-quick
