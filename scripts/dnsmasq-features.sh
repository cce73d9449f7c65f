#!/usr/bin/env bash
# The compile-time features of Debian's dnsmasq binary (debian/rules of the
# 2.90 source package, Linux): every dnsmasq built here has them, so that
# the patched one can replace Debian's under an existing configuration and
# the benchmarks compare like with like. Sourced by scripts/build-dnsmasq.sh
# and bench/call-rate.sh, not run; scripts/apt-setup.sh installs the
# libraries.
# shellcheck disable=SC2034
dnsmasq_features="-DHAVE_DNSSEC -DHAVE_LIBIDN2 -DHAVE_DBUS -DHAVE_CONNTRACK -DHAVE_NFTSET"
