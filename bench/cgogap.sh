#!/usr/bin/env bash
# What a call from C into Go costs in CPU when calls come at intervals, with
# an empty Go function: the floor under the patched dnsmasq's extra CPU per
# forwarded query (bench/RESULTS.md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$top" && go build -buildmode=c-shared -o "$tmp/libcgogap.so" ./bench/cgogap)
cc -O2 -o "$tmp/gap" "$top/bench/cgogap-c/gap.c" -ldl
"$tmp/gap" "$tmp/libcgogap.so"
