#!/bin/sh
# Installs what building and testing sinkd needs on Debian 12 (as root, or
# through sudo).  --test adds what tools/test-all.sh needs besides: the
# tools that build and check the Debian package (tools/deb.sh), Jinja2
# (tests/chat_oracle.py renders the real chat templates), and
# systemd for checking the units (tools/check-units.sh).  Safe to
# run again: apt-get skips what is there.
set -eu
pkgs="build-essential autoconf automake libtool pkg-config libevent-dev
libmsgpack-dev libsqlite3-dev libopenblas-dev check libedit-dev python3"
if [ "${1:-}" = "--test" ]; then
	pkgs="$pkgs dpkg-dev debhelper fakeroot lintian systemd python3-jinja2"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "setup-debian: installing$missing" >&2
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
