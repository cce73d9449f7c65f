#!/usr/bin/env bash
# What a feed imported again costs. A list of N names is imported into an
# empty list, then the same N names again, then N names of which 1% are new:
# once into a list without a saved filter, once with one saved after the
# first import. Each import prints its wall time, peak RSS and blockcachectl's
# own lines (what it changed, the list version, what it did to the filter).
# CTL_OLD adds another blockcachectl, run in alternation in the same rounds,
# for an A/B on the same machine state. MODES="plain replace" also runs the
# second and third imports with --replace (the third then removes 1% too).
# Usage: [CTL=blockcachectl] [CTL_OLD=blockcachectl] [ROUNDS=1] [MODES=plain] bench/import-again.sh N [DIR]
#   DIR holds the name files and lists (default: a temporary directory).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:?usage: bench/import-again.sh N [DIR]}
dir=${2:-$(mktemp -d)}
mkdir -p "$dir"
cd "$top"
make -s ctl >/dev/null
ctls=("new=$(realpath "${CTL:-build/blockcachectl}")")
[ -z "${CTL_OLD:-}" ] || ctls+=("old=$(realpath "$CTL_OLD")")

names="$dir/names-$n.txt" names2="$dir/names-$n-1pc.txt"
[ -s "$names" ] || awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "n%d.feed%d.example\n", i, i % 997 }' >"$names"
[ -s "$names2" ] || awk -v n="$n" 'BEGIN { k = n - n / 100; for (i = 0; i < n; i++) printf "n%d.feed%d.example\n", (i < k ? i : i + 5 * n), i % 997 }' >"$names2"

# imp LABEL CTL DB FILE [FLAG...]: one import, timed.
imp() {
	local out label=$1 ctl=$2 db=$3 file=$4
	shift 4
	out=$(mktemp)
	/usr/bin/time -f '%e s, peak RSS %M KiB' -o "$out.time" "$ctl" import --quiet "$@" --db "$db" --table domain "$file" >"$out"
	echo "$label: $(cat "$out.time")"
	sed 's/^/    /' "$out"
	rm -f "$out" "$out.time"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $n names, ${ROUNDS:-1} rounds"
for r in $(seq "${ROUNDS:-1}"); do
	for mode in ${MODES:-plain}; do
		flags=()
		[ "$mode" = plain ] || flags=(--replace)
		for c in "${ctls[@]}"; do
			label=${c%%=*} ctl=${c#*=}
			[ "$mode" = plain ] || label="$label $mode"
			for saved in no yes; do
				db="$dir/list-${label// /-}.db"
				rm -f "$db" "$db-wal" "$db-shm"
				imp "round $r $label, saved filter $saved, first" "$ctl" "$db" "$names"
				if [ "$saved" = yes ]; then
					"$ctl" filter --db "$db" | sed 's/^/    /'
				fi
				imp "round $r $label, saved filter $saved, the same again" "$ctl" "$db" "$names" "${flags[@]}"
				imp "round $r $label, saved filter $saved, 1% new" "$ctl" "$db" "$names2" "${flags[@]}"
			done
		done
	done
done
