## wrefd.mk: examples/wrefd, a multithreaded RESP2 server on libwref
## (issue 8), its redis-cli integration test and its redis-benchmark run.
##   make check            runs tests/wrefd_test.sh (skips, 77, without
##                         redis-cli from Debian's redis-tools)
##   make bench-wrefd      wrefd vs redis-server, redis-benchmark
##                         -t ping,set,get,incr -c 50 -n 200000 (and -P 16),
##                         3 rounds -> bench/results/wrefd.md
##   make bench-wrefd-quick  the same with -n 20000, 1 round
## (both are part of make bench / make bench-quick)
## Debian packages: redis-tools (test), redis-server (benchmark).
noinst_PROGRAMS += examples/wrefd/wrefd
examples_wrefd_wrefd_SOURCES = \
	examples/wrefd/wrefd.h \
	examples/wrefd/main.c \
	examples/wrefd/db.c \
	examples/wrefd/cmd.c \
	examples/wrefd/resp.h \
	examples/wrefd/resp.c
examples_wrefd_wrefd_LDADD = lib/libwref.la -lpthread

TESTS += tests/wrefd_test.sh
EXTRA_DIST += tests/wrefd_test.sh bench/wrefd_bench.sh

bench-wrefd: examples/wrefd/wrefd$(EXEEXT)
	$(SHELL) $(srcdir)/bench/wrefd_bench.sh --wrefd ./examples/wrefd/wrefd$(EXEEXT) \
	  --out $(srcdir)/bench/results/wrefd.md
bench-wrefd-quick: examples/wrefd/wrefd$(EXEEXT)
	$(SHELL) $(srcdir)/bench/wrefd_bench.sh --quick --wrefd ./examples/wrefd/wrefd$(EXEEXT)
bench: bench-wrefd
bench-quick: bench-wrefd-quick
.PHONY: bench-wrefd bench-wrefd-quick
