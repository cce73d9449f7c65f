#!/usr/bin/env bash
# Bytes per cached verdict in Valkey: warms K names (default 1M, 4-label
# names of ~30 bytes) into a fresh valkey-server and divides the growth of
# used_memory by the number of keys.
# Usage: bench/valkey-mem.sh [K [TTL]]   (TTL 0: keys without expiry)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
k=${1:-1000000}
ttl=${2:-3600}
make -s lib ctl >/dev/null
data=build/bench-data
mkdir -p "$data"
[ -f "$data/list-1000000.db" ] || bench/gen.sh "$data/list-1000000.db" 1000000 1000 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valkey-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
vpid=$!
trap 'kill $vpid 2>/dev/null; wait $vpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do valkey-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
mem() { valkey-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
before=$(mem)
awk -v k="$k" 'BEGIN { for (i = 0; i < k; i++) printf "u%d.site%d.cdn%d.example\n", i % 100000, i % 1000, i }' >"$data/warm-names.txt"
start=$(date +%s.%N)
build/blockcachectl warm --db "$data/list-1000000.db" --set valkey-host=127.0.0.1 --set "valkey-port=$port" \
	--set valkey-queue=1000000 --set "valkey-ttl=$ttl" "$data/warm-names.txt"
end=$(date +%s.%N)
after=$(mem)
keys=$(valkey-cli -p "$port" dbsize)
sample=$(valkey-cli -p "$port" randomkey)
echo "valkey $(valkey-server --version | awk '{print $3}'): $keys keys, used_memory $before -> $after bytes: $(( (after - before) / keys )) bytes per key"
echo "sample key: $(printf %q "$sample") ($(printf %s "$sample" | wc -c) bytes), value $(valkey-cli -p "$port" strlen "$sample") bytes, ttl $(valkey-cli -p "$port" ttl "$sample") s"
awk -v s="$start" -v e="$end" 'BEGIN { printf "warm took %.1f s\n", e - s }'
