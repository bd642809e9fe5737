/*
 * fuzz.h - helpers shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * Each harness defines LLVMFuzzerTestOneInput() (and may define
 * LLVMFuzzerInitialize()); it is linked either with libFuzzer
 * (configure --enable-fuzzing, clang) or with replay.c, which feeds it
 * the files of its corpus (tests/fuzz/corpus/NAME/) under `make check`.
 * A broken invariant calls fuzz_fail(), which aborts: libFuzzer then
 * saves the input as a crash.
 */
#ifndef INBOXPROBE_FUZZ_H
#define INBOXPROBE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional (weak): one-time set-up before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* A heap copy of data[0..size) with a NUL appended (caller frees). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Print "fuzz: invariant broken: MSG" (printf format) and abort(). */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define FUZZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			fuzz_fail(__VA_ARGS__); \
	} while (0)

/* A private temporary directory (created once, mode 0700, removed at
 * exit); aborts when it cannot be made. */
const char *fuzz_tmpdir(void);

#endif
