/* The durable brokers an agency would pick instead of the hub (issue 21,
 * item 4), each started privately by hubbench as it starts nats-server, on
 * 127.0.0.1, with its data in the work directory (the disk the hub's store
 * is on), and each fsync-before-confirm like the hub:
 *
 *   RabbitMQ  a private node of Debian's rabbitmq-server (its own epmd port,
 *             node name, data and log directories, no system service), one
 *             quorum queue, persistent messages, publisher confirms, manual
 *             acks (multiple, at most 100 at a time), librabbitmq.
 *   PostgreSQL  a private cluster (initdb in the work directory, 127.0.0.1 on
 *             an ephemeral port, fsync and synchronous_commit on): the
 *             producer inserts 100 rows per commit, the consumer takes them
 *             with DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED
 *             LIMIT 100) RETURNING and commits, libpq.
 *
 * Both are producer thread -> broker -> consumer thread, like the hub's
 * one-way event rows: `inflight` messages outstanding end to end, latency
 * send -> consumed, CPU of the broker's whole process tree. When a broker or
 * its client library is missing, the row says so and the bench goes on. */
#include "bench.h"

#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DURABLE__QUEUE "hubbench"
#define DURABLE__ROWS 100 /* rows per commit (PostgreSQL), acks per basic.ack (RabbitMQ) */
#define DURABLE__START_MS 90000

static void durable__sleep_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

/* The last match of a glob pattern (the newest version), or false. */
static bool durable__find(const char *pattern, char *out, size_t size)
{
    glob_t g;
    bool found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    if (found)
        snprintf(out, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    return found;
}

#if defined(HAVE_RABBITMQ) || defined(HAVE_LIBPQ)
/* A queue's measured window: its consumer and producer threads on the case
 * (user, whose window is win), with the broker's process tree (pid)
 * measured; then the row in out from the window and the latencies. */
static void durable__run(bench_result_t *out, bench_window_t *win, bench_lat_t *lat, pid_t pid,
                         void *(*consumer)(void *), void *(*producer)(void *),
                         bool (*drained)(void *), void *user)
{
    pthread_t producer_thread, consumer_thread;
    pthread_create(&consumer_thread, NULL, consumer, user);
    pthread_create(&producer_thread, NULL, producer, user);
    win->cpu_pid = pid;
    bench_window_run(win, drained, user);
    pthread_join(producer_thread, NULL);
    pthread_join(consumer_thread, NULL);
    bench_result_from(out, win, lat);
}
#endif

/* ------------------------------------------------------------------------ */
/* RabbitMQ                                                                  */

#define RABBITMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"

#ifndef HAVE_RABBITMQ

void bench_rabbitmq(int inflight, bench_result_t *out)
{
    (void)inflight;
    bench_result_na(out, "n/a (hubbench was built without librabbitmq-dev)");
}

#else

#include <amqp.h>
#include <amqp_tcp_socket.h>

typedef struct {
    bench_window_t win;
    bench_lat_t lat;
    amqp_connection_state_t producer, consumer;
    int inflight;
    atomic_bool consumer_done, producer_done;
} rmq__case_t;

static const char *rmq__reply_text(amqp_rpc_reply_t r)
{
    static _Thread_local char buf[160];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD || r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            /* Both close methods start with reply_code and reply_text. */
            amqp_channel_close_t *c = r.reply.decoded;
            snprintf(buf, sizeof buf, "server closed: %d %.*s", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
            return buf;
        }
        return "server exception";
    }
    return "?";
}

/* Connects, logs in as guest (allowed from 127.0.0.1) and opens channel 1. */
static int rmq__connect(amqp_connection_state_t *out, int port, char *err, size_t err_size)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    if (!sock) {
        snprintf(err, err_size, "cannot make an AMQP connection");
        if (conn)
            amqp_destroy_connection(conn);
        return -1;
    }
    int rc = amqp_socket_open(sock, "127.0.0.1", port);
    if (rc != AMQP_STATUS_OK) {
        snprintf(err, err_size, "connect 127.0.0.1:%d: %s", port, amqp_error_string2(rc));
        amqp_destroy_connection(conn);
        return -1;
    }
    amqp_rpc_reply_t r =
        amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_channel_open(conn, 1);
        r = amqp_get_rpc_reply(conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        snprintf(err, err_size, "login: %s", rmq__reply_text(r));
        amqp_destroy_connection(conn);
        return -1;
    }
    *out = conn;
    return 0;
}

static void rmq__close(amqp_connection_state_t *conn)
{
    if (!*conn)
        return;
    amqp_channel_close(*conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(*conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(*conn);
    *conn = NULL;
}

/* Publishes persistent messages while fewer than `inflight` are unconsumed
 * or unconfirmed, and reads the confirms. */
static void *rmq__producer(void *arg)
{
    rmq__case_t *c = arg;
    uint8_t payload[BENCH_PAYLOAD];
    memset(payload, 'x', sizeof payload);
    uint64_t seq = 0, published = 0, confirmed = 0;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2; /* persistent */
    props.content_type = amqp_cstring_bytes("application/octet-stream");
    while (atomic_load(&c->win.phase) != BENCH_STOP) {
        bool sent = false;
        while (atomic_load(&c->win.phase) < BENCH_DRAIN &&
               atomic_load(&c->win.outstanding) < c->inflight &&
               published - confirmed < (uint64_t)c->inflight) {
            bench_payload_fill(payload, sizeof payload, ++seq);
            amqp_bytes_t body = {sizeof payload, payload};
            atomic_fetch_add(&c->win.outstanding, 1);
            int rc = amqp_basic_publish(c->producer, 1, amqp_empty_bytes,
                                        amqp_cstring_bytes(DURABLE__QUEUE), 0, 0, &props, body);
            if (rc != AMQP_STATUS_OK) {
                bench_window_error(&c->win, "basic.publish: %s", amqp_error_string2(rc));
                atomic_fetch_sub(&c->win.outstanding, 1);
                goto out;
            }
            published++;
            sent = true;
        }
        /* Confirms: wait a little only when there is nothing to send. */
        struct timeval tv = {0, sent ? 0 : 20000};
        amqp_frame_t frame;
        int rc = amqp_simple_wait_frame_noblock(c->producer, &frame, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            bench_window_error(&c->win, "reading confirms: %s", amqp_error_string2(rc));
            break;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = frame.payload.method.decoded;
            if (ack->multiple)
                confirmed = ack->delivery_tag > confirmed ? ack->delivery_tag : confirmed;
            else
                confirmed++;
        } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            bench_window_error(&c->win, "the broker refused (basic.nack) a message");
            confirmed++;
        } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            bench_window_error(&c->win, "the broker closed the producer's channel");
            break;
        }
    }
out:
    atomic_store(&c->producer_done, true);
    return NULL;
}

/* Consumes with manual acks: one basic.ack (multiple) per 100 messages, or
 * sooner when nothing more is buffered. */
static void *rmq__consumer(void *arg)
{
    rmq__case_t *c = arg;
    uint64_t last_tag = 0;
    int unacked = 0;
    while (atomic_load(&c->win.phase) != BENCH_STOP) {
        amqp_maybe_release_buffers(c->consumer);
        amqp_envelope_t env;
        struct timeval tv = {0, 20000};
        amqp_rpc_reply_t r = amqp_consume_message(c->consumer, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            bench_window_error(&c->win, "basic.consume: %s", rmq__reply_text(r));
            break;
        }
        uint64_t sent = bench_payload_sent_ns(env.message.body.bytes, env.message.body.len);
        last_tag = env.delivery_tag;
        unacked++;
        amqp_destroy_envelope(&env);
        bench_window_complete(&c->win, &c->lat, sent);
        if (unacked >= DURABLE__ROWS ||
            (!amqp_data_in_buffer(c->consumer) && !amqp_frames_enqueued(c->consumer))) {
            int rc = amqp_basic_ack(c->consumer, 1, last_tag, 1);
            if (rc != AMQP_STATUS_OK) {
                bench_window_error(&c->win, "basic.ack: %s", amqp_error_string2(rc));
                break;
            }
            unacked = 0;
        }
    }
    atomic_store(&c->consumer_done, true);
    return NULL;
}

static bool rmq__drained(void *user)
{
    return atomic_load(&((rmq__case_t *)user)->win.outstanding) <= 0;
}

void bench_rabbitmq(int inflight, bench_result_t *out)
{
    char epmd[PATH_MAX];
    if (access(RABBITMQ_SERVER, X_OK) != 0) {
        bench_result_na(out, "n/a (%s not installed: apt-get install rabbitmq-server)",
                        RABBITMQ_SERVER);
        return;
    }
    if (!durable__find("/usr/lib/erlang/erts-*/bin/epmd", epmd, sizeof epmd)) {
        bench_result_na(out, "n/a (no epmd in /usr/lib/erlang: apt-get install erlang-base)");
        return;
    }
    static int run_no;
    char dir[PATH_MAX], path[PATH_MAX + 64], log[PATH_MAX + 64], epmd_log[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/rabbitmq-%d", bench_opts.workdir, ++run_no);
    tkp_rmrf(dir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/enabled_plugins", dir);
    tkp_write_file(path, "[].\n", 0644);
    snprintf(path, sizeof path, "%s/rabbitmq.conf", dir);
    tkp_write_file(path, "log.console = false\nlog.file.level = warning\n", 0644);
    snprintf(log, sizeof log, "%s/rabbitmq-server.log", dir);
    snprintf(epmd_log, sizeof epmd_log, "%s/epmd.log", dir);

    /* Its own epmd, in the foreground as our child, so that nothing is left
     * behind and a RabbitMQ already on this machine is not touched. */
    int amqp_port = bench_free_port(), dist_port = bench_free_port(), epmd_port = bench_free_port();
    char epmd_port_s[16];
    snprintf(epmd_port_s, sizeof epmd_port_s, "%d", epmd_port);
    char *epmd_argv[] = {epmd, "-port", epmd_port_s, "-address", "127.0.0.1", NULL};
    pid_t epmd_pid = tkp_spawn(epmd_argv, epmd_log);

    char env_v[12][PATH_MAX + 64];
    int k = 0;
    snprintf(env_v[k++], sizeof env_v[0], "HOME=%s", dir); /* its Erlang cookie */
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_CONF_ENV_FILE=%s/rabbitmq-env.conf", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_CONFIG_FILE=%s/rabbitmq.conf", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_ADVANCED_CONFIG_FILE=%s/advanced.config", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_MNESIA_BASE=%s/mnesia", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_LOG_BASE=%s/log", dir);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_NODENAME=hubbench%ld@localhost",
             (long)getpid());
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_NODE_PORT=%d", amqp_port);
    snprintf(env_v[k++], sizeof env_v[0], "RABBITMQ_DIST_PORT=%d", dist_port);
    snprintf(env_v[k++], sizeof env_v[0], "ERL_EPMD_PORT=%d", epmd_port);
    char dist_if[] = "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface "
                     "{127,0,0,1}";
    char *envp[15];
    for (int i = 0; i < k; i++)
        envp[i] = env_v[i];
    envp[k++] = dist_if;
    envp[k] = NULL;
    char *argv[] = {RABBITMQ_SERVER, NULL};
    pid_t pid = tkp_spawn_env(argv, log, envp, (uid_t)-1, (gid_t)-1);

    rmq__case_t *c = calloc(1, sizeof *c);
    char err[256] = "did not start";
    if (!c) {
        bench_result_na(out, "out of memory");
        goto stop;
    }
    c->inflight = inflight;
    bench_window_init(&c->win);
    /* RabbitMQ takes seconds to boot: try until it answers. */
    uint64_t deadline = bench_now_ns() + (uint64_t)DURABLE__START_MS * 1000000u;
    while (bench_now_ns() < deadline && bench_alive(pid) &&
           rmq__connect(&c->producer, amqp_port, err, sizeof err) != 0)
        tkp_sleep_ms(250);
    if (!c->producer || rmq__connect(&c->consumer, amqp_port, err, sizeof err) != 0) {
        bench_result_na(out, "n/a (RabbitMQ: %s; see %s)", err, dir);
        goto stop;
    }
    amqp_table_entry_t type;
    type.key = amqp_cstring_bytes("x-queue-type");
    type.value.kind = AMQP_FIELD_KIND_UTF8;
    type.value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t args = {1, &type};
    amqp_queue_declare(c->producer, 1, amqp_cstring_bytes(DURABLE__QUEUE), 0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->producer);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_confirm_select(c->producer, 1);
        r = amqp_get_rpc_reply(c->producer);
    }
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_basic_qos(c->consumer, 1, 0, (uint16_t)(inflight < 65535 ? inflight : 65535), 0);
        r = amqp_get_rpc_reply(c->consumer);
    }
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_basic_consume(c->consumer, 1, amqp_cstring_bytes(DURABLE__QUEUE), amqp_empty_bytes, 0,
                           0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(c->consumer);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        bench_result_na(out, "n/a (RabbitMQ quorum queue: %s)", rmq__reply_text(r));
        goto stop;
    }
    durable__run(out, &c->win, &c->lat, pid, rmq__consumer, rmq__producer, rmq__drained, c);
stop:
    if (c) {
        rmq__close(&c->producer);
        rmq__close(&c->consumer);
        bench_lat_free(&c->lat);
        free(c);
    }
    tkp_stop(pid);
    tkp_stop(epmd_pid);
    if (!bench_opts.verbose)
        tkp_rmrf(dir);
}

#endif

/* ------------------------------------------------------------------------ */
/* PostgreSQL                                                                */

#ifndef HAVE_LIBPQ

void bench_pgqueue(int inflight, bench_result_t *out)
{
    (void)inflight;
    bench_result_na(out, "n/a (hubbench was built without libpq-dev)");
}

int bench_pg_start(bench_pg_t *pg, char *err, size_t err_size)
{
    memset(pg, 0, sizeof *pg);
    snprintf(err, err_size, "n/a (hubbench was built without libpq-dev)");
    return -1;
}

void bench_pg_stop(bench_pg_t *pg)
{
    (void)pg;
}

void bench_pg_probe_open(bench_pg_t *pg)
{
    (void)pg;
}

void bench_pg_probe_edge(void *pg, int which)
{
    (void)pg;
    (void)which;
}

void bench_pg_probe_note(const bench_pg_t *pg, const bench_result_t *r, double secs, char *note,
                         size_t size)
{
    (void)pg;
    (void)r;
    (void)secs;
    (void)note;
    (void)size;
}

#else

#include <libpq-fe.h>

typedef struct {
    bench_window_t win;
    bench_lat_t lat;
    PGconn *producer, *consumer;
    int inflight;
} pgq__case_t;

static const char pgq__insert_name[] = "hubbench_insert";
static const char pgq__take_sql[] =
    "DELETE FROM hubbench_queue WHERE id IN (SELECT id FROM hubbench_queue ORDER BY id "
    "FOR UPDATE SKIP LOCKED LIMIT 100) RETURNING payload";

/* Runs argv (as uid/gid) to completion; 0 when it exits with 0. */
static int pgq__run(char *const argv[], const char *log, uid_t uid, gid_t gid, int timeout_ms)
{
    pid_t pid = tkp_spawn_env(argv, log, NULL, uid, gid);
    if (pid < 0)
        return -1;
    int status = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        tkp_sleep_ms(20);
    }
    tkp_stop(pid);
    return -1;
}

static void *pgq__producer(void *arg)
{
    pgq__case_t *c = arg;
    uint8_t payloads[DURABLE__ROWS][BENCH_PAYLOAD];
    const char *values[DURABLE__ROWS];
    int lengths[DURABLE__ROWS], formats[DURABLE__ROWS];
    memset(payloads, 'x', sizeof payloads);
    for (int i = 0; i < DURABLE__ROWS; i++) {
        values[i] = (const char *)payloads[i];
        lengths[i] = BENCH_PAYLOAD;
        formats[i] = 1; /* binary bytea */
    }
    uint64_t seq = 0;
    while (atomic_load(&c->win.phase) < BENCH_DRAIN) {
        if (atomic_load(&c->win.outstanding) + DURABLE__ROWS > c->inflight) {
            durable__sleep_us(200); /* the window is full: the consumer has the rows */
            continue;
        }
        for (int i = 0; i < DURABLE__ROWS; i++)
            bench_payload_fill(payloads[i], BENCH_PAYLOAD, ++seq);
        atomic_fetch_add(&c->win.outstanding, DURABLE__ROWS);
        PGresult *res = PQexecPrepared(c->producer, pgq__insert_name, DURABLE__ROWS, values,
                                       lengths, formats, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            bench_window_error(&c->win, "INSERT: %s", PQerrorMessage(c->producer));
            atomic_fetch_sub(&c->win.outstanding, DURABLE__ROWS);
            PQclear(res);
            break;
        }
        PQclear(res);
    }
    return NULL;
}

static void *pgq__consumer(void *arg)
{
    pgq__case_t *c = arg;
    while (atomic_load(&c->win.phase) != BENCH_STOP) {
        PGresult *res = PQexecPrepared(c->consumer, "hubbench_take", 0, NULL, NULL, NULL, 1);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            bench_window_error(&c->win, "DELETE ... SKIP LOCKED: %s", PQerrorMessage(c->consumer));
            PQclear(res);
            break;
        }
        int rows = PQntuples(res);
        uint64_t now = bench_now_ns();
        bool measure = atomic_load(&c->win.phase) == BENCH_MEASURE;
        for (int i = 0; i < rows; i++) {
            uint64_t sent = bench_payload_sent_ns((const uint8_t *)PQgetvalue(res, i, 0),
                                                  (size_t)PQgetlength(res, i, 0));
            if (measure)
                bench_lat_add(&c->lat, now - sent);
        }
        if (measure)
            atomic_fetch_add(&c->win.completed, (unsigned long long)rows);
        atomic_fetch_sub(&c->win.outstanding, rows);
        PQclear(res);
        if (rows == 0)
            durable__sleep_us(200); /* an empty queue: poll again soon */
    }
    return NULL;
}

static bool pgq__drained(void *user)
{
    return atomic_load(&((pgq__case_t *)user)->win.outstanding) <= 0;
}

/* The connection's error message, its first line, into err. */
static void pgq__error(PGconn *conn, char *err, size_t err_size)
{
    snprintf(err, err_size, "%s", PQerrorMessage(conn));
    err[strcspn(err, "\n")] = '\0';
}

static PGconn *pgq__connect(int port, char *err, size_t err_size)
{
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d user=bench dbname=postgres connect_timeout=5", port);
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        pgq__error(conn, err, err_size);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* A command's result (PQexec, PQprepare): true when it completed, else
 * false with the server's first line in err; res is cleared. */
static bool pgq__done(PGconn *conn, PGresult *res, char *err, size_t err_size)
{
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pgq__error(conn, err, err_size);
    PQclear(res);
    return ok;
}

static bool pgq__exec(PGconn *conn, const char *sql, char *err, size_t err_size)
{
    return pgq__done(conn, PQexec(conn, sql), err, err_size);
}

static bool pgq__prepare(PGconn *conn, const char *name, const char *sql, int n_params, char *err,
                         size_t err_size)
{
    return pgq__done(conn, PQprepare(conn, name, sql, n_params, NULL), err, err_size);
}

int bench_pg_start(bench_pg_t *pg, char *err, size_t err_size)
{
    memset(pg, 0, sizeof *pg);
    char initdb[PATH_MAX], postgres[PATH_MAX];
    if (!durable__find("/usr/lib/postgresql/*/bin/initdb", initdb, sizeof initdb) ||
        !durable__find("/usr/lib/postgresql/*/bin/postgres", postgres, sizeof postgres)) {
        snprintf(err, err_size,
                 "n/a (PostgreSQL server not installed: apt-get install postgresql)");
        return -1;
    }
    /* postgres refuses to run as root: as root, run it as the postgres user
     * (Debian's package makes one), which must reach the work directory. */
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(err, err_size,
                     "n/a (running as root and there is no postgres user to run "
                     "the PostgreSQL server as)");
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        chmod(bench_opts.workdir, 0711);
    }
    static int run_no;
    char data[PATH_MAX + 16], log[PATH_MAX + 32], conf[PATH_MAX + 48];
    snprintf(pg->dir, sizeof pg->dir, "%s/postgresql-%d", bench_opts.workdir, ++run_no);
    tkp_rmrf(pg->dir);
    mkdir(pg->dir, 0700);
    snprintf(data, sizeof data, "%s/data", pg->dir);
    snprintf(log, sizeof log, "%s/postgres.log", pg->dir);
    if (uid != (uid_t)-1 && chown(pg->dir, uid, gid) != 0) {
        snprintf(err, err_size, "n/a (cannot give %s to the postgres user: %s)", pg->dir,
                 strerror(errno));
        bench_pg_stop(pg);
        return -1;
    }
    /* initdb's own final fsync is skipped (setup, not the measured path);
     * the server runs with fsync on. */
    char *init_argv[] = {initdb, "-D",   data,          "-U",        "bench", "--auth=trust",
                         "-E",   "UTF8", "--no-locale", "--no-sync", NULL};
    if (pgq__run(init_argv, log, uid, gid, 120000) != 0) {
        snprintf(err, err_size, "n/a (initdb failed; see %s)", log);
        bench_pg_stop(pg);
        return -1;
    }
    pg->port = bench_free_port();
    /* HUBBENCH_PG_SETTINGS: more postgresql.conf lines, for profiling
     * (e.g. "log_min_duration_statement = 0"; with --verbose the cluster's
     * directory and log stay). */
    const char *extra = getenv("HUBBENCH_PG_SETTINGS");
    char settings[1536];
    snprintf(settings, sizeof settings,
             "\n# hubbench\nlisten_addresses = '127.0.0.1'\nport = %d\n"
             "unix_socket_directories = ''\nfsync = on\nsynchronous_commit = on\n"
             "full_page_writes = on\nwal_sync_method = fdatasync\nmax_wal_size = 2GB\n"
             "log_min_messages = warning\n%.1000s\n",
             pg->port, extra ? extra : "");
    snprintf(conf, sizeof conf, "%s/postgresql.conf", data);
    FILE *f = fopen(conf, "a");
    if (!f || fputs(settings, f) < 0) {
        if (f)
            fclose(f);
        snprintf(err, err_size, "n/a (cannot write %s)", conf);
        bench_pg_stop(pg);
        return -1;
    }
    fclose(f);
    char *argv[] = {postgres, "-D", data, NULL};
    pg->pid = tkp_spawn_env(argv, log, NULL, uid, gid);
    uint64_t deadline = bench_now_ns() + (uint64_t)DURABLE__START_MS * 1000000u;
    PGconn *conn = NULL;
    snprintf(err, err_size, "did not start");
    while (bench_now_ns() < deadline && bench_alive(pg->pid) &&
           !(conn = pgq__connect(pg->port, err, err_size)))
        tkp_sleep_ms(100);
    if (!conn) {
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, err_size, "n/a (PostgreSQL: %s; see %s)", why, log);
        bench_pg_stop(pg);
        return -1;
    }
    PQfinish(conn);
    return 0;
}

void bench_pg_probe_open(bench_pg_t *pg)
{
    char err[256];
    pg->lsn0 = pg->lsn1 = -1;
    if (!pg->probe)
        pg->probe = pgq__connect(pg->port, err, sizeof err);
}

/* The server's WAL insert position in bytes, or -1. */
static long long pgq__lsn(PGconn *conn)
{
    if (!conn)
        return -1;
    PGresult *res = PQexec(conn, "SELECT (pg_current_wal_insert_lsn() - '0/0')::int8");
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

void bench_pg_probe_edge(void *ctx, int which)
{
    bench_pg_t *pg = ctx;
    if (which == 0)
        pg->lsn0 = pgq__lsn(pg->probe);
    else
        pg->lsn1 = pgq__lsn(pg->probe);
}

/* Transaction commit records between two WAL positions (pg_waldump
 * --stats), or -1. */
static long long pgq__commits(const bench_pg_t *pg)
{
    char waldump[PATH_MAX], wal[PATH_MAX + 16], from[32], to[32];
    if (!pg->probe || pg->lsn0 < 0 || pg->lsn1 <= pg->lsn0 ||
        !durable__find("/usr/lib/postgresql/*/bin/pg_waldump", waldump, sizeof waldump))
        return -1;
    /* The last record may still be in the WAL buffers: flush it. */
    PQclear(PQexec(pg->probe, "SELECT pg_switch_wal()"));
    snprintf(wal, sizeof wal, "%s/data/pg_wal", pg->dir);
    snprintf(from, sizeof from, "%llX/%llX", (unsigned long long)pg->lsn0 >> 32,
             (unsigned long long)pg->lsn0 & 0xffffffffu);
    snprintf(to, sizeof to, "%llX/%llX", (unsigned long long)pg->lsn1 >> 32,
             (unsigned long long)pg->lsn1 & 0xffffffffu);
    char *argv[] = {waldump, "--stats=record", "-p", wal, "-s", from, "-e", to, NULL};
    char *out = NULL;
    long long commits = -1;
    (void)bench_capture(argv, &out, 60000); /* stats come before any error at the end */
    if (out) {
        const char *line = strstr(out, "\nTransaction/COMMIT ");
        unsigned long long n;
        if (line && sscanf(line + 1, "Transaction/COMMIT %llu", &n) == 1)
            commits = (long long)n;
    }
    free(out);
    return commits;
}

void bench_pg_probe_note(const bench_pg_t *pg, const bench_result_t *r, double secs, char *note,
                         size_t size)
{
    size_t len = strlen(note);
    if (len + 1 >= size || r->completed == 0 || secs <= 0)
        return;
    char buf[256] = "";
    size_t n = 0;
    if (r->cpu2_us > 0)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ", CPU %.1f µs/msg", r->cpu2_us);
    if (pg->lsn0 >= 0 && pg->lsn1 > pg->lsn0)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ", WAL %.0f bytes/msg",
                              (double)(pg->lsn1 - pg->lsn0) / (double)r->completed);
    long long commits = pgq__commits(pg);
    if (commits > 0 && n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, ", %.0f commits/s, %.0f msgs/commit",
                 (double)commits / secs, (double)r->completed / (double)commits);
    if (buf[0])
        snprintf(note + len, size - len, "%sPostgreSQL%s", len ? "; " : "", buf);
}

void bench_pg_stop(bench_pg_t *pg)
{
    if (pg->probe)
        PQfinish(pg->probe);
    pg->probe = NULL;
    /* SIGINT: fast shutdown (SIGTERM would wait for clients). */
    if (pg->pid > 0) {
        kill(pg->pid, SIGINT);
        tkp_stop(pg->pid);
    }
    pg->pid = 0;
    if (pg->dir[0] && !bench_opts.verbose)
        tkp_rmrf(pg->dir);
    pg->dir[0] = '\0';
}

void bench_pgqueue(int inflight, bench_result_t *out)
{
    bench_pg_t pg;
    char err[512];
    if (bench_pg_start(&pg, err, sizeof err) != 0) {
        bench_result_na(out, "%s", err);
        return;
    }
    pgq__case_t *c = calloc(1, sizeof *c);
    if (!c) {
        bench_result_na(out, "out of memory");
        goto stop;
    }
    c->inflight = inflight;
    bench_window_init(&c->win);
    if (!(c->producer = pgq__connect(pg.port, err, sizeof err)) ||
        !(c->consumer = pgq__connect(pg.port, err, sizeof err))) {
        bench_result_na(out, "n/a (PostgreSQL: %s)", err);
        goto stop;
    }
    char insert[DURABLE__ROWS * 8 + 64];
    int len = snprintf(insert, sizeof insert, "INSERT INTO hubbench_queue (payload) VALUES ");
    for (int i = 1; i <= DURABLE__ROWS; i++)
        len += snprintf(insert + len, sizeof insert - (size_t)len, "%s($%d)", i > 1 ? "," : "", i);
    if (!pgq__exec(c->producer,
                   "CREATE TABLE hubbench_queue (id bigserial PRIMARY KEY, payload bytea NOT NULL)",
                   err, sizeof err) ||
        !pgq__prepare(c->producer, pgq__insert_name, insert, DURABLE__ROWS, err, sizeof err) ||
        !pgq__prepare(c->consumer, "hubbench_take", pgq__take_sql, 0, err, sizeof err)) {
        bench_result_na(out, "n/a (PostgreSQL queue: %s)", err);
        goto stop;
    }
    durable__run(out, &c->win, &c->lat, pg.pid, pgq__consumer, pgq__producer, pgq__drained, c);
stop:
    if (c) {
        PQfinish(c->producer);
        PQfinish(c->consumer);
        bench_lat_free(&c->lat);
        free(c);
    }
    bench_pg_stop(&pg);
}

#endif
