"""Envelope digests and Ed25519 signatures, single and batch (proto/README.md,
*Signatures*). Checked against proto/testvectors/lth-v1.json in the tests."""
import hashlib
import struct

import nacl.exceptions
import nacl.signing

ENVELOPE_DOMAIN = b"LTH-ENVELOPE-V1\x00"
BATCH_DOMAIN = b"LTH-BATCH-V1\x00"
BATCH_MAX_LEAVES = 1024


def _lv(tag, data):
    return bytes([tag]) + struct.pack(">I", len(data)) + data


def canonical_bytes(env):
    """The byte string whose SHA-256 is the digest of an lth.v1.Envelope."""
    return b"".join([
        ENVELOPE_DOMAIN,
        _lv(1, env.message_id.encode("utf-8")),
        _lv(2, env.correlation_id.encode("utf-8")),
        _lv(3, env.sender.encode("utf-8")),
        _lv(4, env.receiver.encode("utf-8")),
        _lv(5, env.service.encode("utf-8")),
        b"\x06" + struct.pack(">Q", env.created_at_us),
        b"\x07" + struct.pack(">I", env.ttl_ms),
        _lv(8, env.content_type.encode("utf-8")),
        _lv(9, bytes(env.payload)),
        b"\x0a" + struct.pack(">I", env.kind & 0xFFFFFFFF),
        b"\x0b" + struct.pack(">I", env.delivery & 0xFFFFFFFF),
    ])


def digest(env):
    return hashlib.sha256(canonical_bytes(env)).digest()


def signing_key(secret64):
    """A PyNaCl SigningKey from a key file's 64-byte sign-secret-key (seed ||
    public key); refuses one whose halves do not belong together."""
    if len(secret64) != 64:
        raise ValueError("sign-secret-key must be 64 bytes (seed || public key)")
    key = nacl.signing.SigningKey(secret64[:32])
    if bytes(key.verify_key) != secret64[32:]:
        raise ValueError("sign-secret-key: the public half does not belong to the seed")
    return key


def sign_envelope(env, key):
    """Signs one envelope: signature = Ed25519(digest); no batch proof."""
    env.ClearField("batch_proof")
    env.signature = key.sign(digest(env)).signature


def _leaf(d):
    return hashlib.sha256(b"\x00" + d).digest()


def _node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(hashes):
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _node(_mth(hashes[:k]), _mth(hashes[k:]))


def _path(m, hashes):
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return _path(m, hashes[:k]) + [_mth(hashes[k:])]
    return _path(m - k, hashes[k:]) + [_mth(hashes[:k])]


def merkle_root(digests):
    """RFC 9162 Merkle tree head over envelope digests (as leaves)."""
    if not 1 <= len(digests) <= BATCH_MAX_LEAVES:
        raise ValueError("a batch has 1 to 1024 leaves")
    return _mth([_leaf(d) for d in digests])


def batch_message(count, root):
    return BATCH_DOMAIN + struct.pack(">I", count) + root


def batch_sign(digests, key):
    """Signs 2..1024 digests at once. Returns (signature, proofs), each proof
    (leaf_index, leaf_count, [path hashes])."""
    n = len(digests)
    if not 2 <= n <= BATCH_MAX_LEAVES:
        raise ValueError("a batch signature covers 2 to 1024 envelopes")
    leaves = [_leaf(d) for d in digests]
    root = _mth(leaves)
    sig = key.sign(batch_message(n, root)).signature
    return sig, [(i, n, _path(i, leaves)) for i in range(n)]


def root_from_proof(d, index, count, path):
    """RFC 9162 section 2.1.3.2; None when the proof is not well formed."""
    if not 2 <= count <= BATCH_MAX_LEAVES or index >= count or len(path) > 10:
        return None
    fn, sn = index, count - 1
    r = _leaf(d)
    for p in path:
        if len(p) != 32 or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def set_batch_signature(env, sig, proof):
    index, count, path = proof
    env.signature = sig
    env.batch_proof.leaf_index = index
    env.batch_proof.leaf_count = count
    del env.batch_proof.path[:]
    env.batch_proof.path.extend(path)


def verify_envelope(env, public32):
    """True when env's signature (single or batch) verifies with the sender's
    32-byte Ed25519 public key."""
    if len(env.signature) != 64 or len(public32) != 32:
        return False
    key = nacl.signing.VerifyKey(bytes(public32))
    d = digest(env)
    if env.HasField("batch_proof"):
        bp = env.batch_proof
        root = root_from_proof(d, bp.leaf_index, bp.leaf_count, [bytes(p) for p in bp.path])
        if root is None:
            return False
        msg = batch_message(bp.leaf_count, root)
    else:
        msg = d
    try:
        key.verify(msg, bytes(env.signature))
        return True
    except nacl.exceptions.BadSignatureError:
        return False
