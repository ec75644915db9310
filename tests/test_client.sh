#!/bin/sh
# test_client: the command line of sink, the client: its usage against
# the SYNOPSIS of sink(1), one clear error (never a crash or a hang) for
# each kind of bad usage, and the message when no daemon runs.  The
# checks against a running sinkd are in the marked section at the end.
# Prints "N passed, N failed".
set -u
bin=${SINKD_BUILDDIR:-.}
src=${SINKD_SRCDIR:-$(dirname "$0")/..}
sink="$bin/sink"
tmp=$(mktemp -d /tmp/sinkd-test-client-XXXXXX)
# sinkd keeps its database under here, not in the real home.
export XDG_STATE_HOME="$tmp/state"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

if [ ! -x "$sink" ]; then
	echo "FAIL: $sink not built (set SINKD_BUILDDIR)"
	exit 1
fi

# No daemon anywhere these checks look.
SINKD_SOCKET=$tmp/none/sock
export SINKD_SOCKET

# expect NAME RC PATTERN CMD...: exits RC (no signal, no hang), and
# stderr is one line holding PATTERN.  Stdin is empty, not a terminal.
expect() {
	name=$1 want=$2 pattern=$3
	shift 3
	timeout 20 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	if [ $rc -ne "$want" ]; then
		bad "$name: exit $rc, not $want (stderr: $(head -c 300 "$tmp/err"))"
	elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
		bad "$name: stderr is not one line: $(head -c 300 "$tmp/err")"
	elif ! grep -q -- "$pattern" "$tmp/err"; then
		bad "$name: stderr lacks '$pattern': $(head -c 300 "$tmp/err")"
	else
		ok "$name"
	fi
}

# --help: exit 0, and its "sink ..." lines are the SYNOPSIS of sink(1).
if "$sink" --help >"$tmp/help" 2>"$tmp/err"; then
	ok "--help exits 0"
else
	bad "--help: $(cat "$tmp/err")"
fi
sed -n 's/^usage: //; s/^ *//; /^sink /p' "$tmp/help" >"$tmp/usage"
if [ "$(wc -l <"$tmp/usage")" -ge 11 ]; then
	ok "--help lists the subcommands"
else
	bad "--help lists $(wc -l <"$tmp/usage") command lines"
fi
for cmd in chat complete feed new ls show rm reset cancel status; do
	if ! grep -q "^sink \[options\] $cmd" "$tmp/usage"; then
		bad "--help lacks sink $cmd"
	fi
done
if command -v man >/dev/null 2>&1 &&
    LC_ALL=C MANWIDTH=250 man -l "$src/man/sink.1" >"$tmp/man" 2>/dev/null
then
	sed -n '/^SYNOPSIS/,/^[A-Z]/{ s/^ *//; /^sink /p; }' "$tmp/man" \
	    >"$tmp/synopsis"
	if diff "$tmp/usage" "$tmp/synopsis" >"$tmp/diff"; then
		ok "--help matches the SYNOPSIS of sink(1)"
	else
		bad "--help and sink(1) differ: $(cat "$tmp/diff")"
	fi
else
	echo "SKIP: man(1) cannot render $src/man/sink.1; SYNOPSIS not compared"
fi
if "$sink" --version | grep -q "^sink .*protocol 1\."; then
	ok "--version"
else
	bad "--version: $("$sink" --version 2>&1)"
fi

# No daemon: one line naming the socket and how to start sinkd, exit 3.
hint="cannot connect to sinkd at $tmp/none/sock: No such file or directory (is sinkd running? start it with: sinkd -m MODEL)"
expect "no daemon: a chat turn" 3 "$hint" "$sink" hello there
expect "no daemon: ls" 3 "$hint" "$sink" ls
expect "no daemon: status" 3 "$hint" "$sink" status
expect "no daemon: show" 3 "$hint" "$sink" show x
expect "no daemon: new" 3 "$hint" "$sink" new x --cache 64
expect "no daemon: rm" 3 "$hint" "$sink" rm x
expect "no daemon: reset" 3 "$hint" "$sink" reset
expect "no daemon: cancel" 3 "$hint" "$sink" cancel -s x
expect "no daemon: chat" 3 "$hint" "$sink" chat
printf 'some context\n' >"$tmp/ctx"
expect "no daemon: feed" 3 "$hint" sh -c "'$sink' feed -s x <'$tmp/ctx'"
expect "no daemon: -S wins over SINKD_SOCKET" 3 \
    "cannot connect to sinkd at $tmp/other: " "$sink" -S "$tmp/other" ls
: >"$tmp/notasocket"
expect "not a socket" 3 "$tmp/notasocket: Connection refused (is sinkd" \
    "$sink" -S "$tmp/notasocket" ls
expect "default socket under XDG_RUNTIME_DIR" 3 \
    "at $tmp/xdg/sinkd/sock: " \
    env -u SINKD_SOCKET XDG_RUNTIME_DIR="$tmp/xdg" "$sink" ls
expect "default socket without XDG_RUNTIME_DIR" 3 \
    "at /tmp/sinkd-$(id -u)/sock: " \
    env -u SINKD_SOCKET -u XDG_RUNTIME_DIR "$sink" ls

# Input problems found before connecting.
expect "nothing to send" 1 "nothing to send" "$sink"
head -c 100 /dev/zero | tr '\0' 'a' >"$tmp/100"
expect "stdin over --max-input" 1 "more than 10 bytes" \
    sh -c "'$sink' --max-input 10 hi <'$tmp/100'"
expect "feed of nothing" 1 "nothing to feed" "$sink" feed -s x

# Bad usage: exit 2, one line.
expect "unknown option" 2 "unknown option --bogus" "$sink" --bogus ls
expect "unknown short option" 2 "unknown option -x" "$sink" -x ls
expect "missing value" 2 "--session needs a value" "$sink" ls -s
expect "option of another subcommand" 2 "--temp does not apply to sink ls" \
    "$sink" ls --temp 0
expect "create option on a turn" 2 "--cache does not apply to sink TEXT" \
    "$sink" --cache 64 hi
expect "bad session name" 2 "'a b' is not a session name" \
    "$sink" -s "a b" hi
expect "dot session name" 2 "'.x' is not a session name" "$sink" new .x
expect "long session name" 2 "is not a session name" \
    "$sink" new "$(printf '%070d' 0)"
expect "new without a name" 2 "sink new needs a session name" "$sink" new
expect "rm without a name" 2 "sink rm needs a session name" "$sink" rm
expect "extra argument" 2 "too many arguments for sink ls" "$sink" ls x
expect "bad -n" 2 "-n takes a whole number" "$sink" -n 0 hi
expect "bad --temp" 2 "--temp takes a number" "$sink" --temp -1 hi
expect "NaN --temp" 2 "--temp takes a number" "$sink" --temp nan hi
expect "bad --top-p" 2 "--top-p takes a number from 0 to 1" \
    "$sink" --top-p 1.5 hi
expect "bad --seed" 2 "--seed takes a whole number" "$sink" --seed x hi
expect "bad --mode" 2 "unknown --mode 'fast'" "$sink" new x --mode fast
expect "bad --kv" 2 "unknown --kv 'q8'" "$sink" new x --kv q8
expect "bad --max-input" 2 "--max-input takes a size" \
    "$sink" --max-input 0 hi
expect "empty --stop" 2 "--stop takes a non-empty" "$sink" --stop "" hi

# ---------------------------------------------------------------------
# Against a real sinkd on a private socket, with a synthetic model.
# ---------------------------------------------------------------------
if "$bin/sinkd-mkmodel" -o "$tmp/m.gguf" --shape tiny --type Q8_0 --seed 4 \
    2>/dev/null; then
	SINKD_SOCKET=$tmp/d/sock
	"$bin/sinkd" -m "$tmp/m.gguf" -t 1 2>"$tmp/sinkd.log" &
	dpid=$!
	i=0
	while [ $i -lt 100 ] && ! "$sink" status >/dev/null 2>&1; do
		sleep 0.1
		i=$((i + 1))
	done
	out=$("$sink" -s t -n 12 --temp 0 "hello there" 2>"$tmp/err")
	[ $? -eq 0 ] && [ -n "$out" ] && ok "a turn streams a reply" ||
		bad "turn: $(head -c 300 "$tmp/err")"
	"$sink" ls 2>/dev/null | grep -q '^t ' && ok "ls lists the session" ||
		bad "ls: $("$sink" ls 2>&1 | head -c 300)"
	printf 'line one\nline two\n' | "$sink" -s r -n 4 "summarize" \
	    >/dev/null 2>"$tmp/err"
	"$sink" show r 2>/dev/null >"$tmp/show"
	grep -q "summarize" "$tmp/show" && grep -q "line one" "$tmp/show" &&
	    ok "instruction plus piped context in one turn" ||
	    bad "piped turn: $(head -c 300 "$tmp/show")"
	echo "some context" | "$sink" feed -s t >"$tmp/out" 2>&1 &&
	    grep -q "fed" "$tmp/out" && ok "feed" ||
	    bad "feed: $(head -c 300 "$tmp/out")"
	"$sink" new x --cache 64 --sinks 2 --system "Be brief." >/dev/null \
	    2>"$tmp/err" && ok "new with options" ||
	    bad "new: $(head -c 300 "$tmp/err")"
	expect "new twice" 1 "exists" "$sink" new x
	expect "bad cache" 1 "do not fit" "$sink" new y --cache 4 --sinks 4
	"$sink" rm x >/dev/null 2>&1 && ok "rm" || bad "rm"
	expect "show removed" 1 "no_such_session" "$sink" show x
	"$sink" reset t >/dev/null 2>&1 && ok "reset" || bad "reset"
	"$sink" --json status 2>/dev/null | grep -q '"sessions"' &&
	    ok "--json status" || bad "--json status"
	expect "cancel idle" 1 "" "$sink" cancel -s t
	kill -TERM $dpid
	wait $dpid && ok "sinkd stops on SIGTERM" || bad "sinkd exit status"
	expect "daemon gone" 3 "cannot connect" "$sink" ls
else
	bad "sinkd-mkmodel failed: no daemon-backed checks"
fi

echo "client: $pass passed, $fail failed"
[ $fail -eq 0 ]
