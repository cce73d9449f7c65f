#!/usr/bin/env bash
# Builds BUILD/dnsmasq: upstream dnsmasq from Debian's source package (the
# pristine .orig tarball, not Debian's patches) with the patch for that
# release applied: dnsmasq-patch/*.patch for 2.90, dnsmasq-patch/V/*.patch
# for its port to V. DNSMASQ_VERSION picks the release; the default is the
# one of the machine's own Debian (2.90 on 12, 2.91 on 13), else the newest
# port. With --stock, builds BUILD/dnsmasq-stock from the same tree
# unpatched, for benchmarks. The source is fetched at build time, never
# committed. Both have the compile-time features of Debian's own binary
# (scripts/dnsmasq-features.sh). SANITIZE=address,undefined builds with
# those sanitizers instead of -O2 (scripts/test-sanitized.sh).
# Usage: [DNSMASQ_VERSION=V] scripts/build-dnsmasq.sh [--stock] [BUILD_DIR]
set -euo pipefail
stock=0
if [ "${1:-}" = "--stock" ]; then stock=1; shift; fi
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${1:-$top/build}" && cd "${1:-$top/build}" && pwd)
prefix=${PREFIX:-/usr/local}
dl=${DNSMASQ_SRC:-$build/dnsmasq-src}
# shellcheck source=scripts/dnsmasq-source.sh
. "$top/scripts/dnsmasq-source.sh"
version=${DNSMASQ_VERSION:-$(dnsmasq_default_version)}
versions=$(dnsmasq_versions)
grep -qx "$version" <<<"$versions" || {
	echo "build-dnsmasq: no patch for dnsmasq $version (have: $(echo $versions))" >&2
	exit 1
}

if [ $stock = 1 ]; then
	tree=$build/dnsmasq-$version-stock
	dnsmasq_tree "$version" "$dl" "$tree"
else
	tree=$build/dnsmasq-$version-patched
	dnsmasq_tree "$version" "$dl" "$tree" patched
fi
# shellcheck source=scripts/dnsmasq-features.sh
. "$top/scripts/dnsmasq-features.sh"
flags=()
if [ -n "${SANITIZE:-}" ]; then
	flags=(CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=$SANITIZE" LDFLAGS="-fsanitize=$SANITIZE")
fi
# -std=gnu17: GCC 15 (Debian 14) defaults to C23, where dnsmasq 2.90's and
# 2.91's `int (callback)()` declares a function of no arguments and their
# network.c fails to compile. gnu17 is what GCC 12-14 default to.
make -s -C "$tree" -j"$(nproc)" "${flags[@]}" \
	COPTS="-std=gnu17 $dnsmasq_features -I$top/include -DBLOCKCACHE_LIBRARY='\"$prefix/lib/libblockcache.so\"'" >/dev/null
out=$build/dnsmasq
[ $stock = 1 ] && out=$build/dnsmasq-stock
cp "$tree/src/dnsmasq" "$out"
echo "build-dnsmasq: $out ($("$out" --version | head -1))"
