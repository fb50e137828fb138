/* hubfix — an end-to-end fixture: a temporary directory with freshly
 * generated keys, a real hubd on an ephemeral 127.0.0.1 port, hub-adapter
 * processes, SDK clients and raw CURVE sockets for sending hand-made frames.
 *
 * Layout under f->dir: secrets/ (every member's .pub and .secret, made by
 * `hubctl keygen`), keys/ (the hub's key directory: .pub files of the
 * members the hub knows), data/ (the store), hubd.conf, *.log.
 */
#ifndef HUBFIX_H
#define HUBFIX_H

#include "adp.h"
#include "hub_wire.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#define HUBFIX_HUB_ID "VN/GOV/HN-LGSP/HUB"

typedef struct {
    char dir[PATH_MAX];
    char conf_path[PATH_MAX];
    char extra_conf[2048];
    char endpoint[256];
    char http[64];        /* "127.0.0.1:PORT" when the config has http_listen */
    char hubd_log[PATH_MAX];
    pid_t hubd;
} hubfix_t;

/* Makes the directory, the hub's keys and hubd.conf (extra_conf lines are
 * appended; may be NULL). */
void hubfix_init(hubfix_t *f, const char *extra_conf);
/* A second hubd node of the same hub (store = postgresql, cluster = on in
 * extra_conf): directory first->dir/name, first's keys (symbolic links),
 * its own data directory and log. Start it with hubfix_start; stop it
 * before first's hubfix_cleanup, which removes the directory. */
void hubfix_init_node(hubfix_t *f, const hubfix_t *first, const char *name,
                      const char *extra_conf);
/* Generates a member's keys with hubctl keygen; when known, copies its .pub
 * into the hub's key directory. */
void hubfix_add_member(hubfix_t *f, const char *member_id, bool known);
/* hubfix_add_member(f, id, true) for each id of the NULL-terminated list;
 * HUBFIX_ADD_MEMBERS(f, A, B, ...) writes the list. */
void hubfix_add_members(hubfix_t *f, const char *const member_ids[]);
#define HUBFIX_ADD_MEMBERS(f, ...) hubfix_add_members((f), (const char *const[]){__VA_ARGS__, NULL})
/* Copies an existing member's .pub (back) into the key directory. */
void hubfix_register_member(hubfix_t *f, const char *member_id);
/* Removes a member's .pub from the key directory (then SIGHUP the hub). */
void hubfix_forget_member(hubfix_t *f, const char *member_id);
void hubfix_secret_path(const hubfix_t *f, const char *member_id, char *out);
void hubfix_public_path(const hubfix_t *f, const char *member_id, char *out);
/* Starts hubd and waits until it listens. Restarting keeps dir and port. */
void hubfix_start(hubfix_t *f);
/* hubfix_start with lib in LD_PRELOAD for hubd alone (a fault or a fake
 * clock), which a sanitized build accepts too. */
void hubfix_start_preloaded(hubfix_t *f, const char *lib);
/* The fault library tests/faults/failsync.c builds (HUB_FAILSYNC_LIB, for
 * hubfix_start_preloaded); when it is not there, cleans f up (the teardown
 * does not run after a skip) and skips the test. */
const char *hubfix_failsync_lib(hubfix_t *f);
/* SIGTERM, and asserts hubd exited 0. */
void hubfix_stop(hubfix_t *f);
/* Starts `hub-adapter` for member_id running plugin with extra config lines,
 * waits until it serves; returns its pid. */
pid_t hubfix_start_adapter(hubfix_t *f, const char *member_id, const char *plugin,
                           const char *extra_conf);
/* hubfix_start_adapter with a state directory of its own (DIR/state-SLUG)
 * and tick_ms before the extra lines, as the domain plugins' tests start
 * their adapters. */
pid_t hubfix_start_ticking(hubfix_t *f, const char *member_id, const char *plugin, int tick_ms,
                           const char *extra_conf);
/* Starts tests/tools/SCRIPT (a Python mock of an outside system over
 * HTTPS) for f->dir with --cert, --key and --ca from the test's
 * certificates there (server.pem, server.key, ca.pem), then extra (NULL-
 * terminated), its output in mock.log; waits for the port it writes to
 * f->dir/port and stores it in *port. Returns its pid. */
pid_t hubfix_start_tls_mock(hubfix_t *f, const char *script, const char *const extra[], int *port);
/* Runs the shell lines `steps` in f->dir/tls (made, umask 077), with
 * OpenSSL helpers for test certificates (P-256 keys, two days):
 * `ca NAME CN` makes NAME.key and a self-signed NAME.pem; `leaf NAME CA CN
 * EXT` makes NAME.key and NAME.pem signed by CA, with the extension line
 * EXT (e.g. 'subjectAltName=IP:127.0.0.1'). Asserts they succeed. */
void hubfix_make_tls(hubfix_t *f, const char *steps);
/* Writes to path a member-side configuration (hubctl's, the SDK's): this
 * hub's endpoint and key, member_id's secret key, then the extra lines
 * (may be NULL). */
void hubfix_member_conf(hubfix_t *f, const char *member_id, const char *extra_conf,
                        const char *path);
/* Writes to path the configuration hubfix_start_adapter gives hub-adapter:
 * this hub, member_id's key, plugin, then the extra lines (may be NULL). */
void hubfix_adapter_conf(hubfix_t *f, const char *member_id, const char *plugin,
                         const char *extra_conf, const char *path);
/* Runs hub-adapter with that configuration (in DIR/bad.conf) and asserts
 * that it refuses to start (exit 1); returns what it printed (free it). */
char *hubfix_adapter_refused(hubfix_t *f, const char *member_id, const char *plugin,
                             const char *extra_conf);
/* Connects an SDK client as member_id; asserts success. */
adp_client_t *hubfix_connect(hubfix_t *f, const char *member_id);
/* The same, keeping the client's outbox in state_dir (may be NULL). */
adp_client_t *hubfix_connect_state(hubfix_t *f, const char *member_id, const char *state_dir);

/* An SDK configuration for a member of this hub and the paths it points
 * into (so it must not be copied): the hub's endpoint and key, the member's
 * secret key, 5000 ms to connect, software "test", no state directory;
 * change cfg's fields as needed. */
typedef struct {
    adp_config_t cfg;
    char hub_pub[PATH_MAX];
    char secret[PATH_MAX];
} hubfix_client_conf_t;
void hubfix_client_conf(hubfix_t *f, const char *member_id, hubfix_client_conf_t *c);
/* Connects member_id's SDK client as hubfix_client_conf sets it up, with
 * software (its name in Hello; NULL: "test") and connect_timeout_ms (0:
 * 5000), without asserting: for a thread of the test's own, or a
 * connection meant to fail. 0, or the SDK's error with *c NULL and err
 * (err_size bytes) saying why. */
int hubfix_try_connect(hubfix_t *f, const char *member_id, const char *software,
                       uint32_t connect_timeout_ms, adp_client_t **c, char *err, size_t err_size);

/* A sender in a thread of its own, keeping the hub busy: member `from`
 * (its SDK client named `tag`) posts events "<tag> <i>" (i = 0, 1, ...) to
 * `to`'s `service`, `batch` at a time with adp_run(c, pause_ms) after each
 * (and more while over max_outbox are unACKed; 0: no such cap), until stop
 * is set; then it waits up to drain_ms for every ACK. Its first failure
 * (connect, post, or messages never ACKed) is in error, "" when none; it
 * stops at a failure. The caller sets the pacing fields, then calls
 * hubfix_sender_start; posted and error are final after
 * hubfix_sender_join. */
typedef struct {
    int batch, pause_ms;
    size_t max_outbox;
    int drain_ms;
    volatile bool stop;
    volatile long posted;
    char error[256];
    hubfix_t *fix;
    const char *from, *to, *service, *tag;
    pthread_t thread;
} hubfix_sender_t;
/* Starts the sender's thread; asserts it starts. */
void hubfix_sender_start(hubfix_sender_t *s, hubfix_t *f, const char *from, const char *to,
                         const char *service, const char *tag);
/* Waits for the sender's thread to end (set stop first). */
void hubfix_sender_join(hubfix_sender_t *s);
/* Stops hubd (asserting it exits 0), then every other process, and removes
 * the directory (kept if hubd did not exit cleanly). */
void hubfix_cleanup(hubfix_t *f);
/* Appends lines (each ending in a newline) to hubd.conf. */
void hubfix_append_conf(hubfix_t *f, const char *lines);
/* Stops hubd (asserting it exits 0), appends lines to hubd.conf and starts
 * it again on the same port. */
void hubfix_restart_with(hubfix_t *f, const char *lines);
/* The HTTP port hubd wrote to its ready file (http_listen with port 0);
 * asserts there is one. */
int hubfix_http_port(hubfix_t *f);
/* Asserts the hub still serves: hubd runs, and `from` (an SDK client)
 * gets echo_member's echo/v1 answer, from echo_member, byte for byte. */
void hubfix_assert_serves(hubfix_t *f, const char *from, const char *echo_member);
/* Certificate mode: `hubctl ca init` in f->dir/ca, whose path goes to
 * ca_dir (PATH_MAX). */
void hubfix_ca_init(hubfix_t *f, char *ca_dir);
/* `hubctl cert issue` for a member's key, optionally with --not-before and
 * --not-after (NULL: hubctl's defaults); asserts success. */
void hubfix_cert_issue(hubfix_t *f, const char *ca_dir, const char *member_id,
                       const char *not_before, const char *not_after);
/* `hubctl cert revoke`, SIGHUP, and the hub's log line saying it took the
 * revocation (within 3 s); asserts each. */
void hubfix_cert_revoke(hubfix_t *f, const char *ca_dir, const char *member_id);
/* `hubctl audit show --message ID` over the stopped hub's audit log:
 * asserts it succeeds; returns its output (malloc'ed). */
char *hubfix_audit_show(hubfix_t *f, const char *message_id);
/* Queues (adp_post_event) or sends and waits for the ACK of (adp_send_event,
 * 5 s) the text/plain event "<tag> <n>" for receiver's record/v1, as the
 * record plugin's tests do; asserts the SDK takes it. */
void hubfix_post_record(adp_client_t *c, const char *receiver, const char *tag, int n);
void hubfix_send_record(adp_client_t *c, const char *receiver, const char *tag, int n);
/* Sets an SDK handler's reply to the text/plain `text`; returns 0 for the
 * handler to return. */
int hubfix_reply_text(adp_reply_t *reply, const char *text);
/* An SDK handler that counts the messages it gets in *(int *)user. */
int hubfix_count_handler(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply, void *user);
/* Runs the client until *count reaches n (within timeout_ms) and asserts
 * it did; then runs it quiet_ms more and asserts that nothing more came. */
void hubfix_run_until_exactly(adp_client_t *c, const int *count, int n, int timeout_ms,
                              int quiet_ms);
/* True while hubd runs. */
bool hubfix_hub_alive(hubfix_t *f);

/* A raw CURVE DEALER for hand-made frames. */
typedef struct {
    void *ctx;
    void *sock;
} rawcli_t;

void rawcli_open(rawcli_t *c, hubfix_t *f, const char *member_id);
/* rawcli_open with a receive high-water mark and kernel receive buffer
 * (bytes); 0 keeps the default. */
void rawcli_open_buffers(rawcli_t *c, hubfix_t *f, const char *member_id, int rcvhwm, int rcvbuf);
/* rawcli_open, then rawcli_hello. */
void rawcli_connect(rawcli_t *c, hubfix_t *f, const char *member_id);
void rawcli_send(rawcli_t *c, const void *data, size_t len);
void rawcli_send_frame(rawcli_t *c, hub_frame_t *frame);
/* Settles hub_seqs[0..n) (a Settle frame with no rejects). */
void rawcli_settle(rawcli_t *c, const uint64_t *hub_seqs, size_t n);
/* Sends Hello as member_id (with one subscription, or NULL), without
 * waiting for the answer. */
void rawcli_send_hello(rawcli_t *c, const char *member_id, const char *subscription);
/* Sends Hello as member_id and waits for Welcome (asserts). */
void rawcli_hello(rawcli_t *c, const char *member_id);
/* Sends a Heartbeat, which keeps the member online: the hub marks a member
 * offline after three heartbeat periods without a frame from it. */
void rawcli_heartbeat(rawcli_t *c);
/* An encoded Heartbeat frame (malloc'ed), for sending by hand. */
uint8_t *rawcli_heartbeat_bytes(size_t *len);
/* Next frame within timeout_ms, or NULL. Free with hub_frame_free. */
hub_frame_t *rawcli_recv(rawcli_t *c, int timeout_ms);
/* Next frame of the given body case within timeout_ms (others skipped). */
hub_frame_t *rawcli_recv_case(rawcli_t *c, int body_case, int timeout_ms);
void rawcli_close(rawcli_t *c);
/* The first envelope of a Deliveries frame, decoded (asserts it decodes);
 * free it with hub_envelope_free. */
hub_envelope_t *rawcli_delivered_envelope(const hub_frame_t *f);
/* Waits for a Receipts frame and asserts it holds one ACK, for message_id. */
void rawcli_expect_ack(rawcli_t *c, const char *message_id, int timeout_ms);
/* Encodes an envelope for a batch, signed with the sender's key when the
 * fixture has it (RAWCLI_UNSIGNED: leave it unsigned; RAWCLI_BAD_SIGNATURE:
 * sign, then flip a byte); returns malloc'ed bytes. */
enum { RAWCLI_SIGNED = 0, RAWCLI_UNSIGNED = 1 << 8, RAWCLI_BAD_SIGNATURE = 1 << 9 };
uint8_t *rawcli_envelope(hubfix_t *f, const char *sender, const char *receiver, const char *service,
                         const void *payload, size_t len, int delivery, char id_out[37],
                         size_t *out_len);
/* rawcli_envelope (with f's keys), sent on c in a Batch of its own, the
 * message id in id_out. */
void rawcli_send_envelope(rawcli_t *c, hubfix_t *f, const char *sender, const char *receiver,
                          const char *service, const void *payload, size_t len, int delivery,
                          char id_out[37]);
/* Sends a Batch of n encoded envelopes (still the caller's). */
void rawcli_send_batch(rawcli_t *c, ProtobufCBinaryData *items, size_t n);
/* Sends a Batch holding one encoded envelope. */
void rawcli_send_batch1(rawcli_t *c, const uint8_t *env, size_t len);

#endif
