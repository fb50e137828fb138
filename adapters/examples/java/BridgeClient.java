import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * Calls a hub service through the HTTP bridge with the JDK's java.net.http
 * only: POST /call/RECEIVER-ID/SERVICE/VERSION with a JSON body and the
 * bridge's bearer token; the reply comes back as the response body. Several
 * calls are sent at once (sendAsync). A refusal is a JSON document with an
 * "error" sentence; when the hub refused the call it names the NACK code in
 * "nack" and gives the hub's "reason".
 *
 *   java BridgeClient http://127.0.0.1:8088 bridge.token VN/GOV/BCA/CSDLQGDC citizen.lookup/v1 '{"ids":["001099012345"]}' [COUNT]
 *
 * Over HTTPS with a client certificate (plugin.tls_client_ca on the bridge),
 * give the bridge's CA (PEM) and this client's certificate and key (a
 * PKCS#12 file, e.g. from `openssl pkcs12 -export`) in the environment, and
 * "-" as TOKEN-FILE when the bridge needs no token:
 *
 *   LTH_BRIDGE_CA=bridge-ca.pem LTH_CLIENT_P12=client.p12 LTH_CLIENT_P12_PASSWORD=... \
 *   java BridgeClient https://bridge.example:8443 - VN/GOV/BCA/CSDLQGDC citizen.lookup/v1 '{...}'
 *
 * Exit status: 0 every call answered 2xx; 4 the hub or the system refused
 * one (the NACK code is printed); 1 anything else.
 */
public final class BridgeClient {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: BridgeClient BASE-URL TOKEN-FILE RECEIVER-ID SERVICE/VERSION JSON [COUNT]");
            System.exit(2);
        }
        String token = args[1].equals("-") ? "" : Files.readAllLines(Path.of(args[1])).get(0).trim();
        URI uri = URI.create(args[0] + "/call/" + args[2] + "/" + args[3]);
        int count = args.length > 5 ? Integer.parseInt(args[5]) : 1;
        HttpClient.Builder builder = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5));
        if (System.getenv("LTH_BRIDGE_CA") != null)
            builder.sslContext(tlsContext(System.getenv("LTH_BRIDGE_CA"),
                    System.getenv("LTH_CLIENT_P12"), System.getenv("LTH_CLIENT_P12_PASSWORD")));
        HttpClient http = builder.build();
        List<CompletableFuture<HttpResponse<String>>> calls = new ArrayList<>();
        for (int n = 0; n < count; n++) {
            HttpRequest.Builder req = HttpRequest.newBuilder(uri)
                    .timeout(Duration.ofSeconds(30))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(args[4]));
            if (!token.isEmpty())
                req.header("Authorization", "Bearer " + token);
            calls.add(http.sendAsync(req.build(), HttpResponse.BodyHandlers.ofString()));
        }
        int status = 0;
        for (CompletableFuture<HttpResponse<String>> call : calls) {
            HttpResponse<String> r = call.join();
            String type = r.headers().firstValue("Content-Type").orElse("");
            if (r.statusCode() / 100 == 2) {
                System.out.println("HTTP " + r.statusCode() + " from "
                        + r.headers().firstValue("X-LTH-Replied-By").orElse("?") + ": " + r.body());
                continue;
            }
            String nack = "";
            String error = r.body();
            if (type.startsWith("application/json") || type.startsWith("application/problem+json")) {
                Map<String, Object> problem = (Map<String, Object>) Json.parse(r.body());
                nack = problem.get("nack") instanceof String ? (String) problem.get("nack") : "";
                error = String.valueOf(problem.get("error"))
                        + (problem.get("reason") != null ? ": " + problem.get("reason") : "");
            }
            System.out.println("HTTP " + r.statusCode() + (nack.isEmpty() ? "" : " nack=" + nack)
                    + ": " + error);
            status = Math.max(status, !nack.isEmpty() || r.statusCode() / 100 == 4 ? 4 : 1);
        }
        System.exit(status);
    }

    /** Trusts the bridge's CA (PEM) only, and presents the client's
     *  certificate from a PKCS#12 file (none when p12 is null). */
    static SSLContext tlsContext(String caPem, String p12, String password) throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream in = Files.newInputStream(Path.of(caPem))) {
            int n = 0;
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in))
                trust.setCertificateEntry("ca" + n++, c);
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (p12 != null) {
            char[] pass = password == null ? new char[0] : password.toCharArray();
            KeyStore keys = KeyStore.getInstance("PKCS12");
            try (InputStream in = Files.newInputStream(Path.of(p12))) {
                keys.load(in, pass);
            }
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, pass);
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }
}
