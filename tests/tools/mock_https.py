"""What the mock outside systems of the end-to-end tests share
(mock_ndxp.py, mock_outside.py): a quiet JSON handler, the OAuth2 client's
HTTP Basic check, an HTTPS server on 127.0.0.1 that requires a client
certificate from the test's CA, the port file the test waits for, and
the command-line arguments every mock takes.
"""
import argparse
import base64
import http.server
import json
import os
import ssl


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """Answers JSON; logs nothing (the mock's counters or events are the
    record). A subclass may count answers in on_answer()."""

    def log_message(self, fmt, *a):
        pass

    def on_answer(self, status):
        pass

    def answer(self, status, doc, extra=None):
        self.on_answer(status)
        body = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def arg_parser():
    """The arguments every mock takes: the test's directory, the server's
    certificate and key, the CA of the client certificates, and the OAuth2
    client's id and secret; a mock adds its own."""
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    for name in ("--cert", "--key", "--ca", "--client-id", "--client-secret"):
        p.add_argument(name, required=True)
    return p


def basic_auth_ok(header, client_id, client_secret):
    """Whether an Authorization header carries these client credentials."""
    want = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return header == want


def https_server(handler, args):
    """A threading HTTPS server on 127.0.0.1 (an ephemeral port) with
    args.cert/args.key, requiring a client certificate signed by args.ca;
    args is kept as server.args for the handler."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.args = args
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(args.ca)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


def write_port(directory, name, port):
    """Writes the port to directory/name at once (the test polls for it)."""
    path = os.path.join(directory, name)
    with open(path + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(path + ".tmp", path)
