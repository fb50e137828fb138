#!/usr/bin/env python3
"""A mock outside system for tests/e2e/test_outbound_auth.c: HTTPS on
127.0.0.1 (its own CA), a client certificate required, an OAuth2 token
endpoint (client credentials, HTTP Basic) and a service that wants a bearer
token.

    mock_outside.py DIR --cert S.pem --key S.key --ca CA.pem
                    --client-id ID --client-secret SECRET [--bearer TOKEN] [--ttl S]

POST /token    grant_type=client_credentials, Basic ID:SECRET -> a new token
               valid --ttl seconds; anything else 400/401 as RFC 6749 says.
POST /service  Authorization: Bearer T, T issued and not expired, not older
               than DIR/revoke (touch it to revoke every token issued before),
               or the --bearer token -> 200 {"ok":true,"echo":BODY}; else 401.
The port goes to DIR/port; one line per event to DIR/events ("token N",
"service 200", "service 401", "token 401"). A connection without a client
certificate fails in the TLS handshake.
"""
import json
import os
import secrets
import sys
import threading
import time

from mock_https import JsonHandler, arg_parser, basic_auth_ok, https_server, write_port

lock = threading.Lock()
tokens = {}  # token -> (issued_at, expires_at)
issued = 0


def event(args, text):
    with lock, open(os.path.join(args.dir, "events"), "a") as f:
        f.write(text + "\n")


class Handler(JsonHandler):  # quiet: the events file is the record
    def do_POST(self):
        global issued
        args = self.server.args
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        auth = self.headers.get("Authorization", "")
        if self.path == "/token":
            if not basic_auth_ok(auth, args.client_id, args.client_secret):
                event(args, "token 401")
                return self.answer(401, {"error": "invalid_client"},
                                   {"WWW-Authenticate": "Basic"})
            if body.decode() not in ("grant_type=client_credentials",) and \
                    not body.decode().startswith("grant_type=client_credentials&"):
                return self.answer(400, {"error": "unsupported_grant_type"})
            with lock:
                issued += 1
                n = issued
                token = f"tok-{n}-{secrets.token_hex(8)}"
                tokens[token] = (time.time(), time.time() + args.ttl)
            event(args, f"token {n}")
            return self.answer(200, {"access_token": token, "token_type": "Bearer",
                                     "expires_in": args.ttl})
        if self.path == "/service":
            token = auth[7:] if auth.startswith("Bearer ") else None
            ok = False
            revoke = os.path.join(args.dir, "revoke")
            revoked_at = os.path.getmtime(revoke) if os.path.exists(revoke) else 0
            with lock:
                if token and token in tokens:
                    t0, t1 = tokens[token]
                    ok = time.time() < t1 and t0 > revoked_at
            if args.bearer and token == args.bearer:
                ok = True
            if not ok:
                event(args, "service 401")
                return self.answer(401, {"error": "invalid_token"},
                                   {"WWW-Authenticate": "Bearer error=\"invalid_token\""})
            event(args, "service 200")
            try:
                echo = json.loads(body or b"null")
            except ValueError:
                echo = None
            return self.answer(200, {"ok": True, "echo": echo})
        self.answer(404, {"error": "not_found"})


def main():
    p = arg_parser()
    p.add_argument("--bearer")
    p.add_argument("--ttl", type=int, default=3600)
    args = p.parse_args()
    server = https_server(Handler, args)
    write_port(args.dir, "port", server.server_address[1])
    sys.stderr.write("mock outside system on port %d\n" % server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
