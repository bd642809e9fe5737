/*
 * fuzz_trace.c - the header block of a delivered probe as the IMAP server
 * returns it: the field iterator (common/hfield.h), Authentication-Results
 * (RFC 8601, authres_parse), Received (RFC 5321 §4.4, received_parse),
 * RFC 5322 dates, and trace_build over the whole block with a Gmail and a
 * Microsoft policy. Invariants: every string is NUL-terminated within its
 * buffer, counts stay within their arrays, a parsed date is finite.
 */
#include <config.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hfield.h"
#include "prober/authres.h"
#include "prober/received.h"
#include "prober/trace.h"
#include "tests/fuzz/fuzz.h"

#define NUL_WITHIN(f) (memchr((f), '\0', sizeof(f)) != NULL)

static void check_verdict(const struct auth_verdict *v)
{
	char buf[256];

	FUZZ_CHECK(NUL_WITHIN(v->method) && NUL_WITHIN(v->result) && NUL_WITHIN(v->reason),
	           "verdict field not NUL-terminated");
	FUZZ_CHECK(v->nprops >= 0 && v->nprops <= AUTH_PROPS_MAX, "nprops %d", v->nprops);
	authres_format(v, buf, sizeof(buf));
	FUZZ_CHECK(NUL_WITHIN(buf), "authres_format overran");
}

static void check_hop(const struct hop *h)
{
	FUZZ_CHECK(NUL_WITHIN(h->from) && NUL_WITHIN(h->by) && NUL_WITHIN(h->with) &&
	           NUL_WITHIN(h->id), "hop field not NUL-terminated");
	FUZZ_CHECK(isfinite(h->time), "hop time not finite");
}

static void fields(const char *hdr, size_t len)
{
	struct hfield_iter it;
	const char *name;
	size_t namelen;
	char *value;

	hfield_begin(&it, hdr, len);
	while (hfield_next(&it, &name, &namelen, &value) == 1) {
		FUZZ_CHECK(name >= hdr && name + namelen <= hdr + len, "name outside the block");
		if (hfield_is(name, namelen, "Authentication-Results")) {
			struct authres_field a;

			authres_parse(value, &a);
			FUZZ_CHECK(NUL_WITHIN(a.authserv_id), "authserv-id not NUL-terminated");
			FUZZ_CHECK(a.nv >= 0 && a.nv <= AUTH_MAX, "nv %d", a.nv);
			for (int i = 0; i < a.nv; i++)
				check_verdict(&a.v[i]);
			authres_id_matches(a.authserv_id, "*.google.com");
		} else if (hfield_is(name, namelen, "Received")) {
			struct hop h;

			received_parse(value, &h);
			check_hop(&h);
		} else {
			double t;
			if (rfc5322_parse_date(value, &t) == 0)
				FUZZ_CHECK(isfinite(t), "date not finite");
		}
		free(value);
	}
}

static void trace(const char *hdr, size_t len, const char *imap_host)
{
	struct trace_policy pol;
	struct probe_trace t;

	trace_default_policy(imap_host, &pol);
	memset(&t, 0, sizeof(t));
	trace_build(hdr, len, "C35C4A731A1", &pol, 1764547200.0, &t);
	FUZZ_CHECK(t.nauth >= 0 && t.nauth <= AUTH_MAX, "nauth %d", t.nauth);
	FUZZ_CHECK(t.nhops >= 0 && t.nhops <= HOPS_MAX, "nhops %d", t.nhops);
	FUZZ_CHECK(t.relay_hop >= -1 && t.relay_hop < (t.nhops ? t.nhops : 1), "relay_hop %d",
	           t.relay_hop);
	FUZZ_CHECK(NUL_WITHIN(t.note), "note not NUL-terminated");
	for (int i = 0; i < t.nauth; i++)
		check_verdict(&t.auth[i]);
	for (int i = 0; i < t.nhops; i++)
		check_hop(&t.hops[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The header is fetched as bytes, not NUL-terminated. */
	fields((const char *)data, size);
	trace((const char *)data, size, "imap.gmail.com");
	trace((const char *)data, size, "outlook.office365.com");
	return 0;
}
