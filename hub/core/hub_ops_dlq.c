/* hub_ops_dlq — the dead-letter API under /api/v1/dlq: list, read, replay
 * and purge, the mutating calls behind the operator token. */
#include "hub_ops_internal.h"
#include "hub_dashboard.h"
#include "hub_memberdir.h"
#include "hub_error.h"
#include "hub_jsonw.h"
#include "hub_log.h"
#include "hub_map.h"
#include "hub_store.h"
#include "hub_wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the dead-letter queue ---------------------------------------------- */

static hub_store_t *ops_dlq__store(hub_ops_t *self, hub_http_response_t *resp)
{
    hub_store_t *store = self->src.store ? self->src.store(self->src.ctx) : NULL;
    if (!store)
        hub_ops__error(resp, 503, "the store is not open");
    return store;
}

static void ops_dlq__dead_json(hub_jsonw_t *w, const hub_store_dead_t *d)
{
    hub_jsonw_kv_u64(w, "seq", d->msg.seq);
    hub_jsonw_kv_str(w, "message_id", d->msg.message_id);
    hub_ops__flow_names_json(w, d->msg.sender, d->msg.receiver, d->msg.service);
    hub_jsonw_kv_str(w, "reason", d->reason);
    hub_jsonw_kv_u64(w, "attempts", d->msg.attempts);
    hub_jsonw_kv_u64(w, "accepted_at_us", d->msg.accepted_at_us);
    hub_jsonw_kv_u64(w, "dead_at_us", d->dead_at_us);
    hub_jsonw_kv_u64(w, "envelope_bytes", d->msg.envelope_len);
}

static void ops_dlq__route_dlq_list(hub_ops_t *self, const hub_http_request_t *req,
                                    hub_http_response_t *resp)
{
    uint64_t after, limit;
    if (hub_ops__param_u64(req, resp, "after", 0, UINT64_MAX - 1, 0, &after) < 0 ||
        hub_ops__param_u64(req, resp, "limit", 1, HUB__OPS_LIST_MAX, HUB__OPS_LIST_DEFAULT,
                       &limit) < 0)
        return;
    hub_store_t *store = ops_dlq__store(self, resp);
    if (!store)
        return;
    /* One more than asked for tells whether there is a next page. */
    hub_store_dead_t *items = calloc((size_t)limit + 1, sizeof *items);
    if (!items) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    size_t n = 0;
    int rc = hub_store_dlq_list(store, after, (size_t)limit + 1, items, &n, NULL);
    uint64_t damaged = rc == HUB_ESTORE ? items[n].msg.seq : 0;
    if (rc != 0 && rc != HUB_ESTORE) {
        free(items);
        hub_ops__error(resp, 500, "cannot read the dead-letter queue: %s", hub_strerror(rc));
        return;
    }
    uint64_t total = 0;
    hub_store_usage(store, NULL, NULL, &total);
    bool more = n > limit;
    if (more)
        n = (size_t)limit;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    hub_jsonw_kv_u64(&w, "total", total);
    hub_jsonw_key(&w, "dead_letters");
    hub_jsonw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        hub_jsonw_object_begin(&w);
        ops_dlq__dead_json(&w, &items[i]);
        hub_jsonw_object_end(&w);
    }
    hub_jsonw_array_end(&w);
    hub_jsonw_key(&w, "next_after");
    if (more)
        hub_jsonw_u64(&w, items[n - 1].msg.seq);
    else
        hub_jsonw_null(&w);
    if (damaged) {
        /* Say so, and name it: purging it is the way out. */
        hub_jsonw_kv_u64(&w, "damaged_seq", damaged);
    }
    hub_jsonw_object_end(&w);
    free(items);
    hub_ops__respond_json(resp, 200, &w);
}

static void ops_dlq__route_dlq_get(hub_ops_t *self, const hub_http_request_t *req,
                                   hub_http_response_t *resp, uint64_t seq)
{
    uint64_t want_payload;
    if (hub_ops__param_u64(req, resp, "payload", 0, 1, 0, &want_payload) < 0)
        return;
    hub_store_t *store = ops_dlq__store(self, resp);
    if (!store)
        return;
    hub_store_arena_t *arena = NULL;
    if (hub_store_arena_new(&arena) != 0) {
        hub_ops__error(resp, 500, "out of memory");
        return;
    }
    hub_store_dead_t *d = calloc(1, sizeof *d);
    int rc = d ? hub_store_dlq_get(store, seq, d, arena) : HUB_ENOMEM;
    if (rc != 0) {
        if (rc == HUB_ENOTFOUND)
            hub_ops__error(resp, 404, "no dead letter with seq %" PRIu64, seq);
        else
            hub_ops__error(resp, 500, "cannot read dead letter %" PRIu64 ": %s", seq,
                       hub_strerror(rc));
        free(d);
        hub_store_arena_destroy(&arena);
        return;
    }
    hub_envelope_t *env = NULL;
    if (d->msg.envelope && hub_envelope_decode(d->msg.envelope, d->msg.envelope_len, &env) != 0)
        env = NULL;
    hub_jsonw_t w;
    hub_jsonw_init(&w);
    hub_jsonw_object_begin(&w);
    ops_dlq__dead_json(&w, d);
    hub_jsonw_kv_bool(&w, "envelope_readable", env != NULL);
    if (env) {
        hub_jsonw_kv_str(&w, "correlation_id", env->correlation_id);
        hub_jsonw_kv_str(&w, "content_type", env->content_type);
        hub_jsonw_kv_u64(&w, "created_at_us", env->created_at_us);
        hub_jsonw_kv_u64(&w, "ttl_ms", env->ttl_ms);
        hub_jsonw_kv_str(&w, "kind", env->kind == LTH__V1__KIND__KIND_REPLY   ? "reply"
                                     : env->kind == LTH__V1__KIND__KIND_EVENT ? "event"
                                                                              : "request");
        hub_jsonw_kv_u64(&w, "payload_bytes", env->payload.len);
        if (want_payload) {
            size_t b64_len = sodium_base64_encoded_len(env->payload.len,
                                                       sodium_base64_VARIANT_ORIGINAL);
            char *b64 = malloc(b64_len);
            if (b64) {
                sodium_bin2base64(b64, b64_len, env->payload.data, env->payload.len,
                                  sodium_base64_VARIANT_ORIGINAL);
                hub_jsonw_kv_str(&w, "payload_base64", b64);
                free(b64);
            } else {
                w.out.error = HUB_ENOMEM;
            }
        }
    }
    hub_jsonw_object_end(&w);
    hub_envelope_free(&env);
    free(d);
    hub_store_arena_destroy(&arena);
    if (want_payload)
        HUB_INFO(HUB__OPS_COMP, "dead letter payload read over HTTP", "seq=%" PRIu64, seq);
    hub_ops__respond_json(resp, 200, &w);
}

static void ops_dlq__result(hub_http_response_t *resp, int rc, const char *what, uint64_t seq)
{
    if (rc == 0) {
        hub_jsonw_t w;
        hub_jsonw_init(&w);
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, what, seq);
        hub_jsonw_object_end(&w);
        hub_ops__respond_json(resp, 200, &w);
    } else if (rc == HUB_ENOTFOUND) {
        hub_ops__error(resp, 404, "no dead letter with seq %" PRIu64, seq);
    } else if (rc == HUB_EFULL) {
        hub_ops__error(resp, 503, "the store is full; purge dead letters or raise max_store_bytes");
    } else if (rc == HUB_EAGAIN) {
        hub_ops__error(resp, 503, "the hub is writing messages to its store right now; send the "
                              "same request again in a moment");
    } else {
        hub_ops__error(resp, 500, "could not do it: %s", hub_strerror(rc));
    }
}

/* A POST body must be empty or a JSON object: anything else is a client's
 * mistake that should not pass silently. */
static bool ops_dlq__post_body_ok(const hub_http_request_t *req, hub_http_response_t *resp)
{
    size_t i = 0;
    while (i < req->body_len && strchr(" \t\r\n", req->body[i]))
        i++;
    if (i == req->body_len)
        return true;
    size_t j = req->body_len;
    while (j > i && strchr(" \t\r\n", req->body[j - 1]))
        j--;
    if (req->body[i] == '{' && req->body[j - 1] == '}' && j - i >= 2) {
        /* Only {} is meaningful today; other members are not understood. */
        bool empty = true;
        for (size_t k = i + 1; k < j - 1; k++)
            empty = empty && strchr(" \t\r\n", req->body[k]) != NULL;
        if (empty)
            return true;
        hub_ops__error(resp, 400, "this call takes no parameters in its body; send {} or nothing");
        return false;
    }
    hub_ops__error(resp, 400, "the body is not a JSON object; send {} or nothing");
    return false;
}

/* A call that changes dead letters (replay, purge): a POST, by an operator
 * with the token, with no parameters in its body; else answered here. */
static bool ops_dlq__change_ok(hub_ops_t *self, const hub_http_request_t *req,
                               hub_http_response_t *resp)
{
    if (strcmp(req->method, "POST") != 0) {
        hub_ops__method_not_allowed(resp, "POST");
        return false;
    }
    return hub_ops__authorised(self, req, resp) && ops_dlq__post_body_ok(req, resp);
}

void hub_ops__route_dlq(hub_ops_t *self, const hub_http_request_t *req,
                        hub_http_response_t *resp)
{
    const char *rest = req->path + strlen(HUB_OPS__DLQ_PATH);
    /* rest: "" | "/" | "/SEQ" | "/SEQ/replay" | "/SEQ/purge" | "/purge" */
    if (rest[0] == '\0' || !strcmp(rest, "/")) {
        if (!hub_ops__is_get(req)) {
            hub_ops__method_not_allowed(resp, "GET");
            return;
        }
        if (hub_ops__authorised(self, req, resp))
            ops_dlq__route_dlq_list(self, req, resp);
        return;
    }
    rest++;
    if (!strcmp(rest, "purge")) {
        if (!ops_dlq__change_ok(self, req, resp))
            return;
        uint64_t older_than_s;
        int found = hub_ops__param_u64(req, resp, "older_than_s", 0, 100ull * 365 * 86400, 0,
                                   &older_than_s);
        if (found < 0)
            return;
        if (found == 1) {
            hub_ops__error(resp, 400, "older_than_s is required: purge dead letters older than that "
                                  "many seconds (0 = all)");
            return;
        }
        uint64_t now = hub_now_us();
        uint64_t before = now > older_than_s * 1000000u ? now - older_than_s * 1000000u : 0;
        if (older_than_s == 0)
            before = UINT64_MAX;
        uint64_t purged = 0;
        int rc = self->src.dlq_purge_older ? self->src.dlq_purge_older(self->src.ctx, before,
                                                                       &purged)
                                           : HUB_EINVAL;
        if (rc != 0) {
            hub_ops__error(resp, 500, "purge failed: %s", hub_strerror(rc));
            return;
        }
        HUB_INFO(HUB__OPS_COMP, "dead letters purged over HTTP",
                 "older_than_s=%" PRIu64 " purged=%" PRIu64, older_than_s, purged);
        hub_jsonw_t w;
        hub_jsonw_init(&w);
        hub_jsonw_object_begin(&w);
        hub_jsonw_kv_u64(&w, "purged", purged);
        hub_jsonw_object_end(&w);
        hub_ops__respond_json(resp, 200, &w);
        return;
    }
    size_t seq_len = strcspn(rest, "/");
    uint64_t seq;
    if (!hub_ops__parse_seq(rest, seq_len, &seq)) {
        hub_ops__error(resp, 400, "a dead letter is named by its seq, a whole number above 0");
        return;
    }
    const char *action = rest + seq_len;
    if (action[0] == '\0') {
        if (!hub_ops__is_get(req)) {
            hub_ops__method_not_allowed(resp, "GET");
            return;
        }
        if (hub_ops__authorised(self, req, resp))
            ops_dlq__route_dlq_get(self, req, resp, seq);
        return;
    }
    bool replay = !strcmp(action, "/replay"), purge = !strcmp(action, "/purge");
    if (!replay && !purge) {
        hub_ops__error(resp, 404, "no such path; dead letters have /replay and /purge");
        return;
    }
    if (!ops_dlq__change_ok(self, req, resp))
        return;
    int rc;
    if (replay)
        rc = self->src.dlq_replay ? self->src.dlq_replay(self->src.ctx, seq) : HUB_EINVAL;
    else
        rc = self->src.dlq_purge ? self->src.dlq_purge(self->src.ctx, seq) : HUB_EINVAL;
    if (rc == 0)
        HUB_INFO(HUB__OPS_COMP, replay ? "dead letter replayed over HTTP"
                                       : "dead letter purged over HTTP",
                 "seq=%" PRIu64, seq);
    ops_dlq__result(resp, rc, replay ? "replayed" : "purged", seq);
}
