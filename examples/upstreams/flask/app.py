#!/usr/bin/env python3
"""A Flask app behind certgate: it reads the verified client identity from certgate's headers and
authorizes on it. Runs with Debian's python3-flask (no pip needed).

    python3 examples/upstreams/flask/app.py --port 8000          # binds 127.0.0.1 only
    flask --app examples/upstreams/flask/app.py run --port 8000  # the same, with Flask's CLI

then point a certgate route at http://127.0.0.1:8000.

Trust these headers ONLY because certgate is the only way to reach this app: certgate removes any
X-Client-Cert-* header a client sends and sets its own, but a client that can reach the app directly
can send whatever it likes. Bind to 127.0.0.1 (same host or same pod), or allow only certgate with a
firewall / NetworkPolicy. The X-Client-Cert-Verified check below is a second line of defence (it turns
away requests certgate let through without a certificate, e.g. client_auth: optional), not a substitute.
"""
from __future__ import annotations

import argparse
import base64
import os
from urllib.parse import unquote

from flask import Flask, g, jsonify, request

app = Flask(__name__)

# Clients allowed on /admin, by SAN URI (e.g. SPIFFE IDs); comma-separated.
ADMIN_SAN_URIS = frozenset(
    u for u in os.environ.get("ADMIN_SAN_URIS", "spiffe://example.org/ns/prod/sa/svc-a").split(",") if u
)


def split_san(value: str | None) -> list[str]:
    """certgate joins SAN values with ',' and percent-encodes a ',' (or '%') inside a value."""
    return [unquote(v) for v in value.split(",")] if value else []


# --- Optional: verify certgate's signed identity assertion (headers.assertion) -------------------------
# With CERTGATE_JWKS_URL set (certgate's admin listener: http://127.0.0.1:9090/.well-known/jwks.json), the
# identity comes ONLY from a valid X-Client-Cert-Assertion: a request that came around certgate (forged
# X-Client-Cert-* headers, no or a bad signature, another route's audience, an expired token) is refused
# even if it reaches this app. Needs PyJWT with cryptography (Debian: python3-jwt python3-cryptography).
JWKS_URL = os.environ.get("CERTGATE_JWKS_URL")
AUDIENCE = os.environ.get("CERTGATE_AUDIENCE")  # the route's assertion_audience (default: the route name)
ISSUER = os.environ.get("CERTGATE_ISSUER", "certgate")  # headers.assertion.issuer
if JWKS_URL:
    import jwt  # PyJWT

    if not AUDIENCE:
        raise SystemExit("CERTGATE_AUDIENCE must name this app's route (its assertion_audience, default the route name)")
    # Caches the key set; fetches it again when a token names a kid it does not know (a rotated key).
    JWKS = jwt.PyJWKClient(JWKS_URL)


def verified_assertion(token: str | None) -> dict | None:
    """The claims of a valid assertion for this app, or None: missing, bad signature, wrong iss/aud, expired."""
    if not token:
        return None
    try:
        key = JWKS.get_signing_key_from_jwt(token).key
        return jwt.decode(token, key, algorithms=["ES256", "EdDSA"], audience=AUDIENCE, issuer=ISSUER, leeway=5,
                          options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]})
    except jwt.PyJWTError:
        return None


def identity_from_claims(claims: dict) -> dict:
    """The identity the assertion states (README "Signed identity assertion" lists the claims)."""
    return {
        "subject": claims["sub"],
        # x5t#S256 is base64url(SHA-256(DER)); X-Client-Cert-Fingerprint is the same digest in hex.
        "fingerprint": base64.urlsafe_b64decode(claims["x5t#S256"] + "==").hex(),
        "serial": claims.get("serial"),
        "not_after": claims.get("not_after"),
        "san_uri": claims["sans"]["uri"],
        "san_dns": claims["sans"]["dns"],
        "verified_by": "assertion",
    }


def client_identity(headers) -> dict | None:
    """The identity certgate verified, or None when the request did not come with one."""
    if JWKS_URL:
        claims = verified_assertion(headers.get("X-Client-Cert-Assertion"))
        return None if claims is None else identity_from_claims(claims)
    if headers.get("X-Client-Cert-Verified") != "SUCCESS":
        return None
    return {
        "subject": headers.get("X-Client-Cert-Subject"),
        "issuer": headers.get("X-Client-Cert-Issuer"),
        "fingerprint": headers.get("X-Client-Cert-Fingerprint"),
        "serial": headers.get("X-Client-Cert-Serial"),
        "not_after": headers.get("X-Client-Cert-Not-After"),
        "san_uri": split_san(headers.get("X-Client-Cert-SAN-URI")),
        "san_dns": split_san(headers.get("X-Client-Cert-SAN-DNS")),
    }


@app.before_request
def require_verified_client():
    identity = client_identity(request.headers)
    if identity is None:
        if JWKS_URL:
            return jsonify(error="invalid_assertion",
                           message="no valid X-Client-Cert-Assertion: reach this app through certgate"), 403
        return jsonify(error="client_certificate_required",
                       message="this app is only reachable through certgate with a verified client certificate"), 403
    g.client = identity
    return None


@app.get("/whoami")
def whoami():
    return jsonify(app="flask", client=g.client)


@app.get("/admin")
def admin():
    if ADMIN_SAN_URIS.isdisjoint(g.client["san_uri"]):
        return jsonify(error="forbidden", message=f"{g.client['subject']} may not use /admin"), 403
    return jsonify(app="flask", admin=True, caller=g.client["subject"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 unless a network policy admits only certgate")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    args = parser.parse_args()
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, app, threaded=True)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
