"""The Python client against proto/testvectors/lth-v1.json: canonical bytes,
digests, signatures, batch roots and proofs, encodings and frames."""
import json
import os
import unittest

import lth
from lth import pb, sign

SRC = os.environ.get("HUB_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "..")
VECTORS = os.path.join(SRC, "proto", "testvectors", "lth-v1.json")


def envelope_from_fields(f):
    return pb.Envelope(message_id=f["message_id"], correlation_id=f["correlation_id"],
                       sender=f["sender"], receiver=f["receiver"], service=f["service"],
                       created_at_us=int(f["created_at_us"]), ttl_ms=f["ttl_ms"],
                       content_type=f["content_type"], payload=bytes.fromhex(f["payload_hex"]),
                       kind=f["kind"], delivery=f["delivery"])


class TestVectors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(VECTORS, encoding="utf-8") as f:
            cls.v = json.load(f)
        k = cls.v["key"]
        import hashlib
        seed = hashlib.sha256(b"LTH-TESTVECTOR-KEY-V1").digest()
        assert seed.hex() == k["sign_seed_hex"]
        cls.key = sign.signing_key(bytes.fromhex(k["sign_secret_key_file_hex"]))
        cls.public = bytes.fromhex(k["sign_public_hex"])
        cls.digests = {}

    def test_key(self):
        self.assertEqual(bytes(self.key.verify_key), self.public)
        self.assertEqual(bytes(self.key), bytes.fromhex(self.v["key"]["sign_seed_hex"]))
        bad = bytearray(bytes.fromhex(self.v["key"]["sign_secret_key_file_hex"]))
        bad[40] ^= 1
        with self.assertRaises(ValueError):
            sign.signing_key(bytes(bad))

    def test_envelopes(self):
        self.assertGreaterEqual(len(self.v["envelopes"]), 5)
        for e in self.v["envelopes"]:
            with self.subTest(e["name"]):
                env = envelope_from_fields(e["fields"])
                self.assertEqual(sign.canonical_bytes(env).hex(), e["canonical_hex"])
                self.assertEqual(sign.digest(env).hex(), e["digest_hex"])
                self.assertEqual(env.SerializeToString().hex(), e["encoded_unsigned_hex"])
                sign.sign_envelope(env, self.key)
                self.assertEqual(env.signature.hex(), e["signature_hex"])
                self.assertEqual(env.SerializeToString().hex(), e["encoded_signed_hex"])
                dec = pb.Envelope.FromString(bytes.fromhex(e["encoded_signed_hex"]))
                self.assertTrue(sign.verify_envelope(dec, self.public))
                dec.created_at_us ^= 1
                self.assertFalse(sign.verify_envelope(dec, self.public))

    def test_batches(self):
        digests = {e["name"]: bytes.fromhex(e["digest_hex"]) for e in self.v["envelopes"]}
        envs = {e["name"]: envelope_from_fields(e["fields"]) for e in self.v["envelopes"]}
        self.assertGreaterEqual(len(self.v["batches"]), 3)
        for b in self.v["batches"]:
            with self.subTest(b["name"]):
                ds = [digests[n] for n in b["leaves"]]
                root = sign.merkle_root(ds)
                self.assertEqual(root.hex(), b["root_hex"])
                self.assertEqual(sign.batch_message(len(ds), root).hex(), b["signed_message_hex"])
                sig, proofs = sign.batch_sign(ds, self.key)
                self.assertEqual(sig.hex(), b["signature_hex"])
                for i, (p, want) in enumerate(zip(proofs, b["proofs"])):
                    self.assertEqual(p[0], want["leaf_index"])
                    self.assertEqual(p[1], want["leaf_count"])
                    self.assertEqual([h.hex() for h in p[2]], want["path_hex"])
                    self.assertEqual(sign.root_from_proof(ds[i], p[0], p[1], p[2]), root)
                    env = pb.Envelope()
                    env.CopyFrom(envs[b["leaves"][i]])
                    sign.set_batch_signature(env, sig, p)
                    self.assertEqual(env.SerializeToString().hex(), b["encoded_signed_hex"][i])
                    self.assertTrue(sign.verify_envelope(env, self.public))
                    env.batch_proof.leaf_index = (i + 1) % len(ds)
                    self.assertFalse(sign.verify_envelope(env, self.public))

    def test_frames(self):
        names = set()
        for fr in self.v["frames"]:
            with self.subTest(fr["name"]):
                raw = bytes.fromhex(fr["hex"])
                f = pb.Frame.FromString(raw)
                self.assertEqual(f.protocol_version, 1)
                self.assertEqual(f.SerializeToString(), raw)
                names.add(f.WhichOneof("body"))
                if f.WhichOneof("body") == "batch":
                    for item in f.batch.envelopes:
                        self.assertTrue(sign.verify_envelope(pb.Envelope.FromString(item),
                                                             self.public))
        self.assertTrue({"hello", "batch", "receipts", "deliveries", "settle",
                         "heartbeat"} <= names)

    def test_nack_names(self):
        self.assertEqual(lth.nack_name(12), "BAD_SIGNATURE")
        self.assertEqual(lth.nack_name(15), "QUOTA_EXCEEDED")
        self.assertEqual(lth.nack_name(16), "RATE_LIMITED")
        self.assertEqual(lth.nack_name(17), "ID_REUSED")


if __name__ == "__main__":
    unittest.main()
