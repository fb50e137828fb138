/* adp — the Liên Thông Hub adapter SDK.
 *
 * A connected system (an "adapter") uses this library to join the hub as one
 * member: connect over CURVE with its member key, offer services with a
 * handler each, send requests and wait for their replies, send one-way
 * events. The library heartbeats, reconnects and says hello again on its
 * own; it de-duplicates deliveries so that a handler sees each message once
 * within a window, and keeps an outbox of messages not yet ACKed by the hub,
 * which it sends again after a reconnect. With a state_dir, both survive a
 * restart of the adapter (see adp_journal.h): posted-but-unACKed messages are
 * sent again, and messages handled before the restart are not handed to the
 * handler again.
 *
 * Failover: hub_endpoint may list several endpoints of one hub, its nodes
 * (they share the hub's key and store): "tcp://a:5555, tcp://b:5555". The
 * client stays on one (the first, to begin with). When that one stops
 * serving (disconnected, silent for three heartbeats, or no Welcome in
 * time) it moves to the next, and after the last back to the first: about
 * 0.3 s after a node that served is lost, then giving each node tried 1 s
 * to welcome, doubled after each full round without one, up to 8 s, each
 * delay with up to half again of random jitter. The application sees no
 * error: messages not ACKed yet are sent again to the new node under the
 * same message ids (its store de-duplicates them), awaited replies and
 * ACKs keep being waited for within their timeouts, and offers and
 * subscriptions go in the new Hello. A single endpoint is never left:
 * libzmq reconnects to it with backoff and jitter.
 *
 * Threads: an adp_client_t is used from one thread. Nothing runs in the
 * background: the library does its work inside adp_run(), adp_request() and
 * adp_send_event(), which all process incoming traffic (and so may call
 * handlers) while they wait.
 *
 * Errors: functions return 0 or a negative HUB_E* code (hub_error.h);
 * adp_last_error() gives a sentence about the last failure, e.g. the hub's
 * NACK reason, or "the hub did not accept this member's key".
 *
 * Ownership: the library copies what it is given. Messages passed to a
 * handler are valid only during the call. A reply filled by adp_request() is
 * the caller's to release with adp_reply_free().
 */
#ifndef ADP_H
#define ADP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADP_PING_SERVICE "lth.ping/v1" /* every client answers it (hubctl ping) */

typedef struct adp_client adp_client_t;

typedef struct {
    const char *hub_endpoint;   /* e.g. "tcp://127.0.0.1:5555", or the endpoints of the
                                   hub's nodes, comma separated (see Failover above) */
    const char *hub_key_file;   /* the hub's .pub file */
    const char *member_key_file; /* this member's .secret file (mode 0600) */
    uint32_t connect_timeout_ms; /* adp_connect() waits this long for the hub (0 = 5000) */
    const char *software;       /* reported in Hello; may be NULL */
    const char *state_dir;      /* where the outbox and the de-duplication window are kept
                                   across restarts (created, mode 0700); NULL = memory only */
} adp_config_t;

typedef enum { ADP_REQUEST = 0, ADP_REPLY = 1, ADP_EVENT = 2 } adp_kind_t;

/* A message as a handler sees it. */
typedef struct {
    const char *message_id;
    const char *correlation_id;
    const char *sender;   /* authenticated by the hub */
    const char *receiver;
    const char *service;
    const char *content_type;
    const uint8_t *payload;
    size_t payload_len;
    adp_kind_t kind;
    uint64_t created_at_us;
    uint64_t hub_seq;     /* 0 for online-only messages */
    uint32_t attempt;     /* 1 on first delivery */
    /* true when this member's adapter stopped (crashed, was killed) while
     * this very message was in its handler: the handler's effect may or may
     * not have happened. An idempotent handler checks its own records. With
     * a state_dir, this is the only case in which a handler can see a
     * message twice. */
    bool in_doubt;
    uint32_t ttl_ms;      /* the sender's TTL (0 = the hub's default): a request
                             answered after created_at_us + ttl_ms is too late */
    const uint8_t *sender_sign_key; /* the Ed25519 public key (32 bytes) the hub binds to
                                       the sender's member id, or NULL when not given */
} adp_message_t;

/* What a request handler answers, and what adp_request() returns. */
typedef struct {
    char content_type[128];
    uint8_t *payload;     /* malloc'ed; the library frees it after sending */
    size_t payload_len;
    char sender[256];     /* filled by adp_request(): who replied */
} adp_reply_t;

/* What a handler's return value does with the message:
 *   0 (ADP_SETTLE)    handled: settled, never delivered again; for a
 *                     request, `reply` is sent;
 *   negative          handled, but no reply is sent (the requester times
 *                     out); settled like 0;
 *   ADP_LATER         not handled now (e.g. the handler's own database is
 *                     down): not settled and not remembered as handled, so
 *                     the hub delivers it again after its redelivery delay
 *                     (doubling each time), and dead-letters it when its TTL
 *                     or retry budget runs out; no reply is sent;
 *   ADP_DEAD_LETTER   never acceptable (e.g. it breaks the receiver's
 *                     rules): the hub is asked to move it to its dead-letter
 *                     queue with the reason given by adp_dead_letter_reason()
 *                     during the call (Settle.rejects, proto/README.md); a
 *                     hub that does not know that request delivers it again
 *                     until its retry budget is spent, then dead-letters it.
 * A publication gets no reply whatever the handler returns. */
enum { ADP_SETTLE = 0, ADP_LATER = 1, ADP_DEAD_LETTER = 2 };

/* Handles one delivered request or event. For a request, fill `reply` and
 * return ADP_SETTLE to send it; see above for the other return values. */
typedef int (*adp_handler_cb)(adp_client_t *client, const adp_message_t *msg, adp_reply_t *reply,
                              void *user);
/* Inside a handler about to return ADP_DEAD_LETTER: why, for the operators
 * who will see it in the dead-letter queue (copied; at most 400 bytes, no
 * personal data). */
void adp_dead_letter_reason(adp_client_t *client, const char *reason);

/* Flags for adp_request() and adp_send_event(). */
enum {
    ADP_ONLINE_ONLY = 1 << 0 /* refuse at once (RECEIVER_OFFLINE) if the receiver is not connected,
                                instead of having the hub keep the message */
};

/* Creates a client and starts connecting, without waiting: offer services
 * with adp_offer(), then call adp_start(), so that no delivery arrives before
 * its handler is known. Fails only on configuration and key file problems. */
int adp_new(const adp_config_t *cfg, adp_client_t **out, char *err, size_t err_size);
/* Waits up to connect_timeout_ms for the hub's Welcome; may be called again
 * after HUB_ETIMEDOUT (the client keeps trying in the background). */
int adp_start(adp_client_t *client, char *err, size_t err_size);
/* adp_new() + adp_start(): connects and waits for the hub's Welcome. HUB_EREFUSED when the hub does
 * not accept the key; HUB_ETIMEDOUT when no hub answers; HUB_ENOENT,
 * HUB_EPERM, HUB_EPARSE for key file problems. `err` says which. */
int adp_connect(const adp_config_t *cfg, adp_client_t **out, char *err, size_t err_size);
/* Closes the connection and frees. Messages the hub has not answered yet:
 * without a state_dir they are dropped (their outcomes never come); with
 * one they stay in its outbox journal, and the next client opened on that
 * state_dir sends them again (adp_outbox_list() shows them as restored,
 * and their outcomes reach that client's outcome handler). Settles of
 * handled deliveries are sent first when connected. */
void adp_close(adp_client_t **client_p);

/* Offers `service` ("SERVICE/VERSION") with a handler; may be called before
 * or after connecting (the hub is told again). A NULL service sets the
 * default handler for services with no handler of their own. */
int adp_offer(adp_client_t *client, const char *service, adp_handler_cb handler, void *user);

/* Subscribes durably to what PUBLISHER publishes on SERVICE/VERSION, topic
 * "PUBLISHER-ID/SERVICE/VERSION": the hub keeps a copy for this member from
 * now on, across disconnects and restarts, and the handler gets each one
 * (msg->sender is the publisher; msg->receiver is the hub). A publication
 * gets no reply: the handler's reply is ignored; its return value settles
 * the publication, or not (ADP_LATER, ADP_DEAD_LETTER), as for any message. */
int adp_subscribe(adp_client_t *client, const char *topic, adp_handler_cb handler, void *user);
/* Publishes an event on SERVICE/VERSION to every subscriber (posted like
 * adp_post_event; the hub ACKs once every subscriber's copy is stored). */
int adp_publish(adp_client_t *client, const char *service, const char *content_type,
                const void *payload, size_t payload_len, int flags, char message_id_out[37]);

/* Sends a request and waits up to timeout_ms for its reply; processes other
 * traffic meanwhile. HUB_ENACK when the hub refused it (see
 * adp_last_error() and adp_last_nack_code()), HUB_ETIMEDOUT. */
int adp_request(adp_client_t *client, const char *receiver, const char *service,
                const char *content_type, const void *payload, size_t payload_len, int flags,
                uint32_t timeout_ms, adp_reply_t *reply);
/* Several requests in flight: adp_request_start() sends one and returns its
 * message id at once; adp_request_poll() (call adp_run() between polls)
 * returns 0 with the reply, HUB_EAGAIN while it is pending, or HUB_ENACK
 * when the hub refused it (adp_last_error()); after any result but
 * HUB_EAGAIN the request is forgotten. adp_request_cancel() gives up on one
 * (a late reply is then dropped). */
int adp_request_start(adp_client_t *client, const char *receiver, const char *service,
                      const char *content_type, const void *payload, size_t payload_len,
                      int flags, char id_out[37]);
int adp_request_poll(adp_client_t *client, const char *id, adp_reply_t *reply);
void adp_request_cancel(adp_client_t *client, const char *id);
/* adp_request_cancel(), and if the hub has not answered the request yet it
 * is not sent again either, after a reconnect or otherwise: for a caller
 * that wants a request to reach its receiver at most once (a gateway, whose
 * own caller has been told it failed). Whether it reached the hub is then
 * unknown; its outcome is not reported. */
void adp_request_withdraw(adp_client_t *client, const char *id);
/* Answers a request after its handler returned without a reply (a negative
 * value): requester, service and request_id are the request's sender,
 * service and message_id (copy them in the handler; the message is gone
 * after it). flags: ADP_ONLINE_ONLY when the request was online-only
 * (its hub_seq was 0), as a handler's own reply would be. The hub passes
 * the reply only while it still tracks the request (within its TTL). */
int adp_post_reply(adp_client_t *client, const char *requester, const char *service,
                   const char *request_id, const char *content_type, const void *payload,
                   size_t payload_len, int flags);
/* Sends a one-way event and waits until the hub has ACKed it (it is then
 * durable in the hub's store). The hub's sequence number is stored in
 * *hub_seq when not NULL. */
int adp_send_event(adp_client_t *client, const char *receiver, const char *service,
                   const char *content_type, const void *payload, size_t payload_len, int flags,
                   uint32_t timeout_ms, uint64_t *hub_seq);
/* Sends an event without waiting; it stays in the outbox until ACKed. The
 * ids the library makes (message_id_out here, and every other envelope's)
 * are time-ordered UUIDs (version 7, RFC 9562), growing per client: the
 * hub's index of accepted ids then takes them at its end. */
int adp_post_event(adp_client_t *client, const char *receiver, const char *service,
                   const char *content_type, const void *payload, size_t payload_len, int flags,
                   char message_id_out[37]);
/* adp_post_event() under an id the application chose and keeps with its own
 * record: message_id is a UUID in lower-case text form, created_at_us the
 * time kept with it (0 = now). An application that restarts and cannot
 * prove the hub accepted a record sends it again with the same id, time and
 * content: the hub de-duplicates it (the original ACK and hub_seq come
 * back) instead of storing it twice. Different content under an id the hub
 * has accepted is refused (NACK ID_REUSED). HUB_EINVAL for an id that is
 * not a UUID, HUB_EEXIST when that id waits in this outbox already. */
int adp_post_event_as(adp_client_t *client, const char *message_id, uint64_t created_at_us,
                      const char *receiver, const char *service, const char *content_type,
                      const void *payload, size_t payload_len, int flags);
/* TTL for envelopes posted from now on (0 = the hub's default). Past it, an
 * undelivered message goes to the hub's dead-letter queue. */
void adp_set_ttl(adp_client_t *client, uint32_t ttl_ms);
/* Signing. The SDK signs what it sends (batch signatures, proto/README.md)
 * whenever the hub requires signatures, which is hubd's default; a hub
 * that does not (require_signatures = no) gets unsigned envelopes, unless
 * this is set. Receivers verify whatever signature an envelope carries. */
void adp_set_sign_always(adp_client_t *client, bool always);
/* A detached Ed25519 signature of data with this member's signing key (the
 * key the hub binds to its member id), for documents that must carry their
 * own signature beyond the envelope (an electronic result); public_key gets
 * the key's public half. 0, HUB_EINVAL, or HUB_ENOTFOUND when the member key
 * file holds no signing key. */
int adp_sign_detached(const adp_client_t *client, const uint8_t *data, size_t len,
                      uint8_t sig[64], uint8_t public_key[32]);
/* Messages posted (or restored from the state directory) that the hub has
 * not answered yet; answered messages a caller still has to collect do not
 * count. */
size_t adp_outbox_size(const adp_client_t *client);

/* The hub's answer for one posted message. */
typedef struct {
    const char *message_id;
    bool acked;          /* true: ACK; false: NACK */
    uint64_t hub_seq;    /* with an ACK: the hub's sequence number (0 = not stored:
                            online-only, or a publication without subscribers) */
    int nack_code;       /* with a NACK: lth.v1.NackCode (hub_nack_code_name()) */
    const char *reason;  /* with a NACK: the hub's sentence; "" with an ACK */
    bool restored;       /* the message came back from the state directory's outbox */
} adp_outcome_t;
/* Called once for every message the hub answers: events, publications,
 * requests and replies, whether posted with or without waiting, including
 * answers that arrive after adp_send_event() or adp_request() timed out and
 * answers for messages restored from the state directory after a restart.
 * The outcome is valid during the call only. The handler may post messages;
 * it runs inside adp_run() and the other calls that process traffic. */
typedef void (*adp_outcome_cb)(adp_client_t *client, const adp_outcome_t *outcome, void *user);
void adp_set_outcome_handler(adp_client_t *client, adp_outcome_cb handler, void *user);

/* One unanswered message of the outbox. */
typedef struct {
    char message_id[37];
    bool restored;       /* read back from the state directory at adp_new() */
} adp_pending_t;
/* Fills out[0..max) with the unanswered messages in posting order and
 * returns how many there are (which may exceed max). After adp_new() with
 * a state_dir, the ones with `restored` are what the previous run left:
 * they are sent again once connected, and their outcomes are reported. */
size_t adp_outbox_list(const adp_client_t *client, adp_pending_t *out, size_t max);

/* Processes traffic (deliveries, heartbeats, reconnects) for up to
 * timeout_ms (0 = only what is pending). Returns 0, or HUB_EREFUSED if the
 * hub refused the key on a reconnect. */
int adp_run(adp_client_t *client, int timeout_ms);

/* Pings the hub itself (a Heartbeat it echoes), processing traffic while it
 * waits: 0 with the round trip in *rtt_us (may be NULL), HUB_ECLOSED when
 * not connected, HUB_ETIMEDOUT. */
int adp_ping_hub(adp_client_t *client, uint32_t timeout_ms, uint64_t *rtt_us);

const char *adp_member_id(const adp_client_t *client);
const char *adp_last_error(const adp_client_t *client);
int adp_last_nack_code(const adp_client_t *client); /* lth.v1.NackCode, 0 if none */
/* The hub answers UNAVAILABLE when its store did not complete the commit of
 * an envelope (its database connection was lost, or the database is
 * failing over): not a refusal. The library sends the same envelope again
 * by itself (after 200 ms, doubling to 5 s while it lasts); its outcome is
 * reported once the hub answers otherwise, and adp_send_event() and
 * adp_request() go on waiting meanwhile (adp_last_nack_code() then says
 * UNAVAILABLE). This counts the envelopes so sent again, in all. */
size_t adp_resent_count(const adp_client_t *client);
bool adp_connected(const adp_client_t *client);    /* Welcome received and hub not silent */
/* The hub endpoint in use (or being tried), and how many times the client
 * has moved from one endpoint of its list to the next. */
const char *adp_hub_endpoint(const adp_client_t *client);
uint64_t adp_failovers(const adp_client_t *client);
void adp_reply_free(adp_reply_t *reply);

#endif
