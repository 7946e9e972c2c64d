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


def client_identity(headers) -> dict | None:
    """The identity certgate verified, or None when the request did not come with one."""
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
