import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.spec.EdECPrivateKeySpec;
import java.security.spec.NamedParameterSpec;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Checks proto/testvectors/lth-v1.json with nothing but the JDK (17+):
 * the canonical envelope bytes and digest (proto/README.md, Signatures),
 * Ed25519 signatures of single envelopes, and batch signatures over an
 * RFC 9162 Merkle root with each leaf's inclusion path. What a Java system
 * that signs its own envelopes must get right, written from the docs.
 *
 *   java TestVectors proto/testvectors/lth-v1.json
 */
public final class TestVectors {
    private static final HexFormat HEX = HexFormat.of();
    private static int failures;

    static byte[] canonical(Map<String, Object> f) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write("LTH-ENVELOPE-V1\0".getBytes(StandardCharsets.US_ASCII));
        String[] strings = {"message_id", "correlation_id", "sender", "receiver", "service"};
        for (int k = 0; k < strings.length; k++)
            field(out, k + 1, ((String) f.get(strings[k])).getBytes(StandardCharsets.UTF_8));
        out.write(6);
        out.write(ByteBuffer.allocate(8).putLong(Long.parseUnsignedLong((String) f.get("created_at_us"))).array());
        out.write(7);
        out.write(ByteBuffer.allocate(4).putInt((int) (long) (Long) f.get("ttl_ms")).array());
        field(out, 8, ((String) f.get("content_type")).getBytes(StandardCharsets.UTF_8));
        field(out, 9, HEX.parseHex((String) f.get("payload_hex")));
        out.write(10);
        out.write(ByteBuffer.allocate(4).putInt((int) (long) (Long) f.get("kind")).array());
        out.write(11);
        out.write(ByteBuffer.allocate(4).putInt((int) (long) (Long) f.get("delivery")).array());
        return out.toByteArray();
    }

    private static void field(ByteArrayOutputStream out, int tag, byte[] value) throws Exception {
        out.write(tag);
        out.write(ByteBuffer.allocate(4).putInt(value.length).array()); // big-endian
        out.write(value);
    }

    static byte[] sha256(byte[]... parts) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (byte[] p : parts) md.update(p);
        return md.digest();
    }

    static byte[] leaf(byte[] digest) throws Exception { return sha256(new byte[] {0}, digest); }

    static byte[] node(byte[] l, byte[] r) throws Exception { return sha256(new byte[] {1}, l, r); }

    /** RFC 9162 MTH over already-hashed leaves. */
    static byte[] mth(List<byte[]> h) throws Exception {
        if (h.size() == 1) return h.get(0);
        int k = 1;
        while (k * 2 < h.size()) k *= 2;
        return node(mth(h.subList(0, k)), mth(h.subList(k, h.size())));
    }

    /** RFC 9162 inclusion path of leaf m, from the leaf upwards. */
    static List<byte[]> path(int m, List<byte[]> h) throws Exception {
        List<byte[]> p = new ArrayList<>();
        if (h.size() == 1) return p;
        int k = 1;
        while (k * 2 < h.size()) k *= 2;
        if (m < k) {
            p.addAll(path(m, h.subList(0, k)));
            p.add(mth(h.subList(k, h.size())));
        } else {
            p.addAll(path(m - k, h.subList(k, h.size())));
            p.add(mth(h.subList(0, k)));
        }
        return p;
    }

    static byte[] sign(PrivateKey key, byte[] message) throws Exception {
        Signature s = Signature.getInstance("Ed25519");
        s.initSign(key);
        s.update(message);
        return s.sign();
    }

    static void expect(String what, String got, Object want) {
        if (!got.equals(want)) {
            failures++;
            System.err.println("FAIL " + what + ":\n  got  " + got + "\n  want " + want);
        }
    }

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Map<String, Object> v = (Map<String, Object>) Json.parse(Files.readString(Path.of(args[0])));
        Map<String, Object> key = (Map<String, Object>) v.get("key");
        // A key file's sign-secret-key is seed || public key; the JDK takes the seed.
        byte[] secret = HEX.parseHex((String) key.get("sign_secret_key_file_hex"));
        byte[] seed = java.util.Arrays.copyOf(secret, 32);
        expect("seed", HEX.formatHex(sha256("LTH-TESTVECTOR-KEY-V1".getBytes(StandardCharsets.US_ASCII))),
               key.get("sign_seed_hex"));
        PrivateKey priv = KeyFactory.getInstance("Ed25519")
                .generatePrivate(new EdECPrivateKeySpec(NamedParameterSpec.ED25519, seed));

        Map<String, byte[]> digests = new java.util.HashMap<>();
        int envelopes = 0;
        for (Object o : (List<Object>) v.get("envelopes")) {
            Map<String, Object> e = (Map<String, Object>) o;
            String name = (String) e.get("name");
            byte[] canon = canonical((Map<String, Object>) e.get("fields"));
            byte[] digest = sha256(canon);
            digests.put(name, digest);
            expect(name + " canonical bytes", HEX.formatHex(canon), e.get("canonical_hex"));
            expect(name + " digest", HEX.formatHex(digest), e.get("digest_hex"));
            expect(name + " signature", HEX.formatHex(sign(priv, digest)), e.get("signature_hex"));
            envelopes++;
        }
        int batches = 0;
        for (Object o : (List<Object>) v.get("batches")) {
            Map<String, Object> b = (Map<String, Object>) o;
            String name = (String) b.get("name");
            List<byte[]> leaves = new ArrayList<>();
            for (Object n : (List<Object>) b.get("leaves")) leaves.add(leaf(digests.get((String) n)));
            byte[] root = mth(leaves);
            expect(name + " root", HEX.formatHex(root), b.get("root_hex"));
            byte[] msg = ByteBuffer.allocate(49).put("LTH-BATCH-V1\0".getBytes(StandardCharsets.US_ASCII))
                    .putInt(leaves.size()).put(root).array();
            expect(name + " signed message", HEX.formatHex(msg), b.get("signed_message_hex"));
            expect(name + " signature", HEX.formatHex(sign(priv, msg)), b.get("signature_hex"));
            List<Object> proofs = (List<Object>) b.get("proofs");
            for (int m = 0; m < leaves.size(); m++) {
                List<String> want = new ArrayList<>();
                for (Object h : (List<Object>) ((Map<String, Object>) proofs.get(m)).get("path_hex"))
                    want.add((String) h);
                List<String> got = new ArrayList<>();
                for (byte[] h : path(m, leaves)) got.add(HEX.formatHex(h));
                expect(name + " proof of leaf " + m, got.toString(), want.toString());
            }
            batches++;
        }
        if (envelopes < 5 || batches < 3) {
            System.err.println("FAIL: the file holds too few vectors");
            failures++;
        }
        System.out.println(failures == 0
                ? "test vectors: " + envelopes + " envelopes and " + batches + " batches agree"
                : "test vectors: " + failures + " mismatch(es)");
        System.exit(failures == 0 ? 0 : 1);
    }
}
