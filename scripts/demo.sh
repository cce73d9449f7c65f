#!/usr/bin/env bash
# The main job on a new machine: build everything, make a demo blocklist,
# start Valkey when it is installed, and run the patched dnsmasq on
# 127.0.0.1:5353 in the foreground until Ctrl-C.
#   scripts/demo.sh            # with Valkey if installed
#   NO_VALKEY=1 scripts/demo.sh
#   PORT=5354 VALKEY_PORT=6391 DEMO_DIR=/tmp/demo scripts/demo.sh
# (the defaults: 5353, 6390, build/demo). dnsmasq-patch/e2e's TestDemo runs
# it as README.md gives it and asks the queries it suggests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" -eq 0 ] && ! command -v sqlite3 >/dev/null; then
	bash scripts/apt-setup.sh
fi
make -s all dnsmasq
demo=${DEMO_DIR:-$top/build/demo}
port=${PORT:-5353}
vport=${VALKEY_PORT:-6390}
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

args=(-k --port="$port" --listen-address=127.0.0.1 --bind-interfaces --log-queries --log-facility=-
	--db-file="$db" --blockcache-library="$top/build/libblockcache.so" --user=root)
vpid=
if [ -z "${NO_VALKEY:-}" ] && command -v valkey-server >/dev/null; then
	valkey-server --port "$vport" --bind 127.0.0.1 --save '' --appendonly no --maxmemory 256mb \
		--maxmemory-policy allkeys-lru --daemonize no >"$demo/valkey.log" 2>&1 &
	vpid=$!
	# dnsmasq started first would find Valkey unreachable and leave it
	# alone for a while (its circuit breaker): the demo's first queries
	# would not reach it.
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$vport") 2>/dev/null && break
		sleep 0.1
	done
	args+=(--valkey-host=127.0.0.1 --valkey-port="$vport")
	echo "valkey-server on 127.0.0.1:$vport (log $demo/valkey.log)"
fi
# Valkey is waited for, so that the demo can start again at once. Under
# set -e a failed kill (Ctrl-C reached Valkey first) would end the trap,
# and the script with status 1.
trap '[ -z "$vpid" ] || { kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; }' EXIT
cat <<MSG

patched dnsmasq on 127.0.0.1:$port, blocklist $db. Try, in another shell:
  dig @127.0.0.1 -p $port www.ads.example.com A      # wildcard rule: 0.0.0.0
  dig @127.0.0.1 -p $port exact.example.com A        # per-rule address: 10.0.0.53
  dig @127.0.0.1 -p $port ads7.anything.example AAAA # regex rule: ::
  dig @127.0.0.1 -p $port cdn.ads.example.com        # allowed: resolved as usual
  dig +tcp @127.0.0.1 -p $port tracker.example.net   # TCP gets the same verdicts
  $ctl add --db $db --table domain new.example && dig @127.0.0.1 -p $port new.example
  $ctl explain --db $db www.ads.example.com
Ctrl-C stops it.

MSG
# dnsmasq runs in the background so that Ctrl-C reaches the trap: without
# -d it takes SIGINT for "the clock is now valid" (DNSSEC) and keeps
# running, and the trap of a shell waiting on a foreground child runs only
# once the child has exited. The trap stops it with SIGTERM.
"$top/build/dnsmasq" "${args[@]}" &
dpid=$!
trap 'kill -TERM "$dpid" 2>/dev/null || true' INT TERM
while kill -0 "$dpid" 2>/dev/null; do
	wait "$dpid" || true # a signal ends the wait early
done
rc=0
wait "$dpid" || rc=$? # dnsmasq's own exit status, kept by the shell
exit "$rc"
