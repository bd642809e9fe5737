#!/bin/bash
# Build the libFuzzer harnesses (clang, ASan + UBSan) and run each one for
# a bounded time over its corpus in tests/fuzz/corpus/NAME/.
#
#   tests/fuzz/run.sh [-t SECONDS] [-b BUILDDIR] [NAME...]
#
# -t  seconds per harness (default $FUZZ_SECONDS or 30)
# -b  build directory (default $FUZZ_BUILD or a new temporary one); an
#     existing one configured with --enable-fuzzing is reused
# NAME harnesses to run (default: all: smtp_reply dsn internaldate mutf7
#     message config state trace sasl oauth2 notify)
#
# Prints one line per harness, "PASS: fuzz_NAME ..." with the executions,
# executions per second and new coverage units, or "FAIL: fuzz_NAME ..."
# with the crash input (saved under BUILDDIR/fuzz-artifacts/, shown in hex)
# and the end of libFuzzer's log; then "fuzz: N passed, N failed".
# New corpus units go to BUILDDIR, never into the source tree: to keep a
# crash as a regression input, copy it into tests/fuzz/corpus/NAME/ (make
# check replays those) once it is fixed.
# Exit status 0 when every harness passed, 1 when one failed, 2 when the
# build failed.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD:-}
while getopts t:b: o; do
	case $o in
	t) secs=$OPTARG ;;
	b) build=$OPTARG ;;
	*) sed -n '2,24p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
names=${*:-smtp_reply dsn internaldate mutf7 message config state trace sasl oauth2 notify}
[ -n "$build" ] || build=$(mktemp -d "${TMPDIR:-/tmp}/inboxprobe-fuzz.XXXXXX")
mkdir -p "$build"
build=$(cd "$build" && pwd)

echo "fuzz: building the harnesses in $build"
cd "$build" || exit 2
if ! grep -q -- '--enable-fuzzing' config.status 2>/dev/null; then
	[ -x "$src/configure" ] || (cd "$src" && ./autogen.sh) || exit 2
	if ! "$src/configure" CC=clang --enable-fuzzing >configure.out 2>&1; then
		tail -n 20 configure.out
		echo "FAIL: fuzz build: configure CC=clang --enable-fuzzing failed"
		echo "fuzz: 0 passed, 1 failed"
		exit 2
	fi
fi
targets=
for n in $names; do targets="$targets tests/fuzz/fuzz_$n"; done
if ! make -j2 $targets >make.out 2>&1; then
	grep -E 'error|Error' make.out | head -n 30
	echo "FAIL: fuzz build: make failed (see $build/make.out)"
	echo "fuzz: 0 passed, 1 failed"
	exit 2
fi

# Inputs larger than the real data the parser sees are not interesting.
max_len() {
	case $1 in
	dsn|trace) echo 65536 ;;
	config) echo 16384 ;;
	message) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

pass=0 fail=0
art=$build/fuzz-artifacts
mkdir -p "$art"
for n in $names; do
	work=$build/fuzz-corpus/$n
	log=$build/fuzz-$n.log
	mkdir -p "$work"
	dict=
	[ -f "$src/tests/fuzz/$n.dict" ] && dict=-dict=$src/tests/fuzz/$n.dict
	# ASan/UBSan: abort on the first report so libFuzzer saves the input.
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:allocator_may_return_null=1 \
	LSAN_OPTIONS=suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	timeout --kill-after=10 $((secs + 120)) \
		"$build/tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$(max_len "$n")" -print_final_stats=1 -artifact_prefix="$art/$n-" \
		$dict "$work" "$src/tests/fuzz/corpus/$n" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	units=$(find "$work" -type f | wc -l)
	seeds=$(find "$src/tests/fuzz/corpus/$n" -type f | wc -l)
	if [ "$rc" = 0 ]; then
		echo "PASS: fuzz_$n: ${execs:-?} execs in ${secs} s, ${rate:-?} exec/s, peak RSS ${rss:-?} MB, $seeds seeds, $units new units"
		pass=$((pass + 1))
	else
		echo "FAIL: fuzz_$n: exit $rc after ${execs:-?} execs"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: invariant|.*runtime error)' "$log" | head -n 5
		grep -E '^ +#[0-9]+ ' "$log" | head -n 15
		for f in "$art/$n"-*; do
			[ -f "$f" ] || continue
			echo "crash input $f ($(stat -c %s "$f") bytes):"
			od -A d -t x1z "$f" | head -n 16
		done
		fail=$((fail + 1))
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
