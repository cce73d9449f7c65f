#!/usr/bin/env bash
# The forwarded-unlisted target of bench/dnsperf.sh, measured so that noise
# cannot decide it: maximum QPS of unlisted names forwarded to a local
# upstream, stock dnsmasq without a list against the patched dnsmasq (LRU +
# SQLite, default options, list of N) and the patched one with
# db-yield-ms=0, all three running at once and measured in ROUNDS
# alternating rounds. Prints each round, the medians and the ratios.
# With PIN=1 the measured servers run on CPU 1 and dnsperf and the upstream
# on CPU 0, so that the load generator does not compete with the server (or
# with the Go runtime's threads) for a core.
# Needs the files of bench/dnsperf.sh N (run it once first).
# Usage: [ROUNDS=5] [PIN=1] bench/forward-qps.sh [N] [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
n=${1:-1000000} secs=${2:-10} rounds=${ROUNDS:-5}
srv=() cli=()
[ "${PIN:-0}" = 1 ] && srv=(taskset -c 1) cli=(taskset -c 0)
data=build/bench-data
db=$top/$data/list-$n.db
[ -f "$db" ] && [ -f $data/q-unlisted.txt ] || { echo "run bench/dnsperf.sh $n first" >&2; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_dns() { for _ in $(seq 2400); do dig +time=1 +tries=1 @127.0.0.1 -p "$1" probe.invalid >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
common=(-k --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user=root --cache-size=10000)
up=$(port); "${cli[@]}" build/dnsmasq-stock "${common[@]}" --port=$up --address=/#/192.0.2.1 & pids+=($!)
wait_dns "$up"
lib=(--db-file="$db" --blockcache-library="$top/build/libblockcache.so")
declare -A port_of
order=(stock patched patched-yield0)
for which in "${order[@]}"; do
	p=$(port)
	case $which in
	stock) "${srv[@]}" build/dnsmasq-stock "${common[@]}" --port=$p --server=127.0.0.1#$up & ;;
	patched) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	patched-yield0) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" --db-yield-ms=0 & ;;
	esac
	pids+=($!)
	port_of[$which]=$p
	wait_dns "$p"
	dnsperf -s 127.0.0.1 -p "$p" -d $data/q-unlisted.txt -n 1 -q 200 >/dev/null 2>&1 # every name seen once
done
declare -A res
echo "# max QPS, unlisted names forwarded, dnsperf -l $secs -q 200, list of $n, $(nproc) cores${srv:+, servers on CPU 1, dnsperf and upstream on CPU 0}, $(date -u +%F)"
for r in $(seq "$rounds"); do
	line="round $r:"
	for which in "${order[@]}"; do
		q=$("${cli[@]}" dnsperf -s 127.0.0.1 -p "${port_of[$which]}" -d $data/q-unlisted.txt -l "$secs" -q 200 2>&1 | awk '/Queries per second:/ {printf "%.0f", $4}')
		res[$which]+="$q "
		line+=" $which $q"
	done
	echo "$line"
done
med() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
s=$(echo "${res[stock]}" | med)
for which in "${order[@]}"; do
	m=$(echo "${res[$which]}" | med)
	echo "median $which: $m qps ($(awk -v m="$m" -v s="$s" 'BEGIN {printf "%.1f", 100 * m / s}')% of stock)"
done
