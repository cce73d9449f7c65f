#!/usr/bin/env bash
# The main job on a new machine: build everything, make a demo blocklist,
# start Valkey when it is installed, and run the patched dnsmasq on
# 127.0.0.1:5353 in the foreground until Ctrl-C.
#   scripts/demo.sh            # with Valkey if installed
#   NO_VALKEY=1 scripts/demo.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" -eq 0 ] && ! command -v sqlite3 >/dev/null; then
	bash scripts/apt-setup.sh
fi
make -s all dnsmasq
demo=$top/build/demo
mkdir -p "$demo"
db=$demo/list.db
rm -f "$db" "$db"-wal "$db"-shm
ctl=$top/build/blockcachectl
$ctl init --db "$db" >/dev/null
cat >"$demo/hosts.txt" <<'LIST'
# a hosts-file style list
0.0.0.0 ads.example.com tracker.example.net
0.0.0.0 telemetry.example.org
LIST
printf '||doubleclick.example^\nmetrics.example.io\n' | $ctl import --db "$db" --table domain "$demo/hosts.txt" - >/dev/null
$ctl add --db "$db" --table domain_exact --ipv4 10.0.0.53 exact.example.com >/dev/null
$ctl add --db "$db" --table domain_regex '^ad[sz]?[0-9]*\.' >/dev/null
$ctl add --db "$db" --table domain_dns_allow cdn.ads.example.com >/dev/null # an allowlist entry
$ctl filter --db "$db" >/dev/null # dnsmasq loads it instead of reading every row
$ctl stats --db "$db" | sed 's/^/  /'

args=(-k --port=5353 --listen-address=127.0.0.1 --bind-interfaces --log-queries --log-facility=-
	--db-file="$db" --blockcache-library="$top/build/libblockcache.so" --user=root)
vpid=
if [ -z "${NO_VALKEY:-}" ] && command -v valkey-server >/dev/null; then
	valkey-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --maxmemory 256mb \
		--maxmemory-policy allkeys-lru --daemonize no >"$demo/valkey.log" 2>&1 &
	vpid=$!
	args+=(--valkey-host=127.0.0.1 --valkey-port=6390)
	echo "valkey-server on 127.0.0.1:6390 (log $demo/valkey.log)"
fi
trap '[ -n "$vpid" ] && kill $vpid 2>/dev/null; exit 0' INT TERM EXIT
cat <<MSG

patched dnsmasq on 127.0.0.1:5353, blocklist $db. Try, in another shell:
  dig @127.0.0.1 -p 5353 www.ads.example.com A      # wildcard rule: 0.0.0.0
  dig @127.0.0.1 -p 5353 exact.example.com A        # per-rule address: 10.0.0.53
  dig @127.0.0.1 -p 5353 ads7.anything.example AAAA # regex rule: ::
  dig @127.0.0.1 -p 5353 cdn.ads.example.com        # allowed: resolved as usual
  dig +tcp @127.0.0.1 -p 5353 tracker.example.net   # TCP gets the same verdicts
  $ctl add --db $db --table domain new.example && dig @127.0.0.1 -p 5353 new.example
  $ctl explain --db $db www.ads.example.com
Ctrl-C stops it.

MSG
"$top/build/dnsmasq" "${args[@]}"
