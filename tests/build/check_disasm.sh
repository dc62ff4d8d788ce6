#!/bin/sh
# check_disasm.sh - the upgrade's fast path in the library users link
# (issue 12): in the built libwref.so, wref_ref_get contains exactly one
# lock-prefixed instruction (the fetch_add on the control block's counter),
# calls nothing in another shared object (no PLT entry, no __tls_get_addr:
# no RCU read-side section, no TLS), and its only call is the in-library
# slow path.  Before the side-table core it held four __tls_get_addr calls
# (liburcu-bp's reader, from a shared object) and two lock prefixes.
# SKIP (77) without objdump, without a shared build, or in a sanitizer
# build (instrumentation adds calls).
so=lib/.libs/libwref.so
if [ ! -f "$so" ] || ! command -v objdump >/dev/null 2>&1; then
	echo "SKIP: no $so or no objdump"
	exit 77
fi
if objdump -T "$so" | grep -q '__tsan_\|__asan_'; then
	echo "SKIP: sanitizer build"
	exit 77
fi
dis=$(objdump -d --no-show-raw-insn "$so" |
	awk '/<wref_ref_get>:$/ { p = 1; next } p && /^$/ { exit } p')
if [ -z "$dis" ]; then
	echo "FAIL: wref_ref_get not found in $so"
	exit 1
fi
status=0
bad=$(printf '%s\n' "$dis" | grep -E 'call|jmp' | grep -E '@plt|tls_get_addr|\*' )
if [ -n "$bad" ]; then
	echo "FAIL: wref_ref_get calls out of the library:"
	printf '%s\n' "$bad"
	printf '%s\n' "$dis"
	exit 1
fi
# an unoptimised build (CFLAGS=-O0) calls its inline helpers out of line:
# nothing more to check there
if printf '%s\n' "$dis" | grep 'call' | grep -v '<wref__[a-z_]*_slow>' |
   grep -q '<wref__'; then
	echo "SKIP: wref_ref_get's helpers are not inlined (unoptimised build)"
	exit 77
fi
locks=$(printf '%s\n' "$dis" | grep -c 'lock ')
if [ "$locks" -ne 1 ]; then
	echo "FAIL: $locks lock-prefixed instructions in wref_ref_get (want 1)"
	status=1
fi
other=$(printf '%s\n' "$dis" | grep 'call' | grep -v '<wref__[a-z_]*_slow>')
if [ -n "$other" ]; then
	echo "FAIL: wref_ref_get calls more than its slow path:"
	printf '%s\n' "$other"
	status=1
fi
[ $status -eq 0 ] && echo "PASS: wref_ref_get: 1 atomic RMW, no call but its slow path"
[ $status -ne 0 ] && printf '%s\n' "$dis"
exit $status
