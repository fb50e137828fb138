/* population — the National Population Database (CSDLQG về dân cư) as a hub
 * member: offers citizen.lookup/v1 and citizen.verify/v1 over a SQLite file
 * of SYNTHETIC citizens.
 *
 * Config (hub-adapter's plugin.* settings):
 *   plugin.db = PATH                 the database (required); built on first
 *                                    start if absent (relative paths are from
 *                                    the adapter's working directory)
 *   plugin.citizens = N              records to build (default 10000, at most 1000000)
 *   plugin.seed = S                  the generator's seed (default 1)
 *   plugin.allowed_consumers = A,B   members that may see records (default: all);
 *                                    others get NOT_PERMITTED for every key
 *   plugin.access_*                  the access register: who looked whom up
 *                                    (pop_access.h)
 *   plugin.disclosure_file = PATH    fields by purpose (lth_disclose.h): which
 *                                    fields each consumer may receive or have
 *                                    compared, per purpose_code; without it,
 *                                    every field to every permitted consumer
 *
 * The requester is msg->sender, which the hub took from the sender's CURVE key.
 * Requests and replies are lth.domain.v1 CitizenLookupRequest / Response
 * and CitizenVerifyRequest / Response (adapters/domain/lth_lookup.h and
 * lth_verify.h have the rules). Logs hold counts and member
 * ids only, never a personal ID number or a name.
 */
#include "adp_plugin_util.h"
#include "hub_error.h"
#include "hub_id.h"
#include "lth_lookup.h"
#include "pop_access.h"
#include "lth_verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POP_DEFAULT_CITIZENS 10000u
#define POP_DEFAULT_SEED 1u
#define POP_MAX_CONSUMERS 64
#define POP_SUMMARY_EVERY_S 60

typedef struct pop_state pop_state_t;

/* The user of pop_on_request: which service, for which plugin. */
typedef struct {
    pop_state_t *st;
    bool verify; /* citizen.verify/v1, else citizen.lookup/v1 */
} pop_service_t;

struct pop_state {
    const adp_plugin_host_t *host;
    lth_popdb_t *db;
    pop_access_t *access; /* the access register (pop_access.h), or NULL when off */
    bool allow_all;
    char *consumers[POP_MAX_CONSUMERS];
    size_t n_consumers;
    lth_disclosure_t *disclosure; /* plugin.disclosure_file, or NULL */
    /* Totals since start, for the periodic summary line. */
    unsigned long long requests, refused, keys, found, not_found, not_permitted, invalid_key;
    unsigned long long logged_requests;
    unsigned long long verifies, verify_subjects, verify_all_match;
    time_t next_summary;
    pop_service_t lookup, verify;
};

static bool pop_permitted(const pop_state_t *st, const char *member)
{
    if (st->allow_all)
        return true;
    for (size_t i = 0; i < st->n_consumers; i++)
        if (member && !strcmp(st->consumers[i], member))
            return true;
    return false;
}

/* Hands an answer over only once the access register holds it (noted: what
 * pop_access_note*() returned): no data leaves unrecorded. */
static int pop_hand_over(pop_state_t *st, const adp_message_t *msg, adp_reply_t *reply,
                         uint8_t *out, size_t out_len, int noted, const char *service,
                         const char *content_type)
{
    if (noted != 0) {
        free(out);
        adp_plugin_log(st->host, ADP_LOG_ERROR,
                       "%s from %s not answered: the access register could not be written", service,
                       msg->sender);
        return HUB_ESTORE;
    }
    adp_plugin_reply(reply, out, out_len, content_type);
    return 0;
}

/* Both services answer requests only: anything else is logged and ignored
 * (false). Fills in what the sender may be told. */
static bool pop_accept(const pop_state_t *st, const adp_message_t *msg, const char *service,
                       lth_lookup_policy_t *policy)
{
    if (msg->kind != ADP_REQUEST) {
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "%s: ignored a message that is not a request (from %s)", service,
                       msg->sender);
        return false;
    }
    *policy = (lth_lookup_policy_t){pop_permitted(st, msg->sender), msg->sender, st->disclosure};
    return true;
}

/* A request neither service could answer (the database failed): rc. */
static int pop_failed(const pop_state_t *st, const adp_message_t *msg, const char *service, int rc)
{
    adp_plugin_log(st->host, ADP_LOG_ERROR, "%s: cannot answer a request from %s: %s", service,
                   msg->sender, hub_strerror(rc));
    return rc;
}

/* The answer's status as the summary lines name it. */
static const char *pop_status_name(int status)
{
    static const char *const names[] = {"ok", "invalid", "unavailable"};
    return status >= 0 && status <= 2 ? names[status] : "?";
}

/* The counts of a citizen.lookup answer added to the totals, and logged. */
static void pop_tally_lookup(pop_state_t *st, const adp_message_t *msg, bool permitted,
                             const lth_lookup_counts_t *n)
{
    st->requests++;
    st->keys += n->keys;
    st->found += n->found;
    st->not_found += n->not_found;
    st->not_permitted += n->not_permitted;
    st->invalid_key += n->invalid_key;
    if (n->status != 0)
        st->refused++;
    /* Counts and member ids only: never a key or a name. */
    adp_plugin_log(st->host,
                   !permitted       ? ADP_LOG_WARN
                   : n->status == 2 ? ADP_LOG_ERROR
                                    : ADP_LOG_DEBUG,
                   "citizen.lookup from %s: status=%s keys=%zu found=%zu not_found=%zu "
                   "invalid_key=%zu not_permitted=%zu unchanged=%zu withheld=%zu%s",
                   msg->sender, pop_status_name(n->status), n->keys, n->found, n->not_found,
                   n->invalid_key, n->not_permitted, n->unchanged, n->withheld,
                   permitted ? "" : " (not in plugin.allowed_consumers)");
}

/* The counts of a citizen.verify answer added to the totals, and logged. */
static void pop_tally_verify(pop_state_t *st, const adp_message_t *msg, bool permitted,
                             const lth_verify_counts_t *n)
{
    st->verifies++;
    st->verify_subjects += n->subjects;
    st->verify_all_match += n->all_match;
    /* Counts and member ids only: never a key, a name or a declared value. */
    adp_plugin_log(st->host,
                   !permitted || n->not_permitted ? ADP_LOG_WARN
                   : n->status == 2               ? ADP_LOG_ERROR
                                                  : ADP_LOG_DEBUG,
                   "citizen.verify from %s: status=%s subjects=%zu all_match=%zu mismatch=%zu "
                   "not_found=%zu invalid_key=%zu not_permitted=%zu withheld=%zu",
                   msg->sender, pop_status_name(n->status), n->subjects, n->all_match, n->mismatch,
                   n->not_found, n->invalid_key, n->not_permitted, n->withheld);
}

/* Both services: the request answered from the database, noted in the
 * access register, handed over, and its counts tallied. */
static int pop_on_request(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                          void *user)
{
    (void)client;
    const pop_service_t *svc = user;
    pop_state_t *st = svc->st;
    const char *service = svc->verify ? "citizen.verify" : "citizen.lookup";
    lth_lookup_policy_t policy;
    if (!pop_accept(st, msg, service, &policy))
        return 0;
    uint8_t *out = NULL;
    size_t out_len = 0;
    lth_lookup_counts_t looked;
    lth_verify_counts_t verified;
    int rc = svc->verify ? lth_verify_answer(st->db, &policy, msg->content_type, msg->payload,
                                             msg->payload_len, &out, &out_len, &verified)
                         : lth_lookup_answer_for(st->db, &policy, msg->content_type, msg->payload,
                                                 msg->payload_len, &out, &out_len, &looked);
    if (rc != 0)
        return pop_failed(st, msg, service, rc);
    int noted = svc->verify ? pop_access_note_verify(st->access, msg, out, out_len)
                            : pop_access_note(st->access, msg, out, out_len);
    rc = pop_hand_over(st, msg, reply, out, out_len, noted, service,
                       svc->verify ? LTH_VERIFY_RESPONSE_TYPE : LTH_LOOKUP_RESPONSE_TYPE);
    if (rc != 0)
        return rc;
    if (svc->verify)
        pop_tally_verify(st, msg, policy.permitted, &verified);
    else
        pop_tally_lookup(st, msg, policy.permitted, &looked);
    return 0;
}

static int pop_tick(void *state, adp_client_t *client)
{
    (void)client;
    pop_state_t *st = state;
    pop_access_tick(st->access);
    time_t now = time(NULL);
    if (now < st->next_summary)
        return 0;
    st->next_summary = now + POP_SUMMARY_EVERY_S;
    if (st->requests + st->verifies == st->logged_requests)
        return 0;
    st->logged_requests = st->requests + st->verifies;
    adp_plugin_log(
        st->host, ADP_LOG_INFO,
        "citizen.lookup totals: requests=%llu refused=%llu keys=%llu found=%llu "
        "not_found=%llu invalid_key=%llu not_permitted=%llu; citizen.verify: requests=%llu "
        "subjects=%llu all_match=%llu",
        st->requests, st->refused, st->keys, st->found, st->not_found, st->invalid_key,
        st->not_permitted, st->verifies, st->verify_subjects, st->verify_all_match);
    return 0;
}

static void pop_destroy(void *state)
{
    pop_state_t *st = state;
    if (!st)
        return;
    lth_popdb_close(&st->db);
    pop_access_destroy(&st->access);
    lth_disclosure_destroy(&st->disclosure);
    for (size_t i = 0; i < st->n_consumers; i++)
        free(st->consumers[i]);
    free(st);
}

static int pop_parse_consumers(pop_state_t *st, const char *list, char *err, size_t err_size)
{
    if (!list || !strcmp(list, "*")) {
        st->allow_all = true;
        return 0;
    }
    char *copy = strdup(list);
    if (!copy)
        return HUB_ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *m = strtok_r(copy, ", ", &save); m && rc == 0; m = strtok_r(NULL, ", ", &save)) {
        const char *problem = hub_member_id_problem(m);
        if (problem) {
            snprintf(err, err_size, "plugin.allowed_consumers: '%s' is not a member id: %s", m,
                     problem);
            rc = HUB_EINVAL;
        } else if (st->n_consumers == POP_MAX_CONSUMERS) {
            snprintf(err, err_size, "plugin.allowed_consumers: at most %d members",
                     POP_MAX_CONSUMERS);
            rc = HUB_EINVAL;
        } else if (!(st->consumers[st->n_consumers] = strdup(m))) {
            rc = HUB_ENOMEM;
        } else {
            st->n_consumers++;
        }
    }
    free(copy);
    if (rc == 0 && st->n_consumers == 0) {
        snprintf(err, err_size,
                 "plugin.allowed_consumers is empty: list member ids, or leave "
                 "it out to allow every member");
        rc = HUB_EINVAL;
    }
    return rc;
}

/* Opens plugin.db, building it first if it does not exist. */
static int pop_open_db(pop_state_t *st, const char *path, uint64_t seed, uint64_t citizens,
                       char *err, size_t err_size)
{
    int rc = lth_popdb_open(path, &st->db, err, err_size);
    if (rc == HUB_ENOENT) {
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "building the population database: %" PRIu64 " synthetic citizens",
                       citizens);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = lth_popdb_build(path, seed, (size_t)citizens, err, err_size);
        if (rc == HUB_EEXIST) /* built meanwhile by another process: use it */
            rc = 0;
        if (rc != 0)
            return rc;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
        adp_plugin_log(st->host, ADP_LOG_INFO, "population database built in %ld ms", ms);
        rc = lth_popdb_open(path, &st->db, err, err_size);
    }
    if (rc != 0)
        return rc;
    lth_popdb_info_t info = lth_popdb_info(st->db);
    if (info.seed != seed || info.citizens != citizens)
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "plugin.db already holds %zu citizens of seed %" PRIu64
                       "; plugin.citizens and plugin.seed apply only when it is built (remove the "
                       "file to rebuild)",
                       info.citizens, info.seed);
    return 0;
}

static int pop_start(void *state, const adp_plugin_host_t *host, char *err, size_t err_size)
{
    pop_state_t *st = state;
    st->host = host;
    const char *db_path = adp_plugin_conf_required(
        host, "db", "the path of the population database (built if absent)", err, err_size);
    uint64_t citizens = 0, seed = 0;
    int rc = db_path ? 0 : HUB_EINVAL;
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "citizens", 1, LTH_CITIZEN_MAX, POP_DEFAULT_CITIZENS,
                                 &citizens, err, err_size);
    if (rc == 0)
        rc = adp_plugin_conf_u64(host, "seed", 0, UINT64_MAX, POP_DEFAULT_SEED, &seed, err,
                                 err_size);
    if (rc == 0)
        rc = pop_parse_consumers(st, host->config(host, "allowed_consumers"), err, err_size);
    if (rc == 0)
        rc = lth_disclosure_setting(host->config(host, "disclosure_file"), &st->disclosure, err, err_size);
    if (rc == 0)
        rc = pop_open_db(st, db_path, seed, citizens, err, err_size);
    if (rc == 0)
        rc = pop_access_init(host, db_path, &st->access, err, err_size);
    st->lookup = (pop_service_t){st, false};
    st->verify = (pop_service_t){st, true};
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_CITIZEN_LOOKUP, pop_on_request, &st->lookup);
    if (rc == 0)
        rc = host->offer(host, LTH_SERVICE_CITIZEN_VERIFY, pop_on_request, &st->verify);
    if (rc != 0)
        return rc;
    if (st->allow_all)
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "citizen.lookup/v1: %zu synthetic citizens; every member may look up",
                       lth_popdb_info(st->db).citizens);
    else
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "citizen.lookup/v1: %zu synthetic citizens; permitted consumers: %zu",
                       lth_popdb_info(st->db).citizens, st->n_consumers);
    if (st->disclosure)
        adp_plugin_log(st->host, ADP_LOG_INFO,
                       "fields by purpose: %zu rules from plugin.disclosure_file",
                       lth_disclosure_count(st->disclosure));
    else
        adp_plugin_log(
            st->host, ADP_LOG_WARN,
            "no plugin.disclosure_file: every permitted consumer receives whole records, "
            "whatever its purpose; set one to return only the fields each purpose may have");
    st->next_summary = time(NULL) + POP_SUMMARY_EVERY_S;
    return 0;
}

ADP_PLUGIN_DEFINE_STATE("population",
                        "National Population Database (synthetic data): citizen.lookup/v1, "
                        "citizen.verify/v1",
                        pop_state_t, pop_start, pop_tick, pop_destroy);
