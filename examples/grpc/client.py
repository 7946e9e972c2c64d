#!/usr/bin/env python3
"""A gRPC client calling through certgate with its client certificate (examples/grpc/README.md).

  python3 client.py <certgate host:port> <ca.pem> <client.pem> <client-key.pem> [call] [argument]

call: whoami (default) | count | total | chat | hang (deadline: argument seconds, default 1) | fail. Prints one JSON line:
{"code": "OK", "details": ..., "result": ...}; a refusal by certgate arrives as a gRPC status with
certgate's reason in "details" (e.g. UNAUTHENTICATED, "client_certificate_invalid/revoked: ...").
Needs python3-grpcio (Debian) or `pip install grpcio`.
"""
import json
import os
import sys

import grpc

# GRPC_SERVICE: another service name, to reach another certgate route (default demo.Demo).
SERVICE = '/' + os.environ.get('GRPC_SERVICE', 'demo.Demo') + '/'


def main():
    target, ca, cert, key = sys.argv[1:5]
    call = sys.argv[5] if len(sys.argv) > 5 else 'whoami'
    arg = sys.argv[6] if len(sys.argv) > 6 else ''
    read = lambda p: open(p, 'rb').read() if p != '-' else None
    creds = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
    # certgate's certificate names "localhost"; the target may be an IP address.
    with grpc.secure_channel(target, creds, options=[('grpc.ssl_target_name_override', 'localhost')]) as channel:
        metadata = [('x-client-cert-subject', 'CN=spoofed')] if call == 'whoami' else None
        try:
            if call == 'whoami':
                result = json.loads(channel.unary_unary(SERVICE + 'Whoami')(arg.encode(), metadata=metadata, timeout=10))
            elif call == 'count':
                result = [m.decode() for m in channel.unary_stream(SERVICE + 'Count')((arg or '3').encode(), timeout=10)]
            elif call == 'total':
                result = channel.stream_unary(SERVICE + 'Total')(iter([b'1', b'2', b'3']), timeout=10).decode()
            elif call == 'chat':
                result = [m.decode() for m in channel.stream_stream(SERVICE + 'Chat')(iter([b'a', b'b', b'c']), timeout=10)]
            elif call == 'hang':
                result = channel.unary_unary(SERVICE + 'Hang')(b'', timeout=float(arg or 1)).decode()
            elif call == 'fail':
                result = channel.unary_unary(SERVICE + 'Fail')(arg.encode(), timeout=10).decode()
            else:
                raise SystemExit(f'unknown call {call}')
            print(json.dumps({'code': 'OK', 'details': None, 'result': result}))
        except grpc.RpcError as e:
            print(json.dumps({'code': e.code().name, 'details': e.details(), 'result': None}))


if __name__ == '__main__':
    main()
