#!/bin/sh
# test_tools: the command-line interfaces of sinkd-run and sinkd-mkmodel:
# their outputs, and one clear error (never a crash or a hang) for every
# kind of bad input.  Prints "N passed, N failed".
set -u
bin=${SINKD_BUILDDIR:-.}
shared=${SINKD_SHARED:-../shared}
stories=$shared/models/stories260K.gguf
tmp=$(mktemp -d /tmp/sinkd-test-tools-XXXXXX)
# sinkd keeps its database under here, not in the real home.
export XDG_STATE_HOME="$tmp/state"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

# expect_error NAME PATTERN CMD...: exits 1 or 2 (no signal, no hang) and
# stderr holds PATTERN on a single line.
expect_error() {
	name=$1 pattern=$2
	shift 2
	timeout 60 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then
		bad "$name: exit $rc (stderr: $(head -c 300 "$tmp/err"))"
	elif ! grep -q -- "$pattern" "$tmp/err"; then
		bad "$name: stderr lacks '$pattern': $(head -c 300 "$tmp/err")"
	else
		ok "$name"
	fi
}

run="$bin/sinkd-run"
mk="$bin/sinkd-mkmodel"

# A synthetic model needs no shared data.
if "$mk" -o "$tmp/tiny.gguf" --shape tiny --type Q8_0 --seed 3 2>"$tmp/err"
then ok "mkmodel writes a model"; else bad "mkmodel: $(cat "$tmp/err")"; fi
"$mk" -o "$tmp/tiny2.gguf" --shape tiny --type Q8_0 --seed 3 2>/dev/null
if cmp -s "$tmp/tiny.gguf" "$tmp/tiny2.gguf"; then ok "mkmodel is deterministic"
else bad "mkmodel: same seed, different files"; fi
out=$("$run" -m "$tmp/tiny.gguf" -p "a b c" -n 8 --temp 0 -q --ignore-eos)
if [ -n "$out" ]; then ok "generates from a synthetic model"
else bad "no output from a synthetic model"; fi

expect_error "missing model" "No such file" "$run" -m "$tmp/none.gguf" -p hi
expect_error "directory as model" "$tmp" "$run" -m "$tmp" -p hi
printf 'hello, not a model at all\n' >"$tmp/text.gguf"
expect_error "not a GGUF" "GGUF" "$run" -m "$tmp/text.gguf" -p hi
head -c 5000 "$tmp/tiny.gguf" >"$tmp/trunc.gguf"
expect_error "truncated model" "trunc.gguf" "$run" -m "$tmp/trunc.gguf" -p hi
: >"$tmp/empty.gguf"
expect_error "empty file" "empty.gguf" "$run" -m "$tmp/empty.gguf" -p hi
expect_error "empty prompt" "empty prompt" "$run" -m "$tmp/tiny.gguf" -p ""
expect_error "prompt past a dense cache" "dense cache holds" \
	"$run" -m "$tmp/tiny.gguf" --mode dense --cache 8 -p "a b c d e f g h i j"
expect_error "unknown mode" "unknown --mode 'fast'" \
	"$run" -m "$tmp/tiny.gguf" --mode fast -p hi
expect_error "cache smaller than sinks + 1" "do not fit a cache of 4" \
	"$run" -m "$tmp/tiny.gguf" --cache 4 --sinks 4 -p hi
expect_error "more sinks than cache" "9 sinks do not fit a cache of 8" \
	"$run" -m "$tmp/tiny.gguf" --cache 8 --sinks 9 -p hi
expect_error "pinned prefix too long" "pinned prefix of 16 tokens" \
	"$run" -m "$tmp/tiny.gguf" --cache 16 --pin 16 -p hi
expect_error "window mode with sinks" "window mode keeps no sinks" \
	"$run" -m "$tmp/tiny.gguf" --mode window --sinks 2 -p hi
expect_error "unknown kv type" "unknown --kv 'q8'" \
	"$run" -m "$tmp/tiny.gguf" --kv q8 -p hi
expect_error "zero cache" "--cache" "$run" -m "$tmp/tiny.gguf" --cache 0 -p hi
# A stream far past the cache in every evicting mode, and the cache report.
for mode in streaming window recompute; do
	if "$run" -m "$tmp/tiny.gguf" --mode $mode --cache 12 -n 40 --temp 0 \
	    --ignore-eos -p "a b c d e f g h i j k l m n o p" \
	    >"$tmp/out" 2>"$tmp/err" &&
	    grep -q "cache: $mode, 12 tokens" "$tmp/err" &&
	    grep -q "evicted" "$tmp/err"; then
		ok "--mode $mode streams past its cache"
	else
		bad "--mode $mode: $(head -c 300 "$tmp/err")"
	fi
done
expect_error "bad -n" "not a whole number" "$run" -m "$tmp/tiny.gguf" -n x
expect_error "bad --temp" "outside" "$run" -m "$tmp/tiny.gguf" --temp -1
expect_error "missing prompt file" "No such file" \
	"$run" -m "$tmp/tiny.gguf" -f "$tmp/nothing.txt"
expect_error "endless prompt file" "larger than" \
	"$run" -m "$tmp/tiny.gguf" -f /dev/zero
expect_error "stray argument" "unexpected argument" "$run" -m "$tmp/tiny.gguf" hi
expect_error "bad token id" "not a token id" sh -c \
	"echo 1 2 99999 | '$run' -m '$tmp/tiny.gguf' --detokenize"
expect_error "mkmodel without -o" "-o" "$mk" --shape tiny
expect_error "mkmodel bad type" "Q9_9" "$mk" -o "$tmp/x.gguf" --type Q9_9
expect_error "mkmodel bad shape" "unknown shape" "$mk" -o "$tmp/x.gguf" --shape huge
expect_error "mkmodel type it cannot compute, with the list" \
	"IQ2_XS is not supported (F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0" \
	"$mk" -o "$tmp/x.gguf" --type IQ2_XS
help=$("$mk" --help)
for t in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS; do
	case "|$(echo "$help" | grep -A1 -e "--type T" | tail -1 | tr -d ' ')|" in
	*"|$t|"*) ;;
	*) bad "mkmodel --help lacks $t"; help=; break ;;
	esac
done
[ -n "$help" ] && ok "mkmodel --help lists the types"
# Every computed type writes a model sinkd-run generates from.
for t in Q4_1 Q5_0 Q5_1 IQ4_NL IQ4_XS; do
	if "$mk" -o "$tmp/$t.gguf" --shape tiny --n-embd 256 --n-head-kv 4 \
	    --n-ff 256 --type "$t" 2>"$tmp/err" &&
	    [ -n "$("$run" -m "$tmp/$t.gguf" -p "a b" -n 4 --temp 0 -q \
	    --ignore-eos)" ]
	then ok "mkmodel --type $t, and generation from it"
	else bad "mkmodel --type $t: $(head -c 300 "$tmp/err")"; fi
done
expect_error "mkmodel bad heads" "n-head" "$mk" -o "$tmp/x.gguf" --n-head 5
expect_error "mkmodel missing template" "none.jinja" "$mk" -o "$tmp/x.gguf" \
	--chat-template "$tmp/none.jinja"
# A chat template written in: sinkd recognises its family (sinkd(8)).
printf '%s' "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}
{{ m.content }}<end_of_turn>
{% endfor %}" >"$tmp/g.jinja"
if "$mk" -o "$tmp/g.gguf" --shape tiny --chat-template "$tmp/g.jinja" \
	2>/dev/null && "$bin/sinkd" -n -m "$tmp/g.gguf" --socket "$tmp/g.sock" \
	2>&1 | grep -q "chat template of new sessions: gemma (the model's)"
then ok "mkmodel --chat-template, recognised by sinkd"
else bad "mkmodel --chat-template: sinkd did not see a gemma template"; fi
expect_error "mkmodel K-quant at widths not of 256" "Q4_K needs" \
	"$mk" -o "$tmp/x.gguf" --shape tiny --type Q4_K_M
# A K-quant mixture: writes, loads, generates.
if "$mk" -o "$tmp/k.gguf" --type q4_k_m --n-embd 256 --n-head 4 \
    --n-head-kv 4 --n-ff 512 --n-layer 3 2>"$tmp/err" &&
    [ -n "$("$run" -m "$tmp/k.gguf" -p "a b" -n 4 --temp 0 -q --ignore-eos)" ]
then ok "mkmodel --type Q4_K_M writes a model sinkd-run runs"
else bad "Q4_K_M model: $(cat "$tmp/err")"; fi

# sinkd's settings: command line, sinkd.conf, -n.
sd="$bin/sinkd"
if "$sd" -m "$tmp/tiny.gguf" -n --socket "$tmp/s.sock" >"$tmp/out" 2>"$tmp/err" &&
    grep -q "settings and model are fine" "$tmp/out"; then
	ok "sinkd -n checks and exits"
else
	bad "sinkd -n: $(head -c 300 "$tmp/err")"
fi
expect_error "sinkd without a model" "no model" env XDG_CONFIG_HOME="$tmp" "$sd" -n
printf 'model = %s\nthreads = 1\n# a comment\n\ncache = 2048\n' \
    "$tmp/tiny.gguf" >"$tmp/good.conf"
if "$sd" -c "$tmp/good.conf" -n >/dev/null 2>&1; then ok "sinkd.conf read"
else bad "sinkd.conf: good file refused"; fi
printf 'model = %s\nthreads = many\n' "$tmp/tiny.gguf" >"$tmp/bad.conf"
expect_error "sinkd.conf bad value" "bad.conf:2" "$sd" -c "$tmp/bad.conf" -n
printf 'modle = x\n' >"$tmp/typo.conf"
expect_error "sinkd.conf unknown key" "unknown setting 'modle'" \
    "$sd" -c "$tmp/typo.conf" -n
expect_error "sinkd.conf missing" "nothing.conf" "$sd" -c "$tmp/nothing.conf" -n
expect_error "sinkd bad option value" "--max-queue" \
    "$sd" -m "$tmp/tiny.gguf" --max-queue x -n
expect_error "sinkd bad model" "text.gguf" "$sd" -m "$tmp/text.gguf" -n
expect_error "sinkd unknown group" "no group named" \
    "$sd" -m "$tmp/tiny.gguf" --group no-such-group-here -n
"$sd" --help | grep -q -- "--max-output" && ok "sinkd --help lists limits" ||
	bad "sinkd --help"
# -d detaches; relative paths still mean the directory it started in.
if (cd "$tmp" && "$sd" -m tiny.gguf --socket d.sock --log d.log -d) &&
    sleep 0.5 && "$bin/sink" -S "$tmp/d.sock" status >/dev/null 2>&1 &&
    grep -q serving "$tmp/d.log"; then
	ok "sinkd -d detaches and serves"
else
	bad "sinkd -d: $(cat "$tmp/d.log" 2>/dev/null | head -c 300)"
fi
pkill -TERM -f -- "--socket d.sock" 2>/dev/null

# sinkd-bench store drives a sinkd on a private database: the report's
# shape on a tiny model with small counts, one CSV row per turn, a
# reload on every restore turn, and nothing left behind.
bench="$bin/sinkd-bench"
if timeout 120 "$bench" store -m "$tmp/tiny.gguf" -t 1 --cache 32 --reply 4 \
    --rounds 3 --turns 40 --sessions 2 --dir "$tmp" --csv "$tmp/store.csv" \
    >"$tmp/out" 2>"$tmp/err" &&
    grep -q '^snapshot of a turn (4-token reply on a full cache), 3 turns' \
    "$tmp/out" &&
    grep -q 'snapshot / turn: median [0-9.]*%, max [0-9.]*%' "$tmp/out" &&
    grep -q 'warm: load median [0-9.]* ms, max [0-9.]* ms' "$tmp/out" &&
    grep -q 'where it goes: SQLite reads 2 chunks' "$tmp/out" &&
    [ "$(grep -cE '^ +[0-9]+ +[0-9.]+ +[0-9.]+ ' "$tmp/out")" -eq 6 ] &&
    grep -q 'without the transcript: [0-9.]* MiB a session' "$tmp/out" &&
    [ "$(grep -c '^size,' "$tmp/store.csv")" -eq 40 ] &&
    awk -F, '$1 ~ /^restore/ && $10 <= 0 { exit 1 }
	$1 == "size" && ($4 != 1 || $9 <= 0) { exit 1 }' "$tmp/store.csv" &&
    ! ls -d "$tmp"/sinkd-bench-store-* >/dev/null 2>&1; then
	ok "sinkd-bench store: report, csv, cleanup"
else
	bad "bench store: $(head -c 300 "$tmp/err") $(head -c 600 "$tmp/out")"
fi
expect_error "bench store bad --kv" "unknown --kv 'q8'" \
    "$bench" store -m "$tmp/tiny.gguf" --kv q8
expect_error "bench store bad --parts" "unknown part 'all'" \
    "$bench" store -m "$tmp/tiny.gguf" --parts snapshot,all

# sinkd-bench batch: its table on a tiny model, one line per count.
if timeout 120 "$bench" batch -m "$tmp/tiny.gguf" -t 1 -n 4 -r 1 \
    --sessions 1,3 >"$tmp/out" 2>"$tmp/err" &&
    grep -q '^sessions  aggregate t/s    per-session  speed-up$' \
    "$tmp/out" &&
    grep -qE '^ +1 +[0-9.]+ +[0-9.]+ +1\.00x$' "$tmp/out" &&
    grep -qE '^ +3 +[0-9.]+ +[0-9.]+ +[0-9.]+x$' "$tmp/out"; then
	ok "sinkd-bench batch: table"
else
	bad "bench batch: $(head -c 300 "$tmp/err") $(head -c 600 "$tmp/out")"
fi
expect_error "bench batch bad --sessions" "--sessions" \
    "$bench" batch -m "$tmp/tiny.gguf" --sessions 0

# No model anywhere: one line that says how to get one.
mkdir -p "$tmp/bin"
cp "$run" "$tmp/bin/"
(cd "$tmp" && SINKD_MODEL= expect_error "no model" "SINKD_MODEL" \
	"$tmp/bin/sinkd-run" -p hi) | grep -q '^ok' && ok "no model hint" ||
	bad "no model hint"

if [ -f "$stories" ]; then
	ids=$(printf 'Once upon a time' | "$run" -m "$stories" --tokenize)
	case "$ids" in
	"1 "*) ok "tokenize adds BOS" ;;
	*) bad "tokenize: '$ids'" ;;
	esac
	text=$(echo "$ids" | "$run" -m "$stories" --detokenize)
	[ "$text" = "Once upon a time" ] && ok "detokenize round trip" ||
		bad "detokenize: '$text'"
	a=$("$run" -m "$stories" -p "Once upon a time" -n 40 --seed 5 -q)
	b=$("$run" -m "$stories" -p "Once upon a time" -n 40 --seed 5 -q)
	c=$("$run" -m "$stories" -p "Once upon a time" -n 40 --seed 6 -q)
	[ "$a" = "$b" ] && ok "same seed, same text" || bad "seed not repeatable"
	[ "$a" != "$c" ] && ok "other seed, other text" || bad "seed ignored"
	g=$("$run" -m "$stories" -p "Once upon a time" -n 30 --temp 0 -q)
	case "$g" in
	*" "*) ok "greedy story: $(echo "$g" | head -c 60)" ;;
	*) bad "greedy output: '$g'" ;;
	esac
	n=$("$run" -m "$stories" -p "Once upon a time" -n 3 --temp 0 --logits 5 \
	    | wc -l)
	# 5 prompt positions (with BOS) and 3 generated tokens.
	[ "$n" -eq 8 ] && ok "--logits prints one line per position" ||
		bad "--logits printed $n lines"
	# The evaluation tools, on a short corpus.
	bench="$bin/sinkd-bench"
	"$bench" corpus -m "$stories" -o "$tmp/c1.txt" --tokens 3000 \
	    --max-story 512 --seed 3 2>/dev/null
	"$bench" corpus -m "$stories" -o "$tmp/c2.txt" --tokens 3000 \
	    --max-story 512 --seed 3 2>/dev/null
	lines=$(wc -l <"$tmp/c1.txt")
	if [ "$lines" -ge 3 ] && cmp -s "$tmp/c1.txt" "$tmp/c2.txt" &&
	    ! grep -q '<s>' "$tmp/c1.txt"; then
		ok "corpus: $lines stories, repeatable, no BOS text"
	else
		bad "corpus: $lines lines, or not repeatable"
	fi
	if "$bench" ppl -m "$stories" -f "$tmp/c1.txt" --cache 48 --sinks 0,4 \
	    --modes streaming,recompute,dense --csv "$tmp/p.csv" \
	    --plot "$tmp/p.svg" -t 2 >"$tmp/out" 2>"$tmp/err" &&
	    grep -q '^streaming 48/4 ' "$tmp/out" &&
	    grep -q '^recompute 48 ' "$tmp/out" &&
	    grep -q 'streaming 48/0 .*overall' "$tmp/out" &&
	    grep -q '</svg>' "$tmp/p.svg"; then
		ok "ppl: table, comparison, plot"
	else
		bad "ppl: $(head -c 300 "$tmp/err") $(head -c 300 "$tmp/out")"
	fi
	ntok=$(tr -d '\n' <"$tmp/c1.txt" | wc -c)
	rows=$(wc -l <"$tmp/p.csv")
	cols=$(head -1 "$tmp/p.csv" | tr ',' '\n' | wc -l)
	[ "$rows" -gt 2000 ] && [ "$cols" -eq 6 ] &&
	    ok "ppl csv: $rows rows, $cols columns" ||
	    bad "ppl csv: $rows rows, $cols columns"
	# Streaming and recompute agree on a model trained longer than the cache.
	awk '/^streaming 48\/4 /{s=$3} /^recompute 48 /{r=$3}
	    END{exit !(s > 1 && r > 1 && s / r < 1.1 && r / s < 1.1)}' \
	    "$tmp/out" && ok "ppl: streaming within 10% of recompute" ||
	    bad "ppl: streaming vs recompute: $(grep -E '^(stream|recomp)' "$tmp/out")"
	if "$bench" attn -m "$stories" -f "$tmp/c1.txt" --len 32 --segments 8 \
	    --csv "$tmp/a.csv" --plot "$tmp/a.png" >"$tmp/out" 2>"$tmp/err" &&
	    [ "$(wc -l <"$tmp/a.csv")" -eq 161 ] && [ -s "$tmp/a.png" ]; then
		ok "attn: table, csv, heat map"
	else
		bad "attn: $(head -c 300 "$tmp/err")"
	fi
	if "$bench" latency -m "$stories" --cache 16,32 --decode 8 \
	    --recompute-tokens 2 --tokens 3000 --samples 4 -t 1 \
	    --csv "$tmp/l.csv" --plot "$tmp/l.svg" >"$tmp/out" 2>"$tmp/err" &&
	    grep -q 'ratio' "$tmp/out" && [ -s "$tmp/l-stream.svg" ] &&
	    [ "$(grep -c '^cache,' "$tmp/l.csv")" -eq 4 ]; then
		ok "latency: both parts, csv, plots"
	else
		bad "latency: $(head -c 300 "$tmp/err") $(head -c 300 "$tmp/out")"
	fi
	# sinkd-bench daemon: every scenario at tiny sizes.  The figures are
	# noise at this size; the tables' shape and their invariants are not.
	if timeout 300 "$bench" daemon -m "$stories" -t 1 -n 12 -r 2 \
	    --sessions 1,2,4 --prefill-tokens 300 --import-mib 1 \
	    >"$tmp/out" 2>"$tmp/err"; then
		ok "daemon: every scenario runs"
	else
		bad "daemon: $(tail -c 300 "$tmp/err")"
	fi
	n=$(grep -c '^sinkd-bench daemon: scenario ' "$tmp/err")
	[ "$n" -eq 5 ] && ok "daemon: progress names 5 scenarios" ||
	    bad "daemon: $n scenario progress lines"
	# single: both rows with a rate, a latency and ordered gaps.
	awk '/^  (engine alone|through sinkd) / {
		n++; if (!($3 > 0 && $4 > 0 && $5 <= $6)) b++ }
	    /^  sinkd\/engine: decode [0-9.]+%/ { p++ }
	    END { exit !(n == 2 && !b && p == 1) }' "$tmp/out" &&
	    ok "daemon single: engine and sinkd rows" ||
	    bad "daemon single: $(grep -A4 '^single:' "$tmp/out")"
	# sessions: one row per count, in order; min <= median <= max,
	# p50 <= p99 <= max, every rate positive.
	awk '/^sessions:/ { on = 1; next } on && /^ +[0-9]+ +[0-9.]+ / {
		k[n++] = $1
		if (!($2 > 0 && $3 > 0 && $3 <= $4 && $4 <= $5 &&
		    $6 <= $7 && $7 <= $8)) b++ }
	    /one session alone .* tok\/s, the engine alone/ { one++ }
	    /^$/ { on = 0 }
	    END { exit !(n == 3 && k[0] == 1 && k[1] == 2 && k[2] == 4 &&
		!b && one == 1) }' "$tmp/out" &&
	    ok "daemon sessions: rows 1, 2, 4, sane" ||
	    bad "daemon sessions: $(grep -A8 '^sessions:' "$tmp/out")"
	# Gap tables (prefill, import, snapshot: 8 rows): p50 <= p99 <= max
	# after the label and the count of gaps.
	awk '/^  (streams? |beside turns)/ {
		for (j = 2; j <= NF && $j !~ /^[0-9]+$/; j++) ;
		r++
		if (!($(j + 1) <= $(j + 2) && $(j + 2) <= $(j + 3))) b++ }
	    END { exit !(r == 8 && !b) }' "$tmp/out" &&
	    ok "daemon: 8 gap rows, p50 <= p99 <= max" ||
	    bad "daemon gap rows: $(grep -E '^  (stream|beside)' "$tmp/out")"
	# prefill: at least the tokens asked for, and stream gaps during it.
	awk '/^  the prompt: [0-9]+ tokens in/ { t = $3 }
	    /^  streams during the prefill / { g = $5 }
	    /^  p99 during\/alone: / { r++ }
	    END { exit !(t >= 300 && g > 0 && r == 1) }' "$tmp/out" &&
	    ok "daemon prefill: the prompt's size, gaps during it" ||
	    bad "daemon prefill: $(grep -A6 '^prefill:' "$tmp/out")"
	# import: about 1 MiB imported; each phase took some time.
	awk '/^import: .* of a [0-9.]+ MiB export file/ {
		for (i = 1; i <= NF; i++) if ($i == "MiB") m = $(i - 1) }
	    /^  stream during the (import|forks) / { if ($NF > 0) p++ }
	    END { exit !(m >= 0.5 && m < 4 && p == 2) }' "$tmp/out" &&
	    ok "daemon import: the file's size, both phases" ||
	    bad "daemon import: $(grep -A8 '^import:' "$tmp/out")"
	# snapshot: the stream's 2 turns of 12 tokens give 22 gaps, split
	# between those overlapping a save and the rest; turns were saved.
	awk '/^  beside turns, / { g += $(NF - 3) }
	    /^  turns saved: [0-9]+,/ { t = $3 + 0 }
	    END { exit !(g == 22 && t >= 1) }' "$tmp/out" &&
	    ok "daemon snapshot: 22 gaps split, turns saved" ||
	    bad "daemon snapshot: $(grep -A7 '^snapshot:' "$tmp/out")"
	if "$bench" daemon -m "$stories" -t 1 -n 4 --scenarios sessions \
	    --sessions 3 --chunk 16 --max-batch 2 >"$tmp/out" 2>"$tmp/err" &&
	    [ "$(grep -c '^sinkd-bench daemon: scenario' "$tmp/err")" -eq 1 ] &&
	    ! grep -q '^single:\|^prefill:' "$tmp/out" &&
	    grep -q '^ *3 ' "$tmp/out"; then
		ok "daemon --scenarios picks; --chunk, --max-batch to sinkd"
	else
		bad "daemon --scenarios: $(head -c 300 "$tmp/err")"
	fi
	expect_error "daemon bad scenario" "unknown scenario 'fork'" \
	    "$bench" daemon -m "$stories" --scenarios sessions,fork
	expect_error "daemon bad --sessions" "--sessions" \
	    "$bench" daemon -m "$stories" --sessions 0
	expect_error "daemon bad --chunk" "--chunk" \
	    "$bench" daemon -m "$stories" --chunk 0
	expect_error "daemon bad --import-mib" "--import-mib" \
	    "$bench" daemon -m "$stories" --import-mib 0
	expect_error "latency sinks over cache" "do not fit" \
	    "$bench" latency -m "$stories" --cache 4 --sinks 4 --tokens 0
	expect_error "latency bad list" "--cache" \
	    "$bench" latency -m "$stories" --cache x --tokens 0
	expect_error "ppl without text" "-f TEXT" "$bench" ppl -m "$stories"
	expect_error "ppl bad mode" "unknown mode 'fast'" \
	    "$bench" ppl -m "$stories" -f "$tmp/c1.txt" --modes fast
	expect_error "ppl sinks over cache" "streaming 8/8" \
	    "$bench" ppl -m "$stories" -f "$tmp/c1.txt" --cache 8 --sinks 8
	expect_error "ppl missing text" "No such file" \
	    "$bench" ppl -m "$stories" -f "$tmp/none.txt"
	expect_error "ppl bad list" "--cache" \
	    "$bench" ppl -m "$stories" -f "$tmp/c1.txt" --cache 64,,128
	expect_error "corpus without -o" "-o FILE" "$bench" corpus -m "$stories"
	expect_error "attn short text" "fewer than one segment" \
	    "$bench" attn -m "$stories" -f "$tmp/c1.txt" --len 100000
	head -c 100000 "$stories" >"$tmp/cut.gguf"
	expect_error "truncated real model" "cut.gguf" "$run" -m "$tmp/cut.gguf" -p hi
else
	echo "SKIP: $stories not found (set SINKD_SHARED); real-model CLI tests skipped"
fi

# Tokenizing needs no weights: vocabulary-only files (byte-level BPE).
# The expected ids are those of the vocabularies' .out files.
l3=$shared/vocab/ggml-vocab-llama3.gguf
qw=$shared/vocab/ggml-vocab-qwen2.gguf
if [ -f "$l3" ] && [ -f "$qw" ]; then
	ids=$(printf 'Hello world' | "$run" -m "$l3" --tokenize)
	[ "$ids" = "128000 9906 1917" ] && ok "llama3 tokenize adds BOS" ||
		bad "llama3 tokenize: '$ids'"
	llama=$(printf ' this is \360\237\246\231.cpp')
	ids=$(printf '%s' "$llama" | "$run" -m "$l3" --tokenize --no-bos)
	[ "$ids" = "420 374 11410 99 247 13 11055" ] &&
		ok "llama3 tokenize --no-bos" || bad "llama3 --no-bos: '$ids'"
	text=$(echo "128000 $ids" | "$run" -m "$l3" --detokenize)
	[ "$text" = "$llama" ] && ok "llama3 detokenize round trip" ||
		bad "llama3 detokenize: '$text'"
	ids=$(printf ' Hello world' | "$run" -m "$qw" --tokenize)
	[ "$ids" = "21927 1879" ] && ok "qwen2 tokenize, no BOS" ||
		bad "qwen2 tokenize: '$ids'"
	ids=$(printf '<|im_end|>' | "$run" -m "$qw" --tokenize)
	[ "$ids" = "27 91 318 6213 91 29" ] &&
		ok "qwen2 chat marker in text is text" ||
		bad "qwen2 marker: '$ids'"
	expect_error "vocabulary only, generate" "tensors" "$run" -m "$l3" -p hi
else
	echo "SKIP: $l3 or $qw not found (set SINKD_SHARED); BPE CLI tests skipped"
fi

echo "tools: $pass passed, $fail failed"
[ $fail -eq 0 ]
