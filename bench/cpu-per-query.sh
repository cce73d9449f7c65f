#!/usr/bin/env bash
# CPU time the server spends per forwarded unlisted query, at a fixed 8k QPS
# (not saturated, so the figure does not depend on who wins the two cores):
# stock dnsmasq without a list against the patched one (LRU + SQLite, 1M
# list). Needs the files of bench/dnsperf.sh (run it once first).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
data=build/bench-data
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
common=(-k --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user=root --cache-size=10000)
up=$(port); build/dnsmasq-stock "${common[@]}" --port=$up --address=/#/192.0.2.1 & U=$!
sleep 0.5
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for which in stock patched; do
  p=$(port)
  if [ $which = stock ]; then build/dnsmasq-stock "${common[@]}" --port=$p --server=127.0.0.1#$up & else
  build/dnsmasq "${common[@]}" --port=$p --server=127.0.0.1#$up --db-file=$top/$data/list-1000000.db --blockcache-library=$top/build/libblockcache.so & fi
  P=$!; sleep 1
  dnsperf -s 127.0.0.1 -p $p -d $data/q-unlisted.txt -n 1 -q 200 >/dev/null 2>&1
  c0=$(cpu $P); n0=$(date +%s%N)
  out=$(dnsperf -s 127.0.0.1 -p $p -d $data/q-unlisted.txt -l 10 -Q 8000 2>&1 | awk '/Queries completed/ {print $3}')
  c1=$(cpu $P)
  echo "$which: $out queries, $(( (c1-c0)*10000 )) us CPU total => $(awk -v c=$(( (c1-c0)*10000 )) -v q=$out 'BEGIN{printf "%.1f", c/q}') us CPU per query"
  kill $P; sleep 0.3
done
kill $U
