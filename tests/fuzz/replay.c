/*
 * replay.c - a main() for a harness without libFuzzer: runs the harness
 * once on every file named on the command line (a directory: on every
 * regular file in it). Used by `make check` (tests/fuzz/replay.sh) to
 * replay the corpora and every crash found so far with gcc and, in the
 * sanitizer build, ASan + UBSan. Exit 0 when every input ran; a crash
 * aborts.
 */
#include <config.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "tests/fuzz/fuzz.h"

/* Inputs over this are not replayed (libFuzzer's -max_len is smaller). */
#define REPLAY_MAX (1024 * 1024)

static int run_file(const char *path, size_t *count)
{
	char *e = NULL;
	size_t len;
	char *buf = read_file_capped(path, REPLAY_MAX, &len, &e);

	if (buf == NULL) {
		fprintf(stderr, "replay: %s\n", e);
		free(e);
		return -1;
	}
	/* An exact-size copy, so ASan sees any read past the end. */
	uint8_t *data = malloc(len ? len : 1);
	if (data == NULL)
		abort();
	memcpy(data, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	(*count)++;
	return 0;
}

static int run_dir(const char *dir, size_t *count)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), ret = 0;

	if (n < 0) {
		perror(dir);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, names[i]->d_name);
		struct stat st;

		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    run_file(path, count) != 0)
			ret = -1;
		free(path);
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int ret = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			ret = 1;
		} else if (S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) != 0
		                               : run_file(argv[i], &count) != 0) {
			ret = 1;
		}
	}
	printf("replay: %zu inputs\n", count);
	return ret;
}
