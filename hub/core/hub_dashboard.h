/* hub_dashboard — the operator dashboard's files (hub/dashboard/: the page,
 * its style sheet and its script), built into the binary so that the hub
 * serves them with no outside assets: the machine may be offline.
 *
 * The table is generated at build time from hub/dashboard/ by
 * hub/embed_assets.cmake; hub_ops serves each file at its path.
 */
#ifndef HUB_DASHBOARD_H
#define HUB_DASHBOARD_H

#include <stddef.h>

typedef struct {
    const char *path;         /* "/index.html", "/dashboard.js", ... */
    const char *content_type; /* with charset for text */
    const unsigned char *data;
    size_t len;
} hub_dashboard_asset_t;

extern const hub_dashboard_asset_t hub_dashboard_assets[];
extern const size_t hub_dashboard_n_assets;

#endif
