#!/usr/bin/env bash
# mirror_uri prints the first URI of the main Debian archive configured on
# this machine, from deb822 .sources files or one-line sources.list entries,
# so that the scripts never write a registry host of their own. Sourced by
# scripts/apt-setup.sh and scripts/dnsmasq-source.sh, not run.
mirror_uri() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ {for (i=2;i<=NF;i++) if ($i !~ /security/) {print $i; exit}}' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
}
