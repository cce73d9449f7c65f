#!/usr/bin/env bash
# The forwarded-unlisted target of bench/dnsperf.sh, measured so that noise
# cannot decide it: stock dnsmasq without a list against the patched dnsmasq
# (LRU + SQLite, default options, list of N) and the patched one with
# db-yield-ms=0, all three running at once and measured in ROUNDS
# alternating rounds, on unlisted names forwarded to a local upstream.
# Prints each round, the medians and the ratios, and the median of the
# per-round ratios (each to the same round's stock). Even rounds run the
# servers in reverse order.
#   MODE=qps (default): maximum QPS (dnsperf -q 200).
#   MODE=cpu: µs of server CPU per query at a fixed QPS (8k by default: not
#   saturated, so the figure does not depend on who wins the cores), and
#   the medians of its parts: user and system time of the main thread
#   (dnsmasq's, where the lookups run) and the other threads' (Go's).
# With PIN=1 the measured servers run on CPU 1 and dnsperf and the upstream
# on CPU 0, so that the load generator does not compete with the server (or
# with the Go runtime's threads) for a core.
# ORDER picks the servers (default "stock patched patched-yield0");
# patched-yieldN is the patched one with db-yield-ms=N, patched-lruN with
# db-lru-size=N;
# patched-gomaxprocsN is the patched one with GOMAXPROCS=N in its
# environment, which the library then keeps (N=1: one P, as Go picks on
# one CPU); patched-env-VAR=VALUE the patched one with that variable in
# its environment (patched-env-GODEBUG=asyncpreemptoff=1); patched-lib-NAME
# the patched one loading build/libblockcache-NAME.so (another build of the
# library, to compare two in one run); everyK is build/dnsmasq-every asking the library for one query in K,
# noop the patched one with build/libblockcache-noop.so, which skips the
# lookup (see bench/call-rate.sh, which builds both); patched-cnameoff the
# patched one with db-cname=off; stock-port-V and patched-port-V the stock
# and patched dnsmasq of release V from build/port-V (scripts/test-ports.sh
# builds the patched one; `DNSMASQ_VERSION=V scripts/build-dnsmasq.sh
# --stock build/port-V` the stock one), same options. Ratios are still to
# the first server, stock.
# With CHURN=SECS the list changes every SECS seconds while the servers
# run, as under a live feed, and ORDER may name patched-churn (its own copy
# of the list, where each change lists one more name: a logged change, so
# its cache and filter stay) and patched-churnbump (another copy, where each
# change only bumps the version: every cached verdict is dropped and the
# filter rebuilt, as every change was before the change log).
# With CNAME=1 the upstream answers every name with a CNAME to one
# unlisted name and its address, so each reply has one CNAME to inspect.
# With CACHED=1 as well, those answers have a TTL of an hour and the
# servers' caches hold them all, so every measured query is answered from
# dnsmasq's cache, CNAME included (the patched one checks the cached CNAME).
# Needs the files of bench/dnsperf.sh N (run it once first, with the same
# BENCH_DATA). DNSPERF_TIMEOUT as there.
# Usage: [MODE=qps|cpu] [ROUNDS=5] [QPS=8000] [PIN=1] [CNAME=1 [CACHED=1]] [CHURN=SECS] [ORDER=...] bench/forward-qps.sh [N] [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
n=${1:-1000000} secs=${2:-10} rounds=${ROUNDS:-5} mode=${MODE:-qps} qps=${QPS:-8000}
# shellcheck source=bench/servers.sh
. "$top/bench/servers.sh"
bench_settings
db=$data/list-$n.db
[ -f "$db" ] && [ -f $data/q-unlisted.txt ] || { echo "run bench/dnsperf.sh $n first" >&2; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
ticks=$(getconf CLK_TCK)
up=$(port)
if [ "${CNAME:-0}" = 1 ]; then
	upconf=$(mktemp); trap 'kill "${pids[@]}" 2>/dev/null || true; rm -f "$upconf"' EXIT
	awk '{print "cname=" $1 ",edge.cdn.example"}' $data/q-unlisted.txt >"$upconf"
	echo "host-record=edge.cdn.example,192.0.2.1" >>"$upconf"
	"${cli[@]}" build/dnsmasq-stock "${common[@]}" --port=$up --conf-file="$upconf" ${CACHED:+--local-ttl=3600} & pids+=($!)
else
	"${cli[@]}" build/dnsmasq-stock "${common[@]}" --port=$up --address=/#/192.0.2.1 & pids+=($!)
fi
wait_dns "$up"
lib=(--db-file="$db" --blockcache-library="$top/build/libblockcache.so")
if [ -n "${CHURN:-}" ]; then
	churn=$(mktemp -d); trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$churn"' EXIT
	for c in logged bump; do
		cp "$db" "$churn/$c.db"
		build/blockcachectl init --db "$churn/$c.db" >/dev/null # the change log's table and triggers
	done
	(
		i=0
		while sleep "$CHURN"; do
			i=$((i + 1))
			sqlite3 "$churn/logged.db" "INSERT INTO domain VALUES ('churn-$i.invalid', NULL, NULL)"
			sqlite3 "$churn/bump.db" "UPDATE blockcache_meta SET Value = Value + 1 WHERE Key = 'version'"
		done
	) & pids+=($!)
fi
[ -z "${CACHED:-}" ] || common=("${common[@]/#--cache-size=*/--cache-size=300000}")
declare -A port_of pid_of
read -ra order <<<"${ORDER:-stock patched patched-yield0}"
[ "${order[0]}" = stock ] || { echo "forward-qps: ORDER must start with stock (the ratios are to it)" >&2; exit 2; }
for which in "${order[@]}"; do
	p=$(port)
	case $which in
	stock) "${srv[@]}" build/dnsmasq-stock "${common[@]}" --port=$p --server=127.0.0.1#$up & ;;
	patched) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	patched-yield[0-9]*) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" --db-yield-ms="${which#patched-yield}" & ;;
	patched-cnameoff) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" --db-cname=off & ;;
	patched-churn | patched-churnbump)
		[ -n "${CHURN:-}" ] || { echo "forward-qps: $which needs CHURN" >&2; exit 2; }
		c=logged; [ "$which" = patched-churn ] || c=bump
		"${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]/#--db-file=*/--db-file=$churn/$c.db}" &
		;;
	patched-lru[0-9]*) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" --db-lru-size="${which#patched-lru}" & ;;
	patched-gomaxprocs[0-9]*) GOMAXPROCS=${which#patched-gomaxprocs} "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	patched-env-*) env "${which#patched-env-}" "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	patched-lib-*) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up --db-file="$db" --blockcache-library="$top/build/libblockcache-${which#patched-lib-}.so" & ;;
	noop) "${srv[@]}" build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up --db-file="$db" --blockcache-library="$top/build/libblockcache-noop.so" & ;;
	every[0-9]*) BC_EVERY=${which#every} "${srv[@]}" build/dnsmasq-every "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	stock-port-*) "${srv[@]}" "build/port-${which#stock-port-}/dnsmasq-stock" "${common[@]}" --port=$p --server=127.0.0.1#$up & ;;
	patched-port-*) "${srv[@]}" "build/port-${which#patched-port-}/dnsmasq" "${common[@]}" --port=$p --server=127.0.0.1#$up "${lib[@]}" & ;;
	*) echo "forward-qps: unknown server $which" >&2; exit 2 ;;
	esac
	pids+=($!)
	port_of[$which]=$p pid_of[$which]=$!
	wait_dns "$p"
	dnsperf -t "$dt" -s 127.0.0.1 -p "$p" -d $data/q-unlisted.txt -n 1 -q 200 >/dev/null 2>&1 # every name seen once
done
declare -A res
if [ "$mode" = cpu ]; then
	echo "# us of server CPU per forwarded unlisted query at $qps QPS, dnsperf -l $secs, list of $n, $(nproc) cores${srv:+, servers on CPU 1}${CNAME:+, CNAME=$CNAME}${CACHED:+, CACHED=$CACHED}${CHURN:+, a list change every $CHURN s}, $(date -u +%F)"
else
	echo "# max QPS, unlisted names forwarded, dnsperf -l $secs -q 200, list of $n, $(nproc) cores${srv:+, servers on CPU 1, dnsperf and upstream on CPU 0}${CHURN:+, a list change every $CHURN s}, $(date -u +%F)"
fi
declare -A pair split_user split_sys split_other
for r in $(seq "$rounds"); do
	line="round $r:"
	# Even rounds run the servers in reverse order, so that no server
	# always comes first (or last) after the upstream has rested.
	run=("${order[@]}")
	if [ $((r % 2)) = 0 ]; then
		run=()
		for ((i = ${#order[@]} - 1; i >= 0; i--)); do run+=("${order[i]}"); done
	fi
	declare -A this=()
	for which in "${run[@]}"; do
		p=${port_of[$which]}
		if [ "$mode" = cpu ]; then
			read -r u0 s0 o0 <<<"$(thread_ticks "${pid_of[$which]}")"
			q=$("${cli[@]}" dnsperf -t "$dt" -s 127.0.0.1 -p "$p" -d $data/q-unlisted.txt -l "$secs" -Q "$qps" 2>&1 | awk '/Queries completed/ {print $3}')
			read -r u1 s1 o1 <<<"$(thread_ticks "${pid_of[$which]}")"
			read -r v cu cs co < <(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v o=$((o1 - o0)) -v t="$ticks" -v q="$q" \
				'BEGIN {f = 1e6 / t / q; printf "%.1f %.1f %.1f %.1f\n", (u + s + o) * f, u * f, s * f, o * f}')
			split_user[$which]+="$cu " split_sys[$which]+="$cs " split_other[$which]+="$co "
		else
			v=$("${cli[@]}" dnsperf -t "$dt" -s 127.0.0.1 -p "$p" -d $data/q-unlisted.txt -l "$secs" -q 200 2>&1 | awk '/Queries per second:/ {printf "%.0f", $4}')
		fi
		res[$which]+="$v "
		this[$which]=$v
		line+=" $which $v"
	done
	# The same round's stock figure is the fairest reference: it was
	# measured seconds away, under the same neighbours.
	for which in "${order[@]:1}"; do
		if [ "$mode" = cpu ]; then
			pair[$which]+="$(awk -v m="${this[$which]}" -v s="${this[stock]}" 'BEGIN {printf "%.1f", m - s}') "
		else
			pair[$which]+="$(awk -v m="${this[$which]}" -v s="${this[stock]}" 'BEGIN {printf "%.1f", 100 * m / s}') "
		fi
	done
	echo "$line"
done
med() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
s=$(echo "${res[stock]}" | med)
for which in "${order[@]}"; do
	m=$(echo "${res[$which]}" | med)
	if [ "$mode" = cpu ]; then
		echo "median $which: $m us/query ($(awk -v m="$m" -v s="$s" 'BEGIN {printf "%+.1f", m - s}') vs stock)"
	else
		echo "median $which: $m qps ($(awk -v m="$m" -v s="$s" 'BEGIN {printf "%.1f", 100 * m / s}')% of stock)"
	fi
done
for which in "${order[@]:1}"; do
	read -ra v <<<"$(echo "${pair[$which]}" | tr ' ' '\n' | grep . | sort -g | tr '\n' ' ')"
	if [ "$mode" = cpu ]; then
		echo "paired $which: median of per-round differences $(echo "${pair[$which]}" | med) us/query (from ${v[0]} to ${v[-1]})"
	else
		echo "paired $which: median of per-round ratios $(echo "${pair[$which]}" | med)% of stock (from ${v[0]} to ${v[-1]})"
	fi
done
if [ "$mode" = cpu ]; then
	for which in "${order[@]}"; do
		echo "split $which: main thread user $(echo "${split_user[$which]}" | med) sys $(echo "${split_sys[$which]}" | med), other threads $(echo "${split_other[$which]}" | med) us/query (medians)"
	done
fi
