#!/usr/bin/env bash
# Builds the patched dnsmasq of BUILD/dnsmasq's release again with
# AddressSanitizer and UndefinedBehaviorSanitizer into BUILD/sanitized/
# and runs the end-to-end suite against it, with the same library and
# blockcachectl. The patch's C code reads names, replies and a socket to
# the parent; a bad read or write there need not crash in a plain build,
# and a forked TCP child that dies is seen by no test. Here either leaves
# a report, and any report fails the run.
# Usage: scripts/test-sanitized.sh [BUILD_DIR]   (after `make all dnsmasq`)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
version=$("$build/dnsmasq" --version | awk 'NR==1 {print $3}')
dir=$build/sanitized
mkdir -p "$dir"
if ! DNSMASQ_VERSION=$version DNSMASQ_SRC=$build/dnsmasq-src SANITIZE=address,undefined PREFIX=${PREFIX:-/usr/local} \
	"$top/scripts/build-dnsmasq.sh" "$dir" 2>"$dir/build.log"; then
	cat "$dir/build.log" >&2
	exit 1
fi
ln -sf ../libblockcache.so ../blockcachectl "$dir"/
reports=$dir/reports
rm -rf "$reports"
mkdir -p "$reports"
chmod 1777 "$reports" # written by dnsmasq after it drops privileges, too
# detect_leaks=0: dnsmasq frees nothing at exit, by design. RSS is the
# sanitizer's allocator's here (a 16 MB quarantine keeps it modest), so
# BLOCKCACHE_SANITIZED makes the churn test log its RSS, not bound it.
# Both sanitizers share one log_path (the last one set wins in either case).
# TestInstall and TestDemo use BUILD/dnsmasq; the patch files are checked
# once, by the main run.
(cd "$top" &&
	ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=16:log_path=$reports/report \
		UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/report \
		BLOCKCACHE_SANITIZED=1 BLOCKCACHE_BUILD=$dir \
		${GO:-go} test -count=1 -timeout 15m -skip 'TestInstall|TestDemo|TestPatchesForEachRelease' ./dnsmasq-patch/e2e)
if [ -n "$(ls -A "$reports")" ]; then
	for f in "$reports"/*; do
		echo "== $f" >&2
		cat "$f" >&2
	done
	echo "test-sanitized: the sanitizers reported errors (above)" >&2
	exit 1
fi
echo "test-sanitized: dnsmasq $version with AddressSanitizer and UBSan: no reports"
