/* lth_outq_flush, apart from the rest of lth_appdb so that tools that only
 * read adapter databases (lth-trail) do not need the SDK. */
#include "lth_appdb.h"

#include "hub_error.h"

int lth_outq_flush(sqlite3 *db, adp_client_t *client, size_t max, size_t *posted)
{
    if (posted)
        *posted = 0;
    sqlite3_stmt *sel = NULL, *del = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, receiver, service, content_type, payload FROM outq "
                           "ORDER BY id LIMIT 256",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM outq WHERE id <= ?", -1, &del, NULL) != SQLITE_OK) {
        sqlite3_finalize(sel);
        return HUB_ESTORE;
    }
    int status = 0;
    size_t done = 0;
    for (;;) {
        sqlite3_int64 last = -1;
        size_t round = 0;
        while ((max == 0 || done < max) && sqlite3_step(sel) == SQLITE_ROW) {
            const void *payload = sqlite3_column_blob(sel, 4);
            size_t len = (size_t)sqlite3_column_bytes(sel, 4);
            int prc =
                adp_post_event(client, (const char *)sqlite3_column_text(sel, 1),
                               (const char *)sqlite3_column_text(sel, 2),
                               (const char *)sqlite3_column_text(sel, 3), payload, len, 0, NULL);
            if (prc != 0) {
                status = prc;
                break;
            }
            last = sqlite3_column_int64(sel, 0);
            round++;
            done++;
        }
        sqlite3_reset(sel);
        if (last >= 0) {
            /* Posted: the SDK's outbox owns them now. */
            sqlite3_bind_int64(del, 1, last);
            if (sqlite3_step(del) != SQLITE_DONE)
                status = HUB_ESTORE;
            sqlite3_reset(del);
        }
        if (status != 0 || round < 256 || (max && done >= max))
            break;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(del);
    if (posted)
        *posted = done;
    return status;
}
