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
# the README's example is examples/readme.c, verbatim
readme="$srcdir/README.md"
if [ -f "$readme" ] && [ -f "$srcdir/examples/readme.c" ]; then
	block=$(mktemp)
	awk '/^## Example/{e=1} e&&/^```c$/{c=1;next} c&&/^```$/{exit} c' \
		"$readme" > "$block"
	if cmp -s "$block" "$srcdir/examples/readme.c"; then
		echo "PASS: README example is examples/readme.c"
	else
		echo "FAIL: README example differs from examples/readme.c"
		diff -u "$srcdir/examples/readme.c" "$block"
		status=1
	fi
	rm -f "$block"
fi
exit $status
