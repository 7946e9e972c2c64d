#!/usr/bin/env python3
"""Enroll a client with certgate, then call an API through certgate with the new certificate.

Seed 002's whole story in one script: make a key and a CSR, send the CSR with a one-time token to
certgate's `POST /enroll`, save the signed certificate (+ chain), and use it for a call. Needs only the
standard library, Debian's python3-requests and the `openssl` command (no `cryptography`, no pip).

    # the operator made a token: TOKEN=$(node dist/cli.js certs token --dir certs/dev --cn svc-b ...)
    printf '%s\\n' "$TOKEN" > svc-b.token && chmod 600 svc-b.token
    python3 examples/enroll/enroll.py --admin-url http://127.0.0.1:9090 --token-file svc-b.token \\
        --cn svc-b --san-uri spiffe://example.org/ns/prod/sa/svc-b \\
        --out-dir enrolled --ca certs/dev/ca.crt --url https://localhost:8443/

Writes OUT_DIR/CN.key (EC P-256, mode 0600) and OUT_DIR/CN.crt (certificate, then the CA chain). They
are written next to the old ones first and moved into place only once certgate has issued the
certificate, so a refused enrollment never destroys a working key. The token comes from --token-file
or the CERTGATE_ENROLL_TOKEN environment variable, never from a flag (flags are visible in `ps`).

Exit status: 0 enrolled (and, with --url, the call answered 2xx); 1 certgate refused or could not be
reached (its JSON reason is printed); 2 bad arguments, missing openssl, unusable files; 3 enrolled, but
the call through certgate with the new certificate failed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import requests

TOKEN_ENV = "CERTGATE_ENROLL_TOKEN"
TIMEOUT = 30

# What each refusal means for the person running this script (see README "Enrollment: enroll a client").
ADVICE = {
    400: "certgate could not use the CSR",
    401: "the token was refused: ask the operator for a new one (certgate certs token)",
    403: "the CSR asks for an identity this token does not allow: fix --cn/--ou/--san-uri/--san-dns",
    413: "the request body is too large for certgate (64 KiB at most)",
}


class Failure(Exception):
    """A message for the user and the exit status that goes with it."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def read_token(path: str | None) -> str:
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise Failure(f"cannot read --token-file {path}: {e.strerror}", 2) from e
        where = f"--token-file {path}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        where = TOKEN_ENV
    if not token:
        raise Failure(f"no enrollment token: pass --token-file FILE or set {TOKEN_ENV} "
                      f"(the operator makes one with `certgate certs token`)", 2)
    if any(c.isspace() for c in token):
        raise Failure(f"the token in {where} holds whitespace; it should be one line <id>.<secret>", 2)
    return token


def subject_arg(cn: str, ou: str | None) -> str:
    """openssl's -subj syntax (/OU=x/CN=y) with '\\', '/' and '+' escaped, so a value cannot add an RDN."""

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+")

    return (f"/OU={esc(ou)}" if ou else "") + f"/CN={esc(cn)}"


def openssl(args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        r = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)
    except FileNotFoundError as e:
        raise Failure("the openssl command is not installed (Debian: apt-get install openssl)", 2) from e
    if r.returncode != 0:
        err = r.stderr.decode("utf-8", "replace").strip()
        raise Failure(f"openssl {args[0]} failed: {err}", 2)
    return r.stdout


def write_private(path: str, data: bytes) -> None:
    """Creates the file 0600 from the start (never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def make_key_and_csr(key_path: str, cn: str, ou: str | None, san_uri: list[str], san_dns: list[str]) -> bytes:
    """An EC P-256 key written to key_path (0600) and a PEM CSR for CN (+ OU, SANs), returned."""
    # genpkey prints the key on stdout, so it is never in a file with default permissions.
    key = openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    write_private(key_path, key)
    sans = [f"URI:{u}" for u in san_uri] + [f"DNS:{d}" for d in san_dns]
    req = ["req", "-new", "-sha256", "-key", key_path, "-subj", subject_arg(cn, ou)]
    if sans:
        req += ["-addext", "subjectAltName=" + ",".join(sans)]
    return openssl(req)


def refusal(r: requests.Response) -> str:
    """certgate's JSON answer, as one readable message."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = r.text.strip()[:500] or "(empty body)"
        return f"certgate answered HTTP {r.status_code}: {text}"
    kind = ", ".join(str(body[k]) for k in ("error", "reason") if body.get(k))
    mismatches = body.get("mismatches") or []
    # With mismatches, the message repeats them: list them one a line instead.
    message = "" if mismatches else str(body.get("message", ""))
    lines = [f"enrollment refused: HTTP {r.status_code} ({kind}): {message}".rstrip(": ")]
    lines += [f"  - {m}" for m in mismatches]
    if r.status_code in ADVICE:
        lines.append(f"  {ADVICE[r.status_code]}")
    return "\n".join(lines)


def enroll(admin_url: str, token: str, csr: bytes) -> str:
    url = admin_url.rstrip("/") + "/enroll"
    try:
        r = requests.post(url, data=csr, timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-pem-file"})
    except requests.exceptions.RequestException as e:
        raise Failure(f"cannot reach certgate's admin listener at {url}: {e}", 1) from e
    if r.status_code != 201:
        raise Failure(refusal(r), 1)
    chain = r.text
    if not chain.startswith("-----BEGIN CERTIFICATE-----"):
        raise Failure(f"certgate answered 201 but not with a PEM certificate: {chain[:200]!r}", 1)
    return chain


def describe(crt_path: str) -> str:
    """subject, serial, expiry of the first certificate in the file, as openssl prints them."""
    out = openssl(["x509", "-in", crt_path, "-noout", "-subject", "-serial", "-enddate", "-nameopt", "RFC2253"])
    return out.decode("utf-8", "replace").strip()


def call(url: str, crt: str, key: str, ca: str | None) -> int:
    """GET url with the new certificate; print the identity headers the upstream saw (certgate's whoami echoes them)."""
    try:
        r = requests.get(url, cert=(crt, key), verify=ca if ca else True, timeout=TIMEOUT)
    except requests.exceptions.SSLError as e:
        print(f"TLS error calling {url}: {e}", file=sys.stderr)
        return 3
    except requests.exceptions.RequestException as e:
        print(f"cannot call {url}: {e}", file=sys.stderr)
        return 3
    print(f"GET {url} -> HTTP {r.status_code}")
    try:
        body = r.json()
    except ValueError:
        body = None
    headers = body.get("headers") if isinstance(body, dict) else None
    if isinstance(headers, dict):
        identity = {k: v for k, v in sorted(headers.items())
                    if k.lower().startswith(("x-client-cert", "client-cert", "x-forwarded-client-cert"))}
        print("identity headers the upstream received:")
        for k, v in identity.items():
            print(f"  {k}: {v}")
        if not identity:
            print("  (none)")
    else:
        print(r.text[:2000])
    if not r.ok:
        print(f"the call was refused: HTTP {r.status_code}", file=sys.stderr)
        return 3
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description="Make a key + CSR, enroll it with certgate (POST /enroll with a one-time token), "
                    "save the certificate, then call an API through certgate with it.",
        epilog=f"The token is read from --token-file or ${TOKEN_ENV}. Exit status: 0 ok, 1 enrollment refused "
               "or certgate unreachable, 2 usage or local problem, 3 enrolled but the call failed.")
    p.add_argument("--admin-url", required=True, help="certgate's admin listener, e.g. http://127.0.0.1:9090")
    p.add_argument("--cn", required=True, help="the subject CN to ask for (must be what the token allows)")
    p.add_argument("--ou", help="the subject OU, when the token allows one")
    p.add_argument("--san-uri", action="append", default=[], metavar="URI", help="a URI SAN to ask for (repeatable)")
    p.add_argument("--san-dns", action="append", default=[], metavar="NAME", help="a DNS SAN to ask for (repeatable)")
    p.add_argument("--token-file", help=f"file holding the enrollment token (default: ${TOKEN_ENV})")
    p.add_argument("--out-dir", default=".", help="where CN.key and CN.crt go (default: the current folder)")
    p.add_argument("--url", help="after enrolling, GET this URL through certgate with the new certificate")
    p.add_argument("--ca", help="CA certificate(s) that issued certgate's server certificate, for --url")
    a = p.parse_args()

    for san in a.san_uri + a.san_dns:
        if "," in san or not san.strip():
            p.error(f"SAN {san!r} is empty or holds a comma; pass one value per --san-uri/--san-dns")
    if "/" in a.cn or "\n" in a.cn:
        p.error("--cn must not contain '/' or a newline (it also names the output files)")

    try:
        token = read_token(a.token_file)
        if shutil.which("openssl") is None:
            raise Failure("the openssl command is not installed (Debian: apt-get install openssl)", 2)
        if a.ca and not os.path.isfile(a.ca):
            raise Failure(f"--ca {a.ca} does not exist", 2)
        os.makedirs(a.out_dir, exist_ok=True)
        key_path = os.path.join(a.out_dir, f"{a.cn}.key")
        crt_path = os.path.join(a.out_dir, f"{a.cn}.crt")
        # New files live in a private temporary folder next to the final ones until certgate has issued.
        staging = tempfile.mkdtemp(prefix=".enroll-", dir=a.out_dir)
        try:
            new_key = os.path.join(staging, "new.key")
            new_crt = os.path.join(staging, "new.crt")
            csr = make_key_and_csr(new_key, a.cn, a.ou, a.san_uri, a.san_dns)
            print(f"CSR for {subject_arg(a.cn, a.ou)} (EC P-256) -> {a.admin_url.rstrip('/')}/enroll")
            chain = enroll(a.admin_url, token, csr)
            with open(new_crt, "w", encoding="ascii") as f:
                f.write(chain)
            os.replace(new_key, key_path)
            os.replace(new_crt, crt_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except Failure as e:
        print(f"enroll.py: {e}", file=sys.stderr)
        return e.status

    print(f"enrolled: {key_path} (private key, 0600) and {crt_path} ({chain.count('BEGIN CERTIFICATE')} certificates: yours, then the CA chain)")
    try:
        for line in describe(crt_path).splitlines():
            print(f"  {line}")
    except Failure as e:
        print(f"enroll.py: warning: {e}", file=sys.stderr)
    if not a.url:
        return 0
    return call(a.url, crt_path, key_path, a.ca)


if __name__ == "__main__":
    sys.exit(main())
