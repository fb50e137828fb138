"""What the Python client sends for each handler verdict, against a stand-in
hub (a CURVE ROUTER in this process): a settle for a handled message,
nothing for Later, a Settle.rejects entry with the reason for Reject."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

import zmq

import lth
from lth import pb

BIN = os.environ.get("HUB_BIN_DIR", "")
HUB_ID = "VN/GOV/HN-LGSP/HUB"
ME = "VN/GOV/HN-STP/HOTICH"
SENDER = "VN/GOV/BCA/CSDLQGDC"


class TestVerdictsOnTheWire(unittest.TestCase):
    def setUp(self):
        if not BIN or not os.path.exists(os.path.join(BIN, "hubctl")):
            raise RuntimeError("HUB_BIN_DIR must name the directory holding hubctl")
        self.dir = tempfile.mkdtemp(prefix="lthpy.")
        for m in (HUB_ID, ME):
            subprocess.run([os.path.join(BIN, "hubctl"), "keygen", m, self.dir], check=True,
                           capture_output=True)
        self.hub_key = lth.read_key_file(os.path.join(self.dir, HUB_ID.replace("/", ".") + ".secret"))
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.curve_server = True
        self.router.curve_secretkey = self.hub_key.curve_secret.encode()
        self.router.bind("tcp://127.0.0.1:*")
        self.endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()

    def tearDown(self):
        self.router.close()
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)

    def recv(self, client, timeout=2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client.run(0.02)
            if self.router.poll(20):
                self.rid, data = self.router.recv_multipart()
                return pb.Frame.FromString(data)
        return None

    def send(self, **body):
        self.router.send_multipart([self.rid, pb.Frame(protocol_version=1, **body).SerializeToString()])

    def test_verdicts(self):
        c = lth.Client(self.endpoint, os.path.join(self.dir, HUB_ID.replace("/", ".") + ".pub"),
                       os.path.join(self.dir, ME.replace("/", ".") + ".secret"))

        def later(client, msg):
            raise lth.Later()

        def reject(client, msg):
            raise lth.Reject("dossier already closed in the receiving system")

        c.offer("a/v1", lambda client, msg: None)
        c.offer("b/v1", later)
        c.offer("c/v1", reject)
        f = self.recv(c)
        self.assertEqual(f.WhichOneof("body"), "hello")
        self.send(welcome=pb.Welcome(member_id=ME, heartbeat_ms=60000, hub_id=HUB_ID))
        items = []
        for seq, service in ((101, "a/v1"), (102, "b/v1"), (103, "c/v1")):
            env = pb.Envelope(message_id=str(uuid.uuid4()), sender=SENDER, receiver=ME,
                              service=service, created_at_us=int(time.time() * 1e6),
                              kind=lth.KIND_EVENT)
            items.append(pb.DeliveredEnvelope(hub_seq=seq, envelope=env.SerializeToString(),
                                              attempt=1))
        deadline = time.monotonic() + 2
        while not c.connected and time.monotonic() < deadline:
            c.run(0.02)
        self.assertTrue(c.connected)
        self.send(deliveries=pb.Deliveries(items=items))
        settled, rejects = set(), {}
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            f = self.recv(c, 0.1)
            if f is not None and f.WhichOneof("body") == "settle":
                settled.update(f.settle.hub_seqs)
                rejects.update({r.hub_seq: r.reason for r in f.settle.rejects})
        self.assertEqual(settled, {101})
        self.assertEqual(rejects, {103: "dossier already closed in the receiving system"})
        c.close()


if __name__ == "__main__":
    unittest.main()
