#!/bin/sh
# Speed of each weight type at one shape: prefill and decode tokens/s and
# how close decode comes to the memory-bandwidth bound.
#
#   tools/bench-types.sh [-s SHAPE] [-r ROUNDS] [-t THREADS] [-p N] [-n N]
#                        [TYPE...]
#
# Writes one synthetic model per type (sinkd-mkmodel, seeded, cached in
# $SINKD_BENCH_DIR, default build/bench-models), measures the bandwidth
# once, then runs `sinkd-bench speed` ROUNDS times over all types in turn
# (interleaved, so a noisy neighbour hits every type alike) and prints
# the medians.  TYPE is anything `sinkd-mkmodel --type` takes, presets
# such as Q4_K_M included.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${SINKD_BUILDDIR:-$top/build}
shape=tinyllama-1.1b rounds=5 threads=2 pp=512 tg=128
usage() {
	sed -n '4,5p' "$0" | sed 's/^# *//' >&2
	exit 2
}
while getopts s:r:t:p:n:h o; do
	case $o in
	s) shape=$OPTARG ;;
	r) rounds=$OPTARG ;;
	t) threads=$OPTARG ;;
	p) pp=$OPTARG ;;
	n) tg=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- Q8_0 Q4_0
for x in "$bin/sinkd-bench" "$bin/sinkd-mkmodel"; do
	[ -x "$x" ] || { echo "bench-types: $x is missing: build first" >&2; exit 1; }
done
dir=${SINKD_BENCH_DIR:-$bin/bench-models}
mkdir -p "$dir"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for t in "$@"; do
	m=$dir/$shape-$t.gguf
	[ -s "$m" ] && continue
	echo "writing $m" >&2
	"$bin/sinkd-mkmodel" -o "$m.tmp" --shape "$shape" --type "$t" >&2
	mv "$m.tmp" "$m"
done

bw=$("$bin/sinkd-bench" bandwidth -s 512 -r 5 | awk '
	/threads:/ { sub(/\)$/, "", $NF); if ($NF + 0 > b) b = $NF + 0 }
	END { print b }')
echo "bandwidth: best $bw GB/s; $rounds rounds of: $*" >&2

r=1
while [ "$r" -le "$rounds" ]; do
	for t in "$@"; do
		"$bin/sinkd-bench" speed -m "$dir/$shape-$t.gguf" -p "$pp" \
		    -n "$tg" -t "$threads" -r 1 --bw "$bw" 2>/dev/null |
		    awk -v t="$t" '
			function med() {
				match($0, /median +[0-9.]+/)
				return substr($0, RSTART + 7, RLENGTH - 7) + 0
			}
			/^prefill/ { pp = med() }
			/^decode/ { tg = med() }
			/read per decoded token/ { mib = $2 }
			/reaches/ { pct = $(NF-2) }
			END { print t, mib, pp, tg, pct }' >>"$out/runs"
	done
	echo "round $r/$rounds done" >&2
	r=$((r + 1))
done

# median of column $2 of the runs of type $1
median() {
	awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$out/runs" | sort -g |
	    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
printf '%-8s %9s %12s %12s %9s\n' type "MiB/tok" "pp$pp tok/s" \
    "tg$tg tok/s" "of bound"
for t in "$@"; do
	printf '%-8s %9s %12s %12s %9s\n' "$t" "$(median "$t" 2)" \
	    "$(median "$t" 3)" "$(median "$t" 4)" "$(median "$t" 5)"
done
