## core benchmark (issue 3): upgrade+release vs the atomic fetch_add/sub
## limit (1 thread, 2 threads on own objects, 2 threads on one object),
## new+release vs malloc+free, header/control-block sizes.
##   make bench-upgrade        full run
##   make bench-upgrade-quick  under ~10 s
## Both are part of make bench / make bench-quick.
## bench/upgrade links what a pkg-config user links: the shared libwref.so
## (plus its jemalloc helper library), the program's malloc untouched;
## bench/upgrade_static the same code linked statically (libwref_core), as
## every bench measured before.  The targets run them alternately.
noinst_PROGRAMS += bench/upgrade bench/upgrade_static
bench_upgrade_SOURCES = bench/upgrade.c
bench_upgrade_CFLAGS = $(AM_CFLAGS) -O2
bench_upgrade_LDFLAGS = $(AM_LDFLAGS) -Wl,--no-as-needed
bench_upgrade_LDADD = lib/libwref.la lib/libwref_jemalloc.la -lpthread
bench_upgrade_static_SOURCES = bench/upgrade.c
bench_upgrade_static_CFLAGS = $(AM_CFLAGS) -O2 \
	-DWREF_BENCH_LINK='"static libwref_core, same code"'
bench_upgrade_static_LDADD = lib/libwref_core.la $(URCU_LIBS) -lpthread

bench-upgrade: bench/upgrade$(EXEEXT) bench/upgrade_static$(EXEEXT)
	./bench/upgrade$(EXEEXT) && ./bench/upgrade_static$(EXEEXT) && \
	  ./bench/upgrade$(EXEEXT) && ./bench/upgrade_static$(EXEEXT)
bench-upgrade-quick: bench/upgrade$(EXEEXT) bench/upgrade_static$(EXEEXT)
	./bench/upgrade$(EXEEXT) --quick && \
	  ./bench/upgrade_static$(EXEEXT) --quick
bench: bench-upgrade
bench-quick: bench-upgrade-quick
.PHONY: bench-upgrade bench-upgrade-quick
