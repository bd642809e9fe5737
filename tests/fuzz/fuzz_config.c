/*
 * fuzz_config.c - the configuration file (libconfig syntax) through the
 * real loader: the input is written to a file (mode 0600, in a private
 * temporary directory) and config_load() reads it, as `inboxprobe -c`
 * does, size cap and all. Invariants: a refused file gets a message that
 * names the file; an accepted one has a relay, seeds and providers.
 *
 * Not fuzzed: @include of a path with a '/' (it would read whatever file
 * of the machine the fuzzer names); relative includes resolve inside the
 * private directory and are kept.
 */
#include <config.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seeds/config.h"
#include "tests/fuzz/fuzz.h"

static char *path;

/* 1 when the text has an @include whose file name holds a '/'. */
static int includes_a_path(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	while ((p = memmem(p, (size_t)(end - p), "@include", 8)) != NULL) {
		for (p += 8; p < end && *p != '\n'; p++)
			if (*p == '/')
				return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	char *e = NULL;
	int fd;

	if (includes_a_path(data, size))
		return 0;
	if (path == NULL) {
		if (asprintf(&path, "%s/inboxprobe.cfg", fuzz_tmpdir()) < 0)
			abort();
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "cannot create %s", path);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size, "short write");
	close(fd);

	if (config_load(path, &cfg, &e) == 0) {
		FUZZ_CHECK(cfg != NULL && e == NULL, "success without a config");
		FUZZ_CHECK(cfg->relay.url != NULL && cfg->relay.from != NULL, "no relay");
		FUZZ_CHECK(cfg->nseeds > 0 && cfg->nproviders > 0, "no seeds");
		for (size_t i = 0; i < cfg->nseeds; i++)
			FUZZ_CHECK(cfg->seeds[i].address != NULL && cfg->seeds[i].provider != NULL,
			           "seed %zu incomplete", i);
		config_free(cfg);
	} else {
		FUZZ_CHECK(cfg == NULL, "failure left a config");
		FUZZ_CHECK(e != NULL && strstr(e, fuzz_tmpdir()) != NULL,
		           "message does not name the file: %s", e ? e : "(none)");
		free(e);
	}
	return 0;
}
