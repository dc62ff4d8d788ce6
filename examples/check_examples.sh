#!/bin/sh
# check_examples.sh - runs every example that has an expected output
# (examples/NAME.expected) and compares what it prints, byte for byte.
srcdir=${srcdir:-.}
status=0
for exp in "$srcdir"/examples/*.expected; do
	name=$(basename "$exp" .expected)
	prog=./examples/$name
	if [ ! -x "$prog" ]; then
		echo "SKIP: $name (not built)"
		continue
	fi
	out=$(mktemp)
	"$prog" > "$out" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "FAIL: $name exited with status $rc"
		cat "$out"
		status=1
	elif ! diff -u "$exp" "$out"; then
		echo "FAIL: $name: output differs"
		status=1
	else
		echo "PASS: $name"
	fi
	rm -f "$out"
done
exit $status
