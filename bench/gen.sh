#!/usr/bin/env bash
# Generates a benchmark blocklist with blockcachectl, in the name scheme
# bench/harness.c queries: N rows in domain (d<i>.bench.example), N/10 in
# domain_exact (e<i>.bench-exact.example), R patterns in domain_regex
# (^ad[0-9]+\.r<k>\.track<k>\.example$), and a few forward rules so that all
# five tables are present. The two large imports run --offline: nothing
# reads the new file yet, and a billion names then need the list's size on
# disk once, not twice.
# Usage: bench/gen.sh DB N [R]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
db=$1 n=$2 r=${3:-1000}
ctl=$top/build/blockcachectl
rm -f "$db" "$db"-wal "$db"-shm
$ctl init --db "$db" >/dev/null
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print "d" i ".bench.example" }' |
	$ctl import --quiet --offline --db "$db" --table domain -
awk -v n="$n" 'BEGIN { m = int(n / 10); if (m < 1) m = 1; for (i = 0; i < m; i++) print "e" i ".bench-exact.example" }' |
	$ctl import --quiet --offline --db "$db" --table domain_exact -
awk -v r="$r" 'BEGIN { for (k = 0; k < r; k++) printf "^ad[0-9]+\\.r%d\\.track%d\\.example$\n", k, k }' |
	$ctl import --quiet --db "$db" --table domain_regex -
printf 'allow%d.bench-fwd.example\n' 1 2 3 | $ctl import --quiet --db "$db" --table domain_dns_allow --server 127.0.0.1#5300 -
printf 'block%d.bench-fwd.example\n' 1 2 3 | $ctl import --quiet --db "$db" --table domain_dns_block --server 127.0.0.1#5301 -
