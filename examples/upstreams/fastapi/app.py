#!/usr/bin/env python3
"""A FastAPI app behind certgate -- the uvicorn user who cannot see the peer certificate: certgate
terminates mTLS and hands the verified identity over as headers. Runs with Debian's python3-fastapi
and uvicorn (no pip needed).

    python3 examples/upstreams/fastapi/app.py --port 8000                        # binds 127.0.0.1
    uvicorn --app-dir examples/upstreams/fastapi app:app --host 127.0.0.1 --port 8000

then point a certgate route at http://127.0.0.1:8000.

Trust these headers ONLY because certgate is the only way to reach this app (bind 127.0.0.1, or allow
only certgate with a firewall / NetworkPolicy); see ../README.md. uvicorn's default
--forwarded-allow-ips=127.0.0.1 makes request.client the real caller's address from X-Forwarded-For.
"""
from __future__ import annotations

import argparse
import base64
import os
import socket
from urllib.parse import unquote

from fastapi import Depends, FastAPI, HTTPException, Request

app = FastAPI(title="certgate FastAPI example")

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


def client_identity(request: Request) -> dict:
    """FastAPI dependency: the identity certgate verified; 403 when there is none."""
    h = request.headers
    if JWKS_URL:
        claims = verified_assertion(h.get("x-client-cert-assertion"))
        if claims is None:
            raise HTTPException(status_code=403, detail="invalid_assertion: no valid X-Client-Cert-Assertion; reach this app through certgate")
        return identity_from_claims(claims)
    if h.get("x-client-cert-verified") != "SUCCESS":
        raise HTTPException(status_code=403, detail="client_certificate_required: reach this app through certgate")
    return {
        "subject": h.get("x-client-cert-subject"),
        "issuer": h.get("x-client-cert-issuer"),
        "fingerprint": h.get("x-client-cert-fingerprint"),
        "serial": h.get("x-client-cert-serial"),
        "not_after": h.get("x-client-cert-not-after"),
        "san_uri": split_san(h.get("x-client-cert-san-uri")),
        "san_dns": split_san(h.get("x-client-cert-san-dns")),
    }


def admin_client(client: dict = Depends(client_identity)) -> dict:
    if ADMIN_SAN_URIS.isdisjoint(client["san_uri"]):
        raise HTTPException(status_code=403, detail=f"forbidden: {client['subject']} may not use /admin")
    return client


@app.get("/whoami")
def whoami(request: Request, client: dict = Depends(client_identity)) -> dict:
    return {"app": "fastapi", "client": client, "remote": request.client.host if request.client else None}


@app.get("/admin")
def admin(client: dict = Depends(admin_client)) -> dict:
    return {"app": "fastapi", "admin": True, "caller": client["subject"]}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1 unless a network policy admits only certgate")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    args = parser.parse_args()
    # Bind first so the printed port is the real one (also with --port 0); uvicorn serves on this socket.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    print(f"listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
