"""The Python client against a real hubd on 127.0.0.1, with C peers: the
echo plugin under hub-adapter (the C SDK verifies what Python signs) and
hubctl (it verifies what a Python responder signs)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

import lth
from lth import pb

BIN = os.environ.get("HUB_BIN_DIR", "")
PLUGINS = os.environ.get("HUB_PLUGIN_DIR", "")
HUB_ID = "VN/GOV/HN-LGSP/HUB"
PY = "VN/GOV/HN-STP/HOTICH"        # the Python client under test
PY2 = "VN/GOV/HN-VP/DVCQG"         # a second Python client (responder, subscriber)
ECHO = "VN/GOV/BCA/CSDLQGDC"       # hub-adapter with the echo plugin (C SDK)
OPS = "VN/GOV/HN-LGSP/OPS"         # hubctl
GHOST = "VN/GOV/HN-SKHDT/DKKD"     # known to the hub, never connected


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def slug(member):
    return member.replace("/", ".")


class Hub:
    """hubd with fresh keys in a temporary directory (removed unless
    HUB_TEST_KEEP=1)."""

    def __init__(self, extra_conf=""):
        if not BIN or not os.path.exists(os.path.join(BIN, "hubd")):
            raise RuntimeError("HUB_BIN_DIR must name the directory holding hubd (run through ctest)")
        self.dir = tempfile.mkdtemp(prefix="lthpy.")
        self.procs = []
        os.makedirs(os.path.join(self.dir, "keys"))
        for m in (HUB_ID, PY, PY2, ECHO, OPS, GHOST):
            self.keygen(m)
        with open(os.path.join(self.dir, "hubd.conf"), "w") as f:
            f.write("listen = tcp://127.0.0.1:*\nkey_file = secrets/%s.secret\nkey_dir = keys\n"
                    "data_dir = data\nheartbeat_ms = 300\n%s\n" % (slug(HUB_ID), extra_conf))
        self.endpoint = None

    def keygen(self, member, known=True):
        secrets = os.path.join(self.dir, "secrets")
        subprocess.run([os.path.join(BIN, "hubctl"), "keygen", member, secrets], check=True,
                       capture_output=True)
        if known and member != HUB_ID:
            shutil.copy(self.pub(member), os.path.join(self.dir, "keys"))

    def pub(self, member):
        return os.path.join(self.dir, "secrets", slug(member) + ".pub")

    def secret(self, member):
        return os.path.join(self.dir, "secrets", slug(member) + ".secret")

    def spawn(self, argv, log):
        with open(os.path.join(self.dir, log), "ab") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def wait_log(self, log, needle, timeout=10.0):
        path = os.path.join(self.dir, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path) and needle in read(path):
                return True
            time.sleep(0.05)
        return False

    def start(self):
        ready = os.path.join(self.dir, "hubd.ready")
        self.hubd = self.spawn([os.path.join(BIN, "hubd"), "--config", "hubd.conf",
                                "--ready-file", ready], "hubd.log")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (os.path.exists(ready) and
                                                   "endpoint=" in read(ready)):
            time.sleep(0.05)
        text = read(ready)
        self.endpoint = text.split("endpoint=", 1)[1].split("\n", 1)[0]

    def adapter(self, member, plugin):
        conf = os.path.join(self.dir, "adapter-%s.conf" % slug(member))
        with open(conf, "w") as f:
            f.write("hub_endpoint = %s\nhub_key_file = %s\nmember_key_file = %s\nplugin = %s\n"
                    % (self.endpoint, self.pub(HUB_ID), self.secret(member),
                       os.path.join(PLUGINS, "lth-%s.so" % plugin)))
        log = "adapter-%s.log" % slug(member)
        self.spawn([os.path.join(BIN, "hub-adapter"), "--config", conf], log)
        if not self.wait_log(log, 'msg="serving"'):
            raise RuntimeError("hub-adapter %s did not start; see %s" % (member, log))

    def hubctl(self, *args, timeout=20):
        conf = os.path.join(self.dir, "hubctl.conf")
        with open(conf, "w") as f:
            f.write("hub_endpoint = %s\nhub_key_file = %s\nmember_key_file = %s\n"
                    % (self.endpoint, self.pub(HUB_ID), self.secret(OPS)))
        return subprocess.run([os.path.join(BIN, "hubctl"), "--config", conf] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def client(self, member, **kw):
        c = lth.Client(self.endpoint, self.pub(HUB_ID), self.secret(member), **kw)
        c.connect(10)
        return c

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.environ.get("HUB_TEST_KEEP") == "1":
            print("kept test directory", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class TestAgainstHub(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hub = Hub()
        try:
            cls.hub.start()
            cls.hub.adapter(ECHO, "echo")
        except Exception:
            cls.hub.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.hub.stop()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.assertIsNone(self.hub.hubd.poll(), "hubd died; see its log")

    def client(self, member, **kw):
        c = self.hub.client(member, **kw)
        self.clients.append(c)
        return c

    def test_welcome(self):
        c = self.client(PY)
        self.assertEqual(c.welcome.member_id, PY)
        self.assertEqual(c.hub_id, HUB_ID)
        self.assertTrue(c.welcome.signatures_required)

    def test_request_to_c_adapter(self):
        c = self.client(PY)
        payload = json.dumps({"so_dinh_danh": "001099012345"}).encode()
        reply = c.request(ECHO, "echo/v1", payload, "application/json", timeout=10)
        self.assertEqual(reply.payload, payload)
        self.assertEqual(reply.sender, ECHO)
        self.assertEqual(reply.kind, lth.KIND_REPLY)

    def test_pipelined_events_get_outcomes(self):
        """Many envelopes in one Batch under one batch signature, which the
        hub checks; each gets its own outcome with a hub_seq."""
        outcomes = []
        c = self.client(PY, on_outcome=outcomes.append)
        ids = [c.send(ECHO, "echo/v1", b"event %d" % i) for i in range(100)]
        deadline = time.monotonic() + 20
        while len(outcomes) < len(ids) and time.monotonic() < deadline:
            c.run(0.1)
        self.assertEqual(sorted(o.message_id for o in outcomes), sorted(ids))
        for o in outcomes:
            self.assertTrue(o.ok, o)
            self.assertGreater(o.hub_seq, 1 << 20)
        self.assertEqual(len({o.hub_seq for o in outcomes}), len(ids))

    def test_resend_same_id_is_deduplicated(self):
        c = self.client(PY)
        mid = str(uuid.uuid4())
        created = int(time.time() * 1e6)
        first = c.wait(c.send(ECHO, "echo/v1", b"once", message_id=mid, created_at_us=created), 10)
        self.assertTrue(first.ok, first)
        c.close()
        self.clients.remove(c)
        # A restarted application resends what it cannot prove was accepted.
        c2 = self.client(PY)
        again = c2.wait(c2.send(ECHO, "echo/v1", b"once", message_id=mid, created_at_us=created),
                        10)
        self.assertTrue(again.ok, again)
        self.assertEqual(again.hub_seq, first.hub_seq)

    def test_bad_signature_is_refused(self):
        c = self.client(PY)
        env = pb.Envelope(message_id=str(uuid.uuid4()), sender=PY, receiver=ECHO,
                          service="echo/v1", created_at_us=int(time.time() * 1e6),
                          payload=b"forged", kind=lth.KIND_EVENT)
        lth.sign.sign_envelope(env, c._signing_key)
        env.payload = b"changed after signing"
        frame = pb.Frame(protocol_version=1, batch=pb.Batch(envelopes=[env.SerializeToString()]))
        c._sock.send(frame.SerializeToString())
        deadline = time.monotonic() + 10
        nack = None
        while nack is None and time.monotonic() < deadline:
            data = None
            if c._sock.poll(100):
                data = c._sock.recv()
            if data:
                f = pb.Frame.FromString(data)
                if f.WhichOneof("body") == "receipts":
                    for n in f.receipts.nacks:
                        if n.message_id == env.message_id:
                            nack = n
        self.assertIsNotNone(nack)
        self.assertEqual(nack.code, pb.NACK_BAD_SIGNATURE)
        self.assertTrue(nack.reason)

    def test_unavailable_is_resent(self):
        """NACK UNAVAILABLE (the hub's store did not complete the commit) is
        not an outcome: the client sends the same envelope (same message id,
        same signature) again after 200 ms, doubling, as the C SDK does, and
        the application sees only the hub's ACK. The first send never reaches
        the hub; the UNAVAILABLE answer to it is injected as the hub sends it."""
        c = self.client(PY)
        sent = []
        real_send = c._send_frame
        drop = [2]

        def capture(frame):
            if frame.WhichOneof("body") == "batch":
                sent.append(list(frame.batch.envelopes))
                if drop[0] > 0:
                    drop[0] -= 1
                    return True  # "sent", but lost: the hub never sees it
            return real_send(frame)

        c._send_frame = capture
        mid = c.send(ECHO, "echo/v1", b"retried")
        first_at = time.monotonic()
        self.assertEqual(len(sent), 1)

        def unavailable():
            r = pb.Receipts(nacks=[pb.Nack(message_id=mid, code=pb.NACK_UNAVAILABLE,
                                           reason="store commit failed")])
            c._on_frame(pb.Frame(protocol_version=1, receipts=r).SerializeToString())

        unavailable()
        self.assertIsNone(c.outcome(mid))       # not answered: still pending
        self.assertEqual(c.pending(), [mid])
        while len(sent) < 2 and time.monotonic() - first_at < 5:
            c.run(0.02)
        self.assertEqual(len(sent), 2)
        second_at = time.monotonic()
        self.assertGreaterEqual(second_at - first_at, 0.18)
        unavailable()                           # again: the wait doubles
        while len(sent) < 3 and time.monotonic() - second_at < 5:
            c.run(0.02)
        self.assertEqual(len(sent), 3)
        self.assertGreaterEqual(time.monotonic() - second_at, 0.38)
        self.assertEqual(sent[0], sent[1])      # the same envelope, byte for byte
        self.assertEqual(sent[0], sent[2])
        o = c.wait(mid, 10)
        self.assertTrue(o.ok, o)
        self.assertGreater(o.hub_seq, 0)
        self.assertEqual(c.resent, 2)

    def test_nack_outcome(self):
        c = self.client(PY)
        o = c.wait(c.send("VN/GOV/XX/NOBODY", "echo/v1", b"x"), 10)
        self.assertFalse(o.ok)
        self.assertEqual(o.code_name, "UNKNOWN_RECEIVER")
        with self.assertRaises(lth.HubError) as cm:
            c.request(GHOST, "lookup/v1", b"x", timeout=5)  # offline: online-only refused
        self.assertEqual(cm.exception.code, pb.NACK_RECEIVER_OFFLINE)

    def test_python_responder_answers_c_clients(self):
        calls = []

        def lookup(client, msg):
            calls.append(msg)
            return lth.Reply(json.dumps({"ok": True, "echo": msg.payload.decode()}).encode(),
                             "application/json")

        responder = self.hub.client(PY2)
        self.clients.append(responder)
        responder.offer("lookup/v1", lookup)
        responder.run(0.2)
        import threading
        stop = threading.Event()
        t = threading.Thread(target=lambda: [responder.run(0.05) for _ in iter(stop.is_set, True)])
        t.start()
        try:
            # hubctl (C SDK) pings the Python member and calls its service: it
            # verifies the Python client's signatures on the replies.
            r = self.hub.hubctl("ping", PY2, "--count", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count("pong from " + PY2), 2, r.stdout)
            r = self.hub.hubctl("request", PY2, "lookup/v1", "--data", '"xin chao"')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('"ok":true', r.stdout.replace(" ", ""))
        finally:
            stop.set()
            t.join()
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0].sender, OPS)

    def test_publish_subscribe(self):
        got = []
        sub = self.client(PY2)
        sub.subscribe(PY + "/catalogue.published/v1", lambda c, m: got.append(m))
        sub.run(0.3)
        pubc = self.client(PY)
        o = pubc.wait(pubc.publish("catalogue.published/v1", b'{"ma_tthc":"1.001234"}',
                                   "application/json"), 10)
        self.assertTrue(o.ok, o)
        self.assertGreater(o.hub_seq, 0)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            sub.run(0.1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].sender, PY)
        self.assertEqual(got[0].payload, b'{"ma_tthc":"1.001234"}')

    def test_metaservice_and_handler_later(self):
        c = self.client(PY)
        reply = c.request(HUB_ID, "lth.members/v1", b"", timeout=10)
        members = {m["id"]: m for m in json.loads(reply.payload)["members"]}
        self.assertTrue(members[ECHO]["online"])
        self.assertIn("echo/v1", members[ECHO]["services"])
        self.assertEqual(reply.content_type, "application/json")

        # A handler that raises Later leaves the message unsettled: the hub
        # delivers it again.
        attempts = []

        def flaky(client, msg):
            attempts.append(msg.attempt)
            if len(attempts) == 1:
                raise lth.Later()

        r = self.client(PY2)
        r.offer("dossier.status/v1", flaky)
        r.run(0.2)
        o = c.wait(c.send(PY2, "dossier.status/v1", b"{}"), 10)
        self.assertTrue(o.ok, o)
        deadline = time.monotonic() + 30
        while len(attempts) < 2 and time.monotonic() < deadline:
            r.run(0.1)
        self.assertEqual(attempts[:2], [1, 2])


if __name__ == "__main__":
    unittest.main()
