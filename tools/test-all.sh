#!/bin/sh
# The whole test suite: installs dependencies, builds and runs `make check`
# in build/, then `make distcheck` there (the release tarball builds out of
# tree, passes make check, installs, uninstalls and cleans up) and
# tools/deb.sh (the Debian package builds and passes lintian), then
# `make check` again under AddressSanitizer + UndefinedBehaviorSanitizer
# in build-asan/, then the daemon's suites under ThreadSanitizer in
# build-tsan/ (the loop, the worker and the store thread), then checks the
# installed systemd units
# (tools/check-units.sh), then kills sinkd at random for 200 turns
# (tools/soak.sh), then fuzzes the wire-format decoder for
# $SINKD_FUZZ_SECONDS (default 30) seconds.  Prints every test's summary;
# exits non-zero on failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh" --test || exit 1
status=0

run_suite() { # DIR [configure options]; $TESTS: only those
	dir=$1
	shift
	echo "=== $dir: build" >&2
	"$top/tools/build.sh" "$dir" "$@" || return 1
	echo "=== $dir: make check" >&2
	rc=0
	if [ -n "${TESTS:-}" ]; then
		rm -f "$top/$dir"/tests/*.log
		make -s -C "$top/$dir" -j"$(nproc)" check TESTS="$TESTS" \
		    >/dev/null 2>&1 || rc=1
	else
		make -s -C "$top/$dir" -j"$(nproc)" check >/dev/null 2>&1 ||
		    rc=1
	fi
	# Every test's own summary lines, then automake's totals.
	for log in "$top/$dir"/tests/*.log; do
		[ -f "$log" ] || continue
		echo "--- $(basename "$log" .log)"
		grep -E '^[0-9]+%: Checks|^SKIP|^FAIL|failed|passed|:[A-Z]:' "$log" | head -40
	done
	grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR)' \
	    "$top/$dir/test-suite.log" 2>/dev/null || true
	[ $rc -eq 0 ] || cat "$top/$dir/test-suite.log"
	return $rc
}

run_suite build || status=1
echo "=== distcheck: the release tarball" >&2
if make -s -C "$top/build" -j"$(nproc)" distcheck \
    >"$top/build/distcheck.log" 2>&1; then
	echo "distcheck: PASS: $(grep -o 'sinkd-.*\.tar\.gz$' \
	    "$top/build/distcheck.log" | tail -1)"
else
	tail -40 "$top/build/distcheck.log"
	echo "distcheck: FAIL (build/distcheck.log)"
	status=1
fi
echo "=== deb: the Debian package" >&2
"$top/tools/deb.sh" || status=1
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
run_suite build-asan --enable-sanitizers || status=1
# The threads' contracts (daemon/*.h), checked: any data race stops sinkd
# (or the test) with a report, and the suite fails.  No suppressions.
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# (test_daemon_store's gaps mean nothing at TSan's speed: a smaller
# import, its gaps printed but not checked.)
SINKD_TEST_STORE_MIB=8 SINKD_TEST_NO_TIMING=1
export TSAN_OPTIONS SINKD_TEST_STORE_MIB SINKD_TEST_NO_TIMING
# (test_daemon_chat is left out: under TSan sinkd loading the real
# vocabularies does not start within the harness' wait.)
TESTS="tests/test_daemon tests/test_daemon_store tests/test_persist
    tests/test_daemon_load tests/test_daemon_hostile tests/test_service
    tests/test_store" run_suite build-tsan \
    CFLAGS="-fsanitize=thread -g -O1" LDFLAGS="-fsanitize=thread" ||
    status=1
unset SINKD_TEST_STORE_MIB SINKD_TEST_NO_TIMING
echo "=== systemd units: verify, security, sysusers, socket activation" >&2
"$top/tools/check-units.sh" build || status=1
echo "=== soak: kill -9 at random over ${SINKD_SOAK_TURNS:-200} turns" >&2
if [ -f "${SINKD_SHARED:-$top/../shared}/models/stories260K.gguf" ]; then
	"$top/tools/soak.sh" -b "$top/build" -n "${SINKD_SOAK_TURNS:-200}" \
	    -m "${SINKD_SHARED:-$top/../shared}/models/stories260K.gguf" ||
	    status=1
else
	echo "SKIP: soak: no ../shared/models/stories260K.gguf"
fi
echo "=== fuzz: the wire-format decoder" >&2
"$top/tools/fuzz.sh" "${SINKD_FUZZ_SECONDS:-30}" || status=1
[ $status -eq 0 ] && echo "test-all: all suites passed" ||
	echo "test-all: FAILED" >&2
exit $status
