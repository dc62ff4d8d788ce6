/*
 * resp.c - the incremental RESP2 request parser (see resp.h).
 *
 * Error texts and inline quoting follow redis-server 7 (processInlineBuffer,
 * sdssplitargs, processMultibulkBuffer): the caller prefixes
 * "ERR Protocol error: " and closes the connection after the reply.
 */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void resp_init(struct resp *r, size_t max_request)
{
	memset(r, 0, sizeof *r);
	r->max_request = max_request;
}

void resp_free(struct resp *r)
{
	free(r->args);
	r->args = NULL;
	r->cap = r->argc = 0;
}

void resp_reset(struct resp *r)
{
	r->phase = RESP_START;
	r->pos = 0;
	r->count = 0;
	r->blen = r->total = r->need = 0;
	r->argc = 0;
}

static bool push(struct resp *r, size_t off, size_t n)
{
	if (r->argc == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct resp_arg *a = realloc(r->args, cap * sizeof *a);
		if (!a)
			return false;
		r->args = a;
		r->cap = cap;
	}
	r->args[r->argc].off = off;
	r->args[r->argc].n = n;
	r->argc++;
	return true;
}

static const char *find_crlf(const char *p, const char *end)
{
	const char *r = memchr(p, '\r', end - p);
	while (r && r + 1 < end && r[1] != '\n')
		r = memchr(r + 1, '\r', end - r - 1);
	return r && r + 1 < end ? r : NULL;
}

/* Redis's string2ll for protocol lengths: optional '-', no '+', no leading
 * zero, no blanks, at most 18 digits (no overflow) */
static bool parse_ll(const char *p, const char *e, long long *out)
{
	long long v = 0;
	bool neg = false;
	if (p < e && *p == '-') {
		neg = true;
		p++;
	}
	if (p == e || e - p > 18 || (*p == '0' && (e - p > 1 || neg)))
		return false;
	for (; p < e; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*out = neg ? -v : v;
	return true;
}

static int fail(struct resp *r, const char *msg)
{
	snprintf(r->err, sizeof r->err, "%s", msg);
	return -1;
}

/* C's isspace in the "C" locale, as sdssplitargs uses it */
static bool is_space(char ch)
{
	return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' ||
	       ch == '\v' || ch == '\f';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* sdssplitargs over [p, e), writing the unquoted bytes back into the same
 * buffer (never longer than the source).  A NUL ends the line, as it ends
 * the C string sdssplitargs reads.  false: unbalanced quotes. */
static int split_inline(struct resp *r, char *buf, char *p, char *e)
{
	char *nul = memchr(p, '\0', e - p);
	if (nul)
		e = nul;
	for (;;) {
		while (p < e && is_space(*p))
			p++;
		if (p == e)
			return 1;
		char *w = p, *o = p; /* the argument is written at w.. */
		bool inq = false, insq = false, done = false;
		while (!done) {
			/* "next" as sdssplitargs sees it: NUL past the end */
			char c0 = p < e ? *p : 0, c1 = p + 1 < e ? p[1] : 0;
			if (inq) {
				int h1, h2;
				if (c0 == '\\' && c1 == 'x' && p + 3 < e &&
				    (h1 = hexval(p[2])) >= 0 &&
				    (h2 = hexval(p[3])) >= 0) {
					*o++ = (char)(h1 * 16 + h2);
					p += 3;
				} else if (c0 == '\\' && c1) {
					char ch;
					p++;
					switch (*p) {
					case 'n': ch = '\n'; break;
					case 'r': ch = '\r'; break;
					case 't': ch = '\t'; break;
					case 'b': ch = '\b'; break;
					case 'a': ch = '\a'; break;
					default: ch = *p; break;
					}
					*o++ = ch;
				} else if (c0 == '"') {
					/* the closing quote must be followed
					 * by a space or nothing */
					if (c1 && !is_space(c1))
						return fail(r, "unbalanced quotes "
							    "in request");
					done = true;
				} else if (!c0) {
					return fail(r, "unbalanced quotes in "
						    "request");
				} else {
					*o++ = c0;
				}
			} else if (insq) {
				if (c0 == '\\' && c1 == '\'') {
					p++;
					*o++ = '\'';
				} else if (c0 == '\'') {
					if (c1 && !is_space(c1))
						return fail(r, "unbalanced quotes "
							    "in request");
					done = true;
				} else if (!c0) {
					return fail(r, "unbalanced quotes in "
						    "request");
				} else {
					*o++ = c0;
				}
			} else {
				switch (c0) {
				case ' ': case '\n': case '\r': case '\t':
				case '\0':
					done = true;
					break;
				case '"':
					inq = true;
					break;
				case '\'':
					insq = true;
					break;
				default:
					*o++ = c0;
					break;
				}
			}
			if (p < e)
				p++;
		}
		if (!push(r, w - buf, o - w))
			return fail(r, "out of memory");
	}
}

int resp_parse(struct resp *r, char *buf, size_t len, size_t *used)
{
	char *end = buf + len;

	if (r->phase == RESP_START) {
		if (!len)
			return 0;
		r->argc = 0;
		r->phase = buf[0] == '*' ? RESP_COUNT : RESP_INLINE;
		r->pos = r->phase == RESP_COUNT ? 1 : 0;
	}
	if (r->phase == RESP_INLINE) {
		/* resume the LF search where the last call stopped */
		char *lf = memchr(buf + r->pos, '\n', len - r->pos);
		if (!lf) {
			r->pos = len;
			if (len > RESP_INLINE_MAX)
				return fail(r, "too big inline request");
			return 0;
		}
		char *e = lf;
		if (e > buf && e[-1] == '\r')
			e--;
		if (split_inline(r, buf, buf, e) < 0)
			return -1;
		*used = lf + 1 - buf;
		r->phase = RESP_START;
		return 1;
	}
	if (r->phase == RESP_COUNT) {
		const char *e = find_crlf(buf + 1, end);
		long long count;
		if (!e) {
			if (len > RESP_INLINE_MAX)
				return fail(r, "too big mbulk count string");
			return 0;
		}
		if (!parse_ll(buf + 1, e, &count) || count > RESP_MBULK_MAX)
			return fail(r, "invalid multibulk length");
		r->count = count;
		r->pos = e + 2 - buf;
		r->phase = RESP_BULKHDR;
	}
	while ((long long)r->argc < r->count) {
		char *p = buf + r->pos;
		if (r->phase == RESP_BULKHDR) {
			long long blen;
			const char *e;
			if (p >= end)
				return 0;
			if (*p != '$') {
				snprintf(r->err, sizeof r->err,
					 "expected '$', got '%c'",
					 *p >= 32 && *p < 127 ? *p : '?');
				return -1;
			}
			e = find_crlf(p, end);
			if (!e) {
				if (end - p > 32)
					return fail(r, "invalid bulk length");
				return 0;
			}
			if (!parse_ll(p + 1, e, &blen) || blen < 0 ||
			    (unsigned long long)blen > r->max_request)
				return fail(r, "invalid bulk length");
			r->total += blen;
			if (r->total > r->max_request) {
				snprintf(r->err, sizeof r->err,
					 "request larger than %zu bytes",
					 r->max_request);
				return -1;
			}
			r->blen = blen;
			r->pos = e + 2 - buf;
			r->phase = RESP_BULK;
			p = buf + r->pos;
		}
		/* RESP_BULK */
		if ((size_t)(end - p) < r->blen + 2) {
			r->need = r->pos + r->blen + 2;
			return 0;
		}
		if (p[r->blen] != '\r' || p[r->blen + 1] != '\n')
			return fail(r, "expected CRLF after bulk");
		if (!push(r, r->pos, r->blen))
			return fail(r, "out of memory");
		r->pos += r->blen + 2;
		r->need = 0;
		r->phase = RESP_BULKHDR;
	}
	*used = r->pos;
	r->phase = RESP_START;
	return 1;
}
