#!/usr/bin/env bash
# dnsperf against stock dnsmasq (1M address= lines) and the patched dnsmasq
# (the same 1M names in a blocklist, LRU warmed by one pass over each query
# file), same query
# files, same run: listed names, their subdomains, and unlisted names
# forwarded to a local upstream (a third dnsmasq answering everything).
# The patched dnsmasq runs in the harness's four tier configurations (SQLite
# only, Valkey + SQLite, LRU + SQLite, LRU + Valkey + SQLite); Valkey is a
# valkey-server this script starts on a free port.
# BENCH_DATA is where lists and query files are kept (build/bench-data);
# QUERIES, the names per query file (100000); DNSPERF_TIMEOUT, seconds before
# dnsperf counts a query lost (its default, 5). STOCK_LIST=no leaves out
# stock dnsmasq with the address= lines (at a billion names it would need
# ~84 GB of RAM); stock without a list still runs, for forwarded names.
# Usage: [CONFIGS="lru+sqlite ..."] bench/dnsperf.sh [N] [SECONDS]      (defaults: all four, 1000000, 10)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=${1:-1000000} secs=${2:-10}
command -v dnsperf >/dev/null || { echo "dnsperf: apt-get install dnsperf" >&2; exit 1; }
make -s lib ctl dnsmasq >/dev/null
[ -x build/dnsmasq-stock ] || scripts/build-dnsmasq.sh --stock build >/dev/null
# shellcheck source=bench/servers.sh
. "$top/bench/servers.sh"
bench_settings
out=bench/out
mkdir -p "$data" "$out"
db=$data/list-$n.db
[ -f "$db" ] || bench/gen.sh "$db" "$n" 1000 >/dev/null
conf=$data/address-$n.conf
[ "${STOCK_LIST:-yes}" = no ] || [ -f "$conf" ] || awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "address=/d%d.bench.example/0.0.0.0\n", i }' >"$conf"
q=${QUERIES:-100000}
awk -v n="$n" -v q="$q" 'BEGIN { srand(1); for (i = 0; i < q; i++) printf "d%d.bench.example A\n", int(rand() * n) }' >"$data/q-listed.txt"
awk -v n="$n" -v q="$q" 'BEGIN { srand(2); for (i = 0; i < q; i++) printf "www.d%d.bench.example A\n", int(rand() * n) }' >"$data/q-sub.txt"
awk -v q="$q" 'BEGIN { for (i = 0; i < q; i++) printf "u%d.site%d.example A\n", i, i % 1000 }' >"$data/q-unlisted.txt"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

up=$(port)
build/dnsmasq-stock "${common[@]}" --port="$up" --address=/#/192.0.2.1 &
pids+=($!)
wait_dns "$up"

# start BINARY ARGS...: runs a dnsmasq on a free port; sets P, PID, STARTUP.
start() {
	local t0 t1
	P=$(port)
	t0=$(date +%s.%N)
	"$@" "${common[@]}" --port="$P" --server="127.0.0.1#$up" &
	PID=$!
	pids+=("$PID")
	wait_dns "$P"
	t1=$(date +%s.%N)
	STARTUP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# perf PORT FILE: the maximum QPS (-q 200 outstanding, queueing included in
# its average latency), then latency percentiles at a fixed 5,000 QPS, where
# they show the server's own cost rather than the queue.
perf() {
	local max lat
	max=$(dnsperf -t "$dt" -s 127.0.0.1 -p "$1" -d "$2" -l "$secs" -q 200 2>&1 |
		awk '/Queries lost:/ {lost=$3} /Queries per second:/ {qps=$4} /Average Latency/ {lat=$4} END {printf "%10.0f qps  avg %6.3f ms  lost %s", qps, lat*1000, lost}')
	lat=$(dnsperf -t "$dt" -s 127.0.0.1 -p "$1" -d "$2" -l "$((secs < 3 ? secs : 3))" -Q 5000 -v 2>/dev/null | awk '/^> / {print $NF}' | sort -g |
		awk '{v[NR]=$1} END {if (NR) printf "at 5k qps: p50 %.0f us, p99 %.0f us, p99.9 %.0f us", v[int(NR*0.5)]*1e6, v[int(NR*0.99)]*1e6, v[int(NR*0.999)]*1e6}')
	echo "$max  |  $lat"
}

echo "# dnsperf -l $secs -q 200, $q distinct queries per file, list of $n names; $(nproc) cores; $(date -u +%F)"
spid=
if [ "${STOCK_LIST:-yes}" = no ]; then
	echo "stock, $n address= lines: not run (STOCK_LIST=no)"
else
	start build/dnsmasq-stock --conf-file="$conf"
	sp=$P spid=$PID
	echo "stock, $n address= lines: startup ${STARTUP}s, RSS $(rss "$spid") MiB"
fi
start build/dnsmasq-stock
np=$P
vport=$(port)
valkey-server --port "$vport" --bind 127.0.0.1 --save '' --appendonly no --maxmemory 2gb --maxmemory-policy allkeys-lru >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do valkey-cli -p "$vport" ping >/dev/null 2>&1 && break; sleep 0.05; done
for f in listed sub unlisted; do
	[ -z "$spid" ] || echo "stock   $f: $(perf "$sp" "$data/q-$f.txt")"
done
declare -A cfg=(
	[sqlite]="--db-lru-size=0"
	[valkey+sqlite]="--db-lru-size=0 --valkey-host=127.0.0.1 --valkey-port=$vport"
	[lru+sqlite]=""
	[lru+valkey+sqlite]="--valkey-host=127.0.0.1 --valkey-port=$vport"
)
for c in ${CONFIGS:-sqlite valkey+sqlite lru+sqlite lru+valkey+sqlite}; do
	valkey-cli -p "$vport" flushall >/dev/null
	# shellcheck disable=SC2086
	start build/dnsmasq --db-file="$db" --blockcache-library="$top/build/libblockcache.so" ${cfg[$c]}
	echo "patched $c: startup ${STARTUP}s, RSS $(rss "$PID") MiB"
	for f in listed sub unlisted; do
		# one pass over each file first: every name has been seen once
		dnsperf -t "$dt" -s 127.0.0.1 -p "$P" -d "$data/q-$f.txt" -n 1 -q 200 >/dev/null 2>&1 || true
	done
	for f in listed sub unlisted; do
		echo "patched $c $f: $(perf "$P" "$data/q-$f.txt")"
	done
	echo "patched $c: RSS after $(rss "$PID") MiB"
	kill "$PID"
done
echo "stock, no list, unlisted: $(perf "$np" "$data/q-unlisted.txt")"
[ -z "$spid" ] || echo "RSS after: stock $(rss "$spid") MiB"
