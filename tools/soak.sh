#!/bin/bash
# Soak test of the store's crash safety: sinkd is killed with SIGKILL at
# random moments while several sessions take turns, and after every
# restart each session must hold exactly the turns committed so far and
# go on producing, byte for byte, the replies of an uninterrupted run.
#
#   tools/soak.sh [-m MODEL] [-b BUILDDIR] [-n TURNS] [-s SESSIONS]
#                 [--seed N] [--kill-every N] [-k]
#
# First a reference run plays the whole deterministic script of turns
# with no kills and records every reply, how long the turn took and,
# after every turn, the session's counters and transcript entries.  Then
# the soak run plays the same script on a fresh database while a
# background killer sends SIGKILL at random moments: before about one
# turn in N it is armed with a random delay of up to a little more than
# that turn took in the reference run, so kills land in every session and
# in every part of a turn (the client starting, prefill, the streaming
# reply, the snapshot, the "done" on its way, the gap before the next
# turn) rather than mostly in the slowest session.  After each kill
# sinkd is restarted on the same database, every session is checked
# against the reference (a turn-complete prefix of its transcript, equal
# counters), and the script resumes at the first turn not committed
# (redoing the interrupted one unless its snapshot made it).  Sampling
# draws from the session's stored random state, so a reply equals the
# reference only when the cache, positions, random state and penalty
# history all came back exactly.  Exits 0 only when everything matched,
# sinkd wrote nothing to stderr and sinkd --check-db finds the database
# sound.  Needs bash, coreutils, diffutils, grep and sed; nothing else.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
model=$top/../shared/models/stories260K.gguf
builddir=${SINKD_BUILDDIR:-build}
turns=500
nsess=4
seed=$(( $(date +%s) % 32768 ))
kill_every=4		# 500 turns see 100 kills or more
keep=0
tokens=24
cache=64		# small, so every session evicts on every turn
resident=2		# soak: fewer than the sessions, so they also reload
progress_every=50

usage()
{
	cat <<EOF
usage: tools/soak.sh [options]
  -m, --model FILE     GGUF model (default ../shared/models/stories260K.gguf)
  -b, --builddir DIR   where sinkd and sink are (default \$SINKD_BUILDDIR, else build)
  -n, --turns N        turns in all, over all sessions (default 500)
  -s, --sessions N     sessions (default 4)
      --seed N         seed of the kill timing (default: from the clock)
      --kill-every N   arm the killer before one turn in N on average (default 4)
      --tokens N       tokens per reply (default 24)
      --cache N        cache size of the sessions, tokens (default 64)
      --resident N     sinkd --max-sessions during the soak (default 2)
  -k, --keep           keep the temporary directory
  -h, --help           this help
EOF
}

die()
{
	echo "soak: $*" >&2
	exit 2
}

need_num()
{
	case $2 in
	''|*[!0-9]*) die "$1 takes a whole number, not '$2'" ;;
	esac
}

parse_args()
{
	while [ $# -gt 0 ]; do
		case $1 in
		-m|--model) model=${2:?}; shift ;;
		-b|--builddir) builddir=${2:?}; shift ;;
		-n|--turns) need_num "$1" "${2:-}"; turns=$2; shift ;;
		-s|--sessions) need_num "$1" "${2:-}"; nsess=$2; shift ;;
		--seed) need_num "$1" "${2:-}"; seed=$2; shift ;;
		--kill-every) need_num "$1" "${2:-}"; kill_every=$2; shift ;;
		--tokens) need_num "$1" "${2:-}"; tokens=$2; shift ;;
		--cache) need_num "$1" "${2:-}"; cache=$2; shift ;;
		--resident) need_num "$1" "${2:-}"; resident=$2; shift ;;
		-k|--keep) keep=1 ;;
		-h|--help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
		esac
		shift
	done
	[ "$nsess" -ge 1 ] || die "at least one session"
	[ "$turns" -ge 1 ] || die "at least one turn"
	[ "$kill_every" -ge 1 ] || die "--kill-every takes 1 or more"
	sinkd=$(cd "$builddir" 2>/dev/null && pwd)/sinkd
	sink=$(dirname "$sinkd")/sink
	if [ ! -x "$sinkd" ] || [ ! -x "$sink" ]; then
		die "no sinkd and sink in $builddir"
	fi
	[ -r "$model" ] || die "cannot read the model $model"
}

# --- the script of turns: fixed, so both runs play the same ---------------

phrases=(
	"Once upon a time, there was a little dog."
	"What did the dog do next?"
	"The sun was warm and the sky was blue."
	"Tom found a red ball in the park."
	"Why was the cat sad?"
	"Lily wanted to bake a big cake."
	"Then it started to rain."
	"The bird sang a happy song."
	"Can you tell me about the tree?"
	"Ben and Mia went to the sea."
	"The box was very heavy."
	"Where did the little fish swim?"
	"Mom said it was time for bed."
	"A big bear lived in the woods."
	"They all laughed and played together."
	"The end of the day came."
)

# Session s is named s$s.  Each a different cache and sampling setup (in the array opts),
# so the restore of f32 and f16 caches, of every evicting mode (dense
# never evicts: a small cache fills), of a pinned system prompt and of the
# repeat-penalty history are all exercised.
sess_opts()
{
	case $(( $1 % 4 )) in
	0) opts=(--mode streaming --kv f32 --sinks 4
	    --system "A short story for children.") ;;
	1) opts=(--mode streaming --kv f16 --repeat-penalty 1.3) ;;
	2) opts=(--mode window --kv f32 --top-k 8) ;;
	3) opts=(--mode recompute --kv f16 --repeat-penalty 1.1 --temp 1.0) ;;
	esac
}

# The text of turn $2 of session $1, into text.
turn_text()
{
	text=${phrases[($2 * 7 + $1 * 5) % ${#phrases[@]}]}
}

# Turn i of the whole script goes to session i % nsess, as its turn
# i / nsess: the sessions interleave, so restarts find them all mid-story.
# (Few subshells in the loop: forks between turns widen the gaps that
# kills land in, and slow the run.)

# --- the daemon ------------------------------------------------------------

sk()
{
	"$sink" -S "$sock" "$@"
}

# Starts sinkd on $db and waits until it answers.  A wrapper subshell
# waits for it and keeps its exit status, so that bash does not report
# every kill on stderr; daemon is sinkd's pid, wrapper the subshell's.
daemon_start()
{
	local i=0
	rm -f "$work/daemon.pid" "$work/daemon.status"
	{
		"$sinkd" -m "$model" -t 1 --socket "$sock" --db "$db" \
		    --log "$work/sinkd.log" "$@" &
		echo $! >"$work/daemon.pid"
		wait $!
		echo $? >"$work/daemon.status"
	} 2>>"$work/sinkd.err" &
	wrapper=$!
	until [ -s "$work/daemon.pid" ] && sk status >/dev/null 2>&1; do
		if [ -e "$work/daemon.status" ] || [ $i -ge 500 ]; then
			fail "sinkd did not come up (see $work/sinkd.log)"
		fi
		i=$((i + 1))
		sleep 0.01
	done
	daemon=$(cat "$work/daemon.pid")
}

# Reaps sinkd; $1 is the status it must have ended with.
daemon_reap()
{
	local rc
	wait "$wrapper"
	rc=$(cat "$work/daemon.status")
	wrapper=""
	daemon=""
	[ "$rc" -eq "$1" ] || fail "sinkd ended with status $rc, not $1"
}

daemon_stop()
{
	kill -TERM "$daemon"
	daemon_reap 0
}

# --- the killer ---------------------------------------------------------------
# One background subshell per kill: it sleeps, then takes the "armed" file
# and kills sinkd.  Whoever removes the file first owns the moment: when
# the driver disarms first, no kill comes; when a turn fails while the
# file is still there, the killer has not fired and the failure is real.
# A killer not yet fired stays armed over the next turns: its kill then
# lands later, between turns or in another turn.

# Arms the killer, perhaps, before turn $1.  The delay is drawn from 0 to
# 5/4 of the turn's reference time, a range doubled for every kill since
# the last completed turn: a turn slower in the soak than in the reference
# would otherwise be interrupted forever.
arm()
{
	local range us
	[ -z "$killer" ] || return 0
	[ $((RANDOM % kill_every)) -eq 0 ] || return 0
	range=$(( ref_us[$1] * 5 / 4 << (backoff < 10 ? backoff : 10) ))
	us=$(( (RANDOM << 15 | RANDOM) % (range + 1) ))
	: >"$work/armed"
	echo "$EPOCHREALTIME arm ${us}us before turn $1" >>"$work/kills.log"
	( sleep "$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))"
	  rm "$work/armed" 2>/dev/null && kill -KILL "$daemon" &&
	  echo "$EPOCHREALTIME fired" >>"$work/kills.log" ) &
	killer=$!
}

# 0 when the killer fired (or is about to), 1 when disarmed in time.
disarm()
{
	local disarmed=0
	rm "$work/armed" 2>/dev/null && disarmed=1
	wait "$killer"
	killer=""
	[ $disarmed -eq 0 ]
}

# --- checks ------------------------------------------------------------------

# The number under key $1 in the JSON line $2, into num (-1 when none).
# The first match is the session's: in a text a quote is escaped.
json_num()
{
	num=-1
	if [[ $2 =~ \"$1\":([0-9]+) ]]; then
		num=${BASH_REMATCH[1]}
	fi
}

# The counters and the last $2 transcript entries of session $1, as
# "show" reports them, into line.
show_session()
{
	sk --json show "s$1" --turns "$2" >"$work/show.out" \
	    2>"$work/show.err" ||
	    fail "show s$1 failed: $(cat "$work/show.err")"
	line=$(tail -n 1 "$work/show.out")
}

# The session's counters in show's line $1, into ctr.
counters()
{
	local k
	ctr=""
	for k in turns cached seen evicted; do
		json_num "$k" "$1"
		ctr="$ctr$k=$num "
	done
}

# Checks one session after a restart.  $2 is the turns it must hold; one
# more is allowed when $3 is 1 (its turn was in flight at the kill).  Sets
# got to the turns it holds.
verify_session()
{
	local s=$1 want=$2 inflight=$3 k recent expect from
	show_session "$s" 1000
	case $line in
	*'"problem":""'*'"saved":true'*) ;;
	*) fail "s$s: damaged or unsaved after restart: $line" ;;
	esac
	json_num turns "$line"
	k=$num
	[ $((k % 2)) -eq 0 ] ||
	    fail "s$s: $k transcript entries, half a turn"
	got=$((k / 2))
	if [ $got -ne "$want" ] &&
	    { [ "$inflight" -eq 0 ] || [ $got -ne $((want + 1)) ]; }; then
		fail "s$s: holds $got turns, committed were $want" \
		    "$([ "$inflight" -eq 1 ] && echo "(or $((want + 1)))")"
	fi
	[ $got -gt 0 ] || return 0
	expect=$(sed -n "${got}p" "$ref/$s.counters")
	counters "$line"
	[ "$ctr" = "$expect" ] ||
	    fail "s$s after $got turns: counters $ctr" \
	    "differ from the reference $expect"
	# show gives at most 1000 entries, the last 500 turns.
	from=$(( got > 500 ? got - 499 : 1 ))
	expect=$(sed -n "${from},${got}p" "$ref/$s.entries" | paste -sd,)
	recent=${line#*\"recent\":[}
	recent=${recent%]\}}
	[ "$recent" = "$expect" ] || {
		printf '%s\n' "$expect" | tr '}' '\n' >"$work/expect.txt"
		printf '%s\n' "$recent" | tr '}' '\n' >"$work/got.txt"
		diff "$work/expect.txt" "$work/got.txt" | head -20 >&2
		fail "s$s: transcript differs from the reference"
	}
}

# Every session after a restart; $1 is the session whose turn was in
# flight, or -1.
verify_all()
{
	local s
	for ((s = 0; s < nsess; s++)); do
		verify_session "$s" "${committed[s]}" $(( s == $1 ? 1 : 0 ))
		committed[s]=$got
	done
}

# --- the runs ----------------------------------------------------------------

create_sessions()
{
	local s opts
	for ((s = 0; s < nsess; s++)); do
		sess_opts "$s"
		sk -q new "s$s" "${opts[@]}" --cache "$cache" \
		    --seed $((1000 + s)) >/dev/null 2>"$work/new.err" ||
		    fail "new s$s: $(cat "$work/new.err")"
		committed[s]=0
	done
}

# Plays turn i; the reply goes to $work/out.  Returns sink's status.
play_turn()
{
	local s j
	s=$(( $1 % nsess ))
	j=$(( $1 / nsess ))
	turn_text "$s" "$j"
	sk -q --no-create -s "s$s" -n "$tokens" "$text" >"$work/out" \
	    2>"$work/err"
}

reference_run()
{
	local i s t0 us=0 d
	echo "soak: reference run, $turns turns, no kills" >&2
	db=$work/ref.db
	daemon_start
	create_sessions
	for ((i = 0; i < turns; i++)); do
		s=$(( i % nsess ))
		t0=${EPOCHREALTIME/./}
		play_turn "$i" || fail "reference turn $i: $(cat "$work/err")"
		d=$(( ${EPOCHREALTIME/./} - t0 ))
		ref_us[i]=$d
		us=$(( us + d ))
		grep -q "warning:" "$work/err" && fail "reference: $(cat "$work/err")"
		mv "$work/out" "$ref/$s.$(( i / nsess ))"
		show_session "$s" 2
		counters "$line"
		echo "$ctr" >>"$ref/$s.counters"
		line=${line#*\"recent\":[}
		printf '%s\n' "${line%]\}}" >>"$ref/$s.entries"
	done
	daemon_stop
	turn_ms=$(( us / turns / 1000 ))
}

# A turn failed and the killer had fired: reap sinkd, restart it, check
# every session and tell what the kill interrupted.
after_kill()
{
	local i=$1 rc=$2 s j size what
	s=$(( i % nsess ))
	j=$(( i / nsess ))
	daemon_reap 137
	backoff=$((backoff + 1))
	[ $backoff -le $max_backoff ] || max_backoff=$backoff
	size=$(stat -c %s "$work/out")
	# What arrived must be the start of the reference reply.
	cmp -s -n "$size" "$work/out" "$ref/$s.$j" ||
	    mismatch "$s" "$j" "interrupted reply is not a prefix"
	daemon_start --max-sessions "$resident"
	if [ "$rc" -eq 3 ]; then
		what=between	# no daemon answered: no request went out
		verify_all -1
	else
		verify_all "$s"
		if [ "${committed[s]}" -gt "$j" ]; then
			what=unacked
		elif [ "$size" -eq 0 ]; then
			what=before
		elif [ "$size" -lt "$(stat -c %s "$ref/$s.$j")" ]; then
			what=mid
		else
			what=unsaved
		fi
		sess_kills[s]=$(( ${sess_kills[s]:-0} + 1 ))
	fi
	kinds[$what]=$(( ${kinds[$what]:-0} + 1 ))
	kills=$((kills + 1))
	echo "$EPOCHREALTIME kill $kills: $what, turn $j of s$s," \
	    "sink status $rc, $size bytes of the reply" >>"$work/kills.log"
}

mismatch()
{
	local s=$1 j=$2
	{
		echo "soak: MISMATCH in s$s, turn $j: $3"
		turn_text "$s" "$j"
		echo "  text:     $text"
		printf '  expected: %q\n' "$(cat "$ref/$s.$j")"
		printf '  got:      %q\n' "$(cat "$work/out")"
	} >&2
	fail "mismatch"
}

soak_run()
{
	local i=0 rc s j
	echo "soak: soak run, $turns turns, kill seed $seed," \
	    "a kill before 1 turn in $kill_every, mean turn $turn_ms ms," \
	    "--max-sessions $resident" >&2
	db=$work/soak.db
	RANDOM=$seed
	kills=0 played=0 backoff=0 max_backoff=0
	kinds=() sess_kills=()
	daemon_start --max-sessions "$resident"
	create_sessions
	while [ $i -lt "$turns" ]; do
		s=$(( i % nsess ))
		j=$(( i / nsess ))
		if [ "${committed[s]}" -gt "$j" ]; then
			i=$((i + 1))	# committed, though the client never heard
			continue
		fi
		arm "$i"
		play_turn "$i"
		rc=$?
		played=$((played + 1))
		if [ $rc -eq 0 ]; then
			# A warning (say, "not saved") voids the commit.
			if [ -s "$work/err" ] && grep -q "warning:" "$work/err"
			then
				fail "s$s turn $j: $(cat "$work/err")"
			fi
			cmp -s "$work/out" "$ref/$s.$j" ||
			    mismatch "$s" "$j" "reply differs"
			committed[s]=$((j + 1))
			i=$((i + 1))
			backoff=0
			[ $((i % progress_every)) -ne 0 ] ||
			    echo "soak: $i/$turns turns, $kills kills" >&2
		elif [ -e "$work/armed" ]; then
			fail "turn $j of s$s failed (status $rc)" \
			    "with no kill: $(cat "$work/err")"
		else
			wait "$killer"
			killer=""
			after_kill "$i" "$rc"
		fi
	done
	# The last kill may land now; either way end on a restart and check.
	if [ -n "$killer" ] && disarm; then
		daemon_reap 137
		kills=$((kills + 1))
		kinds[between]=$(( ${kinds[between]:-0} + 1 ))
	else
		daemon_stop
	fi
	daemon_start --max-sessions "$resident"
	verify_all -1
	for ((s = 0; s < nsess; s++)); do
		[ "${committed[s]}" -eq $(( (turns - s + nsess - 1) / nsess )) ] ||
		    fail "s$s ended with ${committed[s]} turns"
	done
	daemon_stop
}

# sinkd logs to its --log, so anything else on its stderr (a sanitizer's
# report, say) is a failure; bash's own "Killed" notes are expected.
check_stderr()
{
	if grep -Ev '^[^ ]*: line [0-9]+: +[0-9]+ Killed ' "$work/sinkd.err" \
	    >"$work/stderr.txt"; then
		head -40 "$work/stderr.txt" >&2
		fail "sinkd wrote to stderr (see $work/sinkd.err)"
	fi
	grep -E '^[^[]*\[(warn|error)\]' "$work/sinkd.log" >"$work/warn.txt"
}

check_db()
{
	"$sinkd" --check-db --db "$db" -m "$model" >"$work/check.out" 2>&1 || {
		cat "$work/check.out" >&2
		fail "sinkd --check-db found problems"
	}
	tail -1 "$work/check.out" >&2
}

report()
{
	local s per=""
	for ((s = 0; s < nsess; s++)); do
		per="$per s$s ${sess_kills[s]:-0}"
	done
	cat >&2 <<EOF
soak: PASS: $turns turns ($played played, the rest redone) in $nsess sessions, $SECONDS s
soak: $kills kills: ${kinds[between]:-0} between turns (no daemon answered),
      ${kinds[before]:-0} mid-turn before any reply text, ${kinds[mid]:-0} mid-reply,
      ${kinds[unsaved]:-0} after the whole reply but before it was committed,
      ${kinds[unacked]:-0} after the commit but before the client heard done
soak: kills in a turn, by session:$per; at most $max_backoff kills between two completed turns
soak: $(grep -c "" "$work/warn.txt") warnings or errors in sinkd's log$([ -s "$work/warn.txt" ] &&
    echo ":" && head -5 "$work/warn.txt")
soak: every reply, transcript and counter matched the reference
EOF
}

# --- setup and teardown ------------------------------------------------------

declare -A kinds	# what the kills interrupted: kind -> count
daemon=""
wrapper=""
killer=""
status=1

fail()
{
	echo "soak: FAIL: $*" >&2
	keep=1
	exit 1
}

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup()
{
	[ -z "$killer" ] || { kill "$killer"; wait "$killer"; } 2>/dev/null
	[ -z "$daemon" ] || kill -KILL "$daemon" 2>/dev/null
	[ -z "$wrapper" ] || wait "$wrapper" 2>/dev/null
	if [ "$keep" -eq 1 ]; then
		echo "soak: kept $work" >&2
	else
		rm -rf "$work"
	fi
}

main()
{
	parse_args "$@"
	work=$(mktemp -d "${TMPDIR:-/tmp}/sinkd-soak.XXXXXX") || exit 2
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	sock=$work/sock
	ref=$work/ref
	mkdir "$ref"
	SECONDS=0
	reference_run
	soak_run
	check_stderr
	check_db
	report
	status=0
}

main "$@"
exit $status
