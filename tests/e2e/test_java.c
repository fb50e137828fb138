/* End to end: the Java example (adapters/examples/java), compiled with the
 * JDK's javac and run with java, against a real hubd, the HTTP bridge and
 * an echo adapter: it checks the test vectors with the JDK's own SHA-256 and
 * Ed25519, calls a service through the bridge several times at once, and
 * reads a refusal's NACK code; then the same over HTTPS with a client
 * certificate (made by openssl at test time, loaded from PKCS#12 by the
 * JDK), and a refusal without one. Skipped (77) without a JDK (HUB_JAVAC and
 * HUB_JAVA come from CMake; scripts/install-deps.sh installs one). */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ECHO "VN/GOV/BCA/CSDLQGDC"
#define BRIDGE "VN/GOV/HN-VP/TTHC"
#define TLS_BRIDGE "VN/GOV/HN-VP/TLS"
#define TOKEN "java-example-token-0123456789"

static hubfix_t fix;
static char classes[PATH_MAX], token_path[PATH_MAX], base_url[64];

static void setup(void)
{
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, ECHO, BRIDGE, TLS_BRIDGE);
    hubfix_start(&fix);
    hubfix_start_adapter(&fix, ECHO, "echo", NULL);
    snprintf(token_path, sizeof token_path, "%s/bridge.token", fix.dir);
    tk_write_file(token_path, TOKEN "\n");
    chmod(token_path, 0600);
    char conf[2048];
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nplugin.listen = 127.0.0.1:0\nplugin.port_file = %s/bridge.port\n"
             "plugin.token_file = %s\n",
             fix.dir, token_path);
    hubfix_start_adapter(&fix, BRIDGE, "httpbridge", conf);
    char port_path[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/bridge.port", fix.dir);
    char *port = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", atoi(port));
    free(port);

    /* Compile the example as an integrator would: javac on the sources. */
    const char *src = getenv("HUB_SOURCE_DIR");
    snprintf(classes, sizeof classes, "%s/classes", fix.dir);
    char json[PATH_MAX], vectors[PATH_MAX], bridge[PATH_MAX];
    snprintf(json, sizeof json, "%s/adapters/examples/java/Json.java", src);
    snprintf(vectors, sizeof vectors, "%s/adapters/examples/java/TestVectors.java", src);
    snprintf(bridge, sizeof bridge, "%s/adapters/examples/java/BridgeClient.java", src);
    char *argv[] = {getenv("HUB_JAVAC"), "-Xlint:all", "-Werror", "-d", classes, json, vectors,
                    bridge, NULL};
    char *out = NULL;
    int rc = tk_run(argv, &out, 120000);
    ck_assert_msg(rc == 0, "javac failed (%d): %s", rc, out ? out : "");
    free(out);
}

static void teardown(void) { hubfix_cleanup(&fix); }

static int java(char **argv_tail, char **out)
{
    char *argv[16] = {getenv("HUB_JAVA"), "-cp", classes};
    int n = 3;
    for (int i = 0; argv_tail[i] && n < 15; i++)
        argv[n++] = argv_tail[i];
    argv[n] = NULL;
    return tk_run(argv, out, 120000);
}

START_TEST(java_checks_the_test_vectors)
{
    char vectors[PATH_MAX];
    snprintf(vectors, sizeof vectors, "%s/proto/testvectors/lth-v1.json",
             getenv("HUB_SOURCE_DIR"));
    char *tail[] = {"TestVectors", vectors, NULL};
    char *out = NULL;
    int rc = java(tail, &out);
    ck_assert_msg(rc == 0, "TestVectors failed (%d): %s", rc, out ? out : "");
    ck_assert_ptr_nonnull(strstr(out, "5 envelopes and 3 batches agree"));
    free(out);
}
END_TEST

START_TEST(java_calls_through_the_bridge)
{
    /* Four calls at once; each comes back from the echo adapter. */
    char *tail[] = {"BridgeClient", base_url, token_path, ECHO, "echo/v1",
                    "{\"ho_ten\":\"Nguy\xe1\xbb\x85n V\xc4\x83n An\"}", "4", NULL};
    char *out = NULL;
    int rc = java(tail, &out);
    ck_assert_msg(rc == 0, "BridgeClient failed (%d): %s", rc, out ? out : "");
    ck_assert_msg(tk_count_in(out, "HTTP 200 from " ECHO ":") == 4, "4 replies expected: %s", out);
    ck_assert_ptr_nonnull(strstr(out, "Nguy\xe1\xbb\x85n V\xc4\x83n An"));
    free(out);

    /* A receiver the hub does not know: the NACK code reaches Java. */
    char *refused[] = {"BridgeClient", base_url, token_path, "VN/GOV/XX/NOBODY", "echo/v1", "{}",
                       NULL};
    out = NULL;
    rc = java(refused, &out);
    ck_assert_msg(rc == 4, "exit %d, expected 4 (refused): %s", rc, out ? out : "");
    ck_assert_msg(strstr(out, "HTTP 404 nack=UNKNOWN_RECEIVER") != NULL, "%s", out);
    free(out);
}
END_TEST

/* A CA, a server certificate for 127.0.0.1 and a client certificate (also
 * as PKCS#12, password "changeit") under it, in DIR/tls. */
static void make_certificates(void)
{
    hubfix_make_tls(&fix, "ca ca 'Bridge CA'\n"
                          "leaf server ca 127.0.0.1 'subjectAltName=IP:127.0.0.1'\n"
                          "leaf client ca java-client.example 'extendedKeyUsage=clientAuth'\n"
                          "openssl pkcs12 -export -in client.pem -inkey client.key -out client.p12 "
                          "-passout pass:changeit\n");
}

START_TEST(java_calls_over_https_with_a_client_certificate)
{
    make_certificates();
    char conf[2048];
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nplugin.listen = 127.0.0.1:0\nplugin.port_file = %s/tls.port\n"
             "plugin.tls_cert = %s/tls/server.pem\nplugin.tls_key = %s/tls/server.key\n"
             "plugin.tls_client_ca = %s/tls/ca.pem\n",
             fix.dir, fix.dir, fix.dir, fix.dir);
    hubfix_start_adapter(&fix, TLS_BRIDGE, "httpbridge", conf);
    char port_path[PATH_MAX], url[64], ca[PATH_MAX], p12[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/tls.port", fix.dir);
    char *port = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port);
    snprintf(url, sizeof url, "https://127.0.0.1:%d", atoi(port));
    free(port);
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", fix.dir);
    snprintf(p12, sizeof p12, "%s/tls/client.p12", fix.dir);
    setenv("LTH_BRIDGE_CA", ca, 1);
    setenv("LTH_CLIENT_P12", p12, 1);
    setenv("LTH_CLIENT_P12_PASSWORD", "changeit", 1);
    char *tail[] = {"BridgeClient", url, "-", ECHO, "echo/v1", "{\"n\":1}", "3", NULL};
    char *out = NULL;
    int rc = java(tail, &out);
    ck_assert_msg(rc == 0, "BridgeClient over HTTPS failed (%d): %s", rc, out ? out : "");
    ck_assert_msg(tk_count_in(out, "HTTP 200 from " ECHO ":") == 3, "3 replies expected: %s", out);
    free(out);
    /* Trusting the bridge but without a client certificate: 403. */
    unsetenv("LTH_CLIENT_P12");
    out = NULL;
    rc = java(tail, &out);
    ck_assert_msg(rc == 4, "exit %d, expected 4 (refused): %s", rc, out ? out : "");
    ck_assert_msg(strstr(out, "HTTP 403") && strstr(out, "client certificate"), "%s", out);
    free(out);
    unsetenv("LTH_BRIDGE_CA");
    unsetenv("LTH_CLIENT_P12_PASSWORD");
}
END_TEST

static int prepare(void)
{
    if (!getenv("HUB_JAVAC") || !*getenv("HUB_JAVAC") || !getenv("HUB_JAVA") ||
        !*getenv("HUB_JAVA")) {
        fprintf(stderr, "SKIP: no JDK (javac, java) was found when the build was configured; "
                        "scripts/install-deps.sh installs openjdk-17-jdk-headless\n");
        return TK_SKIP_EXIT;
    }
    return 0;
}

TK_MAIN_PREPARED(prepare, "java",
                 TK_CASE("java", setup, teardown, 300, java_checks_the_test_vectors,
                         java_calls_through_the_bridge,
                         java_calls_over_https_with_a_client_certificate))
