#!/bin/sh
# check_hooks.sh - the installed library carries no test hooks (issue 14):
# the built libwref.so has neither the allocation-failure hooks
# (wref__alloc_fail_after/_from) nor the retention tiers' test clock and
# sync (wref__clock_set, wref__retain_sync), all compiled only into
# lib/libwref_test.la with -DWREF_TEST_HOOKS, nor the WREF_FAIL_ALLOC
# string that would read them
# from the environment.  As a control, the test build must have both (so a
# renamed hook cannot make this check pass vacuously).
# SKIP (77) without nm/strings or without a shared build.
so=lib/.libs/libwref.so
test_lib=lib/.libs/libwref_test.a
if [ ! -f "$so" ] || ! command -v nm >/dev/null 2>&1 ||
   ! command -v strings >/dev/null 2>&1; then
	echo "SKIP: no $so, or no nm/strings"
	exit 77
fi
hooks='wref__alloc_fail_after|wref__alloc_fail_from|fail_countdown|wref__clock_set|wref__retain_sync|clock_fn'
status=0
if nm "$so" 2>/dev/null | grep -Eq "$hooks"; then
	echo "FAIL: $so has test hooks:"
	nm "$so" | grep -E "$hooks"
	status=1
fi
if strings "$so" | grep -q WREF_FAIL_ALLOC; then
	echo "FAIL: $so reads WREF_FAIL_ALLOC"
	status=1
fi
if [ -f "$test_lib" ]; then
	if ! nm "$test_lib" 2>/dev/null | grep -q wref__alloc_fail_after ||
	   ! nm "$test_lib" 2>/dev/null | grep -q wref__retain_sync ||
	   ! strings "$test_lib" | grep -q WREF_FAIL_ALLOC; then
		echo "FAIL: control: $test_lib lacks the hooks (renamed?)"
		status=1
	fi
fi
[ $status -eq 0 ] && echo "PASS: $so has no test hooks"
exit $status
