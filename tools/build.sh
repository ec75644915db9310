#!/bin/sh
# Builds sinkd out of tree: tools/build.sh [DIR [configure options...]]
# (default DIR: build).  Regenerates ./configure when it is missing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
[ -x "$top/configure" ] || (cd "$top" && ./bootstrap >/dev/null 2>&1) ||
	(cd "$top" && ./bootstrap)
mkdir -p "$top/$dir"
cd "$top/$dir"
[ -f Makefile ] || "$top/configure" --quiet "$@"
make -s -j"$(nproc)"
