#!/bin/sh
# Builds the Debian package from a clean clone of the committed tree (HEAD;
# changes not committed are not in it) and checks it: dpkg-buildpackage
# -us -uc -b, lintian (an error fails; warnings are shown), then the
# package's contents and its programs, run from the unpacked .deb (nothing
# is installed).  The .deb, .changes and .buildinfo land in OUTDIR
# (default build-deb/).  make check is skipped (DEB_BUILD_OPTIONS=nocheck;
# tools/test-all.sh runs it elsewhere) unless --check is given; its tests
# find their data in $SINKD_SHARED, default ../shared beside this tree.
#   tools/deb.sh [--check] [OUTDIR]
# Needs dpkg-dev, debhelper, fakeroot, lintian and the build dependencies:
# tools/setup-debian.sh --test installs them.  Prints "deb: PASS" or
# "deb: FAIL: why"; exits 0 only on PASS.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
opts="nocheck"
if [ "${1:-}" = "--check" ]; then
	opts=""
	shift
fi
out=${1:-$top/build-deb}
tmp=$(mktemp -d /tmp/sinkd-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "deb: FAIL: $1"
	exit 1
}

[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] ||
	echo "deb: note: changes not committed are not in the package" >&2
git clone -q "$top" "$tmp/sinkd" &&
	git -C "$tmp/sinkd" checkout -q "$(git -C "$top" rev-parse HEAD)" ||
	fail "git clone of $top"
echo "=== deb: dpkg-buildpackage -us -uc -b" >&2
(cd "$tmp/sinkd" && DEB_BUILD_OPTIONS="$opts parallel=2" \
    SINKD_SHARED=${SINKD_SHARED:-$top/../shared} \
    dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1 || {
	tail -40 "$tmp/build.log"
	fail "dpkg-buildpackage (the log's end is above)"
}
[ -n "$opts" ] || grep -E '^(# (TOTAL|PASS|SKIP|FAIL|ERROR):|SKIP: )' \
    "$tmp/build.log"
deb=$(ls "$tmp"/sinkd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no .deb made"

echo "=== deb: lintian" >&2
lintian --fail-on error "$tmp"/sinkd_*.changes >"$tmp/lintian.log" 2>&1
lrc=$?
cat "$tmp/lintian.log"
echo "lintian: $(grep -c '^E:' "$tmp/lintian.log") errors, $(grep -c '^W:' \
    "$tmp/lintian.log") warnings"
[ $lrc -eq 0 ] || fail "lintian reports errors"

# What the package holds, and its programs at work.
echo "=== deb: contents" >&2
dpkg-deb -x "$deb" "$tmp/root" || fail "dpkg-deb -x"
for f in usr/bin/sinkd usr/bin/sink usr/bin/sinkd-run usr/bin/sinkd-mkmodel \
    usr/bin/sinkd-bench etc/sinkd/sinkd.conf \
    usr/lib/systemd/user/sinkd.service usr/lib/systemd/user/sinkd.socket \
    lib/systemd/system/sinkd.service lib/systemd/system/sinkd.socket \
    usr/lib/sysusers.d/sinkd.conf usr/share/man/man8/sinkd.8.gz \
    usr/share/man/man5/sinkd.conf.5.gz usr/share/man/man1/sink.1.gz; do
	[ -f "$tmp/root/$f" ] || fail "the package lacks /$f"
done
dpkg-deb -I "$deb" postinst 2>/dev/null | grep -q 'systemd-sysusers' ||
	fail "the postinst does not create the user sinkd (systemd-sysusers)"
dpkg-deb -I "$deb" conffiles 2>/dev/null | grep -qx /etc/sinkd/sinkd.conf ||
	fail "/etc/sinkd/sinkd.conf is not a conffile"
b=$tmp/root/usr/bin
"$b/sinkd" --version >/dev/null && "$b/sink" --help >/dev/null ||
	fail "sinkd --version or sink --help"
"$b/sinkd-mkmodel" -o "$tmp/tiny.gguf" --shape tiny --type Q8_0 --seed 1 \
    2>/dev/null || fail "sinkd-mkmodel"
XDG_STATE_HOME=$tmp/state "$b/sinkd" -n -c "$tmp/root/etc/sinkd/sinkd.conf" \
    -m "$tmp/tiny.gguf" --socket "$tmp/sock" >/dev/null ||
	fail "sinkd -n with the packaged /etc/sinkd/sinkd.conf"

mkdir -p "$out" && cp "$deb" "$tmp"/sinkd_*.changes "$tmp"/sinkd_*.buildinfo \
    "$out/" || fail "copy to $out"
echo "deb: PASS: $out/$(basename "$deb")"
