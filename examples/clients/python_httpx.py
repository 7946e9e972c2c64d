#!/usr/bin/env python3
"""Call a certgate-protected API with httpx (Debian: python3-httpx).

    python3 examples/clients/python_httpx.py https://localhost:8443/ \
        --cert certs/dev/client.crt --key certs/dev/client.key --ca certs/dev/ca.crt
    python3 examples/clients/python_httpx.py https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt
    python3 examples/clients/python_httpx.py https://localhost:8443/ \
        --cert client.crt --key client.enc.key --password-file client.pass --ca certs/dev/ca.crt

Passes an ssl.SSLContext as verify=: that works on every httpx version (old ones also took
cert=(crt, key, password) and verify="ca.pem"; httpx 0.28 deprecates both in favour of the context).
"""
from __future__ import annotations

import argparse
import ssl
import sys

import httpx


def main() -> int:
    p = argparse.ArgumentParser(description="GET a URL through certgate with httpx")
    p.add_argument("url")
    p.add_argument("--cert", required=True, help="client certificate PEM, or key + certificate in one PEM")
    p.add_argument("--key", help="private key PEM, when not inside --cert")
    p.add_argument("--password-file", help="file holding the key's password (trailing newline ignored)")
    p.add_argument("--ca", required=True, help="CA certificate(s) that issued certgate's server certificate")
    a = p.parse_args()
    password = None
    if a.password_file:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    context = ssl.create_default_context(cafile=a.ca)  # Purpose.SERVER_AUTH: verify certgate
    context.load_cert_chain(a.cert, a.key, password=password)
    try:
        with httpx.Client(verify=context, timeout=30) as client:
            r = client.get(a.url)
    except (httpx.ConnectError, ssl.SSLError) as e:
        print(f"TLS/connection error: {e}", file=sys.stderr)
        return 1
    print(r.text)
    if not r.is_success:
        print(f"HTTP {r.status_code}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
