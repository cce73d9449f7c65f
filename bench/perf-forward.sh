#!/usr/bin/env bash
# Where the patched dnsmasq's extra CPU per forwarded query goes, from
# perf's call stacks rather than from differences of noisy totals: stock
# dnsmasq (no list) and the patched one (LRU + SQLite, list of N, default
# options) forward unlisted names at a fixed QPS while `perf record -g`
# samples every thread of the server. Each sample of the patched server is
# put in one bucket:
#   lookup        under blockcache.(*Cache).Lookup: the Go code of the tiers
#   cgo call      under blockcache_lookup but outside Lookup: the C->Go
#                 transition (crosscall2, cgocallback, exit/reentersyscall)
#   yield         the main thread in Go's scheduler outside a call: the
#                 pacer's yields (cgopace) and what they wait on
#   runtime       Go's own threads (sysmon, idle Ps, the poller, timers)
#   dnsmasq       everything else on the main thread: dnsmasq and the kernel
# and the buckets are printed in µs per query, beside stock's total, and
# then the same process's CPU as the kernel counts it in /proc: perf also
# samples a thread as it wakes up (in finish_task_switch), so threads that
# wake often and run briefly, like Go's, get more samples than their CPU
# time; /proc is the check on that. The
# dnsmasq bucket minus stock's total is what the library costs dnsmasq's
# own code (caches and TLB shared with Go). Needs perf (linux-perf) with
# permission to sample (root, or kernel.perf_event_paranoid <= 1) and the
# files of bench/dnsperf.sh N (same BENCH_DATA); DNSPERF_TIMEOUT as there.
# QPS=max saturates the server (dnsperf -q 200) and prints each side's QPS;
# the per-query figures then divide by it. PIN=1 as in forward-qps.sh: the
# servers (with Go's threads) on CPU 1, dnsperf and the upstream on CPU 0.
# Usage: [QPS=8000|max] [PIN=1] bench/perf-forward.sh [N] [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
n=${1:-1000000} secs=${2:-10} qps=${QPS:-8000}
# shellcheck source=bench/servers.sh
. "$top/bench/servers.sh"
bench_settings
load=(-Q "$qps")
[ "$qps" = max ] && load=(-q 200)
db=$data/list-$n.db
[ -f "$db" ] && [ -f "$data/q-unlisted.txt" ] || { echo "perf-forward: run bench/dnsperf.sh $n first" >&2; exit 1; }
perf stat -e task-clock -- true >/dev/null 2>&1 || { echo "perf-forward: perf is missing or may not sample (apt-get install linux-perf; run as root)" >&2; exit 1; }
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
up=$(port); "${cli[@]}" build/dnsmasq-stock "${common[@]}" --port="$up" --address=/#/192.0.2.1 & pids+=($!)
wait_dns "$up"
declare -A port_of pid_of
for which in stock patched; do
	p=$(port)
	if [ $which = stock ]; then
		"${srv[@]}" build/dnsmasq-stock "${common[@]}" --port="$p" --server=127.0.0.1#"$up" &
	else
		"${srv[@]}" build/dnsmasq "${common[@]}" --port="$p" --server=127.0.0.1#"$up" --db-file="$db" --blockcache-library="$top/build/libblockcache.so" &
	fi
	pids+=($!) port_of[$which]=$p pid_of[$which]=$!
	wait_dns "$p"
	dnsperf -t "$dt" -s 127.0.0.1 -p "$p" -d "$data/q-unlisted.txt" -n 1 -q 200 >/dev/null 2>&1 # every name seen once
done
hz=$(getconf CLK_TCK)
echo "# µs of server CPU per forwarded unlisted query at $qps QPS, perf record -g over $secs s, list of $n, $(nproc) cores${srv:+, servers on CPU 1}, $(date -u +%F)"
for which in stock patched; do
	# dnsperf runs a second longer on each side of the recording, so that
	# every sampled second is at the fixed rate.
	"${cli[@]}" dnsperf -t "$dt" -s 127.0.0.1 -p "${port_of[$which]}" -d "$data/q-unlisted.txt" -l $((secs + 2)) "${load[@]}" >"$out/dnsperf-$which" 2>&1 &
	dp=$!
	sleep 1
	read -r u0 s0 o0 <<<"$(thread_ticks "${pid_of[$which]}")"
	perf record -q -F 4999 -g -p "${pid_of[$which]}" -o "$out/$which.data" -- sleep "$secs" >/dev/null 2>&1
	read -r u1 s1 o1 <<<"$(thread_ticks "${pid_of[$which]}")"
	wait $dp
	rate=$qps
	if [ "$qps" = max ]; then
		rate=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$out/dnsperf-$which")
		echo "$which: $rate qps"
	else
		grep -q 'Queries completed:.*(100.00%)' "$out/dnsperf-$which" || echo "perf-forward: $which lost queries at $qps QPS; lower QPS" >&2
	fi
	perf script -i "$out/$which.data" -F tid,period,ip,sym 2>/dev/null |
		awk -v main="${pid_of[$which]}" -v q=$((rate * secs)) -v which=$which '
		function flush() {
			if (tid == "") return
			b = "dnsmasq"
			if (tid != main) b = "runtime"
			else if (stack ~ /blockcache\.\(\*Cache\)\.Lookup/) b = "lookup"
			else if (stack ~ / blockcache_lookup/) b = "cgo call"
			else if (stack ~ / runtime\./) b = "yield"
			ns[b] += period; total += period
			tid = ""; stack = ""
		}
		/^[ \t]*[0-9]+[ \t]+[0-9]+[ \t]*$/ { flush(); tid = $1; period = $2; next }
		NF >= 2 { stack = stack " " $2; next }
		END {
			flush()
			if (which == "stock") { printf "stock total     %6.2f\n", total / 1000 / q; exit }
			split("lookup,cgo call,yield,runtime,dnsmasq", order, ",")
			for (i = 1; i <= 5; i++) printf "patched %-8s %6.2f\n", order[i], ns[order[i]] / 1000 / q
			printf "patched total   %6.2f\n", total / 1000 / q
		}'
	awk -v m=$((u1 - u0 + s1 - s0)) -v o=$((o1 - o0)) -v hz="$hz" -v q=$((rate * secs)) -v which=$which 'BEGIN {
		printf "%s by /proc: main thread %.2f, other threads %.2f\n", which, m / hz * 1e6 / q, o / hz * 1e6 / q }'
done
