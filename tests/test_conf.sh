#!/bin/sh
# test_conf: the example settings file etc/sinkd.conf (what `make install`
# puts in $(sysconfdir)/sinkd) against sinkd's one table of settings in
# daemon/conf.c: every key of the table is in the example and in
# sinkd.conf(5); `sinkd -n` takes the example as shipped and with every
# setting uncommented (so a stale key or a bad value fails here); and a
# bad mode or kv type in a file is refused.  Prints "N passed, N failed".
set -u
bin=${SINKD_BUILDDIR:-.}
src=${SINKD_SRCDIR:-$(dirname "$0")/..}
example=$src/etc/sinkd.conf
sd=$bin/sinkd
tmp=$(mktemp -d /tmp/sinkd-test-conf-XXXXXX)
export XDG_STATE_HOME="$tmp/state" XDG_CONFIG_HOME="$tmp/config"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

# check NAME CONFIG: sinkd -n accepts CONFIG; the paths that -n opens or
# looks up (model, log, group) are given on the command line, which wins.
check() {
	if "$sd" -n -c "$2" -m "$tmp/tiny.gguf" --socket "$tmp/sock" \
	    --log "$tmp/log" --group "$(id -gn)" >"$tmp/out" 2>"$tmp/err"; then
		ok "$1"
	else
		bad "$1: $(head -c 300 "$tmp/err") $(head -c 300 "$tmp/log")"
	fi
}

# refused NAME PATTERN CONFIG: sinkd -n exits 2 naming the problem.
refused() {
	"$sd" -n -c "$3" -m "$tmp/tiny.gguf" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -eq 2 ] && grep -q -- "$2" "$tmp/err"; then
		ok "$1"
	else
		bad "$1: exit $rc: $(head -c 300 "$tmp/err")"
	fi
}

if ! "$bin/sinkd-mkmodel" -o "$tmp/tiny.gguf" --shape tiny --type Q8_0 \
    --seed 1 2>"$tmp/err"; then
	echo "FAIL: sinkd-mkmodel: $(cat "$tmp/err")"
	exit 1
fi

# The table's keys: the names of the entries of conf_opts[].
keys=$(sed -n '/conf_opts\[\] = {/,/^};/s/^[[:space:]]*{ "\([a-z-]*\)",.*/\1/p' \
    "$src/daemon/conf.c")
n=$(echo "$keys" | grep -c .)
[ "$n" -ge 20 ] && ok "conf.c's table has $n keys" ||
	bad "only $n keys read from daemon/conf.c: '$keys'"
missing= unmanned=
for k in $keys; do
	[ "$(grep -c "^#$k = " "$example")" -eq 1 ] || missing="$missing $k"
	grep -Eq "^\.BR? $k( |\$)" "$src/man/sinkd.conf.5" ||
		unmanned="$unmanned $k"
done
[ -z "$missing" ] && ok "every key once in the example" ||
	bad "not once in etc/sinkd.conf:$missing"
[ -z "$unmanned" ] && ok "every key in sinkd.conf(5)" ||
	bad "not in man/sinkd.conf.5:$unmanned"

# The example as shipped, then with every setting uncommented.
check "the example as shipped" "$example"
sed -n 's/^#\([a-z][a-z-]* = \)/\1/p' "$example" >"$tmp/all.conf"
[ "$(grep -c . "$tmp/all.conf")" -eq "$n" ] &&
	ok "$n settings in the example" ||
	bad "$(grep -c . "$tmp/all.conf") settings in the example, $n keys"
check "the example, every setting uncommented" "$tmp/all.conf"

# What would make the check above fail.
{ cat "$tmp/all.conf"; echo "max-sesions = 3"; } >"$tmp/typo.conf"
refused "an unknown key" "typo.conf:$((n + 1)): unknown setting 'max-sesions'" \
    "$tmp/typo.conf"
sed 's/^mode = .*/mode = fast/' "$tmp/all.conf" >"$tmp/mode.conf"
refused "a bad mode" "'fast' is not a cache mode" "$tmp/mode.conf"
sed 's/^kv = .*/kv = q8/' "$tmp/all.conf" >"$tmp/kv.conf"
refused "a bad kv type" "'q8' is not a KV type" "$tmp/kv.conf"
sed 's/^max-frame = .*/max-frame = 1M/' "$tmp/all.conf" >"$tmp/frame.conf"
refused "a size where a number goes" "'1M' is not a whole number" \
    "$tmp/frame.conf"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
