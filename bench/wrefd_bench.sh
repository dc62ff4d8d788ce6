#!/bin/bash
# wrefd_bench.sh - redis-benchmark against examples/wrefd and against
# Debian's own redis-server, both on 127.0.0.1 in the same run, with the
# same client settings:
#   redis-benchmark -t ping,set,get,incr -c 50 -n 200000         (no pipelining)
#   redis-benchmark -t ping,set,get,incr -c 50 -n 200000 -P 16   (pipelined)
# Servers alternate (which one goes first flips each round); the table shows
# requests/s side by side: the median over the rounds, and the median of the
# per-round ratios wrefd / redis-server.
#
# usage: wrefd_bench.sh [--quick] [--rounds N] [--wrefd PATH] [--threads N]
#                       [--out FILE.md]
#   --quick     -n 20000, 1 round (about 15 s)
#   --rounds N  rounds (default 3; 1 with --quick)
#   --threads N wrefd worker threads (default: its own default, the CPUs)
#   --out FILE  also write the table as Markdown to FILE
# Without redis-benchmark or redis-server (Debian: redis-tools,
# redis-server) it says so and exits 0, so that `make bench` goes on.
set -u

n=200000
rounds=3
wrefd=./examples/wrefd/wrefd
threads=
out=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) n=20000; rounds=1 ;;
	--rounds) rounds=$2; shift ;;
	--wrefd) wrefd=$2; shift ;;
	--threads) threads="--threads $2"; shift ;;
	--out) out=$2; shift ;;
	*) echo "usage: $0 [--quick] [--rounds N] [--wrefd PATH] [--threads N] [--out FILE]" >&2
	   exit 2 ;;
	esac
	shift
done

for t in redis-benchmark redis-server redis-cli; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "wrefd_bench: $t not found (Debian: apt-get install redis-tools redis-server); skipped"
		exit 0
	fi
done
if [ ! -x "$wrefd" ]; then
	echo "wrefd_bench: $wrefd not built (make examples/wrefd/wrefd)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wrefd_bench.XXXXXX")
wpid=
rpid=
wport=
cleanup() {
	# the server's own pid: $! may be a wrapper that waits for it
	[ -n "$wport" ] && kill -TERM "$(redis-cli -h 127.0.0.1 -p "$wport" info 2>/dev/null |
		tr -d '\r' | sed -n 's/^process_id://p')" 2>/dev/null
	[ -n "$wpid" ] && kill -TERM "$wpid" 2>/dev/null && wait "$wpid" 2>/dev/null
	[ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# a free 127.0.0.1 port: nothing answers there
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

wait_ping() {
	for _ in $(seq 200); do
		[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.05
	done
	echo "wrefd_bench: no server on port $1" >&2
	exit 1
}

# shellcheck disable=SC2086
"$wrefd" --port 0 --port-file "$tmp/wport" $threads >"$tmp/wrefd.log" 2>&1 &
wpid=$!
for _ in $(seq 200); do [ -s "$tmp/wport" ] && break; sleep 0.05; done
wport=$(cat "$tmp/wport" 2>/dev/null) || { cat "$tmp/wrefd.log"; exit 1; }
wait_ping "$wport"

rport=$(free_port) || { echo "wrefd_bench: no free port" >&2; exit 1; }
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize no --dir "$tmp" --logfile "$tmp/redis.log" &
rpid=$!
wait_ping "$rport"

wthreads=$(redis-cli -h 127.0.0.1 -p "$wport" info | tr -d '\r' |
	sed -n 's/^worker_threads://p')
rver=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
echo "wrefd ($wthreads worker threads) on 127.0.0.1:$wport," \
	"redis-server $rver on 127.0.0.1:$rport; $(nproc) CPUs;" \
	"-n $n, $rounds round(s)"

# bench SERVER PORT PIPELINE ROUND: appends "server pipe test rps round"
bench() {
	local csv
	# shellcheck disable=SC2086
	csv=$(redis-benchmark -h 127.0.0.1 -p "$2" -t ping,set,get,incr \
		-c 50 -n "$n" $3 --csv 2>/dev/null) || {
		echo "wrefd_bench: redis-benchmark failed against $1" >&2
		exit 1
	}
	local pipe=${3:+16}
	pipe=${pipe:-1}
	echo "$csv" | tr -d '"' | awk -F, -v s="$1" -v p="$pipe" -v r="$4" \
		'NR > 1 && $2 + 0 > 0 { print s, p, $1, $2, r }' >>"$tmp/raw"
}

for r in $(seq "$rounds"); do
	for pipe in "" "-P 16"; do
		if [ $((r % 2)) = 1 ]; then
			bench wrefd "$wport" "$pipe" "$r"
			bench redis "$rport" "$pipe" "$r"
		else
			bench redis "$rport" "$pipe" "$r"
			bench wrefd "$wport" "$pipe" "$r"
		fi
	done
	echo "round $r/$rounds done" >&2
done

table=$(python3 - "$tmp/raw" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    s, p, t, rps, r = line.split()
    rows.setdefault((int(p), t), {}).setdefault(s, {})[int(r)] = float(rps)
med = statistics.median
print("| test | pipeline | wrefd req/s | redis-server req/s | wrefd / redis-server |")
print("|---|---|---|---|---|")
order = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR"]
for (p, t) in sorted(rows, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 9)):
    d = rows[(p, t)]
    w, rd = d.get("wrefd", {}), d.get("redis", {})
    ratios = [w[r] / rd[r] for r in w if r in rd and rd[r] > 0]
    print("| %s | %s | %.0f | %.0f | %s |" % (
        t, "-P %d" % p if p > 1 else "none",
        med(w.values()) if w else 0, med(rd.values()) if rd else 0,
        ("%.2f" % med(ratios)) if ratios else "n/a"))
EOF
)
echo
echo "$table"
if [ -n "$out" ]; then
	mkdir -p "$(dirname "$out")"
	{
		echo "# wrefd vs redis-server (redis-benchmark, \`make bench-wrefd\`)"
		echo
		echo "* date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); load $(cut -d' ' -f1 /proc/loadavg) at the end"
		echo "* wrefd: $wthreads worker threads; redis-server $rver (Debian), default config, no persistence"
		echo "* redis-benchmark -t ping,set,get,incr -c 50 -n $n [-P 16], both servers on 127.0.0.1, alternating, $rounds round(s); cells: median over rounds; ratio: median of per-round ratios"
		echo "* redis-benchmark runs on the same machine and competes for its CPUs"
		echo
		echo "$table"
	} >"$out"
	echo "(written to $out)"
fi
if ! kill -0 "$wpid" 2>/dev/null; then
	echo "wrefd_bench: wrefd died during the run" >&2
	cat "$tmp/wrefd.log" >&2
	exit 1
fi
exit 0
