#!/bin/sh
# smoke.sh - `make check` runs every built peer benchmark for a moment so
# the suite behind `make bench` cannot rot: each must exit 0 and print its
# workload lines (no timing is checked).  Skipped (77) where the peers are
# not built (sanitizer builds, --without-jemalloc).
set -u
dir=bench/peers
[ -x "$dir/wref_bench" ] || { echo "peers not built: skip"; exit 77; }
fail=0
wref_out=
for p in wref_bench limit_bench cxx_bench glib_bench; do
	[ -x "$dir/$p" ] || continue
	out=$("$dir/$p" --ms 2 --lat 20 --os-threads 8 2>&1)
	rc=$?
	n=$(printf '%s\n' "$out" | grep -c '^[a-z0-9_]* [0-9.]*$')
	if [ $rc -ne 0 ] || [ "$n" -lt 10 ]; then
		echo "FAIL: $p (exit $rc, $n result lines)"
		printf '%s\n' "$out" | tail -5
		fail=1
	else
		echo "ok: $p ($n result lines)"
	fi
	[ "$p" = wref_bench ] && wref_out=$out
done
# the libwref rows the suite's table needs
for k in up_1t new_rel_weak get_hit_1t goc_churn_2t cb_tput mem_entry \
	os_mops_8 os_p999_8 cb_lat_p99; do
	printf '%s\n' "$wref_out" | grep -q "^$k " ||
		{ echo "FAIL: wref_bench prints no $k"; fail=1; }
done
exit $fail
