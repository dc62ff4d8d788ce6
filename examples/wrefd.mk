## wrefd.mk: examples/wrefd, a multithreaded RESP2 server on libwref
## (issue 8), its redis-cli integration test and its redis-benchmark run.
##   make check            runs tests/integration/wrefd_test.sh (skips, 77, without
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

TESTS += tests/integration/wrefd_test.sh
EXTRA_DIST += tests/integration/wrefd_test.sh bench/wrefd_bench.sh

bench-wrefd: examples/wrefd/wrefd$(EXEEXT)
	$(SHELL) $(srcdir)/bench/wrefd_bench.sh --wrefd ./examples/wrefd/wrefd$(EXEEXT) \
	  --out $(srcdir)/bench/results/wrefd.md
bench-wrefd-quick: examples/wrefd/wrefd$(EXEEXT)
	$(SHELL) $(srcdir)/bench/wrefd_bench.sh --quick --wrefd ./examples/wrefd/wrefd$(EXEEXT)
bench: bench-wrefd
bench-quick: bench-wrefd-quick
.PHONY: bench-wrefd bench-wrefd-quick

## ---- RESP parser fuzz target (issue 17) ---------------------------------
## tests/fuzz/fuzz_resp.c drives examples/wrefd/resp.c alone: a byte stream
## parsed whole, in pieces and byte by byte must give the same commands and
## errors.  make check replays tests/fuzz/resp-corpus with a plain (gcc)
## build and tests/fuzz/replay.c; `make fuzz-resp` builds it with clang-14
## libFuzzer + ASan/UBSan and fuzzes for FUZZ_SECONDS into
## tests/fuzz/new-resp-corpus (`make fuzz-resp-merge` folds that in).
TESTS += tests/fuzz/resp_replay.sh
check_PROGRAMS += tests/fuzz/fuzz_resp_replay
tests_fuzz_fuzz_resp_replay_SOURCES = tests/fuzz/fuzz_resp.c \
	tests/fuzz/replay.c examples/wrefd/resp.c examples/wrefd/resp.h
tests_fuzz_fuzz_resp_replay_CFLAGS = $(AM_CFLAGS) -I$(srcdir)/examples/wrefd
EXTRA_DIST += tests/fuzz/resp_replay.sh tests/fuzz/resp-corpus

tests/fuzz/fuzz_resp: $(srcdir)/tests/fuzz/fuzz_resp.c \
		$(srcdir)/examples/wrefd/resp.c $(srcdir)/examples/wrefd/resp.h
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz-resp:" \
	  "$(FUZZ_CC) not found; on Debian: apt-get install -y clang-14" \
	  "libclang-rt-14-dev" >&2; exit 1; }
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=all -fno-omit-frame-pointer $(FUZZ_EXTRA) \
	  -I$(srcdir)/examples/wrefd -o $@ $(srcdir)/tests/fuzz/fuzz_resp.c \
	  $(srcdir)/examples/wrefd/resp.c
fuzz-resp: tests/fuzz/fuzz_resp
	@$(MKDIR_P) tests/fuzz/new-resp-corpus
	./tests/fuzz/fuzz_resp -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 tests/fuzz/new-resp-corpus \
	  $(srcdir)/tests/fuzz/resp-corpus
fuzz-resp-merge: tests/fuzz/fuzz_resp
	./tests/fuzz/fuzz_resp -merge=1 $(srcdir)/tests/fuzz/resp-corpus \
	  tests/fuzz/new-resp-corpus
CLEANFILES += tests/fuzz/fuzz_resp
clean-local: clean-fuzz-resp
clean-fuzz-resp:
	rm -rf tests/fuzz/new-resp-corpus
.PHONY: fuzz-resp fuzz-resp-merge clean-fuzz-resp
