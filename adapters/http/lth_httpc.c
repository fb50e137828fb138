/* lth_httpc — an HTTP POST with timeouts and retries (libcurl); see lth_httpc.h.
 *
 * Each attempt runs on its own curl multi handle so that the wait can be
 * cut into 10 ms slices with the caller's idle callback in between; the
 * callback may itself start another lth_httpc_post() (the bridge serves a
 * nested delivery that way), which simply has its own handles.
 */
#include "lth_httpc.h"

#include "hub_buf.h"
#include "hub_error.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sodium.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTPC_SLICE_MS 10
#define HTTPC_BACKOFF_MAX_MS 2000
#define HTTPC_SECRET_MAX 4096       /* bytes of a token or client secret */
#define HTTPC_TOKEN_DEFAULT_S 300   /* an access token without expires_in */
#define HTTPC_TOKEN_MARGIN_MS 30000 /* fetch again this long before expiry (at most) */

enum { HTTPC_AUTH_NONE = 0, HTTPC_AUTH_BEARER = 1, HTTPC_AUTH_OAUTH2 = 2 };

struct lth_httpc_auth {
    int mode;
    char *secret; /* bearer: the token; oauth2: the client secret */
    char *token_url, *client_id, *scope;
    char *client_cert, *client_key, *ca_file; /* TLS; NULL = not set */
    char access_token[HTTPC_SECRET_MAX];      /* oauth2: cached; "" = none */
    uint64_t expires_at_ms;                   /* monotonic; refetch from then on */
    unsigned fetches;
    long token_status;                        /* the last fetch's HTTP status; 0 = none */
    bool token_tls_failed;                    /* the last fetch failed in TLS */
};

typedef struct {
    hub_buf_t body;
    size_t max;
    bool too_large;
} httpc_buf_t;

uint64_t lth_httpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t httpc_on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    httpc_buf_t *b = user;
    size_t n = size * nmemb;
    if (b->body.len + n > b->max) {
        b->too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return hub_buf_put(&b->body, ptr, n) == 0 ? n : 0;
}

/* Keeps the Retry-After of the answer (seconds, or an HTTP date). */
static size_t httpc_on_header(char *line, size_t size, size_t nmemb, void *user)
{
    lth_httpc_result_t *result = user;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && n < 128 && !strncasecmp(line, name, sizeof name - 1)) {
        char value[128];
        memcpy(value, line + sizeof name - 1, n - (sizeof name - 1));
        value[n - (sizeof name - 1)] = '\0';
        value[strcspn(value, "\r\n")] = '\0';
        char *v = value + strspn(value, " \t");
        char *end = NULL;
        long long secs = strtoll(v, &end, 10);
        if (end != v && *end == '\0') {
            secs = secs < 0 ? 0 : secs > 3600 ? 3600 : secs;
        } else {
            time_t when = curl_getdate(v, NULL);
            secs = when < 0 ? 0 : when - time(NULL);
            secs = secs < 0 ? 0 : secs > 3600 ? 3600 : secs;
        }
        result->retry_after_ms = (uint32_t)secs * 1000u;
    }
    return n;
}

/* A failure of TLS itself: a certificate, the CA, the handshake. */
static bool httpc_tls_failure(CURLcode code, const char *errbuf)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return true;
    default:
        /* TLS 1.3 servers refuse a client certificate after the handshake:
         * the client sees an alert on its first read. */
        return (code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR) &&
               (strstr(errbuf, "alert") || strstr(errbuf, "SSL") || strstr(errbuf, "TLS"));
    }
}

static bool httpc_retryable(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* Waits ms while keeping the caller's other work going. */
static void httpc_pause(uint32_t ms, const lth_httpc_options_t *o)
{
    uint64_t end = lth_httpc_now_ms() + ms;
    for (uint64_t now = lth_httpc_now_ms(); now < end; now = lth_httpc_now_ms()) {
        uint64_t left = end - now;
        poll(NULL, 0, (int)(left < HTTPC_SLICE_MS ? left : HTTPC_SLICE_MS));
        if (o->idle)
            o->idle(o->idle_user);
    }
}

/* One attempt; fills result (status, body) and returns curl's code. */
static CURLcode httpc_attempt(const char *url, struct curl_slist *headers, const void *body,
                              size_t len, const lth_httpc_options_t *o, httpc_buf_t *buf,
                              lth_httpc_result_t *result)
{
    const lth_httpc_auth_t *tls = o->auth;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!e || !m) {
        curl_easy_cleanup(e);
        curl_multi_cleanup(m);
        return CURLE_OUT_OF_MEMORY;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, len ? body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     o->user_agent ? o->user_agent : "lth-httpbridge/" HUB_VERSION);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, httpc_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, result);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (tls && tls->client_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls->client_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls->client_key);
    }
    if (tls && tls->ca_file) {
        /* The CA file is the only trust anchor: not the system's too. */
        curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    curl_multi_add_handle(m, e);
    CURLcode code = CURLE_OK;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            code = CURLE_FAILED_INIT;
            break;
        }
        int queued = 0;
        CURLMsg *msg = curl_multi_info_read(m, &queued);
        if (msg && msg->msg == CURLMSG_DONE) {
            code = msg->data.result;
            break;
        }
        if (!running) {
            code = CURLE_GOT_NOTHING;
            break;
        }
        curl_multi_poll(m, NULL, 0, HTTPC_SLICE_MS, NULL);
        if (o->idle)
            o->idle(o->idle_user);
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    result->status = code == CURLE_OK ? status : 0;
    const char *ctype = NULL;
    if (code == CURLE_OK && curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK &&
        ctype)
        snprintf(result->content_type, sizeof result->content_type, "%s", ctype);
    if (code != CURLE_OK) {
        snprintf(result->error, sizeof result->error, "%s%s%s", curl_easy_strerror(code),
                 errbuf[0] ? ": " : "", errbuf);
        result->tls_failed = httpc_tls_failure(code, errbuf);
        /* A TLS 1.3 server refuses a client certificate after the client's
         * side of the handshake is done; depending on timing the client sees
         * the alert on a read, or only a reset on its next write, with no
         * TLS word in the error. A send or receive failure on a connection
         * whose handshake completed with our certificate, before any
         * response header, is that refusal. */
        curl_off_t appconnect = 0;
        long header_bytes = 0;
        if (!result->tls_failed && tls && tls->client_cert &&
            (code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR) &&
            curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &appconnect) == CURLE_OK &&
            appconnect > 0 &&
            curl_easy_getinfo(e, CURLINFO_HEADER_SIZE, &header_bytes) == CURLE_OK &&
            header_bytes == 0) {
            result->tls_failed = true;
            size_t n = strlen(result->error);
            snprintf(result->error + n, sizeof result->error - n,
                     "; the server closed the connection after the TLS handshake, as it does "
                     "with a client certificate it does not trust");
        }
    }
    curl_multi_remove_handle(m, e);
    curl_easy_cleanup(e);
    curl_multi_cleanup(m);
    return code;
}

int lth_httpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : HUB_EIO;
}

void lth_httpc_global_cleanup(void) { curl_global_cleanup(); }

/* The POST with its retries; `extra` is one more header (or NULL). */
static int httpc_post(const char *url, const char *const *headers, const char *extra,
                      const void *body, size_t len, const lth_httpc_options_t *options,
                      lth_httpc_result_t *result)
{
    memset(result, 0, sizeof *result);
    struct curl_slist *list = NULL;
    /* No "Expect: 100-continue" round trip: bodies are small. */
    struct curl_slist *grown = curl_slist_append(list, "Expect:");
    for (size_t i = 0; grown && headers && headers[i]; i++) {
        list = grown;
        grown = curl_slist_append(list, headers[i]);
    }
    if (grown && extra) {
        list = grown;
        grown = curl_slist_append(list, extra);
    }
    if (!grown) {
        curl_slist_free_all(list);
        return HUB_ENOMEM;
    }
    list = grown;
    uint32_t pause = options->backoff_ms ? options->backoff_ms : 200;
    uint32_t pause_max = options->backoff_max_ms ? options->backoff_max_ms : HTTPC_BACKOFF_MAX_MS;
    lth_httpc_options_t o = *options;
    int rc = HUB_EIO;
    for (unsigned attempt = 0; attempt <= options->retries; attempt++) {
        if (attempt > 0) {
            uint32_t wait = pause;
            if (options->jitter && pause > 1)
                wait = pause / 2 + randombytes_uniform(pause - pause / 2 + 1);
            if (result->status == 429 && result->retry_after_ms)
                wait = result->retry_after_ms;
            /* No pause that ends past the deadline, no attempt without time
             * to answer (HTTPC_SLICE_MS at least). */
            if (options->deadline_ms &&
                lth_httpc_now_ms() + wait + HTTPC_SLICE_MS >= options->deadline_ms) {
                result->deadline_hit = true;
                break;
            }
            httpc_pause(wait, options);
            pause = pause * 2 > pause_max ? pause_max : pause * 2;
        }
        if (options->deadline_ms) {
            uint64_t now = lth_httpc_now_ms();
            uint64_t left = options->deadline_ms > now ? options->deadline_ms - now : 0;
            if (left < HTTPC_SLICE_MS) {
                result->deadline_hit = true;
                break;
            }
            o.timeout_ms = left < options->timeout_ms ? (uint32_t)left : options->timeout_ms;
        }
        httpc_buf_t buf = {.max = options->max_response_bytes ? options->max_response_bytes
                                                               : (size_t)1 << 20};
        result->attempts = attempt + 1;
        result->content_type[0] = '\0';
        result->error[0] = '\0';
        result->retry_after_ms = 0;
        result->tls_failed = false;
        CURLcode code = httpc_attempt(url, list, body, len, &o, &buf, result);
        /* An attempt cut short by the deadline that ran out of time. */
        if (code == CURLE_OPERATION_TIMEDOUT && o.timeout_ms < options->timeout_ms)
            result->deadline_hit = true;
        free(result->body);
        result->body = buf.body.data;
        result->body_len = buf.body.len;
        if (buf.too_large) {
            snprintf(result->error, sizeof result->error,
                     "the answer is larger than %zu bytes", buf.max);
            result->status = 0;
            rc = HUB_EFULL;
            break;
        }
        if (code == CURLE_OUT_OF_MEMORY) {
            rc = HUB_ENOMEM;
            break;
        }
        if (code == CURLE_OK) {
            rc = 0;
            if (result->status < 500 && !(result->status == 429 && options->retry_429))
                break;
        } else {
            rc = HUB_EIO;
            /* A certificate refused (ours or theirs) stays refused. */
            if (!httpc_retryable(code) ||
                (result->tls_failed &&
                 (strstr(result->error, "certificate") || strstr(result->error, "unknown ca"))))
                break;
        }
    }
    curl_slist_free_all(list);
    return rc;
}

/* ---- outbound authentication ---- */

/* Fetches an access token from the token endpoint into auth. 0, or HUB_EIO
 * with a sentence in why (never the secret nor a token). */
static int httpc_fetch_token(lth_httpc_auth_t *a, const lth_httpc_options_t *options, char *why,
                             size_t why_size)
{
    /* RFC 6749 section 2.3.1: id and secret form-encoded, then HTTP Basic. */
    char *id = curl_easy_escape(NULL, a->client_id, 0);
    char *secret = curl_easy_escape(NULL, a->secret, 0);
    char *scope = a->scope ? curl_easy_escape(NULL, a->scope, 0) : NULL;
    char pair[2 * HTTPC_SECRET_MAX + 2],
        basic[sizeof "Authorization: Basic " + 4 * HTTPC_SECRET_MAX];
    char form[512 + HTTPC_SECRET_MAX];
    int rc = id && secret && (!a->scope || scope) ? 0 : HUB_ENOMEM;
    if (rc == 0) {
        int n = snprintf(pair, sizeof pair, "%s:%s", id, secret);
        int b = snprintf(basic, sizeof basic, "Authorization: Basic ");
        if (n < 0 || (size_t)n >= sizeof pair ||
            sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL) >
                sizeof basic - (size_t)b)
            rc = HUB_EINVAL;
        else
            sodium_bin2base64(basic + b, sizeof basic - (size_t)b, (const unsigned char *)pair,
                              (size_t)n, sodium_base64_VARIANT_ORIGINAL);
        snprintf(form, sizeof form, "grant_type=client_credentials%s%s", scope ? "&scope=" : "",
                 scope ? scope : "");
    }
    if (secret)
        sodium_memzero(secret, strlen(secret));
    curl_free(id);
    curl_free(secret);
    curl_free(scope);
    sodium_memzero(pair, sizeof pair);
    if (rc != 0) {
        snprintf(why, why_size, "cannot build the token request (%s)", hub_strerror(rc));
        return rc == HUB_ENOMEM ? rc : HUB_EIO;
    }
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json", NULL};
    lth_httpc_options_t o = *options;
    lth_httpc_result_t res;
    rc = httpc_post(a->token_url, headers, basic, form, strlen(form), &o, &res);
    sodium_memzero(basic, sizeof basic);
    a->fetches++;
    a->token_status = res.status;
    a->token_tls_failed = res.tls_failed;
    json_t *doc = NULL;
    if (rc == 0 && res.status == 200)
        doc = json_loadb(res.body ? res.body : "", res.body_len, 0, NULL);
    const char *token = json_string_value(json_object_get(doc, "access_token"));
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    json_t *expires = json_object_get(doc, "expires_in");
    if (rc != 0) {
        snprintf(why, why_size, "no answer from the OAuth2 token endpoint: %.160s", res.error);
    } else if (res.status != 200) {
        const char *error = NULL;
        json_t *e = json_loadb(res.body ? res.body : "", res.body_len, 0, NULL);
        error = json_string_value(json_object_get(e, "error"));
        snprintf(why, why_size,
                 "the OAuth2 token endpoint answered HTTP %ld%s%.48s%s: check "
                 "plugin.oauth2_client_id and plugin.oauth2_client_secret_file",
                 res.status, error ? " (" : "", error ? error : "", error ? ")" : "");
        json_decref(e);
        rc = HUB_EIO;
    } else if (!token || !*token || strlen(token) >= sizeof a->access_token ||
               (type && strcasecmp(type, "Bearer") != 0) ||
               (expires && (!json_is_integer(expires) || json_integer_value(expires) <= 0))) {
        snprintf(why, why_size,
                 "the OAuth2 token endpoint answered without a usable bearer token "
                 "(access_token, token_type Bearer, a positive expires_in)");
        rc = HUB_EIO;
    } else {
        uint64_t life_ms =
            (uint64_t)(expires ? json_integer_value(expires) : HTTPC_TOKEN_DEFAULT_S) * 1000u;
        uint64_t margin =
            life_ms / 10 < HTTPC_TOKEN_MARGIN_MS ? life_ms / 10 : HTTPC_TOKEN_MARGIN_MS;
        snprintf(a->access_token, sizeof a->access_token, "%s", token);
        a->expires_at_ms = lth_httpc_now_ms() + life_ms - margin;
    }
    json_decref(doc);
    if (res.body)
        sodium_memzero(res.body, res.body_len);
    lth_httpc_result_free(&res);
    return rc;
}

/* The Authorization header for the next call into out; fetches a token when
 * none is cached or it is about to expire. */
static int httpc_auth_header(lth_httpc_auth_t *a, const lth_httpc_options_t *options, char *out,
                             size_t size, char *why, size_t why_size)
{
    if (a->mode == HTTPC_AUTH_OAUTH2 &&
        (!a->access_token[0] || lth_httpc_now_ms() >= a->expires_at_ms)) {
        sodium_memzero(a->access_token, sizeof a->access_token);
        int rc = httpc_fetch_token(a, options, why, why_size);
        if (rc != 0)
            return rc;
    }
    snprintf(out, size, "Authorization: Bearer %s",
             a->mode == HTTPC_AUTH_OAUTH2 ? a->access_token : a->secret);
    return 0;
}

int lth_httpc_post(const char *url, const char *const *headers, const void *body, size_t len,
                   const lth_httpc_options_t *options, lth_httpc_result_t *result)
{
    if (!url || !options || !result)
        return HUB_EINVAL;
    lth_httpc_auth_t *a = options->auth;
    if (!a || a->mode == HTTPC_AUTH_NONE)
        return httpc_post(url, headers, NULL, body, len, options, result);
    char header[sizeof "Authorization: Bearer " + HTTPC_SECRET_MAX];
    bool had_token = a->access_token[0] != '\0';
    int rc =
        httpc_auth_header(a, options, header, sizeof header, result->error, sizeof result->error);
    if (rc != 0) {
        char why[sizeof result->error];
        snprintf(why, sizeof why, "%s", result->error);
        memset(result, 0, sizeof *result);
        snprintf(result->error, sizeof result->error, "%s", why);
        result->token_failed = true;
        result->token_status = a->token_status;
        result->tls_failed = a->token_tls_failed;
        return rc;
    }
    rc = httpc_post(url, headers, header, body, len, options, result);
    /* A cached token the system no longer takes (revoked, or its clock is
     * ahead): fetch a new one and try once more. */
    if (rc == 0 && result->status == 401 && a->mode == HTTPC_AUTH_OAUTH2 && had_token) {
        unsigned attempts = result->attempts;
        sodium_memzero(a->access_token, sizeof a->access_token);
        char why[sizeof result->error] = "";
        int again = httpc_auth_header(a, options, header, sizeof header, why, sizeof why);
        if (again == 0) {
            lth_httpc_result_free(result);
            rc = httpc_post(url, headers, header, body, len, options, result);
            result->attempts += attempts;
        } else {
            snprintf(result->error, sizeof result->error, "%s", why);
            result->token_failed = true;
            result->token_status = a->token_status;
        }
    }
    sodium_memzero(header, sizeof header);
    return rc;
}

int lth_httpc_open_file(const char *key, const char *path, bool secret, size_t *size, char *err,
                        size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, err_size, "plugin.%s: cannot read %s: %s", key, path, strerror(e));
        return HUB_EIO;
    }
    if (secret && (st.st_mode & 077)) {
        close(fd);
        snprintf(err, err_size, "plugin.%s %s can be read by other users: chmod 600 it", key, path);
        return HUB_EPERM;
    }
    *size = st.st_size > 0 ? (size_t)st.st_size : 0;
    return fd;
}

int lth_httpc_read_token(const char *key, const char *path, char *token, size_t token_size,
                         char *err, size_t err_size)
{
    size_t size = 0;
    int fd = lth_httpc_open_file(key, path, true, &size, err, err_size);
    if (fd < 0)
        return fd;
    ssize_t n = read(fd, token, token_size - 1);
    close(fd);
    token[n > 0 ? n : 0] = '\0';
    token[strcspn(token, "\r\n")] = '\0';
    if (strlen(token) < 16) {
        snprintf(err, err_size,
                 "plugin.%s %s must hold a token of at least 16 characters on its first line", key,
                 path);
        return HUB_EINVAL;
    }
    return 0;
}

/* A secret's first line from path, which group and others may not read. */
static int httpc_read_secret(const char *key, const char *path, char **out, char *err,
                             size_t err_size)
{
    size_t size = 0;
    int fd = lth_httpc_open_file(key, path, true, &size, err, err_size);
    if (fd < 0)
        return fd;
    char buf[HTTPC_SECRET_MAX];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    int rc = 0;
    if (!buf[0]) {
        snprintf(err, err_size, "plugin.%s %s is empty: write the secret on its first line", key,
                 path);
        rc = HUB_EINVAL;
    } else if (!(*out = strdup(buf))) {
        rc = HUB_ENOMEM;
    }
    sodium_memzero(buf, sizeof buf);
    return rc;
}

static int httpc_dup_setting(const char *value, char **out)
{
    if (!value)
        return 0;
    *out = strdup(value);
    return *out ? 0 : HUB_ENOMEM;
}

int lth_httpc_auth_from_config(const char *(*get)(void *user, const char *key), void *user,
                               lth_httpc_auth_t **out, char *err, size_t err_size)
{
    if (!get || !out)
        return HUB_EINVAL;
    *out = NULL;
    const char *mode = get(user, "http_auth");
    const char *cert = get(user, "http_client_cert"), *key = get(user, "http_client_key");
    const char *ca = get(user, "http_ca_file");
    if (mode && strcmp(mode, "none") != 0 && strcmp(mode, "bearer") != 0 &&
        strcmp(mode, "oauth2") != 0) {
        snprintf(err, err_size, "plugin.http_auth must be none, bearer or oauth2");
        return HUB_EINVAL;
    }
    if (!!cert != !!key) {
        snprintf(err, err_size,
                 "plugin.http_client_cert and plugin.http_client_key go together: set both (PEM "
                 "files) or neither");
        return HUB_EINVAL;
    }
    if ((!mode || !strcmp(mode, "none")) && !cert && !ca)
        return 0;
    lth_httpc_auth_t *a = calloc(1, sizeof *a);
    if (!a)
        return HUB_ENOMEM;
    int rc = 0;
    a->mode = !mode || !strcmp(mode, "none") ? HTTPC_AUTH_NONE
              : !strcmp(mode, "bearer")      ? HTTPC_AUTH_BEARER
                                             : HTTPC_AUTH_OAUTH2;
    if (a->mode == HTTPC_AUTH_BEARER) {
        const char *file = get(user, "http_token_file");
        if (!file) {
            snprintf(err, err_size,
                     "plugin.http_auth = bearer needs plugin.http_token_file: the token's file");
            rc = HUB_EINVAL;
        } else {
            rc = httpc_read_secret("http_token_file", file, &a->secret, err, err_size);
        }
    } else if (a->mode == HTTPC_AUTH_OAUTH2) {
        const char *url = get(user, "oauth2_token_url"), *id = get(user, "oauth2_client_id");
        const char *file = get(user, "oauth2_client_secret_file");
        if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)) {
            snprintf(err, err_size,
                     "plugin.http_auth = oauth2 needs plugin.oauth2_token_url: the token "
                     "endpoint's https:// URL");
            rc = HUB_EINVAL;
        } else if (!id || !*id) {
            snprintf(err, err_size, "plugin.http_auth = oauth2 needs plugin.oauth2_client_id");
            rc = HUB_EINVAL;
        } else if (!file) {
            snprintf(err, err_size,
                     "plugin.http_auth = oauth2 needs plugin.oauth2_client_secret_file: the "
                     "client secret's file");
            rc = HUB_EINVAL;
        } else {
            rc = httpc_read_secret("oauth2_client_secret_file", file, &a->secret, err, err_size);
            if (rc == 0)
                rc = httpc_dup_setting(url, &a->token_url);
            if (rc == 0)
                rc = httpc_dup_setting(id, &a->client_id);
            if (rc == 0)
                rc = httpc_dup_setting(get(user, "oauth2_scope"), &a->scope);
        }
    }
    if (rc == 0 && cert) {
        /* Only checks that the key is a secret file: curl reads both. */
        char *probe = NULL;
        rc = access(cert, R_OK) == 0 ? 0 : HUB_EIO;
        if (rc != 0)
            snprintf(err, err_size, "plugin.http_client_cert: cannot read %s: %s", cert,
                     strerror(errno));
        if (rc == 0)
            rc = httpc_read_secret("http_client_key", key, &probe, err, err_size);
        if (probe)
            sodium_memzero(probe, strlen(probe));
        free(probe);
        if (rc == 0)
            rc = httpc_dup_setting(cert, &a->client_cert);
        if (rc == 0)
            rc = httpc_dup_setting(key, &a->client_key);
    }
    if (rc == 0 && ca) {
        rc = access(ca, R_OK) == 0 ? 0 : HUB_EIO;
        if (rc != 0)
            snprintf(err, err_size, "plugin.http_ca_file: cannot read %s: %s", ca, strerror(errno));
        else
            rc = httpc_dup_setting(ca, &a->ca_file);
    }
    if (rc != 0) {
        lth_httpc_auth_destroy(&a);
        return rc;
    }
    *out = a;
    return 0;
}

const char *lth_httpc_auth_describe(const lth_httpc_auth_t *a, char *buf, size_t size)
{
    const char *mode = !a || a->mode == HTTPC_AUTH_NONE ? "no authentication"
                       : a->mode == HTTPC_AUTH_BEARER   ? "bearer token"
                                                        : "OAuth2 client credentials";
    snprintf(buf, size, "%s%s%s", mode, a && a->client_cert ? " + client certificate" : "",
             a && a->ca_file ? " + own CA file" : "");
    return buf;
}

unsigned lth_httpc_auth_token_fetches(const lth_httpc_auth_t *a)
{
    return a ? a->fetches : 0;
}

void lth_httpc_auth_destroy(lth_httpc_auth_t **auth_p)
{
    if (!auth_p || !*auth_p)
        return;
    lth_httpc_auth_t *a = *auth_p;
    if (a->secret)
        sodium_memzero(a->secret, strlen(a->secret));
    sodium_memzero(a->access_token, sizeof a->access_token);
    free(a->secret);
    free(a->token_url);
    free(a->client_id);
    free(a->scope);
    free(a->client_cert);
    free(a->client_key);
    free(a->ca_file);
    free(a);
    *auth_p = NULL;
}

void lth_httpc_result_free(lth_httpc_result_t *result)
{
    if (result) {
        free(result->body);
        result->body = NULL;
        result->body_len = 0;
    }
}
