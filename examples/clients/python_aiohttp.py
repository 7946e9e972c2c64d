#!/usr/bin/env python3
"""Call a certgate-protected API with aiohttp (Debian: python3-aiohttp).

    python3 examples/clients/python_aiohttp.py https://localhost:8443/ \
        --cert certs/dev/client.crt --key certs/dev/client.key --ca certs/dev/ca.crt
    python3 examples/clients/python_aiohttp.py https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt
    python3 examples/clients/python_aiohttp.py https://localhost:8443/ \
        --cert client.crt --key client.enc.key --password-file client.pass --ca certs/dev/ca.crt

The context is ssl.create_default_context(cafile=CA): its default purpose, Purpose.SERVER_AUTH, makes a
CLIENT context that verifies the server. Purpose.CLIENT_AUTH, which many snippets use because "we send a
client certificate", makes a SERVER context: aiohttp then fails with "Cannot create a client socket with
a PROTOCOL_TLS_SERVER context". The purpose names what the PEER proves, not what you present.
"""
from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

import aiohttp


def make_context(cert: str, key: str | None, password: str | None, ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)  # == Purpose.SERVER_AUTH: verify certgate
    context.load_cert_chain(cert, key, password=password)  # what we present; key may be inside cert
    return context


async def fetch(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, await r.text()


def main() -> int:
    p = argparse.ArgumentParser(description="GET a URL through certgate with aiohttp")
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
    try:
        status, body = asyncio.run(fetch(a.url, make_context(a.cert, a.key, password, a.ca)))
    except (aiohttp.ClientConnectorError, ssl.SSLError) as e:
        print(f"TLS/connection error: {e}", file=sys.stderr)
        return 1
    print(body)
    if not 200 <= status < 300:
        print(f"HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
