#!/bin/bash
# wrefd_test.sh - integration test of examples/wrefd driven by real clients:
# redis-cli (Debian's redis-tools) for every command, pub/sub across
# clients, a subscriber killed mid-stream, CLIENT LIST while clients come
# and go, a large reply racing DEL/overwrite, and raw bytes through bash's
# /dev/tcp for malformed and oversized input.  Ends with SIGTERM: the
# server must exit 0 (under ASan: with no leak or error report).
#
# Exit: 0 pass, 1 fail, 77 skip (no redis-cli), 99 hard error.
# Env: WREFD (the server binary), WREFD_TEST_VERBOSE=1.
set -u

if ! command -v redis-cli >/dev/null 2>&1; then
	echo "SKIP: redis-cli not found (Debian: apt-get install redis-tools)"
	exit 77
fi
WREFD=${WREFD:-./examples/wrefd/wrefd}
if [ ! -x "$WREFD" ]; then
	echo "ERROR: $WREFD not built"
	exit 99
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wrefd_test.XXXXXX")
pids=()
server=
spid=
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$server" ] && kill -9 $spid "$server" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
ok() { [ -n "${WREFD_TEST_VERBOSE:-}" ] && echo "ok   $*"; return 0; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

"$WREFD" --port 0 --threads 3 --port-file "$tmp/port" >"$tmp/log" 2>&1 &
server=$!
for _ in $(seq 200); do
	[ -s "$tmp/port" ] && break
	kill -0 "$server" 2>/dev/null || break
	sleep 0.05
done
if [ ! -s "$tmp/port" ]; then
	echo "ERROR: wrefd did not start"; cat "$tmp/log"; exit 99
fi
P=$(cat "$tmp/port")

R() { timeout 20 redis-cli -h 127.0.0.1 -p "$P" "$@"; }
# the server's own pid: $! may be a wrapper that waits for it
spid=$(R info | tr -d '\r' | sed -n 's/^process_id://p')
echo "wrefd pid ${spid:-?} on 127.0.0.1:$P"
# background subscribers: no wrapper, so that $! is redis-cli itself
S() { exec redis-cli -h 127.0.0.1 -p "$P" subscribe "$@"; }

# expect WANT CMD...: the redis-cli output of CMD must be WANT
expect() {
	local want=$1 got
	shift
	got=$(R "$@" 2>&1)
	if [ "$got" = "$want" ]; then ok "$*"; else
		bad "$*: got '$got', want '$want'"; fi
}

# raw BYTES (printf format): send, then read until the server closes
raw() {
	local out=$1
	shift
	(
		exec 3<>"/dev/tcp/127.0.0.1/$P" || exit 1
		# shellcheck disable=SC2059
		printf "$@" >&3
		timeout 10 cat <&3
	) >"$out" 2>/dev/null
}

# expect_raw NAME WANT BYTES...: the whole answer must be WANT (a $'...')
expect_raw() {
	local name=$1 want=$2
	shift 2
	raw "$tmp/raw" "$@"
	if [ "$(cat -v "$tmp/raw")" = "$(printf '%s' "$want" | cat -v)" ]; then
		ok "raw: $name"
	else
		bad "raw: $name: got '$(cat -v "$tmp/raw")', want '$(printf '%s' "$want" | cat -v)'"
	fi
}

# wait_for WANT CMD...: poll up to 10 s until CMD prints WANT
wait_for() {
	local want=$1 got=
	shift
	for _ in $(seq 200); do
		got=$(R "$@" 2>&1)
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	bad "waiting for '$*' to print '$want' (last '$got')"
	return 1
}

## --- strings and keys ---------------------------------------------------
expect PONG ping
expect hello ping hello
expect "hi there" echo "hi there"
expect 0 dbsize
expect OK set k1 v1
expect v1 get k1
expect "" get nosuch
expect OK set k1 v2
expect v2 get k1
expect "" set k1 v3 NX
expect v2 get k1
expect OK set k1 v3 XX
expect "" set k9 v XX
expect 0 exists k9
expect OK set k2 v2
expect 2 exists k1 k2 nosuch
expect 3 exists k1 k1 k2
expect 2 dbsize
expect 2 del k1 k2 nosuch
expect 0 exists k1 k2
expect 0 del k1
expect 1 incr n
expect 2 incr n
expect 12 incrby n 10
expect 11 decr n
expect 11 get n
expect OK set s notanumber
expect "ERR value is not an integer or out of range" incr s
expect OK set big 9223372036854775807
expect "ERR increment or decrement would overflow" incr big
expect OK set e1 gone EX 1
expect OK set e2 gone PX 300
expect OK set e3 stays EX 100
expect 1 ttl e1
expect 100 ttl e3
expect -1 ttl n
expect -2 ttl nosuch
expect "ERR invalid expire time in 'set' command" set e4 v EX 0
expect "ERR syntax error" set e4 v EX
expect "ERR syntax error" set e4 v BOGUS
sleep 1.3
expect "" get e1
expect "" get e2
expect 0 exists e1 e2
expect stays get e3
expect 1 exists e3
# INCR keeps the deadline; SET without EX drops it
expect OK set e5 1 EX 100
expect 2 incr e5
expect 100 ttl e5
expect OK set e5 3
expect -1 ttl e5
# interned values: many keys, one value object, then overwritten
for i in $(seq 20); do echo "SET same:$i shared-value"; done | R >/dev/null
expect shared-value get same:7
expect OK set same:7 other
expect shared-value get same:8
expect other get same:7
# 50 keys with one new value add one interned object; when the last key
# lets go of it, it dies and leaves the interning map by itself
interned() { R info | tr -d '\r' | sed -n 's/^interned_values://p'; }
i0=$(interned)
for i in $(seq 50); do echo "SET probe:$i intern-probe"; done | R >/dev/null
i1=$(interned)
[ "$i1" = $((i0 + 1)) ] && ok "interned once" || bad "interned_values $i0 -> $i1 after 50 equal SETs"
for i in $(seq 50); do echo "DEL probe:$i"; done | R >/dev/null
i2=$(interned)
[ "$i2" = "$i0" ] && ok "interned value gone" || bad "interned_values $i0 -> $i2 after DEL"
expect "ERR unknown command 'nosuchcmd'" nosuchcmd a b
expect "ERR wrong number of arguments for 'get' command" get
expect "ERR wrong number of arguments for 'get' command" get a b
expect OK select 0
expect OK client setname tester
expect "" client getname
n=$(R dbsize)
[ "$n" -ge 20 ] && ok "dbsize $n" || bad "dbsize $n"

info=$(R info)
for f in redis_version wrefd_version connected_clients total_commands_processed \
	wref_objects_live interned_values db0:keys=; do
	case $info in *"$f"*) ok "info has $f" ;; *) bad "INFO lacks $f" ;; esac
done

# CLIENT SETNAME/GETNAME/ID/LIST on one connection (redis-cli reads
# commands from stdin, one connection)
out=$(printf 'CLIENT SETNAME tester\nCLIENT GETNAME\nCLIENT LIST\nQUIT\n' | R)
case $out in
*OK*tester*"name=tester"*"cmd=client"*) ok "client setname/list" ;;
*) bad "client setname/getname/list: '$out'" ;;
esac
id=$(R client id)
[ "$id" -gt 0 ] 2>/dev/null && ok "client id $id" || bad "client id '$id'"

## --- pub/sub across clients ----------------------------------------------
S news weather >"$tmp/sub1" 2>&1 &
s1=$!
pids+=("$s1")
wait_for 1 publish news warmup
S news >"$tmp/sub2" 2>&1 &
s2=$!
pids+=("$s2")
wait_for 2 publish news warmup2
expect 1 publish weather sunny
expect 0 publish nobody-listens x
expect 2 publish news "m 1"
expect 2 publish news "m 2"
list=$(R client list)
nsub=$(grep -c 'flags=P' <<<"$list")
[ "$nsub" = 2 ] && ok "client list shows 2 subscribers" ||
	bad "client list: $nsub subscribers in '$list'"
grep -q 'sub=2 ' <<<"$list" && ok "client list sub=2" || bad "no sub=2 in '$list'"
for _ in $(seq 100); do grep -q "m 2" "$tmp/sub1" && grep -q "m 2" "$tmp/sub2" && break; sleep 0.05; done
# (a message may come between the two confirmations, as with Redis)
stream=$(tr '\n' ' ' <"$tmp/sub1")
case $stream in
"subscribe news 1 "*"subscribe weather 2 "*) ok "sub1 confirmations" ;;
*) bad "sub1 confirmations: '$stream'" ;;
esac
# the messages alone, in order (confirmations may interleave with them)
msgs=$(sed 's/subscribe [a-z]* [0-9]* //g' <<<"$stream")
case $msgs in
*"message news warmup message news warmup2 "*"message weather sunny message news m 1 message news m 2 "*)
	ok "sub1 messages in order" ;;
*) bad "sub1 messages: '$stream'" ;;
esac
for m in warmup2 sunny "m 1" "m 2"; do
	grep -qx "$m" "$tmp/sub1" && ok "sub1 got $m" || bad "sub1 missed '$m'"
done
for m in warmup2 "m 1" "m 2"; do
	grep -qx "$m" "$tmp/sub2" && ok "sub2 got $m" || bad "sub2 missed '$m'"
done
grep -qx sunny "$tmp/sub2" && bad "sub2 got a message of a channel it did not subscribe"
# a subscribed connection refuses ordinary commands
expect_raw "subscribed mode" \
	$'*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n-ERR Can\'t execute \'get\': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n+OK\r\n' \
	'SUBSCRIBE ch\r\nGET x\r\nPING\r\nQUIT\r\n'
expect_raw "unsubscribe" \
	$'*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n+PONG\r\n+OK\r\n' \
	'SUBSCRIBE a b\r\nUNSUBSCRIBE a\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nPING\r\nQUIT\r\n'
# a closed subscriber is unsubscribed by its death alone
kill "$s2"
wait "$s2" 2>/dev/null
wait_for 1 publish news after-s2
kill "$s1"
wait "$s1" 2>/dev/null
wait_for 0 publish news after-s1
wait_for 0 publish weather after-s1

## --- a subscriber killed mid-stream --------------------------------------
payload=$(head -c 2000 /dev/zero | tr '\0' p)
S flood >"$tmp/flood" 2>&1 &
sf=$!
pids+=("$sf")
S flood >/dev/null 2>&1 &
sg=$!
pids+=("$sg")
wait_for 2 publish flood start
(for i in $(seq 3000); do echo "PUBLISH flood $i-$payload"; done | R >"$tmp/pubout") &
pub=$!
pids+=("$pub")
for _ in $(seq 500); do [ "$(wc -l <"$tmp/flood")" -gt 300 ] && break; sleep 0.02; done
{ kill -9 "$sf"; wait "$sf"; } 2>/dev/null
wait "$pub"
lines=$(wc -l <"$tmp/flood")
[ "$lines" -gt 300 ] && ok "killed subscriber got $lines lines first" ||
	bad "flood subscriber got only $lines lines before the kill"
grep -q '^2$' "$tmp/pubout" && ok "publishes reached 2 subscribers" || bad "no publish reached 2"
wait_for 1 publish flood after-kill
{ kill -9 "$sg"; wait "$sg"; } 2>/dev/null
wait_for 0 publish flood after-kill2
expect PONG ping

## --- a subscriber that never reads is cut at its output bound -------------
(
	exec 5<>"/dev/tcp/127.0.0.1/$P" || exit 1
	printf 'SUBSCRIBE slow\r\n' >&5
	exec sleep 60 # holds the socket, reads nothing
) &
slow=$!
pids+=("$slow")
wait_for 1 publish slow first
head -c 1048576 /dev/zero | tr '\0' s >"$tmp/mb"
for _ in $(seq 64); do
	printf '*3\r\n$7\r\nPUBLISH\r\n$4\r\nslow\r\n$1048576\r\n'
	cat "$tmp/mb"
	printf '\r\n'
done | timeout 60 redis-cli -h 127.0.0.1 -p "$P" --pipe >"$tmp/pipe" 2>&1 ||
	bad "redis-cli --pipe: $(cat "$tmp/pipe")"
wait_for 0 publish slow after-cut && ok "slow subscriber cut"
kill "$slow" 2>/dev/null
expect PONG ping

## --- CLIENT LIST while clients come and go -------------------------------
(for _ in $(seq 60); do R ping >/dev/null; done) &
churn=$!
pids+=("$churn")
good=0
for _ in $(seq 30); do
	l=$(R client list)
	case $l in id=*cmd=client*) good=$((good + 1)) ;; esac
done
wait "$churn"
[ "$good" = 30 ] && ok "client list under churn" || bad "client list under churn: $good/30"

## --- a large value: DEL and overwrite while its reply is in flight --------
head -c 8388608 /dev/urandom | base64 -w0 | head -c 8388608 >"$tmp/bigval"
R -x set bigval <"$tmp/bigval" >/dev/null
(
	exec 4<>"/dev/tcp/127.0.0.1/$P" || exit 1
	printf 'GET bigval\r\nQUIT\r\n' >&4
	sleep 0.5 # the server wrote what the socket takes; the rest waits
	touch "$tmp/sent"
	for _ in $(seq 100); do [ -e "$tmp/raced" ] && break; sleep 0.05; done
	timeout 20 cat <&4 >"$tmp/bigreply"
) &
reader=$!
pids+=("$reader")
for _ in $(seq 100); do [ -e "$tmp/sent" ] && break; sleep 0.05; done
expect 1 del bigval
expect OK set bigval replaced
expect replaced get bigval
touch "$tmp/raced"
wait "$reader"
{ printf '$8388608\r\n'; cat "$tmp/bigval"; printf '\r\n+OK\r\n'; } >"$tmp/bigwant"
if cmp -s "$tmp/bigreply" "$tmp/bigwant"; then ok "large reply intact after DEL+SET"
else bad "large reply differs ($(wc -c <"$tmp/bigreply") bytes)"; fi

## --- malformed and oversized input ---------------------------------------
expect_raw "bad multibulk count" $'-ERR Protocol error: invalid multibulk length\r\n' '*abc\r\n'
expect_raw "huge multibulk count" $'-ERR Protocol error: invalid multibulk length\r\n' '*99999999\r\n'
expect_raw "missing \$" $'-ERR Protocol error: expected \'$\', got \'x\'\r\n' '*2\r\n$3\r\nGET\r\nxx\r\n'
expect_raw "negative bulk" $'-ERR Protocol error: invalid bulk length\r\n' '*1\r\n$-5\r\n'
expect_raw "bulk without CRLF" $'-ERR Protocol error: expected CRLF after bulk\r\n' '*1\r\n$3\r\nPINGPONG\r\n'
expect_raw "oversized bulk" $'-ERR Protocol error: invalid bulk length\r\n' '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n'
expect_raw "oversized request" $'-ERR Protocol error: request larger than 16777216 bytes\r\n' \
	'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16777216\r\n'
expect_raw "binary garbage, then valid" \
	$'-ERR unknown command \'\001\002\377\376\'\r\n+PONG\r\n$1\r\nx\r\n+OK\r\n' \
	'\001\002\377\376 garbage\r\n\r\n  \r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\nQUIT\r\n'
(
	exec 3<>"/dev/tcp/127.0.0.1/$P" || exit 1
	printf '*1\r\n$4\r\nPI' >&3
	sleep 0.2
	printf 'NG\r\n*1\r' >&3
	sleep 0.2
	printf '\n$4\r\nQUIT\r\n' >&3
	timeout 10 cat <&3
) >"$tmp/raw" 2>/dev/null
if [ "$(cat "$tmp/raw")" = $'+PONG\r\n+OK\r' ]; then ok "raw: split writes"
else bad "split writes: '$(cat -v "$tmp/raw")'"; fi
# an inline line longer than 64 KiB with no newline
(
	exec 3<>"/dev/tcp/127.0.0.1/$P" || exit 1
	head -c 70000 /dev/zero | tr '\0' a >&3
	timeout 10 cat <&3
) >"$tmp/raw" 2>/dev/null
if [ "$(cat "$tmp/raw")" = $'-ERR Protocol error: too big inline request\r' ]; then
	ok "raw: oversized inline"; else bad "oversized inline: '$(cat -v "$tmp/raw")'"; fi
# a client that sends half a command and disconnects
(exec 3<>"/dev/tcp/127.0.0.1/$P" && printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc' >&3)
expect PONG ping
expect stays get e3

## --- SIGTERM: clean shutdown ---------------------------------------------
S last >/dev/null 2>&1 &
pids+=("$!")
wait_for 1 publish last x
kill -TERM "${spid:-$server}"
status=0
wait "$server" || status=$?
server=
if [ "$status" = 0 ] && grep -q "bye" "$tmp/log"; then ok "SIGTERM: exit 0"; else
	bad "SIGTERM: exit status $status"; fi
if grep -q -E "ERROR: (Address|Leak|Thread)Sanitizer|runtime error" "$tmp/log"; then
	bad "sanitizer report"; fi

if [ "$fails" != 0 ]; then
	echo "--- server log"
	cat "$tmp/log"
	echo "$fails check(s) failed"
	exit 1
fi
echo "PASS: wrefd integration test"
exit 0
