/* lth_httpc — an HTTP POST with timeouts and retries (libcurl); see lth_httpc.h.
 *
 * Each attempt runs on its own curl multi handle so that the wait can be
 * cut into 10 ms slices with the caller's idle callback in between; the
 * callback may itself start another lth_httpc_post() (the bridge serves a
 * nested delivery that way), which simply has its own handles.
 */
#include "lth_httpc.h"

#include "hub_error.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTPC_SLICE_MS 10
#define HTTPC_BACKOFF_MAX_MS 2000

typedef struct {
    char *data;
    size_t len, cap, max;
    bool too_large;
} httpc_buf_t;

static uint64_t httpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t httpc_on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    httpc_buf_t *b = user;
    size_t n = size * nmemb;
    if (b->len + n > b->max) {
        b->too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
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
    uint64_t end = httpc_now_ms() + ms;
    for (uint64_t now = httpc_now_ms(); now < end; now = httpc_now_ms()) {
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
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lth-httpbridge/" HUB_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, buf);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
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
    if (code != CURLE_OK)
        snprintf(result->error, sizeof result->error, "%s%s%s", curl_easy_strerror(code),
                 errbuf[0] ? ": " : "", errbuf);
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

int lth_httpc_post(const char *url, const char *const *headers, const void *body, size_t len,
                   const lth_httpc_options_t *options, lth_httpc_result_t *result)
{
    if (!url || !options || !result)
        return HUB_EINVAL;
    memset(result, 0, sizeof *result);
    struct curl_slist *list = NULL;
    /* No "Expect: 100-continue" round trip: bodies are small. */
    struct curl_slist *grown = curl_slist_append(list, "Expect:");
    for (size_t i = 0; grown && headers && headers[i]; i++) {
        list = grown;
        grown = curl_slist_append(list, headers[i]);
    }
    if (!grown) {
        curl_slist_free_all(list);
        return HUB_ENOMEM;
    }
    list = grown;
    uint32_t pause = options->backoff_ms ? options->backoff_ms : 200;
    int rc = HUB_EIO;
    for (unsigned attempt = 0; attempt <= options->retries; attempt++) {
        if (attempt > 0) {
            httpc_pause(pause, options);
            pause = pause * 2 > HTTPC_BACKOFF_MAX_MS ? HTTPC_BACKOFF_MAX_MS : pause * 2;
        }
        httpc_buf_t buf = {.max = options->max_response_bytes ? options->max_response_bytes
                                                               : (size_t)1 << 20};
        result->attempts = attempt + 1;
        result->content_type[0] = '\0';
        result->error[0] = '\0';
        CURLcode code = httpc_attempt(url, list, body, len, options, &buf, result);
        free(result->body);
        result->body = buf.data;
        result->body_len = buf.len;
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
            if (result->status < 500)
                break;
        } else {
            rc = HUB_EIO;
            if (!httpc_retryable(code))
                break;
        }
    }
    curl_slist_free_all(list);
    return rc;
}

void lth_httpc_result_free(lth_httpc_result_t *result)
{
    if (result) {
        free(result->body);
        result->body = NULL;
        result->body_len = 0;
    }
}
