#!/bin/sh
# Checks the systemd units as `make install` installs them:
# systemd-analyze verify on each (ExecStart pointed at the installed
# binary under a temporary DESTDIR), systemd-analyze security --offline
# on the system-wide service (exposure at most 1.5, as sinkd(8) promises),
# and systemd-sysusers applying the sysusers.d entry to an empty root.
#   tools/check-units.sh [BUILDDIR]     (default build/, already built)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/${1:-build}
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-units: FAIL: no systemd-analyze (tools/setup-debian.sh --test installs systemd)" >&2
	exit 1
fi
tmp=$(mktemp -d /tmp/sinkd-units-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "check-units: FAIL: $*"; status=1; }

make -s -C "$build" install DESTDIR="$tmp/dest" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "make install"; exit 1; }
sinkd=$(find "$tmp/dest" -type f -name sinkd -path '*/bin/*' | head -1)
units=$(find "$tmp/dest" -type d -path '*/lib/systemd' | head -1)
[ -n "$sinkd" ] && [ -n "$units" ] ||
	{ fail "make install put no sinkd or no units under $tmp/dest"; exit 1; }

for kind in system user; do
	dir=$units/$kind
	for u in sinkd.service sinkd.socket; do
		[ -f "$dir/$u" ] || fail "$kind/$u not installed"
	done
	mkdir -p "$tmp/$kind"
	for f in "$dir"/*; do
		# The installed file, but run from where it was installed to.
		sed "s|^ExecStart=[^ ]*/sinkd|ExecStart=$sinkd|" "$f" \
		    >"$tmp/$kind/$(basename "$f")"
	done
	# A user manager needs a runtime directory; CI has no session.
	mkdir -p -m 0700 "$tmp/xdg"
	if [ $kind = user ]; then scope=--user; else scope=--system; fi
	if XDG_RUNTIME_DIR=$tmp/xdg systemd-analyze $scope verify --man=no "$tmp/$kind/sinkd.service" \
	    "$tmp/$kind/sinkd.socket" >"$tmp/verify.log" 2>&1 &&
	    ! grep -q . "$tmp/verify.log"; then
		echo "check-units: ok: systemd-analyze verify $kind units"
	else
		fail "systemd-analyze verify $kind units: $(cat "$tmp/verify.log")"
	fi
done

# --threshold is in tenths: 15 means an exposure of at most 1.5.
if systemd-analyze security --offline=yes --threshold=15 \
    "$tmp/system/sinkd.service" >"$tmp/sec.log" 2>&1; then
	echo "check-units: ok: $(grep 'Overall exposure' "$tmp/sec.log")"
else
	grep -E '✗|Overall' "$tmp/sec.log"
	fail "systemd-analyze security: exposure over 1.5"
fi
# The filter must let setpriority through (the one resource call it
# allows): the store thread lowers its own priority (--store-nice) with it.
res=$(grep 'SystemCallFilter=~@resources' "$tmp/sec.log")
case $res in
*"setpriority is allowed"*)
	echo "check-units: ok: the system unit lets setpriority through" ;;
*)	fail "the system unit's filter: --store-nice needs setpriority: $res" ;;
esac
echo "check-units: user unit, for the record: $(systemd-analyze security \
    --offline=yes "$tmp/user/sinkd.service" 2>&1 | grep 'Overall exposure')"

sysusers=$(dirname "$units")/sysusers.d/sinkd.conf
mkdir -p "$tmp/root/etc"
if systemd-sysusers --root="$tmp/root" "$sysusers" >"$tmp/su.log" 2>&1 &&
    grep -q '^sinkd:' "$tmp/root/etc/passwd" &&
    grep -q '^sinkd:' "$tmp/root/etc/group"; then
	echo "check-units: ok: sysusers.d entry makes user and group sinkd"
else
	fail "systemd-sysusers: $(cat "$tmp/su.log")"
fi
# Socket activation by systemd's own code: systemd-socket-activate passes
# the socket as sinkd.socket would; sink must be answered on it.
if command -v systemd-socket-activate >/dev/null 2>&1; then
	"$build/sinkd-mkmodel" -o "$tmp/tiny.gguf" --shape tiny --seed 1 \
	    >/dev/null 2>&1 || fail "sinkd-mkmodel"
	mkdir -m 0700 "$tmp/run"
	systemd-socket-activate -l "$tmp/run/sock" "$sinkd" -c /dev/null \
	    -m "$tmp/tiny.gguf" --db :memory: --socket "$tmp/run/ignored" \
	    >"$tmp/act.log" 2>&1 &
	act=$!
	i=0
	until [ -S "$tmp/run/sock" ] || [ $i -ge 50 ]; do
		i=$((i + 1)); sleep 0.1
	done
	if "$build/sink" --socket "$tmp/run/sock" status >"$tmp/st.log" 2>&1 &&
	    grep -q 'listening on the socket systemd passed' "$tmp/act.log"
	then
		echo "check-units: ok: sinkd started by systemd-socket-activate"
	else
		fail "socket activation: $(cat "$tmp/st.log" "$tmp/act.log")"
	fi
	kill -TERM $act 2>/dev/null
	wait $act 2>/dev/null
fi
[ $status -eq 0 ] && echo "check-units: all passed"
exit $status
