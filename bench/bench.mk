## core benchmark (issue 3): upgrade+release vs the atomic fetch_add/sub
## limit (1 thread, 2 threads on own objects, 2 threads on one object),
## new+release vs malloc+free, header/control-block sizes.
##   make bench-upgrade        full run
##   make bench-upgrade-quick  under ~10 s
## Both are part of make bench / make bench-quick.
noinst_PROGRAMS += bench/upgrade
bench_upgrade_SOURCES = bench/upgrade.c
bench_upgrade_CFLAGS = $(AM_CFLAGS) -O2 $(JEMALLOC_CFLAGS)
bench_upgrade_LDADD = lib/libwref_core.la $(URCU_LIBS) $(JEMALLOC_LIBS) -lpthread

bench-upgrade: bench/upgrade$(EXEEXT)
	./bench/upgrade$(EXEEXT)
bench-upgrade-quick: bench/upgrade$(EXEEXT)
	./bench/upgrade$(EXEEXT) --quick
bench: bench-upgrade
bench-quick: bench-upgrade-quick
.PHONY: bench-upgrade bench-upgrade-quick
