#!/bin/bash
# wrefd_test.sh - integration test of examples/wrefd driven by real clients:
# redis-cli (Debian's redis-tools) for every command, pub/sub across
# clients, a subscriber killed mid-stream, CLIENT LIST while clients come
# and go, a large reply racing DEL/overwrite, and raw bytes through bash's
# /dev/tcp for malformed and oversized input.  Issue 17's hardening checks
# (pipeline resume, SUBSCRIBE of 100,000 channels, a command in small
# pieces, memory under non-reading clients, cross-protocol requests,
# CLIENT KILL/HELP, --tcp-keepalive, --maxmemory, the keyed hash) and the
# reply comparison with redis-server (issue 13.7) use python3 (a socket
# helper written below) and, where installed, a redis-server started on a
# random 127.0.0.1 port; without them those parts are skipped, not failed.
# Ends with SIGTERM: the servers must exit 0 (under ASan: with no leak or
# error report).
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
redis_pid=
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$server" ] && kill -9 $spid "$server" 2>/dev/null
	[ -n "$redis_pid" ] && { kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null
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
expect "ERR unknown command 'nosuchcmd', with args beginning with: 'a' 'b' " nosuchcmd a b
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
	$'-ERR unknown command \'\001\002\377\376\', with args beginning with: \'garbage\' \r\n+PONG\r\n$1\r\nx\r\n+OK\r\n' \
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

## --- issue 17: hardening ---------------------------------------------------
have_py=
command -v python3 >/dev/null 2>&1 && have_py=1
# sanitizer builds: no timing or memory comparisons (only correctness)
san=
grep -qE 'lib(a|t|ub)san' "/proc/${spid:-0}/maps" 2>/dev/null && san=1
cat >"$tmp/probe.py" <<'PROBE_EOF'
# probe.py - wrefd_test.sh's socket helper (python3, standard library only).
# Every wait is bounded; the bounds are failure detectors (a server that
# stalls for ever), not performance thresholds, except where noted.
import os, socket, sys, threading, time

def conn(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(('127.0.0.1', port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def bulk(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)

def read_until(s, pred, limit_s):
    """reads until pred(buffer) or limit_s seconds; returns the buffer"""
    buf = bytearray()
    end = time.monotonic() + limit_s
    while not pred(buf):
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return bytes(buf)

def cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        st = f.read().rsplit(')', 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')

def hwm_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for l in f:
            if l.startswith('VmHWM:'):
                return int(l.split()[1])
    return 0

def cmd_pipeline(port, n, size, rounds):
    """SET a SIZE-byte value, send N GETs in one write, only read: all N
    replies must arrive with no further input (17.1)"""
    val = b'v' * size
    s = conn(port)
    s.sendall(bulk('SET', 'pipe:big', val))
    if read_until(s, lambda b: b.endswith(b'\r\n'), 30) != b'+OK\r\n':
        print('SET failed'); return 1
    one = b'$%d\r\n' % size + val + b'\r\n'
    bad = 0
    buf = bytearray(8 << 20)
    mv = memoryview(buf)
    for r in range(rounds):
        s.sendall(bulk('GET', 'pipe:big') * n)
        # a fast reader (counts bytes, keeps none): the server's writes
        # then complete, which is what left the old server idle
        want = n * len(one)
        got = 0
        s.settimeout(10)
        try:
            while got < want:
                k = s.recv_into(mv)
                if not k:
                    break
                got += k
        except socket.timeout:
            pass
        if got != want:
            print('round %d: %d of %d replies, then nothing for 10 s'
                  % (r, got // len(one), n))
            bad += 1
    print('pipeline: %d rounds of %d GETs of %d bytes, %d stalled'
          % (rounds, n, size, bad))
    return 1 if bad else 0

def cmd_subscribe(port, n, ping_port):
    """SUBSCRIBE to N channels in one command; time until the last
    confirmation; with ping_port, another client PINGs meanwhile"""
    lat = []
    stop = threading.Event()
    ready = threading.Event()
    def pinger():
        p = conn(ping_port)
        p.sendall(b'PING\r\n')
        read_until(p, lambda b: b.endswith(b'+PONG\r\n'), 30)
        ready.set()
        while not stop.is_set() and len(lat) < 100000:
            t = time.monotonic()
            p.sendall(b'PING\r\n')
            r = read_until(p, lambda b: b.endswith(b'+PONG\r\n'), 60)
            lat.append(time.monotonic() - t)
            if not r:
                break
            time.sleep(0.005)
    th = None
    if ping_port:
        th = threading.Thread(target=pinger)
        th.start()
        ready.wait(30)
    s = conn(port)
    cmd = bulk('SUBSCRIBE', *['ch:%d' % i for i in range(n)])
    last = b':%d\r\n' % n
    t = time.monotonic()
    s.sendall(cmd)
    got = read_until(s, lambda b: b.endswith(last), 300)
    dt = time.monotonic() - t
    stop.set()
    if th:
        th.join()
    ok = got.endswith(last) and got.count(b'subscribe\r\n') == n
    lat.sort()
    if lat:
        print('subscribe %d: %.3f s ok=%d pings=%d p50=%.1f ms p90=%.1f ms '
              'max=%.1f ms' % (n, dt, ok, len(lat), 1e3 * lat[len(lat) // 2],
                               1e3 * lat[len(lat) * 9 // 10], 1e3 * lat[-1]))
    else:
        print('subscribe %d: %.3f s ok=%d' % (n, dt, ok))
    return 0 if ok else 1

def cmd_piecewise(port, pid, nargs, chunk):
    """EXISTS with NARGS keys sent in CHUNK-byte pieces: the server's CPU
    seconds for it (17.3)"""
    data = bulk('EXISTS', *[b'k%06d' % i for i in range(nargs)])
    s = conn(port)
    c0 = cpu_s(pid)
    t = time.monotonic()
    for k, i in enumerate(range(0, len(data), chunk)):
        s.sendall(data[i:i + chunk])
        if k % 4 == 3:
            time.sleep(0.001)  # so that the server reads small pieces
    got = read_until(s, lambda b: b.endswith(b'\r\n'), 600)
    c1 = cpu_s(pid)
    print('piecewise: %d bytes in %d-byte pieces: reply %r, %.2f s wall, '
          'server cpu %.2f s' % (len(data), chunk, got[:20],
                                 time.monotonic() - t, c1 - c0))
    print('CPU %.3f' % (c1 - c0))
    return 0 if got.startswith(b':') else 1

def cmd_nonreading(port, pid, kind, n, size, count):
    """N clients that never read: subscribers of SIZE-byte messages (kind
    sub) or GET clients of a SIZE-byte value (kind get); prints the
    server's peak RSS growth in kB (17.4)"""
    base = hwm_kb(pid)
    ctl = conn(port)
    clients = []
    val = b'm' * size
    if kind == 'sub':
        for i in range(n):
            c = conn(port, rcvbuf=4096)
            c.sendall(b'SUBSCRIBE rss\r\n')
            clients.append(c)
        # wait until all are subscribed
        for _ in range(1000):
            ctl.sendall(bulk('PUBLISH', 'rss', 'x'))
            r = read_until(ctl, lambda b: b.endswith(b'\r\n'), 30)
            if r == b':%d\r\n' % n:
                break
            time.sleep(0.01)
        msg = bulk('PUBLISH', 'rss', val)
        sent = 0
        while sent < count:
            ctl.sendall(msg * 500)
            r = read_until(ctl, lambda b: b.count(b'\r\n') >= 500, 60)
            sent += 500
            if r.endswith(b':0\r\n'):
                break  # every subscriber was cut
        print('sub: %d messages published' % sent)
    else:
        ctl.sendall(bulk('SET', 'rss:v', val))
        read_until(ctl, lambda b: b.endswith(b'\r\n'), 30)
        req = bulk('GET', 'rss:v') * 1000
        for i in range(n):
            c = conn(port, rcvbuf=4096)
            c.setblocking(False)
            clients.append(c)
        # push GETs until no client's socket takes more (the server
        # stopped reading them: each is at its output cap)
        idle = 0
        for _ in range(count):
            moved = 0
            for c in clients:
                try:
                    moved += c.send(req)
                except BlockingIOError:
                    pass
            idle = idle + 1 if not moved else 0
            if idle >= 20:
                break
            time.sleep(0.01 if not moved else 0)
    # let the server settle, then read its peak
    ctl.sendall(b'PING\r\n')
    read_until(ctl, lambda b: b.endswith(b'\r\n'), 30)
    time.sleep(0.5)
    grow = hwm_kb(pid) - base
    print('%s: %d clients, peak RSS +%d kB' % (kind, n, grow))
    print('RSS %d' % grow)
    for c in clients:
        c.close()
    return 0

def cmd_compare(port_a, port_b, path):
    """each line of PATH (python escapes) is sent, with QUIT, on a fresh
    connection to both servers; the replies must be identical"""
    import codecs
    bad = 0
    n = 0
    for line in open(path, encoding='utf-8'):
        line = line.rstrip('\n')
        if not line or line.startswith('#'):
            continue
        data = codecs.decode(line, 'unicode_escape').encode('latin-1')
        outs = []
        for port in (port_a, port_b):
            s = conn(port)
            s.sendall(data + b'QUIT\r\n')
            outs.append(read_until(s, lambda b: False, 10))
            s.close()
        n += 1
        if outs[0] != outs[1]:
            bad += 1
            print('DIFF %s\n  wrefd: %r\n  redis: %r' % (line, outs[0],
                                                        outs[1]))
    print('compare: %d inputs, %d differ' % (n, bad))
    return 1 if bad or not n else 0

if __name__ == '__main__':
    a = sys.argv[1:]
    f = {'pipeline': lambda: cmd_pipeline(int(a[1]), int(a[2]), int(a[3]), int(a[4])),
         'subscribe': lambda: cmd_subscribe(int(a[1]), int(a[2]), int(a[3])),
         'piecewise': lambda: cmd_piecewise(int(a[1]), int(a[2]), int(a[3]), int(a[4])),
         'nonreading': lambda: cmd_nonreading(int(a[1]), int(a[2]), a[3], int(a[4]), int(a[5]), int(a[6])),
         'compare': lambda: cmd_compare(int(a[1]), int(a[2]), a[3])}[a[0]]
    sys.exit(f())
PROBE_EOF
PY() { timeout 900 python3 "$tmp/probe.py" "$@"; }
pid_of() { timeout 20 redis-cli -h 127.0.0.1 -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p'; }
RX() { local port=$1; shift; timeout 20 redis-cli -h 127.0.0.1 -p "$port" "$@"; }
# poll_for WANT CMD...: poll up to 10 s until CMD (any command) prints WANT
poll_for() {
	local want=$1 got=
	shift
	for _ in $(seq 200); do
		got=$("$@" 2>&1)
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	bad "waiting for '$*' to print '$want' (last '$got')"
	return 1
}
# start_wrefd VAR ARGS...: another wrefd on a free port; VAR = its port
extra=()
start_wrefd() {
	local var=$1 f="$tmp/port.$1"
	shift
	"$WREFD" --port 0 --port-file "$f" "$@" >"$tmp/log.$var" 2>&1 &
	pids+=("$!")
	extra+=("$!:$var")
	for _ in $(seq 200); do [ -s "$f" ] && break; sleep 0.05; done
	printf -v "$var" '%s' "$(cat "$f" 2>/dev/null)"
	[ -n "${!var}" ] || bad "wrefd $* did not start: $(cat "$tmp/log.$var")"
}
# the reference: redis-server on a random loopback port, if installed
RP=
if command -v redis-server >/dev/null 2>&1; then
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		redis-server --port "$port" --bind 127.0.0.1 --save '' \
			--appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
		redis_pid=$!
		for _ in $(seq 100); do
			[ "$(RX "$port" ping 2>/dev/null)" = PONG ] && RP=$port && break
			kill -0 "$redis_pid" 2>/dev/null || break
			sleep 0.05
		done
		[ -n "$RP" ] && break
		kill -9 "$redis_pid" 2>/dev/null
		redis_pid=
	done
fi
[ -n "$RP" ] && echo "redis-server (reference) on 127.0.0.1:$RP" ||
	echo "note: no redis-server: comparisons with it are skipped"

if [ -z "$have_py" ]; then
	echo "note: no python3: issue 17's socket checks are skipped"
else
	# 17.1: 40 GETs of a 1 MiB value in one write, then only reads: every
	# reply must come with no further input (the old server stopped after
	# 8 process-and-flush rounds and waited for input; 5 rounds here, a
	# stall shows as nothing for 10 s)
	PY pipeline "$P" 40 1048576 5 >"$tmp/pipe.out" 2>&1 &&
		ok "17.1 pipeline of large replies completes" ||
		bad "17.1 pipeline of large replies: $(cat "$tmp/pipe.out")"

	# 17.2: SUBSCRIBE with 100,000 channels in one command, on a
	# one-worker server so that the PING client shares its worker.  The
	# issue's bounds: within 3x redis-server's time in this run, and a
	# PING answered within 100 ms meanwhile.  Timing on a shared machine:
	# up to 3 attempts, one must meet both (the old server took 27 s and
	# held the PING all along, every attempt).  Under sanitizers only
	# completion is checked.
	start_wrefd X1 --threads 1
	sub_ok=
	for attempt in 1 2 3; do
		PY subscribe "$X1" 100000 "$X1" >"$tmp/sub.out" 2>&1 || break
		w=$(sed -n 's/^subscribe 100000: \([0-9.]*\) s.*/\1/p' "$tmp/sub.out")
		mx=$(sed -n 's/.* max=\([0-9.]*\) ms.*/\1/p' "$tmp/sub.out")
		r=0
		if [ -n "$RP" ]; then
			PY subscribe "$RP" 100000 0 >"$tmp/rsub.out" 2>&1
			r=$(sed -n 's/^subscribe 100000: \([0-9.]*\) s.*/\1/p' "$tmp/rsub.out")
		fi
		echo "17.2 attempt $attempt: wrefd $w s (PING max ${mx:-?} ms), redis-server ${r:-?} s"
		# wait until the channels of the closed subscriber are gone
		for _ in $(seq 200); do
			[ "$(RX "$X1" info stats | tr -d '\r' | sed -n 's/^pubsub_channels://p')" = 0 ] && break
			sleep 0.05
		done
		if [ -n "$san" ] || { [ -n "$mx" ] &&
			awk -v w="$w" -v r="$r" -v m="$mx" -v ref="$RP" \
			'BEGIN { exit !((ref == "" || w <= 3 * r) && m <= 100) }'; }; then
			sub_ok=1
			break
		fi
	done
	[ -n "$sub_ok" ] && ok "17.2 SUBSCRIBE 100000 channels" ||
		bad "17.2 SUBSCRIBE 100000 channels: $(cat "$tmp/sub.out") (redis-server: $(cat "$tmp/rsub.out" 2>/dev/null))"

	# 17.3: EXISTS with 1,000,000 keys (13 MB) in 2 KB pieces: wrefd's CPU
	# within 3x redis-server's (the old server re-parsed from the first
	# argument on every read: 5x here, 30x in the issue's run); CPU time,
	# not wall time; 2 attempts; 0.05 s for the clock's 10 ms ticks
	if [ -n "$RP" ] && [ -z "$san" ]; then
		cpu_ok=
		start_wrefd X6 --threads 1
		for attempt in 1 2; do
			PY piecewise "$X6" "$(pid_of "$X6")" 1000000 2048 >"$tmp/pw.out" 2>&1
			PY piecewise "$RP" "$(pid_of "$RP")" 1000000 2048 >"$tmp/rpw.out" 2>&1
			w=$(sed -n 's/^CPU //p' "$tmp/pw.out")
			r=$(sed -n 's/^CPU //p' "$tmp/rpw.out")
			echo "17.3 attempt $attempt: server CPU wrefd ${w:-?} s, redis-server ${r:-?} s"
			if [ -n "$w" ] && [ -n "$r" ] &&
				awk -v w="$w" -v r="$r" 'BEGIN { exit !(w <= 3 * r + 0.05) }'; then
				cpu_ok=1
				break
			fi
		done
		[ -n "$cpu_ok" ] && ok "17.3 piecewise command CPU" ||
			bad "17.3 piecewise command: $(cat "$tmp/pw.out") / redis-server: $(cat "$tmp/rpw.out")"
	fi

	# 17.4: peak RSS growth under clients that never read stays within
	# 1.5x what the caps allow: 4 subscribers of 1100-byte messages
	# (32 MiB each), 20 GET clients of a 1100-byte value (1 MiB each);
	# fresh servers, default caps (the old server: +534 MB and +83 MB)
	if [ -z "$san" ]; then
		start_wrefd X2 --threads 2
		PY nonreading "$X2" "$(pid_of "$X2")" sub 4 1100 400000 >"$tmp/rss.out" 2>&1
		g=$(sed -n 's/^RSS //p' "$tmp/rss.out")
		lim=$((3 * 4 * 32 * 1024 / 2))
		[ -n "$g" ] && [ "$g" -le "$lim" ] &&
			ok "17.4 non-reading subscribers: +$g kB <= $lim kB" ||
			bad "17.4 non-reading subscribers: +${g:-?} kB > $lim kB: $(cat "$tmp/rss.out")"
		start_wrefd X3 --threads 2
		PY nonreading "$X3" "$(pid_of "$X3")" get 20 1100 3000 >"$tmp/rss.out" 2>&1
		g=$(sed -n 's/^RSS //p' "$tmp/rss.out")
		lim=$((3 * 20 * 1024 / 2))
		[ -n "$g" ] && [ "$g" -le "$lim" ] &&
			ok "17.4 non-reading GET clients: +$g kB <= $lim kB" ||
			bad "17.4 non-reading GET clients: +${g:-?} kB > $lim kB: $(cat "$tmp/rss.out")"
	fi
fi

# 17.5: cross-protocol scripting: an HTTP request's body never runs, the
# connection is dropped unanswered, and the server logs it
expect_raw "17.5 HTTP POST dropped" '' \
	'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 16\r\n\r\nSET pwned 1\r\n'
expect_raw "17.5 Host: first dropped" '' \
	'Host: 127.0.0.1\r\nSET pwned 2\r\n'
expect 0 exists pwned
grep -q 'Possible SECURITY ATTACK' "$tmp/log" && ok "17.5 logged" ||
	bad "17.5: no 'Possible SECURITY ATTACK' line in the log"

# CLIENT KILL (ID, ADDR and the old ip:port form) and CLIENT HELP
victim() { # NAME: a connection named NAME that waits; prints nothing
	(
		exec 6<>"/dev/tcp/127.0.0.1/$P" || exit 1
		printf 'CLIENT SETNAME %s\r\n' "$1" >&6
		timeout 20 cat <&6 >"$tmp/victim.$1"
		touch "$tmp/victim.$1.closed"
	) &
	pids+=("$!")
	poll_for 1 count_named "$1"
}
count_named() { R client list | grep -c "name=$1 "; }
field_of() { R client list | grep "name=$1 " | tr ' ' '\n' | sed -n "s/^$2=//p"; }
victim kv1
id=$(field_of kv1 id)
expect 1 client kill id "$id"
for _ in $(seq 200); do [ -e "$tmp/victim.kv1.closed" ] && break; sleep 0.05; done
[ -e "$tmp/victim.kv1.closed" ] && ok "CLIENT KILL ID closed it" || bad "CLIENT KILL ID: connection still open"
victim kv2
expect 1 client kill addr "$(field_of kv2 addr)"
victim kv3
expect OK client kill "$(field_of kv3 addr)"
poll_for 0 count_named 'kv[123]'
expect 0 client kill id 999999
expect "ERR No such client" client kill 1.2.3.4:5
expect "ERR client-id should be greater than 0" client kill id abc
expect "ERR syntax error" client kill id 1 skipme maybe
# SKIPME: the killing connection itself is spared by default, killed
# (after the reply) with SKIPME no; ids are sequential, so the next
# connection's id is known (no other client connects meanwhile)
n=$(R client id)
expect_raw "CLIENT KILL own id" $':0\r\n+PONG\r\n+OK\r\n' \
	"CLIENT KILL ID $((n + 1))\r\nPING\r\nQUIT\r\n"
n=$(R client id)
expect_raw "CLIENT KILL own id SKIPME no" $':1\r\n' \
	"CLIENT KILL ID $((n + 1)) SKIPME no\r\nPING\r\n"
help=$(R client help)
case $help in
"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"*KILL*"ID <client-id>"*HELP*)
	ok "CLIENT HELP" ;;
*) bad "CLIENT HELP: '$help'" ;;
esac
expect "ERR unknown subcommand 'nosuch'. Try CLIENT HELP." client nosuch

# --tcp-keepalive: the accepted socket has keepalive on (300 s default),
# none with --tcp-keepalive 0
start_wrefd X4 --threads 2 --tcp-keepalive 0 --maxmemory 2mb \
	--client-output-limit 64kb --pubsub-output-limit 64mb,256kb,1
if command -v ss >/dev/null 2>&1; then
	ka() { # PORT: the server side of one idle connection, as ss shows it
		(
			exec 7<>"/dev/tcp/127.0.0.1/$1" || exit 1
			printf 'PING\r\n' >&7
			sleep 2
		) &
		local k=$! line=
		for _ in $(seq 20); do
			sleep 0.1
			line=$(ss -tnoH state established "( sport = :$1 )" 2>/dev/null)
			[ -n "$line" ] && break
		done
		echo "${line:-no connection}"
		kill "$k" 2>/dev/null
		wait "$k" 2>/dev/null
	}
	out=$(ka "$P")
	case $out in *keepalive*) ok "--tcp-keepalive default on" ;;
	*) bad "--tcp-keepalive: no keepalive timer on the server socket: '$out'" ;; esac
	out=$(ka "$X4")
	case $out in *keepalive* | "no connection") bad "--tcp-keepalive 0: '$out'" ;;
	*) ok "--tcp-keepalive 0" ;; esac
fi
case $(R info server) in *tcp_keepalive:300*) ok "INFO tcp_keepalive" ;;
*) bad "INFO lacks tcp_keepalive:300" ;; esac

# --maxmemory 2mb: writes past it get Redis's -OOM error, reads and DEL
# still work, and writes work again once DEL freed the memory
head -c 600000 /dev/zero | tr '\0' m >"$tmp/600k"
oom=
for i in $(seq 10); do
	out=$(RX "$X4" -x set "mm:$i" <"$tmp/600k" 2>&1)
	[ "$out" = OK ] && continue
	oom=$out
	break
done
[ "$oom" = "OOM command not allowed when used memory > 'maxmemory'." ] &&
	ok "--maxmemory: -OOM after $((i - 1)) writes" || bad "--maxmemory: got '$oom' after $i writes"
[ "$(RX "$X4" incr mm:n 2>&1)" = "OOM command not allowed when used memory > 'maxmemory'." ] &&
	ok "--maxmemory: INCR refused" || bad "--maxmemory: INCR not refused"
[ "$(RX "$X4" get mm:1 | wc -c)" = 600001 ] && ok "--maxmemory: GET works" || bad "--maxmemory: GET"
for k in $(seq 10); do RX "$X4" del "mm:$k" >/dev/null; done
[ "$(RX "$X4" set mm:after v)" = OK ] && ok "--maxmemory: writes after DEL" ||
	bad "--maxmemory: write refused after DEL"

# --pubsub-output-limit 64mb,256kb,1: a subscriber that does not read,
# over the soft limit for a second, is cut; --client-output-limit: shown
(
	exec 5<>"/dev/tcp/127.0.0.1/$X4" || exit 1
	printf 'SUBSCRIBE soft\r\n' >&5
	exec sleep 60
) &
softsub=$!
pids+=("$softsub")
poll_for 1 RX "$X4" publish soft first
head -c 1100 /dev/zero | tr '\0' s >"$tmp/1100"
msg=$(cat "$tmp/1100")
# (the socket buffers take a few MB first: 8000 messages, 8.8 MB)
for _ in $(seq 8000); do printf '*3\r\n$7\r\nPUBLISH\r\n$4\r\nsoft\r\n$1100\r\n%s\r\n' "$msg"; done |
	RX "$X4" --pipe >/dev/null 2>&1
sleep 1.2
poll_for 0 RX "$X4" publish soft late && ok "pubsub soft limit cut the subscriber"
kill "$softsub" 2>/dev/null
case $(RX "$X4" info clients | tr -d '\r') in
*client_output_limit:65536*pubsub_output_limit:67108864,262144,1*) ok "INFO output limits" ;;
*) bad "INFO output limits: $(RX "$X4" info clients)" ;; esac

# the keyed hash: SipHash-2-4 reference vectors; a random key per start
"$WREFD" --self-test >"$tmp/selftest" 2>&1 && ok "--self-test" ||
	bad "--self-test: $(cat "$tmp/selftest")"
f1=$(R info server | tr -d '\r' | sed -n 's/^hash_key_fingerprint://p')
f2=$(RX "$X4" info server | tr -d '\r' | sed -n 's/^hash_key_fingerprint://p')
[ -n "$f1" ] && [ -n "$f2" ] && [ "$f1" != "$f2" ] &&
	ok "hash key differs per start ($f1, $f2)" || bad "hash key fingerprints '$f1' '$f2'"

## --- issue 13.7: the same inputs to wrefd and redis-server ------------------
# Each line goes, with QUIT, over a fresh connection to a fresh wrefd and to
# redis-server; the replies must be byte for byte the same.  Left out on
# purpose (documented differences): a bulk not followed by CRLF (wrefd
# refuses it, redis-server reads on), a multibulk count over 1048576, SELECT
# of a database other than 0, CLIENT LIST's filters,
# CLIENT HELP's text (wrefd lists its own subcommands), INFO's fields.
cat >"$tmp/cmp.txt" <<'CMP_EOF'
# one connection per line (python escapes); QUIT is appended
INFO keyspace\r\nINFO nosuchsection\r\nDBSIZE\r\n
PING\r\nPING hello\r\nPING a b\r\nECHO "hi there"\r\nECHO\r\n
SET cmp:a 1\r\nGET cmp:a\r\nINCR cmp:a\r\nINCRBY cmp:a 10\r\nDECR cmp:a\r\nDECRBY cmp:a 5\r\nGET cmp:a\r\n
DECRBY cmp:a abc\r\nINCRBY cmp:a 1.5\r\nDECRBY cmp:a -9223372036854775808\r\nINCR cmp:nonint-x\r\n
SET cmp:s notanumber\r\nINCR cmp:s\r\nDECR cmp:s\r\nSET cmp:big 9223372036854775807\r\nINCR cmp:big\r\nDECRBY cmp:big -1\r\n
SET cmp:b x NX\r\nSET cmp:b y NX\r\nSET cmp:b z XX\r\nGET cmp:b\r\nSET cmp:nx v XX\r\nGET cmp:nx\r\nEXISTS cmp:nx\r\n
SET cmp:e v EX abc\r\nSET cmp:e v PX abc\r\nSET cmp:e v EX 0\r\nSET cmp:e v EX -1\r\nSET cmp:e v PX 0\r\nSET cmp:e v EX\r\nSET cmp:e v BOGUS\r\nSET cmp:e v NX XX\r\nSET cmp:e v EX 5 PX 5\r\nEXISTS cmp:e\r\n
SET cmp:t v EX 100\r\nTTL cmp:t\r\nPERSIST cmp:t\r\nTTL cmp:t\r\nPTTL cmp:t\r\nPERSIST cmp:t\r\nPERSIST cmp:nosuch\r\nPTTL cmp:nosuch\r\nTTL cmp:nosuch\r\n
SET cmp:x v\r\nEXPIRE cmp:x 100\r\nTTL cmp:x\r\nEXPIRE cmp:nosuch 10\r\nEXPIRE cmp:x abc\r\nEXPIRE cmp:x 99999999999999999\r\nEXPIRE cmp:x 10 FOO\r\nEXPIRE cmp:x -1\r\nEXISTS cmp:x\r\nGET cmp:x\r\nEXPIRE cmp:x\r\n
SET cmp:f v\r\nEXPIRE cmp:f 100 XX\r\nEXPIRE cmp:f 100 GT\r\nEXPIRE cmp:f 100 LT\r\nTTL cmp:f\r\nEXPIRE cmp:f 50 NX\r\nEXPIRE cmp:f 200 GT\r\nTTL cmp:f\r\nEXPIRE cmp:f 300 LT\r\nEXPIRE cmp:f 10 LT\r\nTTL cmp:f\r\nEXPIRE cmp:f 10 XX\r\nEXPIRE cmp:f 10 NX XX\r\nEXPIRE cmp:f 10 GT LT\r\nEXPIRE cmp:f 10 nx gt\r\nEXPIRE cmp:f -5 XX\r\nEXISTS cmp:f\r\n
SET cmp:k KEEPTTL\r\nSET cmp:k v EX 50\r\nSET cmp:k w KEEPTTL\r\nTTL cmp:k\r\nSET cmp:k u\r\nTTL cmp:k\r\n
DEL cmp:a cmp:b cmp:zz\r\nEXISTS cmp:a cmp:b cmp:zz\r\nEXISTS cmp:k cmp:k\r\nDEL\r\nEXISTS\r\n
SELECT 0\r\nSELECT abc\r\nSELECT -1\r\nSELECT 99999\r\nSELECT\r\n
get\r\nget a b\r\nset k\r\nttl\r\nincr\r\nincrby k\r\ndbsize x\r\n
set "x y" z\r\nget "x y"\r\nset 'a\\'b' "c\\x41\\n"\r\nget "a'b"\r\nget ""\r\nset "" empty\r\nget ""\r\n
set "q1 b\r\nGET x\r\n
set "a"b c\r\n
set 'q2 b\r\n
get "x y"z\r\n
echo "\\x4g"\r\necho "tab\\there"\r\necho    spaced     words\r\necho \t tabbed\r\n
CLIENT FOO\r\nCLIENT SETNAME\r\nCLIENT GETNAME\r\nCLIENT SETNAME cmp-x\r\nCLIENT GETNAME\r\nCLIENT SETNAME "a b"\r\nCLIENT GETNAME x\r\nCLIENT ID x\r\nCLIENT LIST x\r\n
CLIENT KILL 1.2.3.4:5\r\nCLIENT KILL ID abc\r\nCLIENT KILL ID 0\r\nCLIENT KILL ID 999999\r\nCLIENT KILL ADDR 1.1.1.1:1\r\nCLIENT KILL ADDR 1.1.1.1:1 SKIPME maybe\r\nCLIENT KILL FOO bar\r\nCLIENT KILL ID\r\nCLIENT KILL\r\nCLIENT KILL ID 999999 SKIPME no\r\n
CLIENT HELP x\r\nCLIENT\r\n
PUBLISH cmp:nobody x\r\nPUBLISH\r\nSUBSCRIBE\r\n
SUBSCRIBE a b\r\nGET x\r\nPING\r\nPING hi\r\nUNSUBSCRIBE a\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE nope\r\nPING\r\n
SUBSCRIBE a a\r\nUNSUBSCRIBE a a\r\n
nosuchcmd a b\r\nnosuchcmd\r\n\x01\x02\xff\xfe garbage\r\n
\r\n  \r\n\t\r\nPING\r\n
*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n
*abc\r\n
*1\r\n$-5\r\n
*1\r\n$abc\r\n
*2\r\n$3\r\nGET\r\nxx\r\n
*1\r\n$999999999\r\n
*1\r\n$04\r\nPING\r\n
*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n
*2\r\n$4\r\nECHO\r\n$0\r\n\r\n
DEL cmp:t cmp:x cmp:k cmp:s cmp:big cmp:e cmp:nx "x y" "a'b" ""\r\nDBSIZE\r\nINFO keyspace\r\n
CMP_EOF
if [ -n "$RP" ] && [ -n "$have_py" ]; then
	start_wrefd X5 --threads 2
	PY compare "$X5" "$RP" "$tmp/cmp.txt" >"$tmp/cmp.out" 2>&1 &&
		ok "13.7 replies match redis-server: $(tail -1 "$tmp/cmp.out")" ||
		bad "13.7 replies differ from redis-server: $(cat "$tmp/cmp.out")"
	tail -1 "$tmp/cmp.out"
fi

# the extra servers: SIGTERM, exit 0, no sanitizer report
for e in "${extra[@]}"; do
	p=${e%%:*}
	kill -TERM "$p" 2>/dev/null
	st=0
	wait "$p" || st=$?
	[ "$st" = 0 ] && ok "extra ${e#*:}: exit 0" ||
		bad "extra server ${e#*:} exited $st: $(tail -5 "$tmp/log.${e#*:}")"
	grep -q -E "ERROR: (Address|Leak|Thread)Sanitizer|runtime error" "$tmp/log.${e#*:}" &&
		bad "sanitizer report from ${e#*:}: $(cat "$tmp/log.${e#*:}")"
done

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
