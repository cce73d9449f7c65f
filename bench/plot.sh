#!/usr/bin/env bash
# Plots bench/out/*.csv (from bench/run.sh --csv) into PNGs with gnuplot:
#   bench/tiers.png   p50 and p99 per tier and configuration (10M rows, warm)
#   bench/size.png    SQLite-tier latency against list size (warm and cold)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top/bench"
command -v gnuplot >/dev/null || { echo "plot: apt-get install gnuplot-nox" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# per-tier rows of the 10M warm run: "config/tier p50_us p99_us"
awk -F, 'NR>1 && $2=="warm" && $3!="all" {printf "%s/%s %.2f %.2f\n", $1, $3, $5/1000, $7/1000}' out/tiers-10M.csv >"$tmp/tiers.dat"
gnuplot <<GP
set terminal pngcairo size 1000,560 font ",10" noenhanced
set output "tiers.png"
set title "Lookup latency per tier through the C ABI, 10M-row list, page cache warm"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "microseconds (log scale)"
set xtics rotate by -30
set grid ytics
plot "$tmp/tiers.dat" using 2:xtic(1) title "p50", "" using 3 title "p99"
GP
for regime in warm cold; do
	for n in 10000 1000000 10000000; do
		f=out/tiers-$n.csv
		[ $n = 10000000 ] && f=out/tiers-10M.csv
		awk -F, -v n=$n -v r=$regime 'NR>1 && $1=="sqlite" && $2==r && $3=="sqlite" {printf "%d %.2f %.2f\n", n, $5/1000, $7/1000}' "$f"
	done >"$tmp/size-$regime.dat"
done
gnuplot <<GP
set terminal pngcairo size 800,500 font ",10" noenhanced
set output "size.png"
set title "SQLite tier (no LRU) latency against list size; 80% unlisted names"
set logscale x
set logscale y
set xlabel "rows in domain (+10% in domain_exact, 1000 regex)"
set ylabel "microseconds"
set grid
set key left top
plot "$tmp/size-warm.dat" using 1:2 with linespoints title "warm p50", \
     "" using 1:3 with linespoints title "warm p99", \
     "$tmp/size-cold.dat" using 1:2 with linespoints title "cold p50", \
     "" using 1:3 with linespoints title "cold p99"
GP
echo "plot: bench/tiers.png bench/size.png"
