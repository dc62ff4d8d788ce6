#!/bin/sh
# tests/quiet.sh TEST [ARGS...] - runs one test of `make check` (it is the
# TESTS_ENVIRONMENT of Makefile.am) with its stderr captured, so that a
# passing run prints only what is worth reading:
#
#  * lines a passing test is expected to print are dropped, and checked:
#    tests/integration/check_object provokes the library's saturation warning and its
#    over-release misuse report (an abort naming it with --enable-debug)
#    on purpose; the test fails here if the saturation warning is missing;
#  * under AddressSanitizer, LeakSanitizer's "Running thread N was not
#    suspended. False leaks are possible." is dropped.  It is printed by
#    every forked Check child: the library's pthread_atfork prepare handler
#    (lib/fork.c, fork_prepare) starts liburcu-bp's call_rcu thread in
#    the parent, and the child inherits the sanitizer's thread registry
#    with that thread listed as running although it does not exist in the
#    child.  Nothing in the child is hidden by it (that thread's stack is
#    the parent's); real leaks are still reported;
#  * anything else on stderr is printed after the test's stdout;
#  * when the test fails, its whole stderr is printed, unfiltered.
#
# The exit status is the test's (77 = skipped, 99 = hard error), or 1 when
# an expected line is missing from a passing run.
set -u
[ $# -ge 1 ] || { echo "usage: $0 TEST [ARGS...]" >&2; exit 99; }
name=$(basename "$1")
err=$(mktemp "${TMPDIR:-/tmp}/wref-stderr.XXXXXX") || exit 99
trap 'rm -f "$err"' EXIT
trap 'exit 130' INT TERM

"$@" 2>"$err"
rc=$?

lsan='^==[0-9]*==Running thread [0-9]* was not suspended\. False leaks are possible\.$'
expected=$lsan
required=
case $name in
check_object)
	sat='^libwref: warning: strong count of 0x[0-9a-f]* \(type obj\) saturated; the object is pinned forever$'
	over='^libwref: misuse: wref_release of an object with no strong ref \(over-release\) \(object 0x[0-9a-f]*'
	# --enable-debug: the over-release aborts, naming the misuse
	dead='^libwref: misuse: wref_release\(0x[0-9a-f]*\): object is dead \(released too often\)$'
	expected="$expected|$sat|$over|$dead"
	required=$sat
	;;
esac

if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
	if [ -s "$err" ]; then
		echo "---- $name: stderr (unfiltered) ----" >&2
		cat "$err" >&2
		echo "---- $name: end of stderr ----" >&2
	fi
	exit "$rc"
fi
grep -Ev "$expected" "$err" >&2
if [ -n "$required" ] && ! grep -Eq "$required" "$err"; then
	echo "$name: passed, but the expected stderr line is missing:" >&2
	echo "  $required" >&2
	echo "---- $name: stderr (unfiltered) ----" >&2
	cat "$err" >&2
	exit 1
fi
exit "$rc"
