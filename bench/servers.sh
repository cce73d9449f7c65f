#!/usr/bin/env bash
# Sourced by the dnsperf scripts (dnsperf.sh, forward-qps.sh, perf-forward.sh,
# chaos.sh), not run: how they start throwaway dnsmasq servers on loopback,
# and the settings they share.
# shellcheck disable=SC2034,SC2154 # common and the settings are used, and top set, by the scripts that source this

# port prints a free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_dns PORT [TRIES]: until a dnsmasq on PORT answers (TRIES x 50 ms,
# 12000 by default: stock dnsmasq reads 10M address= lines in ~13 s, so
# 100M in minutes).
wait_dns() {
	for _ in $(seq "${2:-12000}"); do
		dig +time=1 +tries=1 @127.0.0.1 -p "$1" probe.invalid >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

# thread_ticks PID: the process's CPU ticks so far: its main thread's user
# and system time, and the other threads' (Go's, in the patched dnsmasq)
# together.
thread_ticks() {
	local u=0 s=0 o=0 t a b
	for t in /proc/"$1"/task/*; do
		read -r a b < <(awk '{print $14, $15}' "$t/stat")
		if [ "${t##*/}" = "$1" ]; then u=$a s=$b; else o=$((o + a + b)); fi
	done
	echo "$u $s $o"
}

# The flags every benchmark dnsmasq runs with.
common=(-k --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --user=root --cache-size=10000)

# bench_settings reads what the scripts take from the environment: data
# (BENCH_DATA, where lists and query files are kept, made absolute against
# $top), dt (DNSPERF_TIMEOUT: dnsperf -t, how long a query may go
# unanswered) and, with PIN=1, the taskset prefixes srv (the measured
# servers, on CPU 1) and cli (dnsperf and the upstream, on CPU 0).
bench_settings() {
	data=${BENCH_DATA:-build/bench-data}
	case $data in /*) ;; *) data=$top/$data ;; esac
	dt=${DNSPERF_TIMEOUT:-5}
	srv=() cli=()
	if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 1) cli=(taskset -c 0); fi
}
