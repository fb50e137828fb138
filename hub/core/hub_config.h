/* hub_config — hubd's configuration file (see deploy/hubd.conf.example).
 * hubd reads HUB_DEFAULT_CONFIG when no --config is given.
 *
 * hub_config_load() fills defaults, then applies the file; an unknown key, a
 * value out of range or a missing required key fails with a message that
 * names the file, the line and what to write instead. Relative paths in the
 * file are taken relative to the file's own directory.
 */
#ifndef HUB_CONFIG_H
#define HUB_CONFIG_H

#include "hub_alarms.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a packaged hub keeps its files (FHS): the build can move them with
 * -DHUB_DEFAULT_CONFIG=... and -DHUB_DEFAULT_STATE_DIR=... (CMake cache). */
#ifndef HUB_DEFAULT_CONFIG
#define HUB_DEFAULT_CONFIG "/etc/lienthong/hubd.conf"
#endif
#ifndef HUB_DEFAULT_STATE_DIR
#define HUB_DEFAULT_STATE_DIR "/var/lib/lienthong"
#endif

typedef struct {
    char listen[256];            /* ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555 ('*' port = ephemeral) */
    char key_file[PATH_MAX];     /* the hub's own .secret key file */
    char key_dir[PATH_MAX];      /* directory of members' .pub files (development mode) */
    char ca_cert[PATH_MAX];      /* certificate mode: the operator CA's certificate, */
    char crl_file[PATH_MAX];     /*   its revocation list, */
    char cert_dir[PATH_MAX];     /*   and the directory of member certificates */
    char crl_state_file[PATH_MAX]; /* the newest CRL accepted (rollback guard); default
                                      <data_dir>/crl.state in certificate mode */
    uint32_t cert_warn_days;     /* warn this long before a certificate expires */
    char delegations_file[PATH_MAX]; /* ủy quyền rules; empty = none */
    char data_dir[PATH_MAX];     /* store directory (LMDB), audit log and state files */
    int store_backend;           /* HUB_STORE_LMDB (default) or HUB_STORE_POSTGRESQL */
    char store_dsn[1024];        /* store = postgresql: libpq connection string */
    char node_id[64];            /* this node among several sharing one store; default: host name */
    bool cluster;                /* store = postgresql: run as one of several active nodes */
    char cluster_listen[256];    /* cluster: where the other nodes reach this one (ZeroMQ,
                                    CURVE with the hub's key), e.g. tcp://10.0.0.5:7101;
                                    empty = no forwarding of online-only envelopes */
    uint32_t cluster_beat_ms;    /* node heartbeat and member-location renewal period; entries
                                    expire after 3 of them */
    bool store_migrate;          /* store = postgresql: apply missing schema migrations at start */
    char audit_dir[PATH_MAX];    /* audit log directory; empty = <data_dir>/audit */
    char policy_file[PATH_MAX];  /* data-sharing agreements; empty = allow all (development) */
    char http_listen[256];       /* operator HTTP endpoint, host:port; empty = off */
    char http_token_file[PATH_MAX]; /* file holding the operator token for mutating calls */
    char http_allowed_hosts[512];  /* host names the HTTP endpoint answers to, besides IPs and localhost */
    bool http_public;            /* http_listen may be beyond loopback (the API then needs the token) */
    uint32_t http_max_connections_per_client; /* open HTTP connections per client IP; 0 = 32 */
    uint32_t http_header_timeout_ms; /* a request's header section must arrive within; 0 = 5000 */
    char members_file[PATH_MAX]; /* member directory (agency names); empty = ids only */
    char lang[8];                /* operators' language, "vi" (default) or "en" */
    uint32_t max_payload_bytes;  /* largest envelope payload accepted */
    uint32_t max_frame_bytes;    /* largest ZeroMQ message accepted (a batch) */
    uint32_t heartbeat_ms;       /* clients heartbeat this often; silent 3x longer = offline */
    uint32_t default_ttl_ms;     /* TTL of envelopes that carry none */
    uint32_t max_ttl_ms;         /* TTLs above this are capped */
    uint64_t max_store_bytes;    /* store size limit */
    uint64_t max_queue_depth;    /* per receiver */
    uint32_t max_in_flight;      /* unsettled deliveries per receiver */
    uint32_t redelivery_ms;      /* first redelivery delay; doubles per attempt */
    uint32_t max_attempts;       /* retry budget before the dead-letter queue */
    uint32_t dedup_window_ms;    /* how long a message id is remembered for de-duplication */
    bool require_signatures;     /* refuse envelopes without a valid Ed25519 signature */
    /* What one member may take from the others (issue: hostile members).
     * Per-member values in the policy file's `limit` lines override these. */
    bool public_directory;       /* lth.members/v1 lists every member, not only partners */
    uint32_t max_open_requests;  /* unanswered requests one member may have tracked */
    uint64_t max_waiting_bytes;  /* bytes waiting to be sent to one connection */
    uint32_t drain_timeout_ms;   /* a connection that takes nothing this long is dropped */
    uint64_t rate_msgs;          /* envelopes per second a member may send; 0 = no limit */
    uint64_t rate_bytes;         /* envelope bytes per second a member may send; 0 = no limit */
    uint32_t flood_factor;       /* refusals (in seconds of its rate) that get a member cut off; 0 = never */
    uint32_t flood_ban_s;        /* how long a member cut off for flooding is kept out */
    uint64_t quota_send_msgs, quota_send_bytes; /* what a sender may hold in the store; 0 = none */
    uint64_t quota_recv_msgs, quota_recv_bytes; /* what a receiver may hold */
    uint32_t store_reserve_percent; /* the last part of the store kept from any one member */
    bool audit;                  /* keep the audit log (in audit_dir) */
    /* The message archive (hub_archive.h): on when archive_dir is set. */
    char archive_dir[PATH_MAX];      /* encrypted archive of whole envelopes; empty = off */
    char archive_key_file[PATH_MAX]; /* 32-byte AES-256 key, mode 0600 */
    uint32_t archive_retention_days; /* sealed files older than this are deleted; default 30 */
    bool audit_accept_gap;       /* start on an audit log cut back behind the store's
                                    anchor (recorded, critical alarm audit_log_cut) */
    bool audit_accept_key_change; /* start although the audit log was signed by another key
                                     and no KEY_ROTATED record hands it over (recorded) */
    char audit_tsa_url[512];     /* RFC 3161 time-stamping authority; empty = off */
    char audit_tsa_cert[PATH_MAX]; /* its certificate (PEM), to check its replies */
    uint32_t audit_tsa_every_s;  /* at most one time-stamp per this long (default 60) */
    uint32_t audit_tsa_retry_s;  /* retry a failed request after (default 30) */
    uint64_t audit_max_file_bytes;     /* rotate audit files at this size; 0 = 64 MiB */
    uint64_t audit_checkpoint_records; /* a checkpoint after this many records; 0 = 1000 */
    uint32_t max_flows;          /* flows (sender, receiver, service) tracked; 0 = 10000 */
    /* Alarm thresholds (alarm_* keys; the certificate warning is
     * cert_warn_days). */
    hub_alarm_thresholds_t alarms;
    int log_level;               /* hub_log_level_t */
} hub_config_t;

/* Fills the defaults: data_dir is HUB_DEFAULT_STATE_DIR and the audit log
 * goes to <data_dir>/audit. */
void hub_config_defaults(hub_config_t *cfg);
int hub_config_load(const char *path, hub_config_t *cfg, char *err, size_t err_size);
/* The 1-based line of the file at `path` that sets `key` (the last one, as
 * the last setting wins), or 0 when no line does: lets a check name the
 * line to fix for a problem found after parsing. */
unsigned hub_config_key_line(const char *path, const char *key);

#endif
