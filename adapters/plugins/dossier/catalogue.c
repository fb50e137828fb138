/* catalogue — the national database of administrative procedures (CSDL quốc
 * gia về TTHC, member VN/GOV/VPCP/CSDLTTHC) as a subscriber: it subscribes
 * durably to the city's published procedure list and keeps the newest
 * version it has received, as a text file an operator can read.
 *
 *   plugin.publisher = VN/GOV/HN-VP/TTHC   whose catalogue.published/v1 to follow
 *   plugin.file = PATH                     written atomically on each newer version:
 *                                          "version V from PUBLISHER: N procedures",
 *                                          then "CODE<TAB>AUTHORITY<TAB>NAME" lines
 *
 * An older or repeated version is ignored (publications may arrive late or,
 * after a crash, twice).
 */
#include "domain.pb-c.h"
#include "adp_plugin_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const adp_plugin_host_t *host;
    char file[4096];
    uint64_t version;
    unsigned long received, ignored;
} cat_t;

static int cat_handle(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                      void *user)
{
    (void)client;
    (void)reply;
    cat_t *st = user;
    Lth__Domain__V1__ProcedureCatalogue *cat =
        lth__domain__v1__procedure_catalogue__unpack(NULL, msg->payload_len, msg->payload);
    if (!cat) {
        adp_plugin_log(st->host, ADP_LOG_WARN,
                       "a publication from %s is not a ProcedureCatalogue; ignored", msg->sender);
        return 0;
    }
    st->received++;
    if (cat->version <= st->version) {
        st->ignored++;
        lth__domain__v1__procedure_catalogue__free_unpacked(cat, NULL);
        return 0;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", st->file);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "version %llu from %s: %zu procedures\n", (unsigned long long)cat->version,
                msg->sender, cat->n_procedures);
        for (size_t i = 0; i < cat->n_procedures; i++)
            fprintf(f, "%s\t%s\t%s\n", cat->procedures[i]->code,
                    cat->procedures[i]->authority_member_id, cat->procedures[i]->name);
        if (fclose(f) == 0 && rename(tmp, st->file) == 0) {
            st->version = cat->version;
            adp_plugin_log(st->host, ADP_LOG_INFO,
                           "catalogue version %llu received: %zu procedures",
                           (unsigned long long)cat->version, cat->n_procedures);
        }
    }
    lth__domain__v1__procedure_catalogue__free_unpacked(cat, NULL);
    return 0;
}

static int cat_init(const adp_plugin_host_t *host, void **state, char *err, size_t err_size)
{
    const char *file = host->config(host, "file");
    const char *publisher = host->config(host, "publisher");
    if (!file) {
        snprintf(err, err_size, "plugin.file is required (where to keep the catalogue)");
        return -1;
    }
    cat_t *st = calloc(1, sizeof *st);
    if (!st)
        return -2;
    st->host = host;
    snprintf(st->file, sizeof st->file, "%s", file);
    /* Continue from the version already on disk. */
    FILE *f = fopen(file, "r");
    if (f) {
        unsigned long long v = 0;
        if (fscanf(f, "version %llu", &v) == 1)
            st->version = v;
        fclose(f);
    }
    char topic[600];
    snprintf(topic, sizeof topic, "%s/catalogue.published/v1",
             publisher ? publisher : "VN/GOV/HN-VP/TTHC");
    if (adp_subscribe(host->client(host), topic, cat_handle, st) != 0) {
        snprintf(err, err_size, "plugin.publisher: '%s' is not a member id",
                 publisher ? publisher : "");
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static void cat_destroy(void *state) { free(state); }

ADP_PLUGIN_DEFINE("catalogue", "keeps the newest procedure catalogue a publisher published",
                  cat_init, NULL, cat_destroy);
