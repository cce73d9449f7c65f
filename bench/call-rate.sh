#!/usr/bin/env bash
# Where the forwarded-query overhead comes from: stock dnsmasq against the
# patched one asking libblockcache for every query (every1), the same asking
# a library that skips the lookup (noop: the call into Go and the pacer
# only), one in 10, one in 100, and never (every0: library loaded, Go
# runtime started, no calls).
# Builds build/dnsmasq-every from the patched tree with the bench-only
# bench/call-rate/every.patch, and build/libblockcache-noop.so from a copy
# of the Go tree with bench/call-rate/noop.patch, then runs
# bench/forward-qps.sh with them.
# Needs `make dnsmasq lib` and the files of bench/dnsperf.sh N.
# Usage: [MODE=qps|cpu] [ROUNDS=9] [ORDER=...] bench/call-rate.sh [N] [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd); cd "$top"
# The tree build-dnsmasq.sh left for the release build/dnsmasq is.
v=$(build/dnsmasq --version 2>/dev/null | awk 'NR==1 {print $3}')
src=build/dnsmasq-$v-patched tree=build/dnsmasq-$v-every
[ -n "$v" ] && [ -d "$src" ] || { echo "call-rate: run make dnsmasq first" >&2; exit 1; }
rm -rf $tree && cp -a $src $tree
patch -s -p1 -d $tree --no-backup-if-mismatch <bench/call-rate/every.patch
# shellcheck source=scripts/dnsmasq-features.sh
. "$top/scripts/dnsmasq-features.sh"
make -s -C $tree -j"$(nproc)" COPTS="$dnsmasq_features -I$top/include" >/dev/null
cp $tree/src/dnsmasq build/dnsmasq-every
gotree=build/noop-src
rm -rf $gotree && mkdir -p $gotree && cp -a go.mod go.sum include libblockcache $gotree/
patch -s -p1 -d $gotree --no-backup-if-mismatch <bench/call-rate/noop.patch
(cd $gotree && go build -buildmode=c-shared -o "$top/build/libblockcache-noop.so" ./libblockcache/capi)
ORDER=${ORDER:-"stock every1 noop every10 every100 every0"} ROUNDS=${ROUNDS:-9} bench/forward-qps.sh "$@"
