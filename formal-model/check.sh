#!/bin/sh
# check.sh - exhaustive SPIN check of formal-model/*.pml: the model must
# pass with no error and a complete search; each BROKEN_* variant named in
# the model must fail (so the model can fail).  Exit 77 (automake: SKIP)
# when spin is not installed, unless WREF_MODEL_REQUIRED=1 (make
# check-model), where that is an error.
set -u
srcdir=${srcdir:-.}
dir="$srcdir/formal-model"
if ! command -v spin >/dev/null 2>&1; then
	echo "spin not found (apt-get install spin)"
	[ "${WREF_MODEL_REQUIRED:-0}" = 1 ] && exit 1
	exit 77
fi
CC=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

# run MODEL [DEFINE]: prints the pan summary into $work/out; returns
# pan's error count (0 = verified), 100 on a tool failure
run() {
	model=$1
	def=${2:-}
	rm -f "$work"/pan* "$work"/*.trail
	cp "$dir/$model" "$work/" || return 100
	( cd "$work" && spin ${def:+-D$def} -a "$model" >/dev/null &&
	  $CC -O2 -DSAFETY -o pan pan.c &&
	  ./pan -m1000000 > out 2>&1 ) || [ -s "$work/out" ] || return 100
	if grep -q "max search depth too small" "$work/out"; then
		echo "  search truncated: raise -m"
		return 100
	fi
	grep -q "Full statespace search" "$work/out" || return 100
	errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$work/out")
	return "${errs:-100}"
}

for m in "$dir"/*.pml; do
	model=$(basename "$m")
	run "$model"
	rc=$?
	states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' "$work/out")
	if [ $rc -eq 0 ]; then
		echo "PASS: $model verified ($states states, 3 threads, every interleaving)"
	else
		echo "FAIL: $model (rc $rc)"
		cat "$work/out"
		status=1
	fi
	for v in $(grep -o 'BROKEN_[A-Z_]*' "$m" | sort -u); do
		run "$model" "$v"
		rc=$?
		what=$(grep -m1 'assertion violated' "$work/out" | sed 's/^pan:1: //')
		if [ $rc -ge 1 ] && [ $rc -lt 100 ]; then
			echo "PASS: $model -D$v fails as it must: $what"
		else
			echo "FAIL: $model -D$v was not caught (rc $rc)"
			status=1
		fi
	done
done
exit $status
