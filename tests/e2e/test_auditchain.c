/* The audit log's chain as an auditor and an attacker see it (issue 14,
 * items 3-5), against a real hubd and real files:
 *   - each tampering (an edited record, the log cut back to a checkpoint,
 *     the last file deleted, every file deleted, two files swapped) is named
 *     by `hubctl audit verify` (with the head an auditor kept, --anchor) and
 *     by hubd at start (refusal, or the start check's error and alarm);
 *   - the published head (/api/v1/audit/head, the checkpoint log lines)
 *     passes as an anchor, a wrong one fails;
 *   - a key rotation with its KEY_ROTATED record is followed; without it the
 *     hub refuses to start and verify names the point;
 *   - RFC 3161 time-stamps from a TSA of the test's own on 127.0.0.1
 *     (`openssl ts -reply` behind python3's http.server): tokens verify with
 *     the TSA's certificate; a forged, a foreign or a missing token is named;
 *     a TSA that is down delays time-stamps, not messages, and raises the
 *     audit_tsa_unreachable alarm and metrics. */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENDER "VN/GOV/HN-VP/TTHC"
#define RECEIVER "VN/GOV/VPCP/DVCQG"
#define HUB_SLUG "VN.GOV.HN-LGSP.HUB"
/* Small files and frequent checkpoints: a few rounds make several of each. */
#define BASE_CONF                                                                                  \
    "http_listen = 127.0.0.1:0\n"                                                                  \
    "audit_max_file_bytes = 4096\n"                                                                \
    "audit_checkpoint_records = 6\n"                                                               \
    "alarm_tsa_warn_s = 1\n"

static hubfix_t fix;

/* ---- helpers ---------------------------------------------------------------- */

/* Runs hubctl with up to 8 arguments; returns its exit code, output in *out. */
static int hubctl(char **out, const char *a0, const char *a1, const char *a2, const char *a3,
                  const char *a4, const char *a5, const char *a6, const char *a7)
{
    char *argv[] = {(char *)tk_bin("hubctl"),
                    (char *)a0,
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)a4,
                    (char *)a5,
                    (char *)a6,
                    (char *)a7,
                    NULL};
    char *o = NULL;
    int rc = tk_run(argv, &o, 60000);
    printf("auditchain: hubctl %s %s ... -> %d: %s", a0, a1 ? a1 : "", rc, o ? o : "\n");
    if (out)
        *out = o ? o : strdup("");
    else
        free(o);
    return rc;
}

static void audit_dir(char *out)
{
    snprintf(out, PATH_MAX, "%s/data/audit", fix.dir);
}

static void hub_pub(char *out)
{
    snprintf(out, PATH_MAX, "%s/secrets/%s.pub", fix.dir, HUB_SLUG);
}

/* `hubctl audit verify` of the fixture's log with the hub's key; one
 * optional option and its value (or NULL). */
static int verify(char **out, const char *opt, const char *value)
{
    char dir[PATH_MAX], pub[PATH_MAX];
    audit_dir(dir);
    hub_pub(pub);
    return hubctl(out, "audit", "verify", dir, "--hub-key", pub, opt, value, NULL);
}

static void verify_fails_naming(const char *what, const char *opt, const char *value)
{
    char *out = NULL;
    int rc = verify(&out, opt, value);
    ck_assert_msg(rc == 1, "%s: verify exited %d, expected 1: %s", what, rc, out);
    ck_assert_msg(strstr(out, what), "%s: verify does not name it: %s", what, out);
    free(out);
}

static void verify_passes(const char *opt, const char *value)
{
    char *out = NULL;
    int rc = verify(&out, opt, value);
    ck_assert_msg(rc == 0, "verify exited %d: %s", rc, out);
    free(out);
}

/* Connects the sender, posts n events, waits for their ACKs, disconnects. */
static void traffic(int n)
{
    adp_client_t *s = hubfix_connect(&fix, SENDER);
    for (int i = 0; i < n; i++) {
        char payload[48];
        int len = snprintf(payload, sizeof payload, "{\"dossier\":\"000.00.%02d.H01\"}", i);
        ck_assert_int_eq(adp_post_event(s, RECEIVER, "dossier.status/v1", "application/json",
                                        payload, (size_t)len, 0, NULL),
                         0);
    }
    for (int w = 0; w < 200 && adp_outbox_size(s) > 0; w++)
        adp_run(s, 50);
    ck_assert_msg(adp_outbox_size(s) == 0, "not ACKed: %s", adp_last_error(s));
    adp_close(&s);
}

/* A hub (BASE_CONF) with SENDER and RECEIVER that has carried n messages. */
static void start_with_traffic(int n)
{
    hubfix_init(&fix, BASE_CONF);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    hubfix_start(&fix);
    traffic(n);
}

/* hubd run to completion (it is expected to refuse to start). */
static int hubd_refuses(char **out)
{
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    char *o = NULL;
    int rc = tk_run(argv, &o, 30000);
    *out = o ? o : strdup("");
    printf("auditchain: hubd -> %d: %s\n", rc, *out);
    return rc;
}

static void start_refused_naming(const char *what)
{
    char *out = NULL;
    int rc = hubd_refuses(&out);
    ck_assert_msg(rc != 0, "hubd started on a log with: %s", what);
    ck_assert_msg(strstr(out, what), "hubd's refusal does not say '%s': %s", what, out);
    free(out);
}

/* The newest "anchor=SEQ:HASH" hubd logged. */
static void last_logged_anchor(char out[128])
{
    char *log = tk_read_file(fix.hubd_log);
    ck_assert_ptr_nonnull(log);
    char *p = log, *last = NULL;
    while ((p = strstr(p, "anchor=")) != NULL)
        last = p++;
    ck_assert_msg(last, "hubd logged no checkpoint anchor");
    last += strlen("anchor=");
    snprintf(out, 128, "%.*s", (int)strcspn(last, " \n"), last);
    free(log);
}

static json_t *get_json(const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "http://%s%s", fix.http, path);
    char what[600];
    snprintf(what, sizeof what, "GET %s", path);
    return tk_reply_json(tk_http("GET", url, NULL, NULL), what);
}

static char *get_text(const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "http://%s%s", fix.http, path);
    return tk_http("GET", url, NULL, NULL).body;
}

static bool has_alarm(const char *code)
{
    json_t *j = get_json("/readyz");
    bool found = false;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "alarms"), i, a)
    {
        if (!strcmp(json_string_value(json_object_get(a, "code")), code))
            found = true;
    }
    json_decref(j);
    return found;
}

/* Waits up to ms for the alarm `code` to be raised; asserts it was
 * (`what` is the failure's message). */
static void expect_alarm(const char *code, int ms, const char *what)
{
    bool alarm = false;
    for (int waited = 0; waited < ms && !(alarm = has_alarm(code)); waited += 100)
        tk_sleep_ms(100);
    ck_assert_msg(alarm, "%s", what);
}

/* Asserts that /metrics has the metric `name` and not at 0 (`what`, with
 * the metrics, is the failure's message). */
static void expect_nonzero_metric(const char *name, const char *what)
{
    char *metrics = get_text("/metrics");
    char named[128], zero[128];
    snprintf(named, sizeof named, "%s ", name);
    snprintf(zero, sizeof zero, "%s 0\n", name);
    ck_assert_msg(strstr(metrics, named) && !strstr(metrics, zero), "%s: %s", what, metrics);
    free(metrics);
}

/* A log of several files and checkpoints: three runs of the hub. */
static void make_log(void)
{
    for (int run = 0; run < 3; run++) {
        hubfix_start(&fix);
        traffic(12);
        hubfix_stop(&fix);
    }
}

/* ---- tampering ---------------------------------------------------------------- */

START_TEST(cutting_and_editing_are_named)
{
    hubfix_init(&fix, BASE_CONF);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    make_log();
    char head[128];
    last_logged_anchor(head);
    printf("auditchain: head published in hubd's log: %s\n", head);
    verify_passes("--anchor", head);
    /* A wrong head: another hash at the same seq. */
    char wrong[128];
    snprintf(wrong, sizeof wrong, "%s", head);
    char *h = strchr(wrong, ':') + 1;
    h[0] = h[0] == '0' ? '1' : '0';
    verify_fails_naming("anchor mismatch", "--anchor", wrong);
    struct stat st;
    char third[PATH_MAX];
    snprintf(third, sizeof third, "%s/data/audit/audit-000003.log", fix.dir);
    ck_assert_msg(stat(third, &st) == 0, "the log has fewer than 3 files");
    /* The untouched log, to start each case from. */
    ck_assert_int_eq(tk_shf(60000, "cp -a %s/data %s/golden", fix.dir, fix.dir), 0);
#define RESTORE()                                                                                  \
    ck_assert_int_eq(                                                                              \
        tk_shf(60000, "rm -rf %s/data && cp -a %s/golden %s/data", fix.dir, fix.dir, fix.dir), 0)

    /* Cut back to the first checkpoint: every line after it, every later
     * file. Without the anchor the rest still verifies (it is a shorter
     * log); with it, the cut is named; hubd refuses. */
    ck_assert_int_eq(
        tk_shf(60000,
               "cd %s/data/audit && n=$(grep -n '\"CHECKPOINT\"' audit-000001.log | head -1 "
               "| cut -d: -f1) && head -n $n audit-000001.log > t && mv t "
               "audit-000001.log && rm -f audit-00000[2-9].log audit-0000[1-9]*.log",
               fix.dir),
        0);
    verify_passes(NULL, NULL);
    verify_fails_naming("log cut back", "--anchor", head);
    start_refused_naming("audit log cut back");
    RESTORE();

    /* The last file deleted. */
    ck_assert_int_eq(
        tk_shf(60000, "cd %s/data/audit && rm \"$(ls audit-*.log | sort | tail -1)\"", fix.dir), 0);
    verify_fails_naming("log cut back", "--anchor", head);
    start_refused_naming("audit log cut back");
    RESTORE();

    /* Every file deleted. */
    ck_assert_int_eq(tk_shf(60000, "rm -f %s/data/audit/audit-*.log", fix.dir), 0);
    verify_fails_naming("every file was removed", "--anchor", head);
    start_refused_naming("holds no checkpoint at all");
    RESTORE();

    /* The last two files swapped. */
    ck_assert_int_eq(
        tk_shf(60000,
               "cd %s/data/audit && a=$(ls audit-*.log | sort | tail -2 | head -1) && "
               "b=$(ls audit-*.log | sort | tail -1) && mv $a t && mv $b $a && mv t $b",
               fix.dir),
        0);
    verify_fails_naming("missing before", NULL, NULL);
    start_refused_naming("audit log cut back");
    RESTORE();

    /* One record edited (a digit of its time) in the first file: verify
     * names it; hubd starts (the end of the log is intact) and its check of
     * the whole log names it, with a critical alarm. */
    ck_assert_int_eq(tk_shf(60000,
                            "cd %s/data/audit && sed -i '2s/\"ts\":1/\"ts\":2/' audit-000001.log",
                            fix.dir),
                     0);
    verify_fails_naming("modified record", NULL, NULL);
    hubfix_start(&fix);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "audit log check at start FAILED", 10000),
                  "hubd did not name the edited record at start; see %s", fix.hubd_log);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "modified record", 1000), "no detail");
    expect_alarm("audit_log_tampered", 5000, "no audit_log_tampered alarm");
    hubfix_stop(&fix);
    RESTORE();

    /* Cut back, then accepted by the operator: hubd starts, records the
     * gap, raises the critical alarm and the metric. */
    ck_assert_int_eq(
        tk_shf(60000, "cd %s/data/audit && rm \"$(ls audit-*.log | sort | tail -1)\"", fix.dir), 0);
    ck_assert_int_eq(tk_shf(60000, "echo 'audit_accept_gap = yes' >> %s", fix.conf_path), 0);
    hubfix_start(&fix);
    expect_alarm("audit_log_cut", 5000, "no audit_log_cut alarm");
    expect_nonzero_metric("lth_audit_log_gap_records", "no gap metric");
    hubfix_stop(&fix);
    char *out = NULL;
    verify(&out, NULL, NULL);
    free(out);
    char dir[PATH_MAX];
    audit_dir(dir);
    ck_assert_int_eq(
        tk_shf(60000, "grep -q 'audit log cut back, accepted by the operator' %s/audit-*.log", dir),
        0);
    hubfix_cleanup(&fix);
}
END_TEST

/* ---- the published head ---------------------------------------------------------- */

START_TEST(head_is_published_and_anchors)
{
    start_with_traffic(20);
    json_t *j = NULL;
    const char *anchor = NULL;
    for (int w = 0; w < 50; w++) {
        json_decref(j);
        j = get_json("/api/v1/audit/head");
        json_t *cp = json_object_get(j, "checkpoint");
        anchor = json_is_object(cp) ? json_string_value(json_object_get(cp, "anchor")) : NULL;
        if (anchor)
            break;
        tk_sleep_ms(100);
    }
    ck_assert_msg(anchor, "no checkpoint published at /api/v1/audit/head");
    char kept[128];
    snprintf(kept, sizeof kept, "%s", anchor);
    json_decref(j);
    char *metrics = get_text("/metrics");
    ck_assert_msg(strstr(metrics, "lth_audit_checkpoint_sequence "), "no metric: %s", metrics);
    free(metrics);
    /* The head an outside witness kept passes while the hub runs on. */
    traffic(5);
    verify_passes("--anchor", kept);
    hubfix_stop(&fix);
    verify_passes("--anchor", kept);
    hubfix_cleanup(&fix);
}
END_TEST

/* ---- key rotation -------------------------------------------------------------- */

START_TEST(key_rotation_is_followed)
{
    start_with_traffic(10);
    hubfix_stop(&fix);
    /* The old key A, kept for the auditor; a new key B. */
    ck_assert_int_eq(tk_shf(60000,
                            "cd %s && mkdir -p old new && cp secrets/%s.* old/ && %s keygen %s new "
                            ">/dev/null",
                            fix.dir, HUB_SLUG, tk_bin("hubctl"), HUBFIX_HUB_ID),
                     0);
    ck_assert_int_eq(tk_shf(60000, "cp -a %s/data %s/before", fix.dir, fix.dir), 0);
    ck_assert_int_eq(tk_shf(60000, "cd %s && cp new/%s.* secrets/", fix.dir, HUB_SLUG), 0);
    /* Without a rotation record the hub refuses the new key. */
    start_refused_naming("key change without a rotation record");

    /* With it: hubctl hands the log over, signed by A, proved by B. */
    char dir[PATH_MAX], old_secret[PATH_MAX], new_secret[PATH_MAX], old_pub[PATH_MAX];
    audit_dir(dir);
    snprintf(old_secret, sizeof old_secret, "%s/old/%s.secret", fix.dir, HUB_SLUG);
    snprintf(old_pub, sizeof old_pub, "%s/old/%s.pub", fix.dir, HUB_SLUG);
    snprintf(new_secret, sizeof new_secret, "%s/new/%s.secret", fix.dir, HUB_SLUG);
    ck_assert_int_eq(hubctl(NULL, "audit", "rotate-key", dir, "--old-key", old_secret, "--new-key",
                            new_secret, NULL),
                     0);
    hubfix_start(&fix);
    traffic(10);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "key_rotations=1", 10000),
                  "hubd's start check did not follow the rotation; see %s", fix.hubd_log);
    hubfix_stop(&fix);
    char *out = NULL;
    ck_assert_int_eq(hubctl(&out, "audit", "verify", dir, "--hub-key", old_pub, NULL, NULL, NULL),
                     0);
    ck_assert_msg(strstr(out, "key rotations followed: 1"), "%s", out);
    free(out);
    /* Verifying from the new key alone fails at the first checkpoint. */
    verify_fails_naming("key change without a rotation record", NULL, NULL);

    /* The same change without the record, forced by the operator (the old
     * key lost): the hub goes on, and verify names the point. */
    ck_assert_int_eq(
        tk_shf(60000, "rm -rf %s/data && cp -a %s/before %s/data", fix.dir, fix.dir, fix.dir), 0);
    ck_assert_int_eq(tk_shf(60000, "echo 'audit_accept_key_change = yes' >> %s", fix.conf_path), 0);
    hubfix_start(&fix);
    traffic(10);
    hubfix_stop(&fix);
    ck_assert_int_eq(hubctl(&out, "audit", "verify", dir, "--hub-key", old_pub, NULL, NULL, NULL),
                     1);
    ck_assert_msg(strstr(out, "key change without a rotation record") && strstr(out, "seq"), "%s",
                  out);
    free(out);
    hubfix_cleanup(&fix);
}
END_TEST

/* ---- time-stamps ----------------------------------------------------------------- */

static const char tsa_py[] =
    "import http.server, subprocess, sys, os, tempfile\n"
    "d, port, port_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))\n"
    "        fd, q = tempfile.mkstemp(dir=d, suffix='.tsq')\n"
    "        os.write(fd, body); os.close(fd)\n"
    "        out = q[:-4] + '.tsr'\n"
    "        r = subprocess.run(['openssl', 'ts', '-reply', '-config', d + '/tsa.cnf',\n"
    "                            '-queryfile', q, '-out', out], capture_output=True)\n"
    "        if r.returncode != 0:\n"
    "            self.send_response(500); self.end_headers(); return\n"
    "        data = open(out, 'rb').read()\n"
    "        os.unlink(q); os.unlink(out)\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/timestamp-reply')\n"
    "        self.send_header('Content-Length', str(len(data)))\n"
    "        self.end_headers(); self.wfile.write(data)\n"
    "    def log_message(self, *a): pass\n"
    "s = http.server.HTTPServer(('127.0.0.1', port), H)\n"
    "open(port_file + '.tmp', 'w').write(str(s.server_address[1]))\n"
    "os.rename(port_file + '.tmp', port_file)\n"
    "s.serve_forever()\n";

/* A TSA's key, self-signed certificate (critical timeStamping usage) and
 * `openssl ts` configuration in dir. */
static void make_tsa(const char *dir, const char *name)
{
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    char cnf[PATH_MAX], text[2048];
    snprintf(cnf, sizeof cnf, "%s/tsa.cnf", dir);
    snprintf(text, sizeof text,
             "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\nserial = %s/serial\n"
             "crypto_device = builtin\nsigner_cert = %s/tsa.pem\nsigner_key = %s/tsa.key\n"
             "signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256\n"
             "accuracy = secs:1\nordering = no\ntsa_name = no\ness_cert_id_chain = no\n"
             "ess_cert_id_alg = sha256\n",
             dir, dir, dir);
    tk_write_file(cnf, text);
    ck_assert_int_eq(tk_shf(60000,
                            "cd %s && echo 01 > serial && openssl req -x509 -newkey ec -pkeyopt "
                            "ec_paramgen_curve:P-256 -nodes -keyout tsa.key -out tsa.pem -days 2 "
                            "-subj '/CN=%s' -addext 'extendedKeyUsage=critical,timeStamping' "
                            "-addext 'keyUsage=critical,digitalSignature' 2>/dev/null",
                            dir, name),
                     0);
}

static pid_t start_tsa(const char *dir, int port, int *port_out)
{
    char py[PATH_MAX], port_file[PATH_MAX], port_arg[16];
    snprintf(py, sizeof py, "%s/tsa.py", dir);
    snprintf(port_file, sizeof port_file, "%s/port", dir);
    snprintf(port_arg, sizeof port_arg, "%d", port);
    tk_write_file(py, tsa_py);
    unlink(port_file);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/tsa.log", dir);
    char *argv[] = {"/usr/bin/python3", py, (char *)dir, port_arg, port_file, NULL};
    pid_t pid = tk_spawn(argv, log);
    ck_assert_msg(tk_wait_file(port_file, 10000), "the test TSA did not start; see %s", log);
    char *text = tk_read_file(port_file);
    *port_out = atoi(text);
    free(text);
    return pid;
}

static long json_u64(json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

START_TEST(timestamps_are_checked)
{
    if (access("/usr/bin/python3", X_OK) != 0 ||
        tk_shf(60000, "command -v openssl >/dev/null") != 0)
        tk_skip("auditchain: python3 and openssl are needed for the test TSA");
    char base[PATH_MAX], tsa_dir[PATH_MAX], evil_dir[PATH_MAX], conf[2048];
    tk_tmpdir(base);
    snprintf(tsa_dir, sizeof tsa_dir, "%s/tsa", base);
    snprintf(evil_dir, sizeof evil_dir, "%s/evil", base);
    make_tsa(tsa_dir, "Test TSA");
    make_tsa(evil_dir, "Not the TSA");
    int port = 0;
    pid_t tsa = start_tsa(tsa_dir, 0, &port);
    snprintf(conf, sizeof conf,
             BASE_CONF "audit_tsa_url = http://127.0.0.1:%d/tsa\naudit_tsa_cert = %s/tsa.pem\n"
                       "audit_tsa_every_s = 0\naudit_tsa_retry_s = 1\n",
             port, tsa_dir);
    hubfix_init(&fix, conf);
    HUBFIX_ADD_MEMBERS(&fix, SENDER, RECEIVER);
    hubfix_start(&fix);
    json_t *j = NULL;
    long tokens = 0;
    for (int w = 0; w < 100 && tokens < 3; w++) {
        traffic(7);
        json_decref(j);
        j = get_json("/api/v1/audit/head");
        tokens = json_u64(json_object_get(j, "timestamping"), "tokens");
    }
    ck_assert_msg(tokens >= 3, "the hub got %ld time-stamp tokens", tokens);
    json_decref(j);

    /* The TSA goes down: messages still flow and are ACKed; the hub says
     * so (metric, alarm) and catches up when the TSA is back. */
    tk_stop(tsa);
    traffic(14);
    expect_alarm("audit_tsa_unreachable", 6000,
                 "no audit_tsa_unreachable alarm while the TSA is down");
    expect_nonzero_metric("lth_audit_tsa_failures_total", "no failure count");
    tsa = start_tsa(tsa_dir, port, &port);
    long before = tokens;
    for (int w = 0; w < 100 && tokens <= before; w++) {
        tk_sleep_ms(100);
        j = get_json("/api/v1/audit/head");
        tokens = json_u64(json_object_get(j, "timestamping"), "tokens");
        json_decref(j);
    }
    ck_assert_msg(tokens > before, "no token after the TSA came back");
    traffic(3);
    hubfix_stop(&fix);

    char tsa_cert[PATH_MAX], evil_cert[PATH_MAX], dir[PATH_MAX];
    snprintf(tsa_cert, sizeof tsa_cert, "%s/tsa.pem", tsa_dir);
    snprintf(evil_cert, sizeof evil_cert, "%s/tsa.pem", evil_dir);
    audit_dir(dir);
    char *out = NULL;
    ck_assert_int_eq(verify(&out, "--tsa-cert", tsa_cert), 0);
    ck_assert_msg(strstr(out, "verified with the TSA certificate"), "%s", out);
    free(out);
    /* An auditor holding another TSA's certificate is told. */
    verify_fails_naming("does not verify with the TSA certificate", "--tsa-cert", evil_cert);
    ck_assert_int_eq(tk_shf(60000, "cp -a %s/data %s/golden", fix.dir, fix.dir), 0);

    /* A forged token: the evil TSA's answer for the same checkpoint. */
    ck_assert_int_eq(
        tk_shf(60000,
               "cd %s && f=$(ls audit-cp-*.tsr | sort | head -1) && "
               "s=$(echo $f | sed 's/audit-cp-0*\\([0-9]*\\)\\.tsr/\\1/') && "
               "h=$(grep -h \"^{\\\"seq\\\":$s,\" audit-*.log | sha256sum | cut -c1-64) && "
               "openssl ts -query -digest $h -sha256 -cert -out q.tsq && "
               "openssl ts -reply -config %s/tsa.cnf -queryfile q.tsq -out $f 2>/dev/null "
               "&& rm q.tsq",
               dir, evil_dir),
        0);
    verify_fails_naming("forged time-stamp token", "--tsa-cert", tsa_cert);
    hubfix_start(&fix);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "forged time-stamp token", 10000),
                  "hubd did not name the forged token at start; see %s", fix.hubd_log);
    hubfix_stop(&fix);
    ck_assert_int_eq(
        tk_shf(60000, "rm -rf %s/data && cp -a %s/golden %s/data", fix.dir, fix.dir, fix.dir), 0);

    /* A missing token. */
    ck_assert_int_eq(tk_shf(60000, "cd %s && rm \"$(ls audit-cp-*.tsr | sort | sed -n 2p)\"", dir),
                     0);
    verify_fails_naming("missing time-stamp token", "--tsa-cert", tsa_cert);
    verify_fails_naming("missing time-stamp token", NULL, NULL);
    hubfix_start(&fix);
    ck_assert_msg(tk_wait_file_contains(fix.hubd_log, "missing time-stamp token", 10000),
                  "hubd did not name the missing token at start; see %s", fix.hubd_log);
    hubfix_stop(&fix);
    tk_stop(tsa);
    hubfix_cleanup(&fix);
    tk_rmrf(base);
}
END_TEST

TK_MAIN_PREPARED(tk_prepare_curl, "auditchain",
                 TK_CASE("chain", NULL, NULL, 300, cutting_and_editing_are_named,
                         head_is_published_and_anchors, key_rotation_is_followed,
                         timestamps_are_checked))
