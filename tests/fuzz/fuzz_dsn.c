/*
 * fuzz_dsn.c - messages found in the bounce mailbox: dsn_match on
 * Delivery Status Notifications (RFC 3464, RFC 6522 multipart/report),
 * auto-replies and ordinary mail, with MIME, base64 and quoted-printable.
 * The input is the whole message, not NUL-terminated (as fetched). The
 * tokens are those of the samples in tests/data/dsn/ (tests/unit/test_dsn.c).
 */
#include <config.h>
#include <string.h>

#include "prober/dsn.h"
#include "tests/fuzz/fuzz.h"

static const char *const tokens[] = {
	"1234567890abcdef1234567890abcdef",
	"7d1f0c9e4b2a85d6e3f1a0b9c8d7e6f5",
	"a0b1c2d3e4f5061728394a5b6c7d8e9f",
	"5e4d3c2b1a09f8e7d6c5b4a392817065",
	"c0ffee00d15ea5e0badc0de0f00dfeed",
	"0f1e2d3c4b5a69788796a5b4c3d2e1f0",
};
#define NTOKENS (sizeof(tokens) / sizeof(tokens[0]))

#define NUL_WITHIN(f) (memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsn_info info;
	size_t idx = (size_t)-1;

	memset(&info, 0, sizeof(info));
	if (dsn_match((const char *)data, size, tokens, NTOKENS, &idx, &info) == 1) {
		FUZZ_CHECK(idx < NTOKENS, "token index %zu", idx);
		FUZZ_CHECK(info.action >= DSN_ACTION_NONE && info.action <= DSN_ACTION_EXPANDED,
		           "action %d", info.action);
		FUZZ_CHECK(dsn_action_name(info.action) != NULL, "no action name");
		FUZZ_CHECK(NUL_WITHIN(info.status) && NUL_WITHIN(info.remote_mta) &&
		           NUL_WITHIN(info.diagnostic), "a field is not NUL-terminated");
	}
	/* No token at all: never a match. */
	FUZZ_CHECK(dsn_match((const char *)data, size, tokens, 0, &idx, &info) == 0,
	           "a match without tokens");
	return 0;
}
