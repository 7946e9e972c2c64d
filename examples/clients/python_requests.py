#!/usr/bin/env python3
"""Call a certgate-protected API with Python requests (Debian: python3-requests).

    # certificate and key in two files; verify certgate against your CA (never verify=False)
    python3 examples/clients/python_requests.py https://localhost:8443/ \
        --cert certs/dev/client.crt --key certs/dev/client.key --ca certs/dev/ca.crt
    # one PEM holding key + certificate (+ intermediates)
    python3 examples/clients/python_requests.py https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt
    # an encrypted key: requests has no password argument; KeyPasswordAdapter (below) passes it to urllib3
    python3 examples/clients/python_requests.py https://localhost:8443/ \
        --cert client.crt --key client.enc.key --password-file client.pass --ca certs/dev/ca.crt

Prints the response body; a refusal prints certgate's reason (e.g. {"error": "client_certificate_invalid",
"reason": "expired"}) and exits 1.
"""
from __future__ import annotations

import argparse
import sys

import requests
from requests.adapters import HTTPAdapter


class KeyPasswordAdapter(HTTPAdapter):
    """Decrypts a password-protected key, which requests' cert= cannot: urllib3 takes the password as
    the `key_password` pool argument. Everything else (CA, hostname check) stays requests' own."""

    def __init__(self, password: str, **kwargs):
        self._password = password
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["key_password"] = self._password
        return super().init_poolmanager(*args, **kwargs)


def read_password(path: str | None) -> str | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\r\n")


def main() -> int:
    p = argparse.ArgumentParser(description="GET a URL through certgate with Python requests")
    p.add_argument("url")
    p.add_argument("--cert", required=True, help="client certificate PEM, or key + certificate in one PEM")
    p.add_argument("--key", help="private key PEM, when not inside --cert")
    p.add_argument("--password-file", help="file holding the key's password (trailing newline ignored)")
    p.add_argument("--ca", required=True, help="CA certificate(s) that issued certgate's server certificate")
    a = p.parse_args()

    session = requests.Session()
    if a.password_file:
        session.mount("https://", KeyPasswordAdapter(read_password(a.password_file)))
    cert = (a.cert, a.key) if a.key else a.cert
    try:
        r = session.get(a.url, cert=cert, verify=a.ca, timeout=30)
    except requests.exceptions.SSLError as e:
        print(f"TLS error: {e}", file=sys.stderr)
        return 1
    print(r.text)
    if not r.ok:
        print(f"HTTP {r.status_code}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
