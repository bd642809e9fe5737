#!/bin/bash
# Replay every fuzz corpus (tests/fuzz/corpus/NAME/: seeds from real
# samples, plus every input that once crashed a harness) through its
# harness with a plain main (tests/fuzz/replay.c). Under the sanitizer
# build this runs them with ASan + UBSan. Fails when a harness fails on
# any input (a crash, a sanitizer report or a broken invariant).
set -u
src=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
bld=${top_builddir:-.}
# libconfig leaks inside its scanner on some syntax errors (lsan.supp).
export LSAN_OPTIONS=suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0
rc=0
for corpus in "$src"/tests/fuzz/corpus/*/; do
	name=$(basename "$corpus")
	bin=$bld/tests/fuzz/replay_$name
	if [ ! -x "$bin" ]; then
		echo "FAIL: $name: $bin not built"
		rc=1
		continue
	fi
	if out=$("$bin" "$corpus" 2>&1); then
		echo "ok: $name: $out"
	else
		echo "$out" | tail -n 30
		echo "FAIL: $name"
		rc=1
	fi
done
exit $rc
