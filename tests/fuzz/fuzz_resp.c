/*
 * fuzz_resp.c - libFuzzer target for wrefd's RESP parser
 * (examples/wrefd/resp.c), the code that reads every byte a client sends.
 *
 * The input's first two bytes seed the read sizes, the rest is the byte
 * stream a client would send.  The stream is parsed twice, the way a
 * connection does (parse, consume a complete command, parse on): once with
 * all of it available, once arriving in pieces of 1..64 bytes (and once a
 * byte at a time) with the parser resuming across pieces.  Both must give
 * the same commands, argument for argument, and the same protocol error,
 * and every argument must lie inside the bytes its command consumed.  The
 * parser is incremental (issue 17.3): this is the check that resuming is
 * exactly the same as parsing in one go.  Any mismatch aborts.
 *
 *   make fuzz-resp [FUZZ_SECONDS=60]  clang-14 libFuzzer + ASan/UBSan
 *   make check                        replays tests/fuzz/resp-corpus
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define MAX_REQUEST 4096

struct log {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct log *l, const void *p, size_t n)
{
	if (l->n + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;
		while (cap < l->n + n)
			cap *= 2;
		l->p = realloc(l->p, cap);
		if (!l->p)
			abort();
		l->cap = cap;
	}
	memcpy(l->p + l->n, p, n);
	l->n += n;
}

static void put_sz(struct log *l, size_t v)
{
	put(l, &v, sizeof v);
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_resp: %s\n", what);
		abort();
	}
}

/* Feeds data in pieces (step(seed) bytes more per read; step NULL: all at
 * once) and logs what the parser makes of it. */
static void run(const uint8_t *data, size_t size, uint32_t seed, int mode,
		struct log *l)
{
	char *buf = malloc(size ? size : 1);
	struct resp r;
	size_t off = 0, avail = 0;
	check(buf != NULL, "malloc");
	memcpy(buf, data, size);
	resp_init(&r, MAX_REQUEST);
	for (int guard = 0; guard < 1 << 22; guard++) {
		/* one "read" */
		size_t more;
		if (mode == 0) {
			more = size;
		} else if (mode == 1) {
			more = 1;
		} else {
			seed = seed * 1103515245u + 12345u;
			more = 1 + (seed >> 16) % 64;
		}
		avail = avail + more > size ? size : avail + more;
		int rc = 0;
		/* run what is complete */
		while (off < avail) {
			size_t used = 0;
			rc = resp_parse(&r, buf + off, avail - off, &used);
			if (rc <= 0)
				break;
			check(used > 0 && used <= avail - off, "used");
			check(r.argc <= RESP_MBULK_MAX, "argc");
			put_sz(l, 'C');
			put_sz(l, r.argc);
			for (size_t i = 0; i < r.argc; i++) {
				check(r.args[i].off <= used &&
				      r.args[i].n <= used - r.args[i].off,
				      "argument outside its command");
				put_sz(l, r.args[i].n);
				put(l, buf + off + r.args[i].off, r.args[i].n);
			}
			resp_reset(&r);
			off += used;
		}
		if (rc < 0) {
			check(r.err[0] != 0, "error without text");
			put_sz(l, 'E');
			put(l, r.err, strlen(r.err));
			break;
		}
		if (avail == size) {
			put_sz(l, 'I'); /* incomplete (or nothing) left */
			put_sz(l, size - off);
			break;
		}
	}
	resp_free(&r);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log whole = { 0 }, pieces = { 0 }, bytes = { 0 };
	uint32_t seed;
	if (size < 2)
		return 0;
	seed = data[0] | (uint32_t)data[1] << 8;
	data += 2;
	size -= 2;
	run(data, size, seed, 0, &whole);
	/* past RESP_INLINE_MAX without a line end the parser refuses a line
	 * that one big read could still complete (as redis-server does), so
	 * piecewise and whole may then differ: compare below that */
	if (size < RESP_INLINE_MAX) {
		run(data, size, seed, 2, &pieces);
		check(pieces.n == whole.n && !memcmp(pieces.p, whole.p, whole.n),
		      "parsed in pieces differs from parsed whole");
		if (size <= 8192) {
			run(data, size, seed, 1, &bytes);
			check(bytes.n == whole.n &&
				      !memcmp(bytes.p, whole.p, whole.n),
			      "parsed byte by byte differs from parsed whole");
		}
	}
	free(whole.p);
	free(pieces.p);
	free(bytes.p);
	return 0;
}
