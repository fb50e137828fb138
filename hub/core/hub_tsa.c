#include "hub_tsa.h"
#include "hub_audit.h"
#include "hub_error.h"
#include "hub_buf.h"
#include "hub_log.h"
#include "hub_numfiles.h"
#include "hub_sha256.h"
#include "hub_vec.h"
#include "hub_wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HUB__TSA_REPLY_MAX (64 * 1024)

/* ---- checking a token ----------------------------------------------------- */

static void tsa__ossl_err(char *err, size_t err_size, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, err_size, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int tsa__load_certs(const char *path, X509_STORE **store_out, STACK_OF(X509) * *certs_out,
                           char *err, size_t err_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "cannot open the TSA certificate %s: %s", path, strerror(errno));
        return HUB_ENOENT;
    }
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *certs = sk_X509_new_null();
    int n = 0;
    X509 *x;
    while (store && certs && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) != 1 || sk_X509_push(certs, x) == 0) {
            X509_free(x);
            break;
        }
        n++;
    }
    fclose(f);
    ERR_clear_error();
    if (!store || !certs || n == 0) {
        X509_STORE_free(store);
        sk_X509_pop_free(certs, X509_free);
        snprintf(err, err_size, "%s holds no PEM certificate: give the TSA's certificate", path);
        return HUB_EPARSE;
    }
    *store_out = store;
    *certs_out = certs;
    return 0;
}

int hub_tsa_verify(const uint8_t *resp_der, size_t len, const uint8_t hash[32],
                   const char *tsa_cert_pem, uint64_t *gen_time_us, char *err, size_t err_size)
{
    char dummy[1];
    if (!err || !err_size) {
        err = dummy;
        err_size = sizeof dummy;
    }
    err[0] = '\0';
    if (!resp_der || !len || !hash)
        return HUB_EINVAL;
    const unsigned char *p = resp_der;
    TS_RESP *resp = d2i_TS_RESP(NULL, &p, (long)len);
    if (!resp || p != resp_der + len) {
        TS_RESP_free(resp);
        ERR_clear_error();
        snprintf(err, err_size, "not an RFC 3161 time-stamp response (DER)");
        return HUB_EPARSE;
    }
    int rc = 0;
    TS_VERIFY_CTX *ctx = TS_VERIFY_CTX_new();
    unsigned char *imprint = OPENSSL_malloc(32);
    if (!ctx || !imprint) {
        OPENSSL_free(imprint);
        rc = HUB_ENOMEM;
        goto out;
    }
    memcpy(imprint, hash, 32);
    TS_VERIFY_CTX_set_imprint(ctx, imprint, 32); /* ctx owns it */
    int flags = TS_VFY_VERSION | TS_VFY_IMPRINT;
    if (tsa_cert_pem) {
        X509_STORE *store = NULL;
        STACK_OF(X509) *certs = NULL;
        rc = tsa__load_certs(tsa_cert_pem, &store, &certs, err, err_size);
        if (rc != 0)
            goto out;
        TS_VERIFY_CTX_set_store(ctx, store); /* ctx owns them */
        TS_VERIFY_CTX_set_certs(ctx, certs);
        flags |= TS_VFY_SIGNATURE | TS_VFY_SIGNER;
    }
    TS_VERIFY_CTX_set_flags(ctx, flags);
    if (TS_RESP_verify_response(ctx, resp) != 1) {
        tsa__ossl_err(err, err_size,
                      tsa_cert_pem ? "the token does not verify (imprint, status or signature "
                                     "by the TSA certificate)"
                                   : "the token does not verify (status or imprint)");
        rc = HUB_ECRYPTO;
        goto out;
    }
    if (gen_time_us) {
        *gen_time_us = 0;
        const ASN1_GENERALIZEDTIME *t = TS_TST_INFO_get_time(TS_RESP_get_tst_info(resp));
        struct tm tm;
        if (t && ASN1_TIME_to_tm(t, &tm) == 1)
            *gen_time_us = (uint64_t)timegm(&tm) * 1000000u;
    }
out:
    TS_VERIFY_CTX_free(ctx);
    TS_RESP_free(resp);
    ERR_clear_error();
    return rc;
}

/* ---- asking the TSA --------------------------------------------------------- */

static int tsa__make_request(const uint8_t hash[32], uint8_t **der, size_t *der_len,
                             uint64_t *nonce_out)
{
    TS_REQ *req = TS_REQ_new();
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_INTEGER *nonce = NULL;
    int rc = HUB_ENOMEM;
    uint8_t rnd[8];
    if (!req || !mi || !alg || RAND_bytes(rnd, sizeof rnd) != 1)
        goto out;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | rnd[i];
    nonce = ASN1_INTEGER_new();
    *nonce_out = n >> 1;
    if (!nonce || ASN1_INTEGER_set_uint64(nonce, n >> 1) != 1 ||
        X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) != 1 ||
        TS_MSG_IMPRINT_set_algo(mi, alg) != 1 ||
        TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)hash, 32) != 1 ||
        TS_REQ_set_version(req, 1) != 1 || TS_REQ_set_msg_imprint(req, mi) != 1 ||
        TS_REQ_set_nonce(req, nonce) != 1 || TS_REQ_set_cert_req(req, 1) != 1)
        goto out;
    unsigned char *buf = NULL;
    int len = i2d_TS_REQ(req, &buf);
    if (len <= 0)
        goto out;
    *der = buf;
    *der_len = (size_t)len;
    rc = 0;
out:
    ASN1_INTEGER_free(nonce);
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    TS_REQ_free(req);
    ERR_clear_error();
    return rc;
}

typedef struct {
    hub_buf_t reply;
    bool over; /* longer than HUB__TSA_REPLY_MAX */
} tsa__body_t;

static size_t tsa__on_body(char *data, size_t size, size_t n, void *user)
{
    tsa__body_t *b = user;
    size_t add = size * n;
    if (b->reply.len + add > HUB__TSA_REPLY_MAX) {
        b->over = true;
        return 0;
    }
    return hub_buf_put(&b->reply, data, add) == 0 ? add : 0;
}

/* Ends a transfer in progress when the client stops. */
static int tsa__on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load((atomic_bool *)user) ? 1 : 0;
}

/* POSTs a request for hash; on success *token is the checked reply. */
static int tsa__fetch(const hub_tsa_config_t *cfg, atomic_bool *stopping, const uint8_t hash[32],
                      uint8_t **token, size_t *token_len, char *err, size_t err_size)
{
    uint8_t *req = NULL;
    size_t req_len = 0;
    uint64_t nonce = 0;
    int rc = tsa__make_request(hash, &req, &req_len, &nonce);
    if (rc != 0) {
        snprintf(err, err_size, "cannot build a time-stamp request");
        return rc;
    }
    CURL *curl = curl_easy_init();
    tsa__body_t body = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/timestamp-query");
    if (!curl || !hdr) {
        rc = HUB_ENOMEM;
        snprintf(err, err_size, "out of memory");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, cfg->url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)req);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)req_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, tsa__on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_us / 1000u));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(cfg->timeout_us / 1000u));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, tsa__on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, stopping);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode c = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (c != CURLE_OK) {
        snprintf(err, err_size, "%s: %s", cfg->url,
                 body.over ? "reply larger than 64 KiB" : curl_easy_strerror(c));
        rc = c == CURLE_OPERATION_TIMEDOUT ? HUB_ETIMEDOUT : HUB_EIO;
        goto out;
    }
    if (status != 200) {
        snprintf(err, err_size, "%s answered HTTP %ld", cfg->url, status);
        rc = HUB_EIO;
        goto out;
    }
    char why[256];
    rc = hub_tsa_verify((const uint8_t *)body.reply.data, body.reply.len, hash, cfg->cert_pem, NULL, why, sizeof why);
    if (rc != 0) {
        snprintf(err, err_size, "%.60s sent a reply that is not a valid token: %.150s", cfg->url,
                 why);
        goto out;
    }
    /* The reply answers this request, not one replayed from earlier. */
    const unsigned char *p = (const unsigned char *)body.reply.data;
    TS_RESP *resp = d2i_TS_RESP(NULL, &p, (long)body.reply.len);
    const ASN1_INTEGER *got = resp ? TS_TST_INFO_get_nonce(TS_RESP_get_tst_info(resp)) : NULL;
    uint64_t got_v = 0;
    bool nonce_ok = got && ASN1_INTEGER_get_uint64(&got_v, got) == 1 && got_v == nonce;
    TS_RESP_free(resp);
    ERR_clear_error();
    if (!nonce_ok) {
        snprintf(err, err_size, "%.60s sent a token without the request's nonce", cfg->url);
        rc = HUB_ECRYPTO;
        goto out;
    }
    *token = (uint8_t *)body.reply.data;
    *token_len = body.reply.len;
    body.reply.data = NULL;
out:
    hub_buf_free(&body.reply);
    curl_slist_free_all(hdr);
    if (curl)
        curl_easy_cleanup(curl);
    OPENSSL_free(req);
    return rc;
}

static int tsa__write_token(const char *dir, uint64_t seq, const uint8_t *token, size_t len,
                            char *err, size_t err_size)
{
    char name[HUB_AUDIT_TSR_NAME_MAX], path[PATH_MAX], tmp[PATH_MAX];
    hub_audit_tsr_name(seq, name);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp)
        return HUB_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0 && hub_write_all(fd, token, len) == 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    if (ok) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = dfd >= 0 && fsync(dfd) == 0;
        if (dfd >= 0)
            close(dfd);
    }
    if (!ok) {
        snprintf(err, err_size, "cannot write %.200s: %s", path, strerror(errno));
        unlink(tmp);
        return HUB_EIO;
    }
    return 0;
}

/* ---- the client thread ------------------------------------------------------ */

typedef struct {
    uint64_t seq;
    uint8_t sha[32];
    uint64_t gen_us;
} tsa__done_t;

struct hub_tsa_client {
    hub_tsa_config_t cfg; /* strings point at the copies below */
    char *url, *cert, *dir;
    hub_tsa_stamped_cb stamped;
    void *user;
    uv_async_t async;
    uv_thread_t thread;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t wake;
    bool stop;
    atomic_bool stopping; /* stop, readable without the lock (ends a transfer) */
    uint64_t offered_seq; /* newest durable checkpoint offered */
    uint8_t offered_hash[32];
    hub_tsa_state_t state;
    uint64_t last_token_us; /* monotonic */
    tsa__done_t *done;      /* tokens written, for the loop */
    size_t n_done, cap_done;
};

static void tsa__on_async(uv_async_t *a)
{
    hub_tsa_client_t *self = a->data;
    pthread_mutex_lock(&self->lock);
    tsa__done_t *done = self->done;
    size_t n = self->n_done;
    self->done = NULL;
    self->n_done = self->cap_done = 0;
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < n; i++)
        self->stamped(self->user, done[i].seq, done[i].sha, done[i].gen_us);
    free(done);
}

static void tsa__thread(void *arg)
{
    hub_tsa_client_t *self = arg;
    pthread_mutex_lock(&self->lock);
    uint64_t retry_at = 0; /* monotonic; 0 = no failure pending */
    while (!self->stop) {
        uint64_t now = hub_monotonic_us();
        bool have = self->offered_seq > self->state.last_stamped_seq;
        uint64_t due = self->last_token_us ? self->last_token_us + self->cfg.every_us : 0;
        if (retry_at > due)
            due = retry_at;
        if (!have || now < due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait_us = have ? due - now : 3600u * 1000000u;
            ts.tv_sec += (time_t)(wait_us / 1000000u);
            ts.tv_nsec += (long)(wait_us % 1000000u) * 1000;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&self->wake, &self->lock, &ts);
            continue;
        }
        uint64_t seq = self->offered_seq;
        uint8_t hash[32];
        memcpy(hash, self->offered_hash, 32);
        pthread_mutex_unlock(&self->lock);

        uint8_t *token = NULL;
        size_t len = 0;
        char err[256] = "";
        int rc = tsa__fetch(&self->cfg, &self->stopping, hash, &token, &len, err, sizeof err);
        if (rc == 0)
            rc = tsa__write_token(self->cfg.dir, seq, token, len, err, sizeof err);
        uint8_t sha[32];
        uint64_t gen_us = 0;
        if (rc == 0) {
            hub_sha256(token, len, sha);
            hub_tsa_verify(token, len, hash, NULL, &gen_us, NULL, 0);
        }
        free(token);

        pthread_mutex_lock(&self->lock);
        if (rc != 0 && self->stop)
            break; /* cut short by hub_tsa_client_destroy(): not the TSA's fault */
        if (rc == 0) {
            tsa__done_t d = {.seq = seq, .gen_us = gen_us};
            memcpy(d.sha, sha, 32);
            if (HUB_VEC_RESERVE(self->done, self->n_done, self->cap_done, 8) == 0)
                self->done[self->n_done++] = d;
            self->state.tokens++;
            self->state.last_stamped_seq = seq;
            self->state.failing_since_us = 0;
            self->last_token_us = hub_monotonic_us();
            retry_at = 0;
            if (self->state.last_error[0])
                HUB_INFO("audit", "audit time-stamping authority answers again",
                         "url=%s seq=%" PRIu64, self->cfg.url, seq);
            self->state.last_error[0] = '\0';
            uv_async_send(&self->async);
        } else {
            self->state.failures++;
            if (!self->state.failing_since_us) {
                self->state.failing_since_us = hub_now_us();
                HUB_WARN("audit",
                         "audit time-stamping authority unreachable; checkpoints wait for "
                         "their time-stamps (messages are not affected) and the hub retries",
                         "url=%s error=\"%s\"", self->cfg.url, err);
            }
            snprintf(self->state.last_error, sizeof self->state.last_error, "%s", err);
            retry_at = hub_monotonic_us() + self->cfg.retry_us;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

static void tsa__on_closed(uv_handle_t *h);

static void tsa__curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int hub_tsa_client_new(uv_loop_t *loop, const hub_tsa_config_t *cfg, hub_tsa_stamped_cb stamped,
                       void *user, hub_tsa_client_t **out)
{
    if (!loop || !cfg || !cfg->url || !cfg->url[0] || !cfg->dir || !stamped || !out)
        return HUB_EINVAL;
    *out = NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, tsa__curl_init);
    hub_tsa_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    self->url = strdup(cfg->url);
    self->dir = strdup(cfg->dir);
    self->cert = cfg->cert_pem ? strdup(cfg->cert_pem) : NULL;
    if (!self->url || !self->dir || (cfg->cert_pem && !self->cert)) {
        free(self->url);
        free(self->dir);
        free(self->cert);
        free(self);
        return HUB_ENOMEM;
    }
    self->cfg = *cfg;
    self->cfg.url = self->url;
    self->cfg.dir = self->dir;
    self->cfg.cert_pem = self->cert;
    if (!self->cfg.retry_us)
        self->cfg.retry_us = 30u * 1000000u;
    if (!self->cfg.timeout_us)
        self->cfg.timeout_us = 10u * 1000000u;
    self->stamped = stamped;
    self->user = user;
    atomic_init(&self->stopping, false);
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&self->wake, &ca);
    pthread_condattr_destroy(&ca);
    self->async.data = self;
    if (uv_async_init(loop, &self->async, tsa__on_async) != 0) {
        self->async.data = self;
        tsa__on_closed((uv_handle_t *)&self->async);
        return HUB_ENOMEM;
    }
    /* It must not keep the loop alive: the hub's shutdown waits for its
     * own handles only; hub_tsa_client_destroy() closes this one. */
    uv_unref((uv_handle_t *)&self->async);
    if (uv_thread_create(&self->thread, tsa__thread, self) != 0) {
        uv_close((uv_handle_t *)&self->async, tsa__on_closed); /* frees self */
        return HUB_ENOMEM;
    }
    *out = self;
    return 0;
}

void hub_tsa_client_offer(hub_tsa_client_t *self, uint64_t seq, const uint8_t hash[32])
{
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    if (seq > self->offered_seq) {
        self->offered_seq = seq;
        memcpy(self->offered_hash, hash, 32);
        pthread_cond_signal(&self->wake);
    }
    pthread_mutex_unlock(&self->lock);
}

void hub_tsa_client_state(hub_tsa_client_t *self, hub_tsa_state_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    *out = self->state;
    out->pending_seq = self->offered_seq > self->state.last_stamped_seq ? self->offered_seq : 0;
    pthread_mutex_unlock(&self->lock);
}

static void tsa__on_closed(uv_handle_t *h)
{
    hub_tsa_client_t *self = h->data;
    free(self->done);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    free(self->url);
    free(self->dir);
    free(self->cert);
    free(self);
}

void hub_tsa_client_destroy(hub_tsa_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_tsa_client_t *self = *self_p;
    atomic_store(&self->stopping, true);
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    uv_thread_join(&self->thread);
    uv_close((uv_handle_t *)&self->async, tsa__on_closed);
    *self_p = NULL;
}
