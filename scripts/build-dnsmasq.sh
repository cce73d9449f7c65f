#!/usr/bin/env bash
# Builds BUILD/dnsmasq: upstream dnsmasq 2.90 from Debian's source package
# (the pristine .orig tarball, not Debian's patches) with dnsmasq-patch/*.patch
# applied. With --stock, builds BUILD/dnsmasq-stock from the same tree
# unpatched, for benchmarks. The source is fetched at build time, never
# committed. Both have the compile-time features of Debian's own binary
# (scripts/dnsmasq-features.sh).
# Usage: scripts/build-dnsmasq.sh [--stock] [BUILD_DIR]
set -euo pipefail
stock=0
if [ "${1:-}" = "--stock" ]; then stock=1; shift; fi
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(mkdir -p "${1:-$top/build}" && cd "${1:-$top/build}" && pwd)
version=2.90
prefix=${PREFIX:-/usr/local}
dl=$build/dnsmasq-src

# get_source downloads the newest Debian source package of upstream $version.
get_source() {
	local v
	v=$(apt-cache showsrc dnsmasq 2>/dev/null | awk -v u="$version" '$1=="Version:" && index($2, u"-")==1 {print $2}' | sort -V | tail -1)
	[ -n "$v" ] || return 1
	(cd "$dl" && apt-get source --download-only "dnsmasq=$v" >/dev/null 2>&1)
}

fetch() {
	mkdir -p "$dl"
	ls "$dl"/dnsmasq_${version}.orig.tar.* >/dev/null 2>&1 && return 0
	get_source && return 0
	# No deb-src entries yet: add them (derived from the machine's own
	# mirror) and try once more.
	if [ "$(id -u)" -eq 0 ]; then
		"$top/scripts/apt-setup.sh" --sources-only >&2
		get_source || { echo "build-dnsmasq: no Debian source package of dnsmasq $version" >&2; exit 1; }
	else
		echo "build-dnsmasq: cannot fetch the dnsmasq source: run scripts/apt-setup.sh as root first" >&2
		exit 1
	fi
}

fetch
tarball=$(ls "$dl"/dnsmasq_${version}.orig.tar.* | head -1)
tree=$build/dnsmasq-$version-$([ $stock = 1 ] && echo stock || echo patched)
rm -rf "$tree"
mkdir -p "$tree"
tar -xf "$tarball" -C "$tree" --strip-components=1
if [ $stock = 0 ]; then
	for p in "$top"/dnsmasq-patch/*.patch; do
		patch -s -p1 -d "$tree" --no-backup-if-mismatch <"$p"
	done
fi
# shellcheck source=scripts/dnsmasq-features.sh
. "$top/scripts/dnsmasq-features.sh"
make -s -C "$tree" -j"$(nproc)" \
	COPTS="$dnsmasq_features -I$top/include -DBLOCKCACHE_LIBRARY='\"$prefix/lib/libblockcache.so\"'" >/dev/null
out=$build/dnsmasq
[ $stock = 1 ] && out=$build/dnsmasq-stock
cp "$tree/src/dnsmasq" "$out"
echo "build-dnsmasq: $out ($("$out" --version | head -1))"
