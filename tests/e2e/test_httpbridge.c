/* End to end: the generic HTTP bridge (lth-httpbridge.so in hub-adapter).
 *
 * Inbound, as an integrator would try it: the real `curl` posts JSON to the
 * bridge of the procedure system (VN/GOV/HN-VP/TTHC), which asks the
 * population adapter through a real hubd — a good look-up, malformed JSON,
 * unmapped and unknown fields, an unknown receiver, and the HTTP refusals.
 * Outbound: the land-registry member (VN/GOV/HN-STNMT/DATDAI) offers services
 * answered by a small HTTP server in this test, called through the hub by an
 * SDK client: a 503 retried into a 200, a 400 not retried, a typed look-up
 * mapped to and from JSON, a system that cannot be reached. Many requests
 * in flight: look-ups answered while a slow receiver holds another request,
 * the in-flight limit, a stop with a request waiting. HTTPS with client
 * certificates made by openssl at test time. */
#include "domain.pb-c.h"
#include "hub_error.h"
#include "hubfix.h"
#include "lth_citizen.h"
#include "lth_jsonmap.h"
#include "testkit.h"

#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define POP "VN/GOV/BCA/CSDLQGDC"
#define TTHC "VN/GOV/HN-VP/TTHC"      /* the bridge with the HTTP endpoint */
#define LAND "VN/GOV/HN-STNMT/DATDAI" /* the bridge in front of the test's HTTP server */
#define HOTICH "VN/GOV/HN-STP/HOTICH" /* an SDK client */
#define TOKEN "s3cret-token-for-the-bridge-0123"
#define SEED 1
#define CITIZENS 200

/* ---- the connected system: a tiny HTTP server on a thread ----------------- */

typedef struct {
    int status;
    const char *body;
} answer_t;

typedef struct {
    char path[64];
    char sender[256];
    char message_id[64];
    char body[2048];
} seen_t;

typedef struct {
    int fd, port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    answer_t script[8]; /* answers in order; then 200 {"ok":true} */
    size_t n_script, next;
    seen_t seen[16];
    size_t n_seen;
} system_t;

static system_t sys;

static void header_value(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    for (const char *p = head; (p = strchr(p, '\n')) != NULL;) {
        p++;
        size_t n = strlen(name);
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), v);
            return;
        }
    }
}

static void system_serve_one(int fd)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof buf - 1 && !(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
    }
    if (!end)
        return;
    *end = '\0';
    char clen[32];
    header_value(buf, "Content-Length", clen, sizeof clen);
    size_t want = (size_t)atol(clen), have = len - (size_t)(end + 4 - buf);
    char *body = end + 4;
    while (have < want && len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        have += (size_t)n;
    }
    pthread_mutex_lock(&sys.lock);
    answer_t a = sys.next < sys.n_script ? sys.script[sys.next++]
                                         : (answer_t){200, "{\"ok\":true}"};
    if (sys.n_seen < 16) {
        seen_t *s = &sys.seen[sys.n_seen++];
        sscanf(buf, "POST %63s", s->path);
        header_value(buf, "X-LTH-Sender", s->sender, sizeof s->sender);
        header_value(buf, "X-LTH-Message-Id", s->message_id, sizeof s->message_id);
        snprintf(s->body, sizeof s->body, "%.*s", (int)have, body);
    }
    pthread_mutex_unlock(&sys.lock);
    char out[4096];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     a.status, strlen(a.body), a.body);
    ssize_t w = send(fd, out, (size_t)n, MSG_NOSIGNAL);
    (void)w;
}

static void *system_main(void *arg)
{
    (void)arg;
    while (!sys.stop) {
        struct pollfd p = {sys.fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(sys.fd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        system_serve_one(fd);
        close(fd);
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *port = ntohs(a.sin_port);
    return fd;
}

static void system_start(void)
{
    memset(&sys, 0, sizeof sys);
    pthread_mutex_init(&sys.lock, NULL);
    sys.fd = listen_any(&sys.port);
    ck_assert_int_eq(pthread_create(&sys.thread, NULL, system_main, NULL), 0);
}

static void system_stop(void)
{
    sys.stop = 1;
    pthread_join(sys.thread, NULL);
    close(sys.fd);
    pthread_mutex_destroy(&sys.lock);
}

/* The answers for the next calls; forgets what was seen. */
static void system_script(const answer_t *answers, size_t n)
{
    pthread_mutex_lock(&sys.lock);
    if (n)
        memcpy(sys.script, answers, n * sizeof *answers);
    sys.n_script = n;
    sys.next = 0;
    sys.n_seen = 0;
    pthread_mutex_unlock(&sys.lock);
}

static size_t system_seen(void)
{
    pthread_mutex_lock(&sys.lock);
    size_t n = sys.n_seen;
    pthread_mutex_unlock(&sys.lock);
    return n;
}

/* ---- fixture ---------------------------------------------------------------- */

static hubfix_t fix;
static pid_t bridge_in, bridge_out;
static int bridge_port;
static char in_log[PATH_MAX], out_log[PATH_MAX];

static void setup(void)
{
    system_start();
    hubfix_init(&fix, NULL);
    HUBFIX_ADD_MEMBERS(&fix, POP, TTHC, LAND, HOTICH);
    hubfix_add_member(&fix, "VN/GOV/HN-VP/ONE", true); /* a bridge with room for one request */
    hubfix_add_member(&fix, "VN/GOV/HN-VP/TLS", true); /* a bridge on HTTPS */
    hubfix_start(&fix);
    char conf[4096], token_path[PATH_MAX];
    snprintf(conf, sizeof conf, "plugin.db = %s/pop.db\nplugin.citizens = %d\n", fix.dir,
             CITIZENS);
    hubfix_start_adapter(&fix, POP, "population", conf);

    snprintf(token_path, sizeof token_path, "%s/bridge.token", fix.dir);
    tk_write_file(token_path, TOKEN "\n");
    chmod(token_path, 0600);
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nlog_level = debug\n"
             "plugin.listen = 127.0.0.1:0\nplugin.port_file = %s/bridge.port\n"
             "plugin.token_file = %s\nplugin.max_body_bytes = 4096\n"
             "plugin.routes = lookup\n"
             "plugin.route.lookup = " POP " citizen.lookup/v1\n"
             "plugin.map.lookup.request = "
             "{\"ids\":\"personal_ids\",\"mode\":\"mode\",\"date\":\"date\",\"purpose\":\"purpose\"}\n"
             "plugin.map.lookup.response = {\"status\":\"status\",\"people\":\"results\"}\n",
             fix.dir, token_path);
    bridge_in = hubfix_start_adapter(&fix, TTHC, "httpbridge", conf);
    snprintf(in_log, sizeof in_log, "%s/adapter-VN.GOV.HN-VP.TTHC.log", fix.dir);
    char port_path[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/bridge.port", fix.dir);
    char *port_text = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port_text);
    bridge_port = atoi(port_text);
    free(port_text);
    ck_assert_int_gt(bridge_port, 0);

    int dead_port;
    close(listen_any(&dead_port)); /* a port nobody listens on */
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nlog_level = debug\nplugin.listen = off\n"
             "plugin.http_timeout_ms = 2000\nplugin.http_retries = 2\n"
             "plugin.http_backoff_ms = 50\n"
             "plugin.offers = parcel, people, down\n"
             "plugin.offer.parcel = land.parcel/v1 http://127.0.0.1:%d/parcel\n"
             "plugin.offer.people = citizen.lookup/v1 http://127.0.0.1:%d/lookup\n"
             "plugin.map.people.request = {\"ids\":\"personal_ids\",\"purpose\":\"purpose\"}\n"
             "plugin.offer.down = land.down/v1 http://127.0.0.1:%d/down\n",
             sys.port, sys.port, dead_port);
    bridge_out = hubfix_start_adapter(&fix, LAND, "httpbridge", conf);
    snprintf(out_log, sizeof out_log, "%s/adapter-VN.GOV.HN-STNMT.DATDAI.log", fix.dir);
}

static void teardown(void)
{
    hubfix_cleanup(&fix);
    system_stop();
}

static lth_citizen_t citizen(size_t index)
{
    lth_citizen_t c;
    ck_assert_int_eq(lth_citizen_generate(SEED, index, &c), 0);
    return c;
}

/* Stops a bridge and checks it exited cleanly, with no sanitizer report and
 * none of the personal data it carried in its log. */
static void assert_bridge_stops_clean(pid_t *pid, const char *log_path, const lth_citizen_t *who)
{
    char *log = tk_stop_clean(*pid, "the bridge", log_path);
    *pid = 0;
    if (who) {
        ck_assert_msg(!strstr(log, who->personal_id), "a personal ID number was logged");
        ck_assert_msg(!strstr(log, who->full_name), "a name was logged");
    }
    free(log);
}

/* ---- curl, as an integrator runs it ------------------------------------------ */

typedef struct {
    int status;
    char *body;   /* what the bridge answered */
    json_t *json; /* body parsed, or NULL */
} http_t;

static const char *curl_path(void)
{
    static const char *const candidates[] = {"/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"};
    for (size_t i = 0; i < 3; i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    ck_abort_msg("the curl program is needed for this test (apt-get install curl)");
    return NULL;
}

/* The curl program to url with opts (NULL-terminated) and body (may be NULL)
 * sent as given; when must_answer, asserts that curl ran and an answer came,
 * otherwise a failure answers status 0 and body "". */
static http_t curl_call(const char *url, const char *const opts[], const char *body,
                        bool must_answer)
{
    char body_path[PATH_MAX], out_path[PATH_MAX], data[PATH_MAX + 1];
    snprintf(body_path, sizeof body_path, "%s/request.body", fix.dir);
    snprintf(out_path, sizeof out_path, "%s/response.body", fix.dir);
    unlink(out_path);
    char *argv[24];
    int n = 0;
    argv[n++] = (char *)curl_path();
    argv[n++] = "-sS";
    argv[n++] = "--noproxy";
    argv[n++] = "*";
    argv[n++] = "-o";
    argv[n++] = out_path;
    argv[n++] = "-w";
    argv[n++] = "%{http_code}";
    for (size_t i = 0; opts[i]; i++)
        argv[n++] = (char *)opts[i];
    if (body) {
        tk_write_file(body_path, body);
        snprintf(data, sizeof data, "@%s", body_path);
        argv[n++] = "--data-binary";
        argv[n++] = data;
    }
    argv[n++] = (char *)url;
    argv[n] = NULL;
    char *out = NULL;
    int rc = tk_run(argv, &out, 30000);
    ck_assert_msg(rc == 0 || !must_answer, "curl failed (%d): %s", rc, out ? out : "");
    http_t r = {.status = out ? atoi(out) : 0};
    free(out);
    r.body = tk_read_file(out_path);
    ck_assert_msg(r.body || !must_answer, "no answer from %s", url);
    if (!r.body)
        r.body = strdup("");
    r.json = json_loads(r.body, 0, NULL);
    return r;
}

/* `curl -X METHOD` to the bridge; body (may be NULL) sent as given. */
static http_t http(const char *method, const char *path, const char *content_type, const char *body,
                   bool with_token)
{
    char url[512], ctype[160], auth[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", bridge_port, path);
    snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type ? content_type : "");
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", with_token ? TOKEN : "wrong");
    const char *opts[] = {"-X", method, "-H", auth, content_type ? "-H" : NULL, ctype, NULL};
    return curl_call(url, opts, body, true);
}

static http_t post_json(const char *path, const char *body)
{
    return http("POST", path, "application/json", body, true);
}

static void http_free(http_t *r)
{
    free(r->body);
    json_decref(r->json);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(absent)";
}

/* The refusal's status and that its "error" holds `part`. */
static void assert_refused(const http_t *r, int status, const char *part)
{
    ck_assert_msg(r->status == status, "HTTP %d, expected %d: %s", r->status, status, r->body);
    ck_assert_msg(r->json && strstr(jstr(r->json, "error"), part), "error does not say '%s': %s",
                  part, r->body);
}

/* ---- inbound ------------------------------------------------------------------ */

START_TEST(inbound_good_lookup)
{
    lth_citizen_t who = citizen(42);
    char body[512];
    snprintf(body, sizeof body,
             "{\"ids\":[\"%s\"],\"purpose\":\"Đăng ký thường trú (test)\"}", who.personal_id);
    http_t r = post_json("/route/lookup", body);
    ck_assert_msg(r.status == 200, "HTTP %d: %s", r.status, r.body);
    /* The response map: "status" and "people", nothing else. */
    ck_assert_uint_eq(json_object_size(r.json), 2);
    ck_assert_str_eq(jstr(r.json, "status"), "RESPONSE_STATUS_OK");
    json_t *person = json_array_get(json_object_get(r.json, "people"), 0);
    ck_assert_str_eq(jstr(person, "personal_id"), who.personal_id);
    ck_assert_str_eq(jstr(person, "status"), "LOOKUP_STATUS_FOUND");
    json_t *c = json_object_get(person, "citizen");
    ck_assert_str_eq(jstr(c, "full_name"), who.full_name);
    ck_assert_str_eq(jstr(c, "place_of_residence"), who.residence);
    /* proto3's JSON mapping: a Date is an object, as JsonFormat reads it. */
    json_t *dob = json_object_get(c, "date_of_birth");
    ck_assert_int_eq(json_integer_value(json_object_get(dob, "year")), who.date_of_birth.year);
    ck_assert_int_eq(json_integer_value(json_object_get(dob, "month")), who.date_of_birth.month);
    ck_assert_int_eq(json_integer_value(json_object_get(dob, "day")), who.date_of_birth.day);
    ck_assert_str_eq(jstr(c, "sex"), who.sex == LTH_SEX_FEMALE ? "SEX_FEMALE" : "SEX_MALE");
    http_free(&r);

    /* The generic route takes the proto field names; a date and a mode. */
    snprintf(body, sizeof body,
             "{\"personal_ids\":[\"%s\",\"12345\"],\"mode\":\"AS_OF\",\"date\":\"2999-01-01\","
             "\"purpose\":\"test\"}",
             who.personal_id);
    r = post_json("/call/" POP "/citizen.lookup/v1", body);
    ck_assert_msg(r.status == 200, "HTTP %d: %s", r.status, r.body);
    ck_assert_str_eq(jstr(r.json, "mode"), "LOOKUP_MODE_AS_OF");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r.json, "date"), "year")),
                     2999);
    json_t *results = json_object_get(r.json, "results");
    ck_assert_uint_eq(json_array_size(results), 2);
    ck_assert_str_eq(jstr(json_array_get(results, 0), "status"), "LOOKUP_STATUS_FOUND");
    ck_assert_str_eq(jstr(json_array_get(results, 1), "status"), "LOOKUP_STATUS_INVALID_KEY");
    http_free(&r);

    /* Without the token: 401, and the hub is not asked. */
    r = http("POST", "/route/lookup", "application/json", body, false);
    assert_refused(&r, 401, "Authorization: Bearer");
    http_free(&r);
    assert_bridge_stops_clean(&bridge_in, in_log, &who);
}
END_TEST

/* POSTs body to path and asserts the refusal (assert_refused); field: the
 * field it must name, or NULL. */
static void assert_post_refused(const char *path, const char *body, int status, const char *part,
                                const char *field)
{
    http_t r = post_json(path, body);
    assert_refused(&r, status, part);
    if (field)
        ck_assert_str_eq(jstr(r.json, "field"), field);
    http_free(&r);
}

START_TEST(inbound_refusals)
{
    /* Malformed JSON: 400 with the position. */
    http_t r = post_json("/route/lookup", "{\"ids\": [\"001085012345\", }");
    assert_refused(&r, 400, "malformed JSON at line 1, column 26");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "line")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "column")), 26);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "position")), 26);
    http_free(&r);
    assert_post_refused("/route/lookup", "", 400, "malformed JSON", NULL);

    /* A field outside the route's map: 422 naming it. */
    assert_post_refused("/route/lookup",
                        "{\"ids\":[\"001085012345\"],\"purpose\":\"x\",\"nick\":\"A\"}", 422,
                        "unmapped field 'nick'", "nick");
    /* A field the message does not have, on the generic route. */
    assert_post_refused("/call/" POP "/citizen.lookup/v1", "{\"personal_idz\":[\"001085012345\"]}",
                        422, "unknown field 'personal_idz'", "personal_idz");
    assert_post_refused("/route/lookup", "{\"ids\":[\"001085012345\"],\"mode\":\"SOMETIMES\"}", 422,
                        "field 'mode' must be one of LOOKUP_MODE_CURRENT", NULL);

    /* The hub does not know the receiver: 404 with the NACK. */
    r = post_json("/call/VN/GOV/NOPE/NOWHERE/citizen.lookup/v1", "{\"personal_ids\":[]}");
    assert_refused(&r, 404, "the hub refused the request");
    ck_assert_str_eq(jstr(r.json, "nack"), "UNKNOWN_RECEIVER");
    ck_assert_str_ne(jstr(r.json, "reason"), "(absent)");
    http_free(&r);

    /* HTTP-level refusals. */
    r = post_json("/route/nope", "{}");
    assert_refused(&r, 404, "no route named 'nope'");
    ck_assert_msg(strstr(jstr(r.json, "error"), "/route/lookup"), "%s", r.body);
    http_free(&r);
    assert_post_refused("/call/VN/GOV/x", "{}", 404, "/call/RECEIVER-ID/SERVICE/VERSION", NULL);
    r = http("GET", "/route/lookup", NULL, NULL, true);
    assert_refused(&r, 405, "use POST");
    http_free(&r);
    r = http("POST", "/route/lookup", "text/plain", "{}", true);
    assert_refused(&r, 415, "Content-Type: application/json");
    http_free(&r);
    char *big = malloc(6001);
    memset(big, ' ', 6000);
    big[0] = '{';
    big[5999] = '}';
    big[6000] = '\0';
    assert_post_refused("/route/lookup", big, 413, "larger than 4096 bytes", NULL);
    free(big);

    /* Bytes that are not HTTP. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)bridge_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char garbage[] = "\x16\x03\x01 hello? \r\n\r\n";
    ck_assert_int_eq(send(fd, garbage, sizeof garbage - 1, 0), (ssize_t)(sizeof garbage - 1));
    char answer[512] = "";
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = recv(fd, answer, sizeof answer - 1, MSG_WAITALL);
    close(fd);
    /* libmicrohttpd answers this itself (400 with its own short page) and
     * closes; the handler never sees it. */
    ck_assert_msg(got > 0 && !strncmp(answer, "HTTP/1.1 400 ", 13), "answer: %s", answer);
    ck_assert_msg(strstr(answer, "Connection: close"), "answer: %s", answer);

    /* Still serving after all that. */
    lth_citizen_t who = citizen(7);
    char body[256];
    snprintf(body, sizeof body, "{\"ids\":[\"%s\"],\"purpose\":\"x\"}", who.personal_id);
    r = post_json("/route/lookup", body);
    ck_assert_msg(r.status == 200, "HTTP %d: %s", r.status, r.body);
    http_free(&r);
    ck_assert(tk_wait_file_contains(in_log, "POST /route/lookup from 127.0.0.1", 3000));
    assert_bridge_stops_clean(&bridge_in, in_log, &who);
}
END_TEST

/* ---- outbound ----------------------------------------------------------------- */

/* An SDK request through the hub to the land bridge. */
static adp_reply_t ask_land(adp_client_t *c, const char *service, const char *ctype,
                            const void *payload, size_t len)
{
    adp_reply_t reply;
    int rc = adp_request(c, LAND, service, ctype, payload, len, 0, 20000, &reply);
    ck_assert_msg(rc == 0, "request failed: %s", adp_last_error(c));
    ck_assert_str_eq(reply.sender, LAND);
    return reply;
}

static json_t *reply_json(const adp_reply_t *reply, const char *ctype)
{
    ck_assert_str_eq(reply->content_type, ctype);
    json_t *j = json_loadb((const char *)reply->payload, reply->payload_len, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %.*s", (int)reply->payload_len, reply->payload);
    return j;
}

START_TEST(outbound_retries_and_refusals)
{
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    static const char parcel[] = "{\"code\":\"HN-001\"}";

    /* 503, then 200: retried, and the system sees the same message id. */
    static const answer_t busy_then_ok[] = {{503, "{\"error\":\"busy\"}"},
                                            {200, "{\"code\":\"HN-001\",\"area\":120.5}"}};
    system_script(busy_then_ok, 2);
    adp_reply_t reply = ask_land(c, "land.parcel/v1", "application/json", parcel, strlen(parcel));
    json_t *j = reply_json(&reply, "application/json");
    ck_assert_str_eq(jstr(j, "code"), "HN-001");
    json_decref(j);
    adp_reply_free(&reply);
    ck_assert_uint_eq(system_seen(), 2);
    ck_assert_str_eq(sys.seen[0].path, "/parcel");
    ck_assert_str_eq(sys.seen[0].sender, HOTICH);
    ck_assert_str_eq(sys.seen[0].body, parcel);
    ck_assert_uint_eq(strlen(sys.seen[0].message_id), 36);
    ck_assert_str_eq(sys.seen[0].message_id, sys.seen[1].message_id);

    /* 400: not retried; the reply is a problem document with the details. */
    static const answer_t bad_request[] = {{400, "{\"error\":\"no parcel HN-999\"}"}};
    system_script(bad_request, 1);
    reply = ask_land(c, "land.parcel/v1", "application/json", "{\"code\":\"HN-999\"}", 17);
    j = reply_json(&reply, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 400);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 1);
    ck_assert_msg(strstr(jstr(j, "error"), "answered HTTP 400"), "%s", jstr(j, "error"));
    ck_assert_str_eq(jstr(json_object_get(j, "detail"), "error"), "no parcel HN-999");
    json_decref(j);
    adp_reply_free(&reply);
    tk_sleep_ms(300); /* longer than any backoff: a retry would have come */
    ck_assert_uint_eq(system_seen(), 1);

    /* 5xx every time: given up after 1 + plugin.http_retries attempts. */
    static const answer_t down[] = {{502, "{}"}, {503, "{}"}, {500, "oops"}};
    system_script(down, 3);
    reply = ask_land(c, "land.parcel/v1", "application/json", parcel, strlen(parcel));
    j = reply_json(&reply, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 500);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "detail")), "oops");
    json_decref(j);
    adp_reply_free(&reply);
    ck_assert_uint_eq(system_seen(), 3);

    /* Nobody listening: connection errors are retried too, then 502. */
    reply = ask_land(c, "land.down/v1", "application/json", "{}", 2);
    j = reply_json(&reply, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 502);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 3);
    ck_assert_msg(strstr(jstr(j, "error"), "cannot reach the system"), "%s", jstr(j, "error"));
    json_decref(j);
    adp_reply_free(&reply);

    /* Neither JSON nor a domain message: refused without calling the system. */
    system_script(NULL, 0);
    reply = ask_land(c, "land.parcel/v1", "text/plain", "hello", 5);
    j = reply_json(&reply, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 415);
    json_decref(j);
    adp_reply_free(&reply);
    ck_assert_uint_eq(system_seen(), 0);
    adp_close(&c);

    /* From curl through both bridges: the system's 400 comes back as 400. */
    system_script(bad_request, 1);
    http_t r = post_json("/call/" LAND "/land.parcel/v1", "{\"code\":\"HN-999\"}");
    ck_assert_msg(r.status == 400, "HTTP %d: %s", r.status, r.body);
    ck_assert_str_eq(jstr(json_object_get(r.json, "detail"), "error"), "no parcel HN-999");
    http_free(&r);
    assert_bridge_stops_clean(&bridge_out, out_log, NULL);
}
END_TEST

/* An event the system does not take (503 through every retry) is not
 * dropped: the hub delivers it again later and the system then gets it,
 * with the same message id. */
START_TEST(outbound_event_refused_now_is_delivered_later)
{
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    static const char parcel[] = "{\"code\":\"HN-002\"}";
    static const answer_t busy[] = {{503, "{}"}, {503, "{}"}, {503, "{}"}};
    system_script(busy, 3); /* then 200 */
    uint64_t seq = 0;
    int rc = adp_send_event(c, LAND, "land.parcel/v1", "application/json", parcel,
                            strlen(parcel), 0, 10000, &seq);
    ck_assert_msg(rc == 0, "event refused: %s", adp_last_error(c));
    /* http_retries = 2: three calls, all 503; then the hub's redelivery
     * (redelivery_ms, 5 s by default) brings a fourth, answered 200. */
    uint64_t deadline = hub_monotonic_us() + 20000000u;
    while (system_seen() < 4 && hub_monotonic_us() < deadline)
        adp_run(c, 100);
    ck_assert_msg(system_seen() >= 4, "the system saw %zu calls: the event was dropped",
                  system_seen());
    ck_assert_str_eq(sys.seen[3].message_id, sys.seen[0].message_id);
    ck_assert_str_eq(sys.seen[3].body, parcel);
    /* Settled once taken: not delivered again. */
    adp_run(c, 6000);
    ck_assert_uint_eq(system_seen(), 4);
    adp_close(&c);
}
END_TEST

/* The OpenAPI description in the repository is the one the running bridge
 * serves, and every operation it describes exists on that bridge. */
START_TEST(openapi_description_matches_the_bridge)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/adapters/plugins/httpbridge/openapi.json",
             getenv("HUB_SOURCE_DIR"));
    char *kept = tk_read_file(path);
    ck_assert_msg(kept != NULL, "cannot read %s", path);
    http_t r = http("GET", "/openapi.json", NULL, NULL, false); /* no credentials needed */
    ck_assert_msg(r.status == 200, "HTTP %d: %s", r.status, r.body);
    ck_assert_msg(!strcmp(r.body, kept), "the bridge serves another description than %s", path);
    ck_assert_ptr_nonnull(r.json);
    ck_assert_int_eq(strncmp(jstr(r.json, "openapi"), "3.", 2), 0);
    json_t *paths = json_object_get(r.json, "paths");
    ck_assert_int_ge((int)json_object_size(paths), 3);
    /* Each described POST, with its path parameters filled in, reaches a
     * handler: no 404 "no such endpoint", and the documented statuses. */
    const char *p;
    json_t *item;
    json_object_foreach(paths, p, item)
    {
        json_t *post = json_object_get(item, "post");
        if (!post)
            continue;
        char concrete[512] = "";
        size_t used = 0;
        for (const char *q = p; *q && used < sizeof concrete - 64;) {
            if (*q == '{') {
                const char *end = strchr(q, '}');
                ck_assert_ptr_nonnull(end);
                char name[32];
                snprintf(name, sizeof name, "%.*s", (int)(end - q - 1), q + 1);
                const char *value = !strcmp(name, "instance")    ? "VN"
                                    : !strcmp(name, "class")     ? "GOV"
                                    : !strcmp(name, "member")    ? "BCA"
                                    : !strcmp(name, "subsystem") ? "CSDLQGDC"
                                    : !strcmp(name, "service")   ? "citizen.lookup"
                                    : !strcmp(name, "version")   ? "v1"
                                    : !strcmp(name, "name")      ? "lookup"
                                                                 : NULL;
                ck_assert_msg(value != NULL, "no test value for path parameter %s", name);
                used += (size_t)snprintf(concrete + used, sizeof concrete - used, "%s", value);
                q = end + 1;
            } else {
                concrete[used++] = *q++;
                concrete[used] = '\0';
            }
        }
        http_t call = post_json(concrete, "{\"ids\":[\"001099012345\"],\"purpose\":\"test\"}");
        char status[8];
        snprintf(status, sizeof status, "%d", call.status);
        ck_assert_msg(call.status != 404 || call.json == NULL ||
                          !strstr(jstr(call.json, "error"), "this bridge answers"),
                      "POST %s (documented as %s) is not served: %s", concrete, p, call.body);
        ck_assert_msg(json_object_get(json_object_get(post, "responses"), status) != NULL,
                      "POST %s answered %d, which %s does not document", concrete, call.status,
                      p);
        /* A refusal is the documented Problem: an object with an "error". */
        if (call.status >= 400)
            ck_assert_msg(json_is_string(json_object_get(call.json, "error")),
                          "POST %s: HTTP %d without an \"error\" sentence: %s", concrete,
                          call.status, call.body);
        http_free(&call);
    }
    http_free(&r);
    free(kept);
}
END_TEST

START_TEST(outbound_typed_lookup)
{
    /* The hub side speaks CitizenLookupRequest/Response; the system, JSON
     * with the offer's request map and short enum names. */
    static const answer_t found[] = {
        {200, "{\"status\":\"OK\",\"results\":[{\"personal_id\":\"001085012345\","
              "\"status\":\"FOUND\",\"citizen\":{\"full_name\":\"Trần Văn An\","
              "\"date_of_birth\":\"1985-03-07\",\"sex\":\"MALE\"}}]}"},
        {200, "{\"status\":\"OK\",\"resultz\":[]}"}};
    system_script(found, 2);
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    Lth__Domain__V1__CitizenLookupRequest req = LTH__DOMAIN__V1__CITIZEN_LOOKUP_REQUEST__INIT;
    char *ids[] = {"001085012345"};
    req.personal_ids = ids;
    req.n_personal_ids = 1;
    req.purpose = "kiểm tra";
    req.dossier_code = "D-1"; /* not in the map: not sent */
    uint8_t buf[256];
    size_t len = lth__domain__v1__citizen_lookup_request__pack(&req, buf);
    char ctype[128];
    lth_jsonmap_content_type(&lth__domain__v1__citizen_lookup_request__descriptor, ctype,
                             sizeof ctype);
    adp_reply_t reply = ask_land(c, "citizen.lookup/v1", ctype, buf, len);
    ck_assert_str_eq(sys.seen[0].path, "/lookup");
    ck_assert_str_eq(sys.seen[0].body, "{\"ids\":[\"001085012345\"],\"purpose\":\"kiểm tra\"}");
    ck_assert_str_eq(reply.content_type,
                     "application/x-protobuf; proto=lth.domain.v1.CitizenLookupResponse");
    Lth__Domain__V1__CitizenLookupResponse *resp =
        lth__domain__v1__citizen_lookup_response__unpack(NULL, reply.payload_len, reply.payload);
    ck_assert_ptr_nonnull(resp);
    ck_assert_uint_eq(resp->n_results, 1);
    ck_assert_int_eq(resp->results[0]->status, LTH__DOMAIN__V1__LOOKUP_STATUS__LOOKUP_STATUS_FOUND);
    ck_assert_str_eq(resp->results[0]->citizen->full_name, "Trần Văn An");
    ck_assert_uint_eq(resp->results[0]->citizen->date_of_birth->year, 1985);
    ck_assert_int_eq(resp->results[0]->citizen->sex, LTH__DOMAIN__V1__SEX__SEX_MALE);
    lth__domain__v1__citizen_lookup_response__free_unpacked(resp, NULL);
    adp_reply_free(&reply);

    /* The system's JSON does not fit the response type: a problem naming the field. */
    reply = ask_land(c, "citizen.lookup/v1", ctype, buf, len);
    json_t *j = reply_json(&reply, "application/problem+json");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 502);
    ck_assert_str_eq(jstr(j, "field"), "resultz");
    json_decref(j);
    adp_reply_free(&reply);
    adp_close(&c);
    assert_bridge_stops_clean(&bridge_out, out_log, NULL);
}
END_TEST

/* ---- configuration ------------------------------------------------------------ */

/* Runs hub-adapter with the bridge and extra lines; expects it to refuse to
 * start with a message holding `why`. */
static void assert_bad_config(const char *lines, const char *why)
{
    char *out = hubfix_adapter_refused(&fix, TTHC, "httpbridge", lines);
    ck_assert_msg(strstr(out, why), "expected '%s' in: %s", why, out);
    ck_assert_msg(!strstr(out, "Sanitizer"), "%s", out);
    free(out);
}

START_TEST(bad_configuration_is_refused)
{
    assert_bad_config("plugin.listen = 0.0.0.0:0", "not a loopback address");
    assert_bad_config("plugin.listen = 127.0.0.1", "is not HOST:PORT");
    assert_bad_config("plugin.listen = 127.0.0.1:0\nplugin.routes = a\n"
                      "plugin.route.a = VN/GOV/X citizen.lookup/v1",
                      "'VN/GOV/X' is not a member id");
    assert_bad_config("plugin.listen = 127.0.0.1:0\nplugin.routes = a\n"
                      "plugin.route.a = " POP " citizen.lookup/v1 Passport",
                      "'Passport' is no message of proto/domain.proto");
    assert_bad_config("plugin.listen = 127.0.0.1:0\nplugin.routes = a\n"
                      "plugin.route.a = " POP " citizen.lookup/v1\n"
                      "plugin.map.a.request = {\"ids\":\"personal_idz\"}",
                      "has no field 'personal_idz'");
    assert_bad_config("plugin.listen = 127.0.0.1:0\nplugin.routes = a\n"
                      "plugin.route.a = " POP " land.parcel/v1\n"
                      "plugin.map.a.request = {\"ids\":\"x\"}",
                      "passes through as JSON");
    assert_bad_config("plugin.listen = off\nplugin.offers = a\n"
                      "plugin.offer.a = land.parcel/v1 ftp://127.0.0.1/x",
                      "not an http:// or https:// URL");
    assert_bad_config("plugin.listen = off", "would do nothing");
    char token_path[PATH_MAX], line[PATH_MAX + 64];
    snprintf(token_path, sizeof token_path, "%s/open.token", fix.dir);
    tk_write_file(token_path, TOKEN "\n");
    chmod(token_path, 0644);
    snprintf(line, sizeof line, "plugin.listen = 127.0.0.1:0\nplugin.token_file = %s",
             token_path);
    assert_bad_config(line, "chmod 600");
}
END_TEST

/* ---- many requests in flight ---------------------------------------------------- */

/* A member whose handler holds a request until the test releases it: the
 * slow system a bridge must not wait for while it serves other callers. */
static struct {
    pthread_t thread;
    volatile int stop, held, release;
    hubfix_t *fix;
} slow;

static int slow_handler(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                        void *user)
{
    (void)client;
    (void)msg;
    (void)user;
    slow.held = 1;
    for (int i = 0; i < 1500 && !slow.release && !slow.stop; i++)
        tk_sleep_ms(10);
    static const char answer[] = "{\"slow\":true}";
    reply->payload = malloc(sizeof answer);
    memcpy(reply->payload, answer, sizeof answer - 1);
    reply->payload_len = sizeof answer - 1;
    snprintf(reply->content_type, sizeof reply->content_type, "application/json");
    return 0;
}

static void *slow_main(void *arg)
{
    adp_client_t *c = arg;
    while (!slow.stop)
        adp_run(c, 50);
    return NULL;
}

/* Starts curl in the background: its status line goes to DIR/NAME.code, the
 * body to DIR/NAME.body. */
static pid_t curl_start(const char *name, const char *path, const char *body)
{
    char url[512], body_path[PATH_MAX], out_path[PATH_MAX], code_path[PATH_MAX],
        data[PATH_MAX + 1];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", bridge_port, path);
    snprintf(body_path, sizeof body_path, "%s/%s.request", fix.dir, name);
    snprintf(out_path, sizeof out_path, "%s/%s.body", fix.dir, name);
    snprintf(code_path, sizeof code_path, "%s/%s.code", fix.dir, name);
    snprintf(data, sizeof data, "@%s", body_path);
    tk_write_file(body_path, body);
    char *argv[] = {(char *)curl_path(), "-sS", "--noproxy", "*", "-o", out_path,
                    "-w", "%{http_code}", "-H", "Authorization: Bearer " TOKEN, "-H",
                    "Content-Type: application/json", "--data-binary", data, url, NULL};
    return tk_spawn(argv, code_path);
}

static int curl_status(const char *name)
{
    char code_path[PATH_MAX];
    snprintf(code_path, sizeof code_path, "%s/%s.code", fix.dir, name);
    char *text = tk_read_file(code_path);
    int status = text ? atoi(text) : -1;
    free(text);
    return status;
}

/* One request held by a slow receiver does not hold the others: 8 look-ups
 * sent at the same time all come back, and come back while it still waits;
 * then it is answered too. */
START_TEST(many_requests_in_flight)
{
    memset((void *)&slow, 0, sizeof slow);
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    ck_assert_int_eq(adp_offer(c, "slow.echo/v1", slow_handler, NULL), 0);
    ck_assert_int_eq(pthread_create(&slow.thread, NULL, slow_main, c), 0);

    pid_t held = curl_start("held", "/call/" HOTICH "/slow.echo/v1", "{\"n\":1}");
    uint64_t deadline = hub_monotonic_us() + 10000000u;
    while (!slow.held && hub_monotonic_us() < deadline)
        tk_sleep_ms(10);
    ck_assert_msg(slow.held, "the slow request never reached its receiver");

    enum { N = 8 };
    pid_t pids[N];
    char names[N][16], body[256];
    uint64_t t0 = hub_monotonic_us();
    for (int i = 0; i < N; i++) {
        lth_citizen_t who = citizen((size_t)i);
        snprintf(names[i], sizeof names[i], "fast%d", i);
        snprintf(body, sizeof body, "{\"ids\":[\"%s\"],\"purpose\":\"x\"}", who.personal_id);
        pids[i] = curl_start(names[i], "/route/lookup", body);
    }
    int done = 0, status = 0;
    bool finished[N] = {false};
    while (done < N && hub_monotonic_us() < t0 + 10000000u) {
        for (int i = 0; i < N; i++)
            if (!finished[i] && tk_reaped(pids[i], &status)) {
                finished[i] = true;
                done++;
            }
        tk_sleep_ms(5);
    }
    uint64_t fast_ms = (hub_monotonic_us() - t0) / 1000u;
    ck_assert_msg(done == N, "only %d of %d look-ups came back while one request was held", done,
                  N);
    /* The held one is still unanswered: the look-ups did not wait for it. */
    ck_assert_msg(!tk_reaped(held, &status), "the held request was answered before release");
    for (int i = 0; i < N; i++)
        ck_assert_msg(curl_status(names[i]) == 200, "%s: HTTP %d", names[i],
                      curl_status(names[i]));
    fprintf(stderr, "%d parallel look-ups answered in %llu ms while one request was held\n", N,
            (unsigned long long)fast_ms);

    slow.release = 1;
    deadline = hub_monotonic_us() + 10000000u;
    bool held_done = false;
    while (!held_done && hub_monotonic_us() < deadline) {
        held_done = tk_reaped(held, &status);
        tk_sleep_ms(10);
    }
    ck_assert_msg(held_done, "the held request was never answered");
    ck_assert_int_eq(curl_status("held"), 200);
    char out_path[PATH_MAX];
    snprintf(out_path, sizeof out_path, "%s/held.body", fix.dir);
    char *answer = tk_read_file(out_path);
    ck_assert_str_eq(answer, "{\"slow\":true}");
    free(answer);
    slow.stop = 1;
    pthread_join(slow.thread, NULL);
    adp_close(&c);
    ck_assert(tk_wait_file_contains(in_log, "/slow.echo/v1 from 127.0.0.1", 3000));
    assert_bridge_stops_clean(&bridge_in, in_log, NULL);
}
END_TEST

/* plugin.max_in_flight: one more request than the bridge may hold gets 503
 * at once, with Retry-After, and the ones in flight are not disturbed. */
START_TEST(in_flight_limit_answers_503)
{
    memset((void *)&slow, 0, sizeof slow);
    adp_client_t *c = hubfix_connect(&fix, HOTICH);
    ck_assert_int_eq(adp_offer(c, "slow.echo/v1", slow_handler, NULL), 0);
    ck_assert_int_eq(pthread_create(&slow.thread, NULL, slow_main, c), 0);
    /* A bridge of its own member with room for one request. */
    char conf[2048];
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nplugin.listen = 127.0.0.1:0\nplugin.port_file = %s/one.port\n"
             "plugin.max_in_flight = 1\n",
             fix.dir);
    pid_t one = hubfix_start_adapter(&fix, "VN/GOV/HN-VP/ONE", "httpbridge", conf);
    char port_path[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/one.port", fix.dir);
    char *port_text = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port_text);
    int saved_port = bridge_port;
    bridge_port = atoi(port_text);
    free(port_text);
    pid_t held = 0;
    uint64_t deadline = hub_monotonic_us() + 15000000u;
    while (!slow.held && hub_monotonic_us() < deadline) {
        if (!held || tk_reaped(held, &(int){0}))
            held = curl_start("held", "/call/" HOTICH "/slow.echo/v1", "{}");
        tk_sleep_ms(200);
    }
    ck_assert_msg(slow.held, "the slow request never reached its receiver");
    http_t r = http("POST", "/call/" HOTICH "/slow.echo/v1", "application/json", "{}", true);
    assert_refused(&r, 503, "requests in flight");
    http_free(&r);
    /* Stopped while the request waits: the caller is told, and the bridge
     * exits cleanly. */
    char one_log[PATH_MAX];
    snprintf(one_log, sizeof one_log, "%s/adapter-VN.GOV.HN-VP.ONE.log", fix.dir);
    assert_bridge_stops_clean(&one, one_log, NULL);
    int status = 0;
    deadline = hub_monotonic_us() + 10000000u;
    while (!tk_reaped(held, &status) && hub_monotonic_us() < deadline)
        tk_sleep_ms(10);
    ck_assert_int_eq(curl_status("held"), 503);
    char out_path[PATH_MAX];
    snprintf(out_path, sizeof out_path, "%s/held.body", fix.dir);
    char *answer = tk_read_file(out_path);
    ck_assert_msg(answer && strstr(answer, "the bridge is stopping"), "%s", answer);
    free(answer);
    slow.release = 1;
    bridge_port = saved_port;
    slow.stop = 1;
    pthread_join(slow.thread, NULL);
    adp_close(&c);
}
END_TEST

/* ---- HTTPS with client certificates ---------------------------------------------- */

/* Makes a CA, a server certificate for 127.0.0.1 and a client certificate
 * under it, and a second CA with a client certificate of its own, in DIR/tls. */
static void make_certificates(void)
{
    hubfix_make_tls(&fix,
                    "ca ca 'Bridge client CA'; ca other 'Someone else CA'\n"
                    "leaf server ca 127.0.0.1 'subjectAltName=IP:127.0.0.1'\n"
                    "leaf client ca 'java-client.hn-vp.example' 'extendedKeyUsage=clientAuth'\n"
                    "leaf stranger other 'java-client.hn-vp.example' "
                    "'extendedKeyUsage=clientAuth'\n");
}

/* curl over HTTPS to port, trusting DIR/tls/ca.pem; cert: "client",
 * "stranger" or NULL. */
static http_t https_call(int port, const char *path, const char *cert, const char *body)
{
    char url[256], ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", fix.dir);
    snprintf(crt, sizeof crt, "%s/tls/%s.pem", fix.dir, cert ? cert : "");
    snprintf(key, sizeof key, "%s/tls/%s.key", fix.dir, cert ? cert : "");
    const char *opts[9] = {"--cacert", ca};
    size_t n = 2;
    if (cert) {
        opts[n++] = "--cert";
        opts[n++] = crt;
        opts[n++] = "--key";
        opts[n++] = key;
    }
    if (body) {
        opts[n++] = "-H";
        opts[n++] = "Content-Type: application/json";
    }
    return curl_call(url, opts, body, false);
}

/* A bridge listening beyond plain HTTP: HTTPS, and only callers with a
 * client certificate from the configured CA get in (here without a bearer
 * token: the certificate is the credential). */
START_TEST(https_with_client_certificates)
{
    make_certificates();
    char conf[4096];
    snprintf(conf, sizeof conf,
             "tick_ms = 10\nlog_level = debug\n"
             "plugin.listen = 127.0.0.1:0\nplugin.port_file = %s/tls.port\n"
             "plugin.tls_cert = %s/tls/server.pem\nplugin.tls_key = %s/tls/server.key\n"
             "plugin.tls_client_ca = %s/tls/ca.pem\n"
             "plugin.routes = lookup\nplugin.route.lookup = " POP " citizen.lookup/v1\n"
             "plugin.map.lookup.request = {\"ids\":\"personal_ids\",\"purpose\":\"purpose\"}\n",
             fix.dir, fix.dir, fix.dir, fix.dir);
    pid_t tls = hubfix_start_adapter(&fix, "VN/GOV/HN-VP/TLS", "httpbridge", conf);
    char port_path[PATH_MAX], tls_log[PATH_MAX];
    snprintf(port_path, sizeof port_path, "%s/tls.port", fix.dir);
    snprintf(tls_log, sizeof tls_log, "%s/adapter-VN.GOV.HN-VP.TLS.log", fix.dir);
    char *port_text = tk_read_file(port_path);
    ck_assert_ptr_nonnull(port_text);
    int port = atoi(port_text);
    free(port_text);
    ck_assert(tk_wait_file_contains(tls_log, "HTTPS with client certificates", 3000));

    lth_citizen_t who = citizen(11);
    char body[256];
    snprintf(body, sizeof body, "{\"ids\":[\"%s\"],\"purpose\":\"x\"}", who.personal_id);
    /* The bridge may still be saying Hello to the hub: 503 until then. */
    http_t r = {0};
    uint64_t deadline = hub_monotonic_us() + 15000000u;
    do {
        if (r.body)
            http_free(&r), tk_sleep_ms(200);
        r = https_call(port, "/route/lookup", "client", body);
    } while (r.status != 200 && hub_monotonic_us() < deadline);
    ck_assert_msg(r.status == 200, "HTTP %d: %s", r.status, r.body);
    ck_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "results"), 0), "status"),
                     "LOOKUP_STATUS_FOUND");
    http_free(&r);

    /* No client certificate: refused, naming what is missing. */
    r = https_call(port, "/route/lookup", NULL, body);
    assert_refused(&r, 403, "requires a TLS client certificate");
    http_free(&r);
    /* A certificate from another CA: refused. */
    r = https_call(port, "/route/lookup", "stranger", body);
    assert_refused(&r, 403, "client certificate was refused");
    ck_assert_msg(strstr(jstr(r.json, "error"), "issuer is unknown"), "%s", r.body);
    http_free(&r);
    /* Plain HTTP to the HTTPS port: no answer from the service. */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/route/lookup", port);
    char *argv[] = {(char *)curl_path(), "-s", "--noproxy", "*", "-o", "/dev/null", "-w",
                    "%{http_code}", "-m", "5", url, NULL};
    char *out = NULL;
    tk_run(argv, &out, 10000);
    ck_assert_msg(out && atoi(out) != 200, "plain HTTP was served: %s", out ? out : "");
    free(out);
    /* The OpenAPI description is served over HTTPS too. */
    r = https_call(port, "/openapi.json", "client", NULL);
    ck_assert_int_eq(r.status, 200);
    http_free(&r);
    ck_assert(tk_wait_file_contains(tls_log, "POST /route/lookup from 127.0.0.1", 3000));
    assert_bridge_stops_clean(&tls, tls_log, &who);
}
END_TEST

START_TEST(bad_tls_configuration_is_refused)
{
    make_certificates();
    char line[4 * PATH_MAX];
    snprintf(line, sizeof line, "plugin.listen = 127.0.0.1:0\nplugin.tls_client_ca = %s/tls/ca.pem",
             fix.dir);
    assert_bad_config(line, "HTTPS needs both plugin.tls_cert");
    snprintf(line, sizeof line,
             "plugin.listen = 127.0.0.1:0\nplugin.tls_cert = %s/tls/server.pem\n"
             "plugin.tls_key = %s/tls/client.key",
             fix.dir, fix.dir);
    assert_bad_config(line, "belong together");
    char key[PATH_MAX];
    snprintf(key, sizeof key, "%s/tls/server.key", fix.dir);
    chmod(key, 0644);
    snprintf(line, sizeof line,
             "plugin.listen = 127.0.0.1:0\nplugin.tls_cert = %s/tls/server.pem\n"
             "plugin.tls_key = %s",
             fix.dir, key);
    assert_bad_config(line, "chmod 600");
    chmod(key, 0600);
    snprintf(line, sizeof line,
             "plugin.listen = 0.0.0.0:0\nplugin.tls_cert = %s/tls/server.pem\n"
             "plugin.tls_key = %s",
             fix.dir, key);
    assert_bad_config(line, "not a loopback address");
}
END_TEST

TK_MAIN("e2e_httpbridge",
        TK_CASE("httpbridge", setup, teardown, 180, inbound_good_lookup,
                openapi_description_matches_the_bridge, inbound_refusals,
                outbound_retries_and_refusals, outbound_event_refused_now_is_delivered_later,
                outbound_typed_lookup, bad_configuration_is_refused, many_requests_in_flight,
                in_flight_limit_answers_503, https_with_client_certificates,
                bad_tls_configuration_is_refused))
