#!/usr/bin/env bash
# What `blockcachectl import --offline` saves on a first import: N names
# into a new list, in WAL (the default) and --offline, alternating for
# ROUNDS rounds. Each import prints its wall time, peak RSS, what it wrote
# to disk (the kernel's count of 512-byte blocks) and the peak on-disk size
# of the list with its -wal and -journal files, sampled every 50 ms.
# Usage: [CTL=blockcachectl] [ROUNDS=2] bench/import-offline.sh N [DIR]
#   DIR holds the name file and the lists (default: a temporary directory).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: bench/import-offline.sh N [DIR]}
dir=${2:-$(mktemp -d)}
mkdir -p "$dir"
cd "$top"
make -s ctl >/dev/null
ctl=$(realpath "${CTL:-build/blockcachectl}")
names="$dir/names-$n.txt"
[ -s "$names" ] || awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "n%d.feed%d.example\n", i, i % 997 }' >"$names"

# size DB: the bytes of DB and its log files (du fails on the missing ones).
size() { { du -cb "$1" "$1-wal" "$1-journal" 2>/dev/null || true; } | tail -1 | cut -f1; }

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $n names, ${ROUNDS:-2} rounds"
for r in $(seq "${ROUNDS:-2}"); do
	for mode in wal offline; do
		db="$dir/list-$mode.db"
		rm -f "$db" "$db-wal" "$db-shm" "$db-journal" "$dir/peak"
		flags=()
		[ "$mode" = wal ] || flags=(--offline)
		(
			peak=0
			while :; do
				s=$(size "$db")
				[ "$s" -le "$peak" ] || { peak=$s; echo "$peak" >"$dir/peak"; }
				sleep 0.05
			done
		) &
		mon=$!
		/usr/bin/time -f '%e %M %O' -o "$dir/time" \
			"$ctl" import --quiet "${flags[@]}" --db "$db" --table domain "$names" >"$dir/out"
		kill "$mon" 2>/dev/null || true
		wait "$mon" 2>/dev/null || true
		awk -v r="$r" -v m="$mode" -v peak="$(cat "$dir/peak" 2>/dev/null || echo 0)" -v final="$(size "$db")" '
			{ printf "round %s %-8s %.1f s, peak RSS %d MiB, wrote %.2f GiB; list on disk at most %.2f GiB, at the end %.2f GiB\n",
				r, m, $1, $2 / 1024, $3 * 512 / 2^30, peak / 2^30, final / 2^30 }' "$dir/time"
		sed 's/^/    /' "$dir/out"
	done
done
