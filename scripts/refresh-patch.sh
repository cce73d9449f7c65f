#!/usr/bin/env bash
# Regenerates the patch for dnsmasq release VERSION (default: the one
# `make dnsmasq` builds here) from its edited tree,
# build/dnsmasq-VERSION-patched (`make dnsmasq`) or
# build/port-VERSION/dnsmasq-VERSION-patched (`make ports`), by diffing it
# against the pristine upstream tarball. Then carries the files the patch
# adds (src/blockcache.c, src/blockcache-opts.h) into the patch of every
# other release, so that all of them build the same blockcache code; only
# the hooks are edited per release. Edit the tree, run this, review
# `git diff dnsmasq-patch/`, rebuild and test each release
# (dnsmasq-patch/README.md, "Other releases").
# Usage: scripts/refresh-patch.sh [VERSION]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/dnsmasq-source.sh
. "$top/scripts/dnsmasq-source.sh"
version=${1:-$(dnsmasq_default_version)}
# make dnsmasq leaves the machine's release's tree in build/, make ports
# the others' in build/port-V/.
tree=
for d in "$top/build/dnsmasq-$version-patched" "$top/build/port-$version/dnsmasq-$version-patched"; do
	[ -d "$d" ] && { tree=$d; break; }
done
[ -n "$tree" ] || { echo "refresh-patch: no tree of dnsmasq $version: run make dnsmasq (or make ports) first" >&2; exit 1; }
dl=$top/build/dnsmasq-src
added="src/blockcache.c src/blockcache-opts.h"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# diff_patch V DIR writes V's patch: the pristine V tree against DIR, under
# the header the patch already has.
diff_patch() {
	local v=$1 dir=$2 patch header
	patch=$(dnsmasq_patch_dir "$v")/0001-blockcache.patch
	dnsmasq_tree "$v" "$dl" "$tmp/a"
	rm -rf "$tmp/b"
	mkdir -p "$tmp/b"
	(cd "$dir" && tar --exclude='*.o' --exclude='.copts_*' --exclude='src/dnsmasq' -cf - .) | tar -xf - -C "$tmp/b"
	header=$(sed '/^diff /,$d' "$patch")
	{
		printf '%s\n' "$header"
		(cd "$tmp" && diff -ruN a b || true) | sed -E "s/^((---|\+\+\+) [^\t]+)\t.*/\1/"
	} >"$patch.new"
	mv "$patch.new" "$patch"
	echo "refresh-patch: $v: $(grep -c '^+' "$patch") added lines"
}

diff_patch "$version" "$tree"
for v in $(dnsmasq_versions); do
	[ "$v" = "$version" ] && continue
	# The other release's tree as its patch makes it, with this tree's files.
	dnsmasq_tree "$v" "$dl" "$tmp/other" patched
	for f in $added; do cp "$tree/$f" "$tmp/other/$f"; done
	diff_patch "$v" "$tmp/other"
done
echo "refresh-patch: review with: git diff dnsmasq-patch/"
