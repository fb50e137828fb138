import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

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
        String token = Files.readAllLines(Path.of(args[1])).get(0).trim();
        URI uri = URI.create(args[0] + "/call/" + args[2] + "/" + args[3]);
        int count = args.length > 5 ? Integer.parseInt(args[5]) : 1;
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        List<CompletableFuture<HttpResponse<String>>> calls = new ArrayList<>();
        for (int n = 0; n < count; n++) {
            HttpRequest req = HttpRequest.newBuilder(uri)
                    .timeout(Duration.ofSeconds(30))
                    .header("Authorization", "Bearer " + token)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(args[4]))
                    .build();
            calls.add(http.sendAsync(req, HttpResponse.BodyHandlers.ofString()));
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
}
