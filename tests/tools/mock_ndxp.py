#!/usr/bin/env python3
"""A mock national data-sharing platform (NDXP) for tests/e2e/test_ndxp.c:
the population database's REST interface as the NDXP gateway
(adapters/plugins/ndxp) calls it. HTTPS on 127.0.0.1 (the test's own CA), a
client certificate required, an OAuth2 token endpoint with short-lived
tokens, look-up and verify endpoints over a few citizens, and faults the
test injects through a plain-HTTP control port.

    mock_ndxp.py DIR --cert S.pem --key S.key --ca CA.pem --data CITIZENS.json
                 --client-id ID --client-secret SECRET [--token-ttl S]

HTTPS (port in DIR/port):
POST /oauth2/token                  grant_type=client_credentials, Basic ID:SECRET
                                    -> {"access_token","token_type":"Bearer","expires_in"}
POST /api/csdldc/v1/citizens/lookup {"personal_id","fields":[...],"purpose",...}
                                    -> 200 {"citizen":{...only those fields...}}
                                    or 404 {"error":"citizen_not_found"}
POST /api/csdldc/v1/citizens/verify {"personal_id","declared":{...},...}
                                    -> 200 {"checks":{"full_name":"match"|"mismatch",...}}
Both want "Authorization: Bearer T" with T issued and not expired (else 401
invalid_token, counted as "expired_token" when T was issued but expired).

Control (plain HTTP on 127.0.0.1, port in DIR/control_port):
GET  /counters   {"token": N, "lookup": N, "verify": N, "status_200": N, ...,
                  "expired_token": N, "last_fields": [...], "last_purpose_code": "..."}
POST /fault      {"status": 401|429|503|..., "count": N, "retry_after": S}: the next
                 N look-up or verify calls answer that status (faults queue up)
POST /reset      drops the faults (counters stay)
CITIZENS.json is {"citizens": [record, ...]} in the interface's record form.
Personal data never goes to stderr: the counters are the record.
"""
import http.server
import json
import re
import secrets
import sys
import threading
import time

from mock_https import JsonHandler, arg_parser, basic_auth_ok, https_server, write_port

lock = threading.Lock()
tokens = {}      # token -> expires_at
counters = {"token": 0, "lookup": 0, "verify": 0, "expired_token": 0,
            "last_fields": [], "last_purpose_code": ""}
faults = []      # [status, count, retry_after]
citizens = {}

API = "/api/csdldc/v1/citizens/"
# The interface's field names -> the record keys each one covers.
FIELD_KEYS = {
    "full_name": ["full_name"],
    "date_of_birth": ["date_of_birth"],
    "sex": ["sex"],
    "birth_province_code": ["birth_province_code"],
    "residence": ["residence", "previous_residence", "temporary_residence",
                  "temporary_until"],
    "household": ["household"],
    "family": ["family"],
    "last_changed": ["created_on", "changed_on"],
}


def count(name):
    with lock:
        counters[name] = counters.get(name, 0) + 1


def fold(text, drop_punct):
    text = text.lower()
    if drop_punct:
        text = re.sub(r"[,.;/-]", " ", text)
    return " ".join(text.split())


class Api(JsonHandler):
    protocol_version = "HTTP/1.1"

    def on_answer(self, status):
        count("status_%d" % status)

    def do_POST(self):
        args = self.server.args
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        auth = self.headers.get("Authorization", "")
        if self.path == "/oauth2/token":
            if not basic_auth_ok(auth, args.client_id, args.client_secret):
                return self.answer(401, {"error": "invalid_client"},
                                   {"WWW-Authenticate": "Basic"})
            if not body.decode().startswith("grant_type=client_credentials"):
                return self.answer(400, {"error": "unsupported_grant_type"})
            token = "ndxptok_" + secrets.token_hex(12)
            with lock:
                tokens[token] = time.time() + args.token_ttl
                counters["token"] += 1
            return self.answer(200, {"access_token": token, "token_type": "Bearer",
                                     "expires_in": args.token_ttl})
        if not self.path.startswith(API) or self.path[len(API):] not in ("lookup", "verify"):
            return self.answer(404, {"error": "not_found"})
        what = self.path[len(API):]
        count(what)
        with lock:
            fault = None
            if faults:
                fault = faults[0]
                fault[1] -= 1
                if fault[1] <= 0:
                    faults.pop(0)
        if fault:
            extra = {"Retry-After": str(fault[2])} if fault[2] is not None else None
            if fault[0] == 401:
                extra = {"WWW-Authenticate": "Bearer error=\"invalid_token\""}
            return self.answer(fault[0], {"error": "injected"}, extra)
        token = auth[7:] if auth.startswith("Bearer ") else None
        with lock:
            expires = tokens.get(token)
        if expires is None or time.time() >= expires:
            if expires is not None:
                count("expired_token")
            return self.answer(401, {"error": "invalid_token"},
                               {"WWW-Authenticate": "Bearer error=\"invalid_token\""})
        try:
            req = json.loads(body)
            pid = req["personal_id"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "invalid_request"})
        record = citizens.get(pid)
        if record is None:
            return self.answer(404, {"error": "citizen_not_found"})
        if what == "lookup":
            fields = req.get("fields") or list(FIELD_KEYS)
            with lock:
                counters["last_fields"] = fields
                counters["last_purpose_code"] = req.get("purpose_code", "")
            out = {"personal_id": pid}
            for f in fields:
                for k in FIELD_KEYS.get(f, []):
                    if k in record:
                        out[k] = record[k]
            return self.answer(200, {"citizen": out})
        declared = req.get("declared") or {}
        checks = {}
        for k, v in declared.items():
            if k == "full_name":
                same = fold(v, False) == fold(record.get("full_name", ""), False)
            elif k == "residence":
                same = fold(v, True) in (fold(record.get("residence", ""), True),
                                         fold(record.get("temporary_residence", ""), True))
            else:
                same = v == record.get(k)
            checks[k] = "match" if same else "mismatch"
        return self.answer(200, {"checks": checks})


class Control(JsonHandler):
    def reply(self, doc):
        self.answer(200, doc)

    def do_GET(self):
        with lock:
            doc = dict(counters)
        self.reply(doc)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/fault":
            f = json.loads(body)
            with lock:
                faults.append([int(f["status"]), int(f.get("count", 1)), f.get("retry_after")])
        elif self.path == "/reset":
            with lock:
                faults.clear()
        self.reply({"ok": True})


def main():
    p = arg_parser()
    p.add_argument("--data", required=True)
    p.add_argument("--token-ttl", type=int, default=3600)
    args = p.parse_args()
    with open(args.data, encoding="utf-8") as f:
        for c in json.load(f)["citizens"]:
            citizens[c["personal_id"]] = c
    api = https_server(Api, args)
    control = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    write_port(args.dir, "control_port", control.server_address[1])
    write_port(args.dir, "port", api.server_address[1])
    sys.stderr.write("mock NDXP on port %d (control %d), %d citizens\n"
                     % (api.server_address[1], control.server_address[1], len(citizens)))
    api.serve_forever()


if __name__ == "__main__":
    main()
