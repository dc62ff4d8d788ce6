/*
 * resp.h - wrefd's incremental RESP2 request parser (multibulk and inline).
 *
 * Self-contained (no libwref, no sockets) so that tests/fuzz/fuzz_resp.c can
 * drive it alone.  The parser keeps its position across calls: a command
 * arriving in many small reads is scanned once, not from its first argument
 * again on every read.  The caller owns the buffer; arguments are returned
 * as offsets from the command's first byte, so the caller may move the
 * buffer (realloc, compaction) between calls as long as the command's bytes
 * keep their relative positions.
 */
#ifndef WREFD_RESP_H
#define WREFD_RESP_H

#include <stdbool.h>
#include <stddef.h>

#define RESP_INLINE_MAX (64 * 1024) /* inline command / header line */
#define RESP_MBULK_MAX (1024 * 1024) /* arguments per command */

struct resp_arg {
	size_t off, n; /* from the command's first byte */
};

struct resp {
	size_t max_request; /* bulk lengths of one command, summed */
	/* state of the command being parsed */
	int phase;          /* RESP_* below */
	size_t pos;         /* next byte to look at, from the command start */
	long long count;    /* multibulk: arguments announced */
	size_t blen;        /* multibulk: length of the bulk being read */
	size_t total;       /* multibulk: bulk lengths so far */
	size_t need;        /* a hint: bytes the command needs (0 unknown) */
	struct resp_arg *args;
	size_t argc, cap;
	char err[96];
};

enum { RESP_START, RESP_COUNT, RESP_BULKHDR, RESP_BULK, RESP_INLINE };

void resp_init(struct resp *r, size_t max_request);
void resp_free(struct resp *r);
/* Forget the command in progress (after a complete one or an error). */
void resp_reset(struct resp *r);
/* Parses the command at buf (len bytes available, the same first bytes as
 * on the previous call for this command).  Returns 1 with the command
 * complete in r->args[0..r->argc) and *used its length (argc may be 0: an
 * empty line or a zero/negative count, to be skipped), 0 when more input is
 * needed, -1 on a protocol error (r->err, without "Protocol error: ").
 * Inline arguments are unquoted in place (buf is written to). */
int resp_parse(struct resp *r, char *buf, size_t len, size_t *used);

#endif
