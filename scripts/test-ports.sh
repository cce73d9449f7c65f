#!/usr/bin/env bash
# Builds the patched dnsmasq of every other release the patch is kept for
# (dnsmasq-patch/V/, besides the one BUILD/dnsmasq is) into BUILD/port-V/,
# and runs the end-to-end suite against each, with the same library and
# blockcachectl. A port that is not tested rots at the next change to
# src/blockcache.c.
# Usage: scripts/test-ports.sh [BUILD_DIR]   (after `make all dnsmasq`)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
# shellcheck source=scripts/dnsmasq-source.sh
. "$top/scripts/dnsmasq-source.sh"
built=$("$build/dnsmasq" --version | awk 'NR==1 {print $3}')
for v in $(dnsmasq_versions); do
	[ "$v" = "$built" ] && continue
	dir=$build/port-$v
	if ! dnsmasq_fetch "$v" "$build/dnsmasq-src" && dnsmasq_suite_moves "$v"; then
		# Not a failure of this tree: Debian moved on (dnsmasq-patch/README.md).
		echo "test-ports: WARNING: cannot fetch dnsmasq $v's source from Debian $(dnsmasq_suite "$v"), a testing release (above: why); its port is NOT tested" >&2
		continue
	fi
	DNSMASQ_VERSION=$v DNSMASQ_SRC=$build/dnsmasq-src PREFIX=${PREFIX:-/usr/local} "$top/scripts/build-dnsmasq.sh" "$dir"
	ln -sf ../libblockcache.so ../blockcachectl "$dir"/
	# TestInstall installs BUILD/dnsmasq; the patch files are release-independent.
	(cd "$top" && BLOCKCACHE_BUILD=$dir ${GO:-go} test -count=1 -timeout 10m -skip 'TestInstall|TestPatchesForEachRelease' ./dnsmasq-patch/e2e)
done
