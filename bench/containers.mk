## containers benchmark (issue 4): valmap get vs the raw cds_lfht limit and
## a rwlock map of weak refs, get_or_create under churn, bytes per entry.
##   make bench-containers        full run
##   make bench-containers-quick  under 20 s
## Both are part of make bench / make bench-quick.
noinst_PROGRAMS += bench/containers
bench_containers_SOURCES = bench/containers.c
bench_containers_LDADD = lib/libwref_core.la $(URCU_LIBS) $(JEMALLOC_LIBS) \
	-lpthread -lm
bench_containers_CFLAGS = $(AM_CFLAGS) -O2 $(JEMALLOC_CFLAGS)

bench-containers: bench/containers$(EXEEXT)
	./bench/containers$(EXEEXT)
bench-containers-quick: bench/containers$(EXEEXT)
	./bench/containers$(EXEEXT) --quick
bench: bench-containers
bench-quick: bench-containers-quick
.PHONY: bench-containers bench-containers-quick
