#!/usr/bin/env bash
# CPU time the server spends per forwarded unlisted query, at a fixed QPS
# (8k by default: not saturated, so the figure does not depend on who wins
# the two cores). Compares stock dnsmasq without a list with the patched
# one (LRU + SQLite, default options) and the patched one with
# db-yield-ms=0, in ROUNDS alternating rounds; prints each round and the
# median. Needs the files of bench/dnsperf.sh (run it once first).
# Usage: [ROUNDS=3] [QPS=8000] bench/cpu-per-query.sh [N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
n=${1:-1000000} rounds=${ROUNDS:-3} qps=${QPS:-8000}
data=build/bench-data
db=$top/$data/list-$n.db
[ -f "$db" ] && [ -f $data/q-unlisted.txt ] || { echo "run bench/dnsperf.sh $n first" >&2; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
common=(-k --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user=root --cache-size=10000)
up=$(port); build/dnsmasq-stock "${common[@]}" --port=$up --address=/#/192.0.2.1 & pids+=($!)
sleep 0.5
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
declare -A run=(
	[stock]="build/dnsmasq-stock"
	[patched]="build/dnsmasq --db-file=$db --blockcache-library=$top/build/libblockcache.so"
	[patched-yield0]="build/dnsmasq --db-file=$db --blockcache-library=$top/build/libblockcache.so --db-yield-ms=0"
)
order=(stock patched patched-yield0)
declare -A res
echo "# us of server CPU per forwarded unlisted query at $qps QPS, list of $n, $(nproc) cores, $(date -u +%F)"
for r in $(seq "$rounds"); do
	line="round $r:"
	for which in "${order[@]}"; do
		p=$(port)
		# shellcheck disable=SC2086
		${run[$which]} "${common[@]}" --port=$p --server=127.0.0.1#$up & P=$!
		sleep 1
		dnsperf -s 127.0.0.1 -p $p -d $data/q-unlisted.txt -n 1 -q 200 >/dev/null 2>&1
		c0=$(cpu $P)
		q=$(dnsperf -s 127.0.0.1 -p $p -d $data/q-unlisted.txt -l 10 -Q "$qps" 2>&1 | awk '/Queries completed/ {print $3}')
		c1=$(cpu $P)
		v=$(awk -v c=$((c1 - c0)) -v t="$ticks" -v q="$q" 'BEGIN {printf "%.1f", c / t * 1e6 / q}')
		res[$which]+="$v "
		line+=" $which $v"
		kill $P; wait $P 2>/dev/null || true
	done
	echo "$line"
done
med() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
s=$(echo "${res[stock]}" | med)
for which in "${order[@]}"; do
	m=$(echo "${res[$which]}" | med)
	echo "median $which: $m us/query ($(awk -v m="$m" -v s="$s" 'BEGIN {printf "%+.1f", m - s}') vs stock)"
done
