#!/usr/bin/env bash
# Which upstream dnsmasq releases the patch is kept for, and how to fetch
# each one's pristine source from Debian. Sourced by scripts/build-dnsmasq.sh
# and scripts/refresh-patch.sh, not run.
#
# dnsmasq-patch/*.patch is for 2.90 (Debian 12); dnsmasq-patch/V/*.patch is
# its port to release V. The files the patch adds (src/blockcache.c,
# src/blockcache-opts.h) are the same in every port; only the one-line
# hooks move.

# shellcheck source=scripts/apt-mirror.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh"

dnsmasq_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# dnsmasq_versions prints every release with a patch, oldest first.
dnsmasq_versions() {
	local d
	echo 2.90
	for d in "$dnsmasq_top"/dnsmasq-patch/[0-9]*/; do
		[ -d "$d" ] && basename "$d"
	done | sort -V
}

# dnsmasq_patch_dir V prints the directory of V's patches.
dnsmasq_patch_dir() {
	if [ "$1" = 2.90 ]; then echo "$dnsmasq_top/dnsmasq-patch"; else echo "$dnsmasq_top/dnsmasq-patch/$1"; fi
}

# dnsmasq_suite V prints the Debian release whose source package is
# upstream V, for fetching a release the machine's own apt does not offer.
dnsmasq_suite() {
	case "$1" in
	2.90) echo bookworm ;;
	2.91) echo trixie ;;
	2.93) echo forky ;;
	*) return 1 ;;
	esac
}

# dnsmasq_suite_moves V is true when V's Debian release is not yet released
# (testing): its source package leaves the mirror when a newer upstream
# release is uploaded, while a stable release keeps its upstream version
# for its whole life.
dnsmasq_suite_moves() {
	[ "$(dnsmasq_suite "$1")" = forky ]
}

# dnsmasq_default_version prints the release of the machine's own Debian
# (so the patched dnsmasq replaces the one it has), else the newest port.
dnsmasq_default_version() {
	local codename v
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	for v in $(dnsmasq_versions); do
		[ "$(dnsmasq_suite "$v" 2>/dev/null)" = "$codename" ] && { echo "$v"; return; }
	done
	dnsmasq_versions | tail -1
}

# dnsmasq_apt_source V DIR downloads the newest Debian source package of
# upstream V into DIR with the machine's apt configuration.
dnsmasq_apt_source() {
	local v
	v=$(apt-cache showsrc dnsmasq 2>/dev/null | awk -v u="$1" '$1=="Version:" && index($2, u"-")==1 {print $2}' | sort -V | tail -1)
	[ -n "$v" ] || return 1
	(cd "$2" && apt-get source --download-only "dnsmasq=$v" >/dev/null 2>&1)
}

# dnsmasq_other_source V DIR downloads V's source package from the Debian
# release that has it, through a private apt configuration under DIR on the
# machine's own mirror: the machine's apt sources and state are untouched,
# and no root is needed.
dnsmasq_other_source() {
	local suite uri apt=$2/apt
	local -a opts
	suite=$(dnsmasq_suite "$1") || return 1
	uri=$(mirror_uri)
	[ -n "$uri" ] || return 1
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$apt/sources.list"
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1")
	# apt's errors say why (an expired Release file of a testing release on
	# a stale mirror, say); they are shown only when the fetch fails.
	if ! apt-get "${opts[@]}" update >"$apt/log" 2>&1 ||
		! (cd "$2" && apt-get "${opts[@]}" source --download-only dnsmasq >>"$apt/log" 2>&1); then
		grep '^[EW]:' "$apt/log" | sed "s/^/dnsmasq-source: Debian $suite: /" >&2
		return 1
	fi
	ls "$2"/dnsmasq_"$1".orig.tar.* >/dev/null 2>&1 && return 0
	echo "dnsmasq-source: Debian $suite no longer has dnsmasq $1 ($(cd "$2" && ls dnsmasq_*.dsc 2>/dev/null | tr '\n' ' '))" >&2
	return 1
}

# dnsmasq_fetch V DIR leaves V's pristine .orig tarball in DIR: already
# there, from the machine's apt sources, from them once scripts/apt-setup.sh
# has added deb-src entries (root only), or from the Debian release that
# has V. Prints nothing; returns non-zero with a message when all fail.
dnsmasq_fetch() {
	mkdir -p "$2"
	ls "$2"/dnsmasq_"$1".orig.tar.* >/dev/null 2>&1 && return 0
	dnsmasq_apt_source "$1" "$2" && return 0
	if [ "$(id -u)" -eq 0 ] && ! apt-cache showsrc dnsmasq >/dev/null 2>&1; then
		"$dnsmasq_top/scripts/apt-setup.sh" --sources-only >&2
		dnsmasq_apt_source "$1" "$2" && return 0
	fi
	dnsmasq_other_source "$1" "$2" && return 0
	echo "dnsmasq-source: cannot fetch Debian's source package of dnsmasq $1 (run scripts/apt-setup.sh as root, or check the mirror in /etc/apt)" >&2
	return 1
}

# dnsmasq_tree V SRC TREE makes TREE the pristine upstream V, fetched into
# SRC; with a fourth argument, patched as V's patches make it.
dnsmasq_tree() {
	local p
	dnsmasq_fetch "$1" "$2" || return 1
	rm -rf "$3"
	mkdir -p "$3"
	tar -xf "$(ls "$2"/dnsmasq_"$1".orig.tar.* | head -1)" -C "$3" --strip-components=1
	[ $# -gt 3 ] || return 0
	for p in "$(dnsmasq_patch_dir "$1")"/*.patch; do
		patch -s -p1 -d "$3" --no-backup-if-mismatch <"$p" || return 1
	done
}
