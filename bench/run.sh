#!/usr/bin/env bash
# Runs the C harness on a generated list of N rows, with its own
# valkey-server on a free loopback port, and stops everything it started.
# Usage: bench/run.sh N [harness options...]     e.g. bench/run.sh 1000000 --queries 2000000
# Databases are cached in build/bench-data/ (delete to regenerate).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$PATH:/usr/local/go/bin"
n=$1; shift
make -s lib ctl bench >/dev/null
data=$top/build/bench-data
mkdir -p "$data"
db=$data/list-$n.db
if [ ! -f "$db" ]; then
	echo "# generating $db ($n rows)" >&2
	bench/gen.sh "$db" "$n" 1000 >&2
fi
vargs=()
vpid=
if command -v valkey-server >/dev/null; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	valkey-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --maxmemory 4gb \
		--maxmemory-policy allkeys-lru >"$data/valkey.log" 2>&1 &
	vpid=$!
	trap 'kill $vpid 2>/dev/null; wait $vpid 2>/dev/null || true' EXIT
	for _ in $(seq 100); do valkey-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
	vargs=(--valkey-port "$port")
	# The floor for the Valkey tier, measured in the same run.
	valkey-cli -p "$port" set k v >/dev/null
	valkey-benchmark -p "$port" -c 1 -P 1 -n 20000 -t get --csv 2>/dev/null |
		awk -F'"' 'NR==2 {printf "# valkey-benchmark -c 1 -P 1 GET: p50 %.0f us, avg %.0f us, p99 %.0f us\n", $10*1000, $6*1000, $14*1000}'
fi
build/bench --lib build/libblockcache.so --db "$db" --rows "$n" --regex 1000 "${vargs[@]}" "$@"
