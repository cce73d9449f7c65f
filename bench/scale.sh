#!/usr/bin/env bash
# What the operations that depend on the list's size cost on one list: the
# writer's commands (stats, add, rm), saving the filter, and the patched
# dnsmasq's start until its membership filter is in use, built from every
# row and loaded as saved. The list is changed: one name is added and
# removed again, and its saved filter is deleted, then saved again.
# "ready" is the time from exec until blockcache_filter_bytes is non-zero on
# the library's metrics endpoint (polled every 20 ms); until then unlisted
# names are looked up in SQLite.
# LIB and CTL choose another build of the library and of blockcachectl
# (for an A/B in one run; default: this tree's, built first).
# Usage: [LIB=.so CTL=blockcachectl] bench/scale.sh DB     e.g. bench/scale.sh build/bench-data/list-10000000.db
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
db=$(realpath "$1")
cd "$top"
make -s lib ctl dnsmasq >/dev/null
# shellcheck source=bench/servers.sh
. "$top/bench/servers.sh"
ctl=$(realpath "${CTL:-build/blockcachectl}")
lib=$(realpath "${LIB:-build/libblockcache.so}")
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
# timed LABEL CMD...: wall time and peak RSS of a command.
timed() {
	local label=$1 t
	shift
	t=$(/usr/bin/time -f '%e s, peak RSS %M KiB' "$@" 2>&1 >/dev/null | tail -1)
	echo "$label: $t"
}
# start LABEL: a patched dnsmasq on the list; prints when it answers and
# when its filter is in use, and its RSS then.
start() {
	local p m t0 answered='' bytes log
	p=$(port) m=$(port) log=$(mktemp)
	t0=$(now)
	build/dnsmasq "${common[@]}" --port="$p" --address=/#/192.0.2.1 --log-facility="$log" \
		--db-file="$db" --blockcache-library="$lib" --blockcache-metrics="127.0.0.1:$m" &
	pid=$!
	for _ in $(seq 60000); do
		[ -n "$answered" ] || { dig +time=1 +tries=1 @127.0.0.1 -p "$p" probe.invalid >/dev/null 2>&1 && answered=$(since "$t0"); }
		bytes=$(curl -s "http://127.0.0.1:$m/metrics" | awk '/^blockcache_filter_bytes / {print $2}')
		[ "${bytes:-0}" = 0 ] || break
		sleep 0.02
	done
	echo "dnsmasq, filter $1: answers after ${answered:-?} s, filter in use after $(since "$t0") s ($(mib "${bytes:-0}") MiB), RSS $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status") MiB"
	grep -o 'blockcache: .*filter.*' "$log" | sed 's/^/  log: /' || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	rm -f "$log"
}

echo "# bench/scale.sh $1 (library $lib); $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%F)"
$ctl stats --db "$db" | grep -E '^(list|size)|^  domain(_exact)? ' | sed 's/^/  /'
timed "blockcachectl stats" $ctl stats --db "$db"
timed "blockcachectl add (one name)" $ctl add --db "$db" --table domain scale-probe.example
timed "blockcachectl rm (one name)" $ctl rm --db "$db" --table domain scale-probe.example
sqlite3 "$db" 'DELETE FROM blockcache_filter'
start "from every row"
timed "blockcachectl filter" $ctl filter --db "$db"
$ctl stats --db "$db" | grep '^filter:' | sed 's/^/  /'
start "saved"
