#!/usr/bin/env python3
"""A gRPC server behind certgate (examples/grpc/README.md): it listens on cleartext HTTP/2 (h2c), as gRPC
servers do behind a TLS-terminating proxy, and reads the client's verified identity from the metadata
certgate sets (x-client-cert-subject, x-client-cert-verified, ...). Any copy a client sent itself was
stripped by certgate. Needs python3-grpcio (Debian) or `pip install grpcio`. No generated code: the
methods take and return raw bytes (UTF-8 text), so nothing but grpcio is needed.

  python3 server.py [port]     # default 50051; 0 = any free port; prints "listening <port>"

Listen on 127.0.0.1 only (or a network only certgate reaches): the identity metadata is trustworthy only
when every request comes through certgate.
"""
import json
import sys
import threading
from concurrent import futures

import grpc

SERVICE = 'demo.Demo'


def identity(context):
    """The verified identity certgate put in the call's metadata."""
    md = dict(context.invocation_metadata())
    return {k: v for k, v in md.items() if k.startswith('x-client-cert') or k.startswith('x-forwarded')}


def whoami(request, context):
    # Unary: the identity as the upstream sees it, and the request it got.
    return json.dumps({'identity': identity(context), 'request': request.decode()}).encode()


def count(request, context):
    # Server streaming: "n" → n messages.
    for i in range(int(request.decode() or '3')):
        yield f'{i + 1}'.encode()


def total(request_iterator, context):
    # Client streaming: the messages joined.
    return b'+'.join(request_iterator)


def chat(request_iterator, context):
    # Bidi: every message echoed as it arrives.
    for message in request_iterator:
        yield b'echo:' + message


def hang(request, context):
    # Never answers: the client's deadline ends the call (DEADLINE_EXCEEDED).
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(60)
    return b''


def fail(request, context):
    # An error of the upstream's own: its grpc-status and grpc-message reach the client through certgate.
    context.abort(grpc.StatusCode.NOT_FOUND, 'no such thing: ' + request.decode())


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 50051
    handlers = {
        'Whoami': grpc.unary_unary_rpc_method_handler(whoami),
        'Count': grpc.unary_stream_rpc_method_handler(count),
        'Total': grpc.stream_unary_rpc_method_handler(total),
        'Chat': grpc.stream_stream_rpc_method_handler(chat),
        'Hang': grpc.unary_unary_rpc_method_handler(hang),
        'Fail': grpc.unary_unary_rpc_method_handler(fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    # The same methods under a second name, for routes with other settings in front of them.
    server.add_generic_rpc_handlers(tuple(grpc.method_handlers_generic_handler(s, handlers) for s in (SERVICE, 'slow.Demo')))
    bound = server.add_insecure_port(f'127.0.0.1:{port}')
    server.start()
    print(f'listening {bound}', flush=True)
    server.wait_for_termination()


if __name__ == '__main__':
    main()
