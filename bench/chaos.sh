#!/usr/bin/env bash
# The chaos run: 60 s of queries at 80% of the patched dnsmasq's measured
# maximum, checked answer by answer, while Valkey is killed (10 s),
# restarted (15 s), SIGSTOPped (25-32 s), 100k new names are imported into
# the live list (40 s) and a copy of the list is published over the live file
# (50 s: checkpoint, VACUUM INTO, rename, as README says; same rules, so the
# switch must not change an answer). The list has a saved filter: dnsmasq
# loads it at start, the import saves it again, and the published copy
# carries it. The LRU is 100k entries so that it fills early and
# RSS shows what the rest costs. Then the same load without faults against stock
# dnsmasq (1M address= lines) for the loss baseline.
# Usage: bench/chaos.sh [N] [SECONDS]     (defaults 1000000, 60)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$PATH:/usr/local/go/bin"
n=${1:-1000000} secs=${2:-60}
make -s lib ctl dnsmasq >/dev/null
[ -x build/dnsmasq-stock ] || scripts/build-dnsmasq.sh --stock build >/dev/null
go build -o build/chaos ./bench/chaos
data=$top/build/bench-data
mkdir -p "$data"
[ -f "$data/list-$n.db" ] || bench/gen.sh "$data/list-$n.db" "$n" 1000 >/dev/null
db=$data/chaos.db
cp "$data/list-$n.db" "$db"
rm -f "$db"-wal "$db"-shm "$db".new "$data/chaos-dnsmasq.log" # the log is counted below: this run's lines only
build/blockcachectl filter --db "$db" >/dev/null
conf=$data/address-$n.conf
[ -f "$conf" ] || awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "address=/d%d.bench.example/0.0.0.0\n", i }' >"$conf"
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "n%d.chaos.example\n", i }' >"$data/chaos-new.txt"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null || true; done; pkill -f "valkey-server.*$vport" 2>/dev/null || true; }
trap cleanup EXIT
# shellcheck source=bench/servers.sh
. "$top/bench/servers.sh"

up=$(port)
build/dnsmasq-stock "${common[@]}" --port="$up" --address=/#/192.0.2.1 & pids+=($!)
wait_dns "$up" 600
vport=$(port)
vstart="valkey-server --port $vport --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile $data/valkey-chaos.pid >/dev/null && sleep 0.2 && cat $data/valkey-chaos.pid"
bash -c "$vstart" >/dev/null # chaos kills it by its pid file, then freezes the one it restarts
p=$(port)
build/dnsmasq "${common[@]}" --port="$p" --server="127.0.0.1#$up" --db-file="$db" \
	--blockcache-library="$top/build/libblockcache.so" --valkey-host=127.0.0.1 --valkey-port="$vport" --log-facility="$data/chaos-dnsmasq.log" \
	--db-lru-size=100000 &
dpid=$!; pids+=("$dpid")
wait_dns "$p" 600
echo "# patched dnsmasq, $n-row list, Valkey on :$vport; $(nproc) cores; $(date -u +%F)"
build/chaos -server "127.0.0.1:$p" -seconds "$secs" -listed "$n" -pid "$dpid" \
	-valkey-kill "kill -9 \$(cat $data/valkey-chaos.pid)" -valkey-start "$vstart" \
	-import "$top/build/blockcachectl import --quiet --db $db --table domain $data/chaos-new.txt >/dev/null" \
	-publish "sqlite3 -cmd '.timeout 2000' $db 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null && rm -f $db.new && sqlite3 $db \"VACUUM INTO '$db.new'\" && mv $db.new $db" | tee "$data/chaos-patched.txt"
rate=$(awk '/running at/ {print $(NF-2)}' "$data/chaos-patched.txt")
grep -c "circuit" "$data/chaos-dnsmasq.log" | sed 's/^/valkey circuit log lines: /'
grep -o "was replaced; now answering from the new file.*" "$data/chaos-dnsmasq.log" || echo "the published copy was never answered from"
grep -o "loaded the filter saved in the list.*\|the filter saved in the list is not used.*" "$data/chaos-dnsmasq.log" || echo "no saved filter was loaded"
s=$(port)
build/dnsmasq-stock "${common[@]}" --port="$s" --server="127.0.0.1#$up" --conf-file="$conf" & spid=$!; pids+=("$spid")
wait_dns "$s" 600
echo "# stock dnsmasq, $n address= lines, same rate, no faults (new names are never listed there)"
build/chaos -server "127.0.0.1:$s" -rate "$rate" -seconds "$secs" -listed "$n" -pid "$spid" | grep -v "wrong: new name"
