#!/bin/sh
# tests/man_check.sh - the manual pages (make check): groff -man -ww reports
# no warning on any page, every link page is one ".so man3/AREA.3" line
# naming an area page, and man/man.mk still lists a page for every public
# function of include/wref.h.  Exit 77 (skip) without groff.
set -u
srcdir=${srcdir:-.}
command -v groff >/dev/null 2>&1 || {
	echo "SKIP: groff not found (Debian: apt-get install groff-base)"
	exit 77
}
fail=0
mk=$srcdir/man/man.mk
want=$(mktemp) || exit 99
trap 'rm -f "$want"' EXIT
python3 "$srcdir/man/mkman.py" --header "$srcdir/include/wref.h" --mk >"$want" || exit 99
if ! head -n "$(wc -l <"$want")" "$mk" | cmp -s - "$want"; then
	echo "man/man.mk does not match include/wref.h: run" \
	     "python3 man/mkman.py --header include/wref.h --mk and update" \
	     "the generated part of man/man.mk"
	fail=1
fi
pages=$(sed -n 's/^[[:space:]]*\(man\/[a-z_]*\.3\)[[:space:]\\]*$/\1/p' "$mk")
n=0
for p in $pages; do
	f=$p
	[ -f "$f" ] || f=$srcdir/$p
	[ -f "$f" ] || { echo "$p: missing"; fail=1; continue; }
	n=$((n + 1))
	if grep -q '^\.so ' "$f"; then
		t=$(sed -n 's/^\.so man3\///p' "$f")
		if [ "$(wc -l <"$f")" -ne 1 ] || [ -z "$t" ] ||
		   ! grep -q "^[[:space:]]*man/$t" "$mk"; then
			echo "$p: not a link to an area page"
			fail=1
		fi
		continue
	fi
	w=$(groff -man -ww -z "$f" 2>&1)
	if [ -n "$w" ]; then
		echo "$p: groff -man -ww:"
		echo "$w"
		fail=1
	fi
done
echo "manual pages: $n checked"
exit $fail
