#!/usr/bin/env bash
# Regenerates dnsmasq-patch/0001-blockcache.patch from an edited dnsmasq
# tree (default: build/dnsmasq-2.90-patched, made by build-dnsmasq.sh), by
# diffing it against the pristine upstream tarball. Edit the tree, run this,
# review `git diff dnsmasq-patch/`, commit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${1:-$top/build/dnsmasq-2.90-patched}" && pwd)
patch=$top/dnsmasq-patch/0001-blockcache.patch
tarball=$(ls "$top"/build/dnsmasq-src/dnsmasq_2.90.orig.tar.* | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/a" "$tmp/b"
tar -xf "$tarball" -C "$tmp/a" --strip-components=1
(cd "$tree" && tar --exclude='*.o' --exclude='.copts_*' --exclude='src/dnsmasq' -cf - .) | tar -xf - -C "$tmp/b"
header=$(sed '/^diff /,$d' "$patch")
{
	printf '%s\n' "$header"
	(cd "$tmp" && diff -ruN a b || true) | sed -E "s/^((---|\+\+\+) [^\t]+)\t.*/\1/"
} >"$patch.new"
mv "$patch.new" "$patch"
echo "refresh-patch: $(grep -c '^+' "$patch") added lines; review with: git diff dnsmasq-patch/"
