/*
 * oauth2_authorize.h - `inboxprobe oauth2 authorize`: user consent, once,
 * for a block that uses the refresh-token grant; the refresh token is
 * stored in that block's refresh_token_file (mode 0600, atomically, under
 * the same lock as refreshes).
 *
 * Flows:
 *  - device authorization grant (RFC 8628): prints the verification URL
 *    and the user code, then polls the token endpoint every `interval`
 *    seconds, 5 more after each slow_down, until consent, denial or
 *    expiry. Microsoft (Outlook.com via /consumers, Microsoft 365).
 *  - authorization code with PKCE S256 (RFC 7636) and a loopback redirect
 *    (RFC 8252 7.3): listens on 127.0.0.1 at a random port, prints the
 *    URL to open, takes the code (state checked) and exchanges it. Google,
 *    whose device flow refuses Gmail scopes (invalid_scope).
 * The flow is chosen from token_url (Google: loopback; else device) unless
 * --device or --browser says otherwise. Endpoints are derived from
 * token_url (Microsoft: .../devicecode and .../authorize beside .../token;
 * Google: accounts.google.com/o/oauth2/v2/auth) or given with --device-url
 * and --authorize-url.
 */
#ifndef INBOXPROBE_OAUTH2_AUTHORIZE_H
#define INBOXPROBE_OAUTH2_AUTHORIZE_H

/*
 * The `oauth2` command: argv[0] is "oauth2", argv[1] "authorize", then
 * -c FILE (--seed ADDRESS | --relay | --bounce) [--device | --browser]
 * [--device-url URL] [--authorize-url URL] [--timeout SECONDS].
 * Returns the exit code: 0 stored, 2 usage or configuration error, 1 the
 * consent failed (denied, expired, endpoint error), with a message on stderr.
 */
int oauth2_command(int argc, char **argv);

#endif
