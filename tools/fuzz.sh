#!/bin/sh
# A short libFuzzer run of the wire-format decoder (tests/fuzz_proto.c):
# frames, validation, parsing and every accessor on random input, then of
# weight blocks of every computed type through dequantizing, matvec and
# GEMM on every ISA (tests/fuzz_quant.c), each for SECONDS, under
# AddressSanitizer and UndefinedBehaviorSanitizer.  Usage:
#   tools/fuzz.sh [SECONDS]      (default 30; CI runs it from test-all.sh)
# Installs clang and its fuzzer runtime when missing (Debian 12).  Exits
# non-zero when the fuzzer finds a crash; the input is left in build-fuzz/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-30}
if ! command -v clang >/dev/null 2>&1 ||
    ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
    grep -q "ok installed"; then
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
	echo "fuzz: installing clang and libclang-rt-14-dev" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
	    --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
out=$top/build-fuzz
mkdir -p "$out/corpus"
# shellcheck disable=SC2046
clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I"$top/engine" -I"$top/proto" \
    "$top/engine/err.c" "$top/proto/proto.c" "$top/proto/proto_dec.c" \
    "$top/proto/proto_enc.c" "$top/tests/fuzz_proto.c" \
    $(pkg-config --cflags --libs msgpack) -o "$out/fuzz_proto"
cd "$out"
echo "fuzz: running the wire-format decoder for $secs s" >&2
./fuzz_proto -max_len=4096 -max_total_time="$secs" -print_final_stats=1 \
    corpus 2>fuzz.log || { tail -40 fuzz.log; exit 1; }
grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" fuzz.log | tail -2
# Any bytes as weight blocks of every type sinkd computes (tests/fuzz_quant.c).
# The panel kernel is left out (KERN_NO_PANELS): nothing fuzzed reaches it,
# and clang took minutes over it with the fuzzer's instrumentation.
kernels=
for f in "$top"/engine/kernels*.c; do
	case $f in
	*/kernels_panel_x86.c) ;;
	*) kernels="$kernels $f" ;;
	esac
done
# shellcheck disable=SC2086
clang -std=c11 -D_GNU_SOURCE -DKERN_NO_PANELS -g -O1 \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$top/engine" \
    "$top/engine/err.c" "$top/engine/quant.c" "$top/engine/quant_ql.c" \
    "$top/engine/quant_k.c" $kernels \
    "$top/tests/fuzz_quant.c" -lm -pthread -o "$out/fuzz_quant"
mkdir -p "$out/corpus_quant"
echo "fuzz: running weight blocks through the kernels for $secs s" >&2
./fuzz_quant -max_len=8192 -max_total_time="$secs" -print_final_stats=1 \
    corpus_quant 2>fuzz_quant.log || { tail -40 fuzz_quant.log; exit 1; }
grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" fuzz_quant.log |
    tail -2
echo "fuzz: no crash"
