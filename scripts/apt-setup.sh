#!/usr/bin/env bash
# Adds the apt entries this project needs (the release's backports, for
# valkey-server on Debian 12; deb-src for `apt-get source dnsmasq`),
# derived from the machine's own Debian mirror so that no registry host is
# ever written into the repository, then
# installs the packages the build, the tests and the demo use.
# Idempotent; needs root.
set -euo pipefail

need_root() { [ "$(id -u)" -eq 0 ] || { echo "apt-setup: run as root" >&2; exit 1; }; }
need_root
sources_only=0
[ "${1:-}" = "--sources-only" ] && sources_only=1

# shellcheck source=scripts/apt-mirror.sh
. "$(dirname "$0")/apt-mirror.sh"

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
uri=$(mirror_uri)
[ -n "$uri" ] || { echo "apt-setup: no Debian mirror found in /etc/apt/sources*" >&2; exit 1; }

# Testing and unstable ("forky/sid" in /etc/debian_version) have no
# backports or -updates suites, and have valkey-server in main.
testing=0
case "$(cat /etc/debian_version 2>/dev/null)" in */*) testing=1 ;; esac

list=/etc/apt/sources.list.d/libblockcache.sources
if [ ! -f "$list" ] && [ $testing = 1 ]; then
	cat >"$list" <<SRC
Types: deb-src
URIs: $uri
Suites: ${codename}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
elif [ ! -f "$list" ]; then
	cat >"$list" <<SRC
Types: deb deb-src
URIs: $uri
Suites: ${codename}-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $uri
Suites: ${codename} ${codename}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ $sources_only = 1 ] && exit 0
apt-get install -y -qq --no-install-recommends \
	build-essential dpkg-dev pkg-config sqlite3 dnsutils procps psmisc shellcheck dnsperf linux-perf curl time python3-minimal \
	nettle-dev libgmp-dev libidn2-dev libdbus-1-dev libnetfilter-conntrack-dev libnftables-dev >/dev/null
from=(-t "${codename}-backports")
[ $testing = 1 ] && from=()
apt-get install -y -qq --no-install-recommends "${from[@]}" valkey-server valkey-tools >/dev/null
# Stop the packaged service: tests and the demo start their own servers.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now valkey-server >/dev/null 2>&1 || true; fi
pkill -x valkey-server 2>/dev/null || true
echo "apt-setup: ok (valkey $(valkey-server --version | awk '{sub(/^v=/, "", $3); print $3}'))"
