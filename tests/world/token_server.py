#!/usr/bin/python3
"""A small OAuth 2.0 authorization server for the loopback world.

    token_server.py --port N --config FILE [--pidfile FILE]

Grants at POST /token (RFC 6749 form bodies, JSON answers):
  refresh_token       rotation on every use; the old refresh token dies at once
  client_credentials  client_secret checked; the token's user is the client's "mailbox"
  jwt-bearer          RFC 7523: RS256 assertion checked against the configured
                      public key (python3-jwt), aud = this token URL, sub = the user
  device_code         RFC 8628 (POST /device): authorization_pending until
                      POST /control/approve?user=U, slow_down on the first poll
                      and whenever polled faster than the interval
  authorization_code  with PKCE S256 (RFC 7636): GET /authorize redirects at once
                      (consent is implied) to redirect_uri with code and state
POST /introspect (RFC 7662, token=...) answers {"active": bool, "username", "scope"}
for Dovecot's oauth2 passdb (introspection_mode = post).

Control (tests only): POST /control/exp (token=T: {"exp": when T expires}),
POST /control/expire (every access token expires now),
/control/revoke?user=U (drops U's refresh and access tokens), /control/lifetime?s=N,
/control/approve (approves pending device codes), /control/add_refresh?user=U&client=C
(mints a refresh token, printed in the answer). GET /stats: request counts per grant,
the current refresh token per user and every token issued (so tests can prove no
token leaked into outputs).

Config (JSON): {"clients": {ID: {"secret": S|null, "mailbox": U|null}},
 "refresh_tokens": {RT: {"user": U, "client": ID}}, "jwt_public_key": PEM-FILE,
 "jwt_client_email": E, "scopes": [allowed...], "lifetime": seconds}
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # python3-jwt

LOCK = threading.Lock()
S = {}


def new_token(prefix):
    return prefix + secrets.token_urlsafe(24)


def issue_access(user, scope):
    tok = new_token("at-")
    S["access"][tok] = {"user": user, "scope": scope, "exp": time.time() + S["lifetime"]}
    S["issued"].append(tok)
    return tok


def error(code, desc, status=400):
    return status, {"error": code, "error_description": desc}


def check_scope(scope):
    if scope and any(s not in S["scopes"] for s in scope.split()):
        return error("invalid_scope", "scope %r is not allowed" % scope)
    return None


def client_ok(f):
    c = S["clients"].get(f.get("client_id", ""))
    if c is None:
        return None
    if c.get("secret") is not None and f.get("client_secret") != c["secret"]:
        return None
    return c


def grant_refresh(f):
    rt = f.get("refresh_token", "")
    info = S["refresh"].get(rt)
    if client_ok(f) is None:
        return error("invalid_client", "unknown client or wrong secret", 401)
    if info is None:
        return error("invalid_grant", "refresh token unknown, expired or revoked")
    bad = check_scope(f.get("scope"))
    if bad:
        return bad
    del S["refresh"][rt]  # rotation: the old one dies at once
    nrt = new_token("rt-")
    S["refresh"][nrt] = info
    S["issued"].append(nrt)
    return 200, {"access_token": issue_access(info["user"], f.get("scope", "")),
                 "token_type": "Bearer", "expires_in": S["lifetime"], "refresh_token": nrt}


def grant_client_credentials(f):
    c = client_ok(f)
    if c is None or c.get("secret") is None:
        return error("invalid_client", "unknown client or wrong secret", 401)
    bad = check_scope(f.get("scope"))
    if bad:
        return bad
    return 200, {"access_token": issue_access(c.get("mailbox"), f.get("scope", "")),
                 "token_type": "Bearer", "expires_in": S["lifetime"]}


def grant_jwt(f, url):
    try:
        claims = jwt.decode(f.get("assertion", ""), S["jwt_key"], algorithms=["RS256"],
                            audience=url)
    except Exception as e:  # signature, expiry, audience
        return error("invalid_grant", "assertion refused: %s" % type(e).__name__)
    if claims.get("iss") != S["jwt_client_email"]:
        return error("invalid_client", "unknown issuer")
    bad = check_scope(claims.get("scope"))
    if bad:
        return bad
    return 200, {"access_token": issue_access(claims.get("sub"), claims.get("scope", "")),
                 "token_type": "Bearer", "expires_in": S["lifetime"]}


def grant_device(f):
    d = S["device"].get(f.get("device_code", ""))
    if d is None:
        return error("invalid_grant", "unknown device code")
    now = time.time()
    if d.pop("slow_once", False):  # tests: the first poll is told to slow down
        d["interval"] += 5
        d["last"] = now
        S["requests"]["slow_down"] = S["requests"].get("slow_down", 0) + 1
        return error("slow_down", "polling too fast")
    if now - d["last"] < d["interval"]:
        S["requests"]["slow_down"] = S["requests"].get("slow_down", 0) + 1
        d["interval"] += 5
        d["last"] = now
        return error("slow_down", "polling too fast")
    d["last"] = now
    if not d["approved"]:
        return error("authorization_pending", "waiting for the user")
    del S["device"][f["device_code"]]
    nrt = new_token("rt-")
    S["refresh"][nrt] = {"user": d["user"], "client": d["client"]}
    S["issued"].append(nrt)
    return 200, {"access_token": issue_access(d["user"], d["scope"]), "token_type": "Bearer",
                 "expires_in": S["lifetime"], "refresh_token": nrt}


def grant_code(f):
    c = S["codes"].pop(f.get("code", ""), None)
    if c is None or c["redirect_uri"] != f.get("redirect_uri"):
        return error("invalid_grant", "unknown code or redirect_uri mismatch")
    verifier = f.get("code_verifier", "").encode()
    chal = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
    if chal != c["challenge"]:
        return error("invalid_grant", "PKCE code_verifier does not match")
    nrt = new_token("rt-")
    S["refresh"][nrt] = {"user": c["user"], "client": f.get("client_id")}
    S["issued"].append(nrt)
    return 200, {"access_token": issue_access(c["user"], c["scope"]), "token_type": "Bearer",
                 "expires_in": S["lifetime"], "refresh_token": nrt}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def form(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n).decode() if n else ""
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        with LOCK:
            if u.path == "/stats":
                cur = {}
                for rt, info in S["refresh"].items():
                    cur[info["user"]] = rt
                return self.answer(200, {"requests": S["requests"], "refresh_tokens": cur,
                                         "issued": S["issued"]})
            if u.path == "/authorize":
                S["requests"]["authorize"] = S["requests"].get("authorize", 0) + 1
                code = new_token("code-")
                S["codes"][code] = {"user": q.get("login_hint", "user"), "scope": q.get("scope", ""),
                                    "redirect_uri": q.get("redirect_uri"),
                                    "challenge": q.get("code_challenge")}
                loc = "%s?%s" % (q.get("redirect_uri"), urllib.parse.urlencode(
                    {"code": code, "state": q.get("state", "")}))
                self.send_response(302)
                self.send_header("Location", loc)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        return self.answer(404, {"error": "not_found"})

    def do_POST(self):
        u = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        f = self.form()
        with LOCK:
            if u.path == "/token":
                g = f.get("grant_type", "")
                S["requests"][g] = S["requests"].get(g, 0) + 1
                S["requests"]["token"] = S["requests"].get("token", 0) + 1
                url = "http://%s%s" % (self.headers.get("Host"), u.path)
                if g == "refresh_token":
                    st, obj = grant_refresh(f)
                elif g == "client_credentials":
                    st, obj = grant_client_credentials(f)
                elif g == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    st, obj = grant_jwt(f, url)
                elif g == "urn:ietf:params:oauth:grant-type:device_code":
                    st, obj = grant_device(f)
                elif g == "authorization_code":
                    st, obj = grant_code(f)
                else:
                    st, obj = error("unsupported_grant_type", g)
                return self.answer(st, obj, [("Cache-Control", "no-store")])
            if u.path == "/device":
                S["requests"]["device"] = S["requests"].get("device", 0) + 1
                dc = new_token("dc-")
                S["device"][dc] = {"user": f.get("login_hint", "user"), "client": f.get("client_id"),
                                   "scope": f.get("scope", ""), "approved": False,
                                   "interval": 1, "last": 0, "slow_once": True}
                return self.answer(200, {"device_code": dc, "user_code": "WDJB-MJHT",
                                         "verification_uri": "http://%s/verify" % self.headers.get("Host"),
                                         "expires_in": 900, "interval": 1})
            if u.path == "/introspect":
                S["requests"]["introspect"] = S["requests"].get("introspect", 0) + 1
                a = S["access"].get(f.get("token", ""))
                if a is None or a["exp"] < time.time() or not a["user"]:
                    return self.answer(200, {"active": False})
                return self.answer(200, {"active": True, "username": a["user"], "scope": a["scope"]})
            if u.path == "/control/exp":
                # when an access token expires (Unix seconds; 0 unknown): for
                # tests/peers/exchange_proxy.py, which ends sessions then
                a = S["access"].get(f.get("token", ""))
                return self.answer(200, {"exp": a["exp"] if a else 0})
            if u.path == "/control/expire":
                for a in S["access"].values():
                    a["exp"] = 0
                return self.answer(200, {"ok": True})
            if u.path == "/control/revoke":
                user = q.get("user")
                S["refresh"] = {k: v for k, v in S["refresh"].items() if v["user"] != user}
                S["access"] = {k: v for k, v in S["access"].items() if v["user"] != user}
                return self.answer(200, {"ok": True})
            if u.path == "/control/lifetime":
                S["lifetime"] = int(q.get("s", "3600"))
                return self.answer(200, {"ok": True})
            if u.path == "/control/approve":
                for d in S["device"].values():
                    d["approved"] = True
                    d["user"] = q.get("user", d["user"])
                return self.answer(200, {"ok": True})
            if u.path == "/control/add_refresh":
                rt = new_token("rt-")
                S["refresh"][rt] = {"user": q.get("user"), "client": q.get("client")}
                S["issued"].append(rt)
                return self.answer(200, {"refresh_token": rt})
        return self.answer(404, {"error": "not_found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    S.update({"clients": cfg.get("clients", {}), "refresh": dict(cfg.get("refresh_tokens", {})),
              "access": {}, "device": {}, "codes": {}, "requests": {},
              "issued": list(cfg.get("refresh_tokens", {}).keys()),
              "scopes": cfg.get("scopes", []), "lifetime": int(cfg.get("lifetime", 3600)),
              "jwt_key": open(cfg["jwt_public_key"]).read() if cfg.get("jwt_public_key") else None,
              "jwt_client_email": cfg.get("jwt_client_email")})
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    if a.pidfile:
        with open(a.pidfile, "w") as p:
            p.write("%d\n" % os.getpid())
    srv.serve_forever()


if __name__ == "__main__":
    main()
