/* Unit tests for hub_store: the durable message queue on LMDB. */
#include "hub_error.h"
#include "hub_store.h"
#include "hub_wire.h"
#include "testkit.h"

#include <check.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MINUTE_US (60ull * 1000000ull)

static char dir[PATH_MAX];
/* The PostgreSQL run (tests/support/with_postgres.sh sets HUB_TEST_PG_DSN):
 * the same tests on the PostgreSQL backend, each on an empty database. */
static const char *pg_dsn;

static void pg_sql(const char *sql)
{
    PGconn *c = PQconnectdb(pg_dsn);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

static void setup(void)
{
    tk_tmpdir(dir);
    if (pg_dsn)
        pg_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
}

static void teardown(void)
{
    tk_rmrf(dir);
}

static const hub_store_limits_t default_limits = {
    .max_bytes = 64ull << 20, .max_queue_depth = 0, .dedup_window_us = 10 * MINUTE_US};

static hub_store_t *open_store(const hub_store_limits_t *limits)
{
    hub_store_t *store = NULL;
    char err[512] = "";
    const hub_store_limits_t *l = limits ? limits : &default_limits;
    int rc = pg_dsn ? hub_store_open_pg(pg_dsn, true, l, &store, err, sizeof err)
                    : hub_store_open(dir, l, &store, err, sizeof err);
    ck_assert_msg(rc == 0, "hub_store_open: %d %s", rc, err);
    ck_assert_ptr_nonnull(store);
    return store;
}

static void make_msg(hub_store_msg_t *m, const char *sender, const char *receiver,
                     const char *id, const char *envelope)
{
    memset(m, 0, sizeof *m);
    snprintf(m->sender, sizeof m->sender, "%s", sender);
    snprintf(m->receiver, sizeof m->receiver, "%s", receiver);
    snprintf(m->message_id, sizeof m->message_id, "%s", id);
    snprintf(m->service, sizeof m->service, "VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1");
    m->envelope = (const uint8_t *)envelope;
    m->envelope_len = strlen(envelope);
}

/* Appends one message and returns its outcome; *seq gets its seq. */
static hub_store_outcome_t append1(hub_store_t *store, const char *sender, const char *receiver,
                                   const char *id, uint64_t *seq)
{
    hub_store_msg_t m;
    hub_store_outcome_t outcome;
    make_msg(&m, sender, receiver, id, id);
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    if (seq)
        *seq = m.seq;
    return outcome;
}

static size_t read_all(hub_store_t *store, const char *receiver, hub_store_msg_t *out,
                       size_t max, hub_store_arena_t *arena)
{
    size_t n = 99;
    ck_assert_int_eq(hub_store_read_queue(store, receiver, 0, max, out, &n, arena), 0);
    return n;
}

START_TEST(append_and_read_in_order)
{
    hub_store_t *store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);

    hub_store_msg_t batch[4];
    hub_store_outcome_t outcomes[4];
    make_msg(&batch[0], "VN/GOV/HN/MC", "VN/GOV/BCA/DC", "id-1", "envelope one");
    make_msg(&batch[1], "VN/GOV/HN/MC", "VN/GOV/HN/TAX", "id-2", "envelope two");
    make_msg(&batch[2], "VN/GOV/HN/MC", "VN/GOV/BCA/DC", "id-3", "");
    make_msg(&batch[3], "VN/GOV/HN/LAND", "VN/GOV/BCA/DC", "id-4", "envelope \0four");
    batch[3].envelope_len = 14; /* bytes, not a string: an embedded NUL survives */
    batch[0].accepted_at_us = 1000;
    batch[0].expires_at_us = 5000;
    ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(outcomes[i], HUB_STORE_OK);
    ck_assert_uint_gt(batch[0].seq, 0);
    ck_assert_uint_gt(batch[1].seq, batch[0].seq);
    ck_assert_uint_gt(batch[2].seq, batch[1].seq);
    ck_assert_uint_gt(batch[3].seq, batch[2].seq);
    ck_assert_uint_gt(batch[1].accepted_at_us, 0); /* 0 became "now" */

    hub_store_msg_t out[8];
    size_t n = read_all(store, "VN/GOV/BCA/DC", out, 8, arena);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(out[0].seq, batch[0].seq);
    ck_assert_uint_eq(out[1].seq, batch[2].seq);
    ck_assert_uint_eq(out[2].seq, batch[3].seq);
    ck_assert_str_eq(out[0].message_id, "id-1");
    ck_assert_str_eq(out[0].sender, "VN/GOV/HN/MC");
    ck_assert_str_eq(out[0].receiver, "VN/GOV/BCA/DC");
    ck_assert_str_eq(out[0].service, "VN/GOV/BCA/CSDLQGDC/citizen.lookup/v1");
    ck_assert_uint_eq(out[0].accepted_at_us, 1000);
    ck_assert_uint_eq(out[0].expires_at_us, 5000);
    ck_assert_uint_eq(out[0].attempts, 0);
    ck_assert_uint_eq(out[0].envelope_len, 12);
    ck_assert(memcmp(out[0].envelope, "envelope one", 12) == 0);
    ck_assert_uint_eq(out[1].envelope_len, 0);
    ck_assert_ptr_nonnull(out[1].envelope);
    ck_assert_uint_eq(out[2].envelope_len, 14);
    ck_assert(memcmp(out[2].envelope, "envelope \0four", 14) == 0);

    /* Paging: after_seq and max. */
    ck_assert_int_eq(hub_store_read_queue(store, "VN/GOV/BCA/DC", batch[0].seq, 1, out, &n, arena),
                     0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(out[0].seq, batch[2].seq);
    ck_assert_int_eq(hub_store_read_queue(store, "VN/GOV/BCA/DC", batch[3].seq, 8, out, &n, arena),
                     0);
    ck_assert_uint_eq(n, 0);
    /* A receiver whose name is a prefix of another sees only its own queue. */
    ck_assert_uint_eq(read_all(store, "VN/GOV/BCA", out, 8, arena), 0);
    ck_assert_uint_eq(read_all(store, "VN/GOV/HN/TAX", out, 8, arena), 1);
    ck_assert_str_eq(out[0].message_id, "id-2");

    /* Malformed items are refused before anything is written. */
    hub_store_msg_t bad;
    make_msg(&bad, "VN/GOV/HN/MC", "", "id-5", "x");
    ck_assert_int_eq(hub_store_append(store, &bad, 1, outcomes), HUB_EINVAL);
    make_msg(&bad, "VN/GOV/HN/MC", "VN/GOV/BCA/DC", "", "x");
    ck_assert_int_eq(hub_store_append(store, &bad, 1, outcomes), HUB_EINVAL);
    ck_assert_int_eq(hub_store_read_queue(store, "", 0, 8, out, &n, arena), HUB_EINVAL);

    hub_store_arena_destroy(&arena);
    ck_assert_ptr_null(arena);
    hub_store_arena_destroy(&arena); /* tolerates NULL */
    hub_store_close(&store);
    ck_assert_ptr_null(store);
    hub_store_close(&store);
}
END_TEST

START_TEST(seq_monotonic_across_reopen)
{
    hub_store_t *store = open_store(NULL);
    uint64_t s1, s2, s3;
    ck_assert_int_eq(append1(store, "A", "R", "m1", &s1), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "A", "R", "m2", &s2), HUB_STORE_OK);
    ck_assert_uint_gt(s2, s1);
    /* Remove everything: the next seq must still not reuse s2. */
    uint64_t seqs[] = {s1, s2};
    ck_assert_int_eq(hub_store_ack(store, "R", seqs, 2), 0);
    hub_store_close(&store);

    store = open_store(NULL);
    ck_assert_int_eq(append1(store, "A", "R", "m3", &s3), HUB_STORE_OK);
    ck_assert_uint_gt(s3, s2);
    hub_store_close(&store);
}
END_TEST

START_TEST(dedup_window)
{
    hub_store_t *store = open_store(NULL);
    uint64_t now = hub_now_us();
    hub_store_msg_t m;
    hub_store_outcome_t outcome;

    make_msg(&m, "VN/GOV/HN/MC", "R", "dup-id", "first");
    m.accepted_at_us = now;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_OK);
    uint64_t orig = m.seq;

    /* Same sender and id within the window: duplicate, original seq. */
    make_msg(&m, "VN/GOV/HN/MC", "R", "dup-id", "second");
    m.accepted_at_us = now + MINUTE_US;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(m.seq, orig);

    /* Another sender may use the same id. */
    make_msg(&m, "VN/GOV/HN/LAND", "R", "dup-id", "other sender");
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_OK);
    ck_assert_uint_ne(m.seq, orig);

    /* Still a duplicate after the original was acknowledged. */
    ck_assert_int_eq(hub_store_ack(store, "R", &orig, 1), 0);
    make_msg(&m, "VN/GOV/HN/MC", "R", "dup-id", "third");
    m.accepted_at_us = now + 2 * MINUTE_US;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(m.seq, orig);

    /* Past the window the id is new again. */
    make_msg(&m, "VN/GOV/HN/MC", "R", "dup-id", "fourth");
    m.accepted_at_us = now + 10 * MINUTE_US;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_OK);
    ck_assert_uint_gt(m.seq, orig);

    /* Only the two accepted messages are queued (the first was acked). */
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 2);
    ck_assert_str_eq(out[0].sender, "VN/GOV/HN/LAND");
    ck_assert(memcmp(out[1].envelope, "fourth", 6) == 0);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(dedup_within_batch)
{
    hub_store_t *store = open_store(NULL);
    hub_store_msg_t batch[4];
    hub_store_outcome_t outcomes[4];
    make_msg(&batch[0], "S", "R1", "x", "a");
    make_msg(&batch[1], "S", "R2", "x", "b"); /* same sender+id, other receiver */
    make_msg(&batch[2], "S", "R1", "y", "c");
    make_msg(&batch[3], "S", "R1", "x", "d");
    ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
    ck_assert_int_eq(outcomes[0], HUB_STORE_OK);
    ck_assert_int_eq(outcomes[1], HUB_STORE_DUPLICATE);
    ck_assert_int_eq(outcomes[2], HUB_STORE_OK);
    ck_assert_int_eq(outcomes[3], HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(batch[1].seq, batch[0].seq);
    ck_assert_uint_eq(batch[3].seq, batch[0].seq);

    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R1", out, 8, arena), 2);
    ck_assert_uint_eq(read_all(store, "R2", out, 8, arena), 0);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

/* The hub chooses seqs ahead of the commit (preset_seq) so that it can
 * deliver before it: the store keeps them, never hands out one of them
 * again (not even a duplicate's, which it did not store), and takes a
 * preset below its last seq (a replay came between) the ordinary way. */
START_TEST(preset_seqs_are_kept_and_never_reused)
{
    hub_store_t *store = open_store(NULL);
    uint64_t next0;
    ck_assert_int_eq(hub_store_next_seq(store, &next0), 0);
    hub_store_msg_t m[3];
    hub_store_outcome_t out[3];
    make_msg(&m[0], "S", "R", "a", "a");
    make_msg(&m[1], "S", "R", "b", "b");
    make_msg(&m[2], "S", "R", "a", "a"); /* duplicate of m[0] in the same call */
    m[0].preset_seq = next0 + 100;
    m[1].preset_seq = next0 + 101;
    m[2].preset_seq = next0 + 102;
    ck_assert_int_eq(hub_store_append(store, m, 3, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_OK);
    ck_assert_int_eq(out[1], HUB_STORE_OK);
    ck_assert_int_eq(out[2], HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(m[0].seq, next0 + 100);
    ck_assert_uint_eq(m[1].seq, next0 + 101);
    ck_assert_uint_eq(m[2].seq, next0 + 100); /* the original's */
    uint64_t next;
    ck_assert_int_eq(hub_store_next_seq(store, &next), 0);
    ck_assert_uint_eq(next, next0 + 103); /* past the duplicate's preset too */

    /* A preset below the last stored seq is still stored, in seq order. */
    hub_store_msg_t low;
    make_msg(&low, "S", "R", "c", "c");
    low.preset_seq = next0 + 50;
    ck_assert_int_eq(hub_store_append(store, &low, 1, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_OK);
    ck_assert_uint_eq(low.seq, next0 + 50);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t q[8];
    ck_assert_uint_eq(read_all(store, "R", q, 8, arena), 3);
    ck_assert_uint_eq(q[0].seq, next0 + 50);
    ck_assert_uint_eq(q[1].seq, next0 + 100);
    ck_assert_uint_eq(q[2].seq, next0 + 101);

    /* A seq in use is refused, and nothing of that call is stored. */
    hub_store_msg_t again;
    make_msg(&again, "S", "R", "d", "d");
    again.preset_seq = next0 + 101;
    ck_assert_int_eq(hub_store_append(store, &again, 1, out), HUB_ESTORE);
    ck_assert_uint_eq(read_all(store, "R", q, 8, arena), 3);

    /* Without a preset the store goes on after every preset it has seen,
     * and so does it after a reopen. */
    uint64_t s;
    ck_assert_int_eq(append1(store, "S", "R", "e", &s), HUB_STORE_OK);
    ck_assert_uint_eq(s, next0 + 103);
    hub_store_close(&store);
    store = open_store(NULL);
    ck_assert_int_eq(hub_store_next_seq(store, &next), 0);
    ck_assert_uint_eq(next, next0 + 104);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

/* A message its receiver has handled before the commit (the hub delivered
 * it early and got the settle) is kept only for de-duplication and look-up:
 * nothing is queued, and sending it again is a duplicate. */
START_TEST(settled_message_keeps_only_its_id)
{
    hub_store_t *store = open_store(NULL);
    hub_store_msg_t m[2];
    hub_store_outcome_t out[2];
    make_msg(&m[0], "S", "R", "handled", "payload that is not stored");
    m[0].settled = true;
    make_msg(&m[1], "S", "R", "queued", "payload that is stored");
    ck_assert_int_eq(hub_store_append(store, m, 2, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_OK);
    ck_assert_int_eq(out[1], HUB_STORE_OK);
    ck_assert_uint_gt(m[0].seq, 0);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t q[4];
    ck_assert_uint_eq(read_all(store, "R", q, 4, arena), 1);
    ck_assert_str_eq(q[0].message_id, "queued");
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "handled", &seq, &state), 0);
    ck_assert_uint_eq(seq, m[0].seq);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    /* Sent again: the original seq, nothing queued. */
    hub_store_msg_t again;
    make_msg(&again, "S", "R", "handled", "payload that is not stored");
    ck_assert_int_eq(hub_store_append(store, &again, 1, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(again.seq, m[0].seq);
    ck_assert_uint_eq(read_all(store, "R", q, 4, arena), 1);
    /* A settled message does not count against the receiver's depth cap. */
    hub_store_close(&store);
    hub_store_limits_t one = default_limits;
    one.max_queue_depth = 1;
    store = open_store(&one);
    hub_store_msg_t more;
    make_msg(&more, "S", "R", "handled-too", "x");
    more.settled = true;
    ck_assert_int_eq(hub_store_append(store, &more, 1, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_OK);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(ack_removes_and_is_idempotent)
{
    hub_store_t *store = open_store(NULL);
    uint64_t s[3];
    ck_assert_int_eq(append1(store, "S", "R", "a", &s[0]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "b", &s[1]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "c", &s[2]), HUB_STORE_OK);

    /* Another receiver cannot remove R's messages. */
    ck_assert_int_eq(hub_store_ack(store, "INTRUDER", s, 3), 0);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 3);

    uint64_t acked[] = {s[0], s[2], 987654321};
    ck_assert_int_eq(hub_store_ack(store, "R", acked, 3), 0);
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 1);
    ck_assert_uint_eq(out[0].seq, s[1]);
    ck_assert_int_eq(hub_store_ack(store, "R", acked, 3), 0); /* again: no change */
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 1);

    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "a", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    ck_assert_uint_eq(seq, s[0]);

    ck_assert_int_eq(hub_store_ack(store, "R", &s[1], 1), 0);
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 0);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(queue_full_per_receiver)
{
    hub_store_limits_t limits = default_limits;
    limits.max_queue_depth = 2;
    hub_store_t *store = open_store(&limits);
    hub_store_msg_t batch[4];
    hub_store_outcome_t outcomes[4];
    make_msg(&batch[0], "S", "SLOW", "1", "a");
    make_msg(&batch[1], "S", "SLOW", "2", "b");
    make_msg(&batch[2], "S", "SLOW", "3", "c");
    make_msg(&batch[3], "S", "FAST", "4", "d");
    ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
    ck_assert_int_eq(outcomes[0], HUB_STORE_OK);
    ck_assert_int_eq(outcomes[1], HUB_STORE_OK);
    ck_assert_int_eq(outcomes[2], HUB_STORE_QUEUE_FULL);
    ck_assert_uint_eq(batch[2].seq, 0);
    ck_assert_int_eq(outcomes[3], HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "SLOW", "5", NULL), HUB_STORE_QUEUE_FULL);
    ck_assert_int_eq(append1(store, "S", "FAST", "6", NULL), HUB_STORE_OK);

    /* The refused message was not remembered: once there is room, it is new. */
    ck_assert_int_eq(hub_store_ack(store, "SLOW", &batch[0].seq, 1), 0);
    ck_assert_int_eq(append1(store, "S", "SLOW", "3", NULL), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "SLOW", "7", NULL), HUB_STORE_QUEUE_FULL);
    hub_store_close(&store);

    /* The depth is kept across a reopen. */
    store = open_store(&limits);
    ck_assert_int_eq(append1(store, "S", "SLOW", "8", NULL), HUB_STORE_QUEUE_FULL);
    hub_store_close(&store);
}
END_TEST

START_TEST(store_full_keeps_what_is_stored)
{
    hub_store_limits_t limits = default_limits;
    limits.max_bytes = 1u << 20;
    hub_store_t *store = open_store(&limits);
    /* 1500 bytes: two records share a page, so deletes must copy pages. */
    static char envelope[1501];
    memset(envelope, 'e', sizeof envelope - 1);

    uint64_t accepted = 0, first_seq = 0;
    bool full = false;
    for (int i = 0; i < 1000 && !full; i++) {
        hub_store_msg_t batch[4];
        hub_store_outcome_t outcomes[4];
        char ids[4][32];
        for (int j = 0; j < 4; j++) {
            snprintf(ids[j], sizeof ids[j], "m-%d-%d", i, j);
            make_msg(&batch[j], "S", "R", ids[j], envelope);
            batch[j].expires_at_us = 1;
        }
        ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
        for (int j = 0; j < 4; j++) {
            if (outcomes[j] == HUB_STORE_OK) {
                accepted++;
                if (!first_seq)
                    first_seq = batch[j].seq;
            } else {
                ck_assert_int_eq(outcomes[j], HUB_STORE_FULL);
                ck_assert_uint_eq(batch[j].seq, 0);
                full = true;
            }
        }
    }
    ck_assert_msg(full, "a 1 MiB store took %llu messages of 1.5 KB",
                  (unsigned long long)accepted);
    ck_assert_uint_gt(accepted, 200);
    ck_assert_int_eq(append1(store, "S", "R", "small-but-full", NULL), HUB_STORE_FULL);

    uint64_t used, max, dead;
    ck_assert_int_eq(hub_store_usage(store, &used, &max, &dead), 0);
    ck_assert_uint_eq(max, 1u << 20);
    ck_assert_uint_le(used, max / 10 * 9);
    ck_assert_uint_ge(used, max / 10 * 8);
    hub_store_close(&store);

    /* Everything accepted survives, byte for byte. */
    store = open_store(&limits);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t *out = calloc(accepted + 1, sizeof *out);
    uint64_t *seqs = calloc(accepted + 1, sizeof *seqs);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(seqs);
    size_t n = read_all(store, "R", out, accepted + 1, arena);
    ck_assert_uint_eq(n, accepted);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(out[i].envelope_len, sizeof envelope - 1);
        ck_assert(memcmp(out[i].envelope, envelope, sizeof envelope - 1) == 0);
    }
    ck_assert_uint_eq(out[0].seq, first_seq);

    /* A full store can still be drained: one ack of three in four, spread
     * over every page (more pages than the free 10% hold at once). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i % 4 != 0)
            seqs[k++] = out[i].seq;
    ck_assert_int_eq(hub_store_ack(store, "R", seqs, k), 0);
    hub_store_arena_reset(arena);
    ck_assert_uint_eq(read_all(store, "R", out, accepted + 1, arena), n - k);
    ck_assert_int_eq(append1(store, "S", "R", "after-ack", NULL), HUB_STORE_OK);

    /* ... and expired messages can be dead-lettered and purged. */
    size_t n_expired;
    ck_assert_int_eq(hub_store_expired(store, 1, seqs, accepted + 1, &n_expired), 0);
    ck_assert_uint_eq(n_expired, n - k);
    ck_assert_int_eq(hub_store_dead_letter(store, seqs, n_expired, "ttl expired"), 0);
    size_t purged;
    ck_assert_int_eq(hub_store_dlq_purge_older(store, UINT64_MAX, &purged), 0);
    ck_assert_uint_eq(purged, n_expired);
    ck_assert_int_eq(hub_store_usage(store, NULL, NULL, &dead), 0);
    ck_assert_uint_eq(dead, 0);
    ck_assert_uint_eq(read_all(store, "R", out, accepted + 1, arena), 1);
    free(seqs);
    free(out);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(dead_letter_queue)
{
    hub_store_t *store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    uint64_t s[3];
    ck_assert_int_eq(append1(store, "S", "R", "d1", &s[0]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "d2", &s[1]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "d3", &s[2]), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_note_attempts(store, &s[0], 1), 0);
    ck_assert_int_eq(hub_store_note_attempts(store, &s[0], 1), 0);

    uint64_t dl[] = {s[0], s[1], 424242};
    ck_assert_int_eq(hub_store_dead_letter(store, dl, 3, "retry budget exhausted (8 attempts)"), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 1);
    ck_assert_uint_eq(out[0].seq, s[2]);

    hub_store_dead_t dead[8];
    size_t n;
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 8, dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(dead[0].msg.seq, s[0]);
    ck_assert_uint_eq(dead[1].msg.seq, s[1]);
    ck_assert_str_eq(dead[0].reason, "retry budget exhausted (8 attempts)");
    ck_assert_uint_eq(dead[0].msg.attempts, 2);
    ck_assert_ptr_null(dead[0].msg.envelope);
    ck_assert_uint_eq(dead[0].msg.envelope_len, 2);
    ck_assert_uint_gt(dead[0].dead_at_us, 0);
    ck_assert_int_eq(hub_store_dlq_list(store, s[0], 8, dead, &n, arena), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(dead[0].msg.seq, s[1]);
    ck_assert(memcmp(dead[0].msg.envelope, "d2", 2) == 0);

    hub_store_dead_t one;
    ck_assert_int_eq(hub_store_dlq_get(store, s[1], &one, arena), 0);
    ck_assert_str_eq(one.msg.message_id, "d2");
    ck_assert_str_eq(one.msg.receiver, "R");
    ck_assert(memcmp(one.msg.envelope, "d2", 2) == 0);
    ck_assert_int_eq(hub_store_dlq_get(store, s[2], &one, arena), HUB_ENOTFOUND);

    uint64_t seq, dead_count;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "d1", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DEAD);
    ck_assert_int_eq(hub_store_usage(store, NULL, NULL, &dead_count), 0);
    ck_assert_uint_eq(dead_count, 2);

    /* Replay: back in the queue, with a new seq, attempts reset, new expiry. */
    uint64_t before = hub_now_us(), replayed = 0;
    ck_assert_int_eq(hub_store_dlq_replay(store, s[0], MINUTE_US, 0, &replayed), 0);
    ck_assert_uint_gt(replayed, s[2]);
    ck_assert_int_eq(hub_store_dlq_replay(store, s[0], MINUTE_US, 0, NULL), HUB_ENOTFOUND);
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 2);
    ck_assert_uint_eq(out[1].seq, replayed);
    ck_assert_str_eq(out[1].message_id, "d1");
    ck_assert_uint_eq(out[1].attempts, 0);
    ck_assert_uint_ge(out[1].expires_at_us, before + MINUTE_US);
    ck_assert_uint_le(out[1].expires_at_us, hub_now_us() + MINUTE_US);
    ck_assert(memcmp(out[1].envelope, "d1", 2) == 0);
    ck_assert_int_eq(hub_store_lookup(store, "S", "d1", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    ck_assert_uint_eq(seq, replayed);

    /* Purge one, then purge older than a time. */
    ck_assert_int_eq(hub_store_dlq_purge(store, s[1]), 0);
    ck_assert_int_eq(hub_store_dlq_purge(store, s[1]), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "S", "d2", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);

    ck_assert_int_eq(hub_store_dead_letter(store, &s[2], 1, "ttl expired"), 0);
    tk_sleep_ms(2);
    /* Which seqs a call moved: a seq dead already (as when two nodes, or
     * two commits, name the same expired message) or unknown is not. */
    uint64_t again[3] = {s[2], replayed, UINT64_C(1) << 60};
    bool moved[3] = {true, false, true};
    ck_assert_int_eq(hub_store_dead_letter_moved(store, again, 3, "ttl expired", moved), 0);
    ck_assert(!moved[0] && moved[1] && !moved[2]);
    ck_assert_int_eq(hub_store_dead_letter_moved(store, again, 3, "ttl expired", moved), 0);
    ck_assert(!moved[0] && !moved[1] && !moved[2]);
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 8, dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 2);
    size_t purged = 99;
    ck_assert_int_eq(hub_store_dlq_purge_older(store, 0, &purged), 0);
    ck_assert_uint_eq(purged, 0);
    ck_assert_int_eq(hub_store_dlq_purge_older(store, dead[0].dead_at_us + 1, &purged), 0);
    ck_assert_uint_eq(purged, 1);
    ck_assert_int_eq(hub_store_dlq_get(store, s[2], &one, NULL), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_dlq_get(store, replayed, &one, NULL), 0);
    ck_assert_int_eq(hub_store_dlq_purge_older(store, UINT64_MAX, &purged), 0);
    ck_assert_uint_eq(purged, 1);
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 8, dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(hub_store_usage(store, NULL, NULL, &dead_count), 0);
    ck_assert_uint_eq(dead_count, 0);
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 0);

    /* A long reason is cut at a UTF-8 boundary. */
    uint64_t s4;
    ck_assert_int_eq(append1(store, "S", "R", "d4", &s4), HUB_STORE_OK);
    char reason[600] = "";
    for (int i = 0; i < 60; i++)
        strcat(reason, "hỏng "); /* "ỏ" is three bytes */
    ck_assert_int_eq(hub_store_dead_letter(store, &s4, 1, reason), 0);
    ck_assert_int_eq(hub_store_dlq_get(store, s4, &one, NULL), 0);
    size_t rl = strlen(one.reason);
    ck_assert_uint_le(rl, HUB_STORE_REASON_MAX);
    ck_assert_uint_ge(rl, HUB_STORE_REASON_MAX - 3);
    ck_assert(strncmp(one.reason, reason, rl) == 0);
    ck_assert((reason[rl] & 0xC0) != 0x80); /* the cut is not inside a character */

    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(purge_older_spans_transactions)
{
    hub_store_t *store = open_store(NULL);
    enum { N = 5000 };
    hub_store_msg_t *batch = calloc(N, sizeof *batch);
    hub_store_outcome_t *outcomes = calloc(N, sizeof *outcomes);
    uint64_t *seqs = calloc(N, sizeof *seqs);
    char (*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "p%d", i);
        make_msg(&batch[i], "S", "R", ids[i], "x");
    }
    ck_assert_int_eq(hub_store_append(store, batch, N, outcomes), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(outcomes[i], HUB_STORE_OK);
        seqs[i] = batch[i].seq;
    }
    ck_assert_int_eq(hub_store_dead_letter(store, seqs, N, "ttl expired"), 0);
    size_t purged = 0;
    ck_assert_int_eq(hub_store_dlq_purge_older(store, UINT64_MAX, &purged), 0);
    ck_assert_uint_eq(purged, N);
    uint64_t dead_count = 1;
    ck_assert_int_eq(hub_store_usage(store, NULL, NULL, &dead_count), 0);
    ck_assert_uint_eq(dead_count, 0);
    free(ids);
    free(seqs);
    free(outcomes);
    free(batch);
    hub_store_close(&store);
}
END_TEST

START_TEST(expired_scan)
{
    hub_store_t *store = open_store(NULL);
    hub_store_msg_t batch[4];
    hub_store_outcome_t outcomes[4];
    const uint64_t expiry[4] = {300, 100, 0, 200};
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "e%d", i);
        make_msg(&batch[i], "S", "R", id, "x");
        batch[i].accepted_at_us = 50;
        batch[i].expires_at_us = expiry[i];
    }
    ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);

    uint64_t seqs[8];
    size_t n;
    ck_assert_int_eq(hub_store_expired(store, 99, seqs, 8, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(hub_store_expired(store, 200, seqs, 8, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(seqs[0], batch[1].seq); /* earliest expiry first */
    ck_assert_uint_eq(seqs[1], batch[3].seq);
    ck_assert_int_eq(hub_store_expired(store, UINT64_MAX, seqs, 1, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(hub_store_expired(store, UINT64_MAX, seqs, 8, &n), 0);
    ck_assert_uint_eq(n, 3); /* the one without expiry never expires */

    /* Acked or dead-lettered messages leave the scan. */
    ck_assert_int_eq(hub_store_ack(store, "R", &batch[1].seq, 1), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &batch[3].seq, 1, "ttl expired"), 0);
    ck_assert_int_eq(hub_store_expired(store, UINT64_MAX, seqs, 8, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(seqs[0], batch[0].seq);
    hub_store_close(&store);
}
END_TEST

START_TEST(lookup_states_and_prune)
{
    hub_store_t *store = open_store(NULL);
    uint64_t now = hub_now_us(), seq;
    hub_store_state_t state;
    hub_store_msg_t batch[3];
    hub_store_outcome_t outcomes[3];
    make_msg(&batch[0], "S", "R", "queued", "q");
    make_msg(&batch[1], "S", "R", "dead", "d");
    make_msg(&batch[2], "S", "R", "done", "x");
    for (int i = 0; i < 3; i++)
        batch[i].accepted_at_us = now;
    ck_assert_int_eq(hub_store_append(store, batch, 3, outcomes), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &batch[1].seq, 1, "ttl expired"), 0);
    ck_assert_int_eq(hub_store_ack(store, "R", &batch[2].seq, 1), 0);

    ck_assert_int_eq(hub_store_lookup(store, "S", "queued", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    ck_assert_uint_eq(seq, batch[0].seq);
    ck_assert_int_eq(hub_store_lookup(store, "S", "dead", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DEAD);
    ck_assert_uint_eq(seq, batch[1].seq);
    ck_assert_int_eq(hub_store_lookup(store, "S", "done", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    ck_assert_int_eq(hub_store_lookup(store, "S", "never", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "OTHER", "queued", &seq, &state), HUB_ENOTFOUND);

    /* Within the window nothing is pruned. */
    size_t pruned = 99;
    ck_assert_int_eq(hub_store_prune_dedup(store, now + MINUTE_US, &pruned), 0);
    ck_assert_uint_eq(pruned, 0);
    /* Past it: the done one is forgotten; queued and dead stay findable. */
    ck_assert_int_eq(hub_store_prune_dedup(store, now + 10 * MINUTE_US, &pruned), 0);
    ck_assert_uint_eq(pruned, 3);
    ck_assert_int_eq(hub_store_lookup(store, "S", "done", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "S", "queued", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    ck_assert_int_eq(hub_store_lookup(store, "S", "dead", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DEAD);
    ck_assert_int_eq(hub_store_prune_dedup(store, now + 10 * MINUTE_US, &pruned), 0);
    ck_assert_uint_eq(pruned, 0);

    /* When they go, they are forgotten at once (their window is over). */
    ck_assert_int_eq(hub_store_ack(store, "R", &batch[0].seq, 1), 0);
    ck_assert_int_eq(hub_store_lookup(store, "S", "queued", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_dlq_purge(store, batch[1].seq), 0);
    ck_assert_int_eq(hub_store_lookup(store, "S", "dead", &seq, &state), HUB_ENOTFOUND);
    hub_store_close(&store);
}
END_TEST

typedef struct {
    char receiver[32];
    uint64_t depth, oldest;
} queue_stat_t;

typedef struct {
    queue_stat_t items[8];
    int n;
} queue_stats_t;

static void on_queue(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    queue_stats_t *stats = user;
    ck_assert_int_lt(stats->n, 8);
    queue_stat_t *q = &stats->items[stats->n++];
    snprintf(q->receiver, sizeof q->receiver, "%s", receiver);
    q->depth = depth;
    q->oldest = oldest;
}

START_TEST(queue_statistics)
{
    hub_store_t *store = open_store(NULL);
    hub_store_msg_t batch[4];
    hub_store_outcome_t outcomes[4];
    const char *receivers[4] = {"B", "A", "B", "C"};
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "q%d", i);
        make_msg(&batch[i], "S", receivers[i], id, "x");
        batch[i].accepted_at_us = 1000 + (uint64_t)i;
    }
    ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
    ck_assert_int_eq(hub_store_ack(store, "C", &batch[3].seq, 1), 0);

    queue_stats_t stats = {0};
    ck_assert_int_eq(hub_store_queues(store, on_queue, &stats), 0);
    ck_assert_int_eq(stats.n, 2); /* C is empty and not reported */
    ck_assert_str_eq(stats.items[0].receiver, "A");
    ck_assert_uint_eq(stats.items[0].depth, 1);
    ck_assert_uint_eq(stats.items[0].oldest, 1001);
    ck_assert_str_eq(stats.items[1].receiver, "B");
    ck_assert_uint_eq(stats.items[1].depth, 2);
    ck_assert_uint_eq(stats.items[1].oldest, 1000);

    ck_assert_int_eq(hub_store_ack(store, "B", &batch[0].seq, 1), 0);
    memset(&stats, 0, sizeof stats);
    ck_assert_int_eq(hub_store_queues(store, on_queue, &stats), 0);
    ck_assert_uint_eq(stats.items[1].depth, 1);
    ck_assert_uint_eq(stats.items[1].oldest, 1002);

    uint64_t used = 0, max = 0;
    ck_assert_int_eq(hub_store_usage(store, &used, &max, NULL), 0);
    ck_assert_uint_gt(used, 0);
    ck_assert_uint_eq(max, default_limits.max_bytes);
    hub_store_close(&store);
}
END_TEST

START_TEST(reopen_keeps_everything)
{
    hub_store_t *store = open_store(NULL);
    uint64_t now = hub_now_us(), s[3];
    hub_store_msg_t batch[3];
    hub_store_outcome_t outcomes[3];
    static const char *const ids[3] = {"k0", "k1", "k2"};
    for (int i = 0; i < 3; i++) {
        make_msg(&batch[i], "S", "R", ids[i], ids[i]);
        batch[i].accepted_at_us = now;
        batch[i].expires_at_us = now + MINUTE_US;
    }
    ck_assert_int_eq(hub_store_append(store, batch, 3, outcomes), 0);
    for (int i = 0; i < 3; i++)
        s[i] = batch[i].seq;
    ck_assert_int_eq(hub_store_note_attempts(store, s, 2), 0);
    ck_assert_int_eq(hub_store_note_attempts(store, s, 1), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &s[2], 1, "ttl expired"), 0);
    hub_store_close(&store);

    struct stat st;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (!pg_dsn) { /* LMDB: the file is the owner's only */
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
    }

    store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 2);
    ck_assert_uint_eq(out[0].seq, s[0]);
    ck_assert_uint_eq(out[0].attempts, 2); /* retry budgets survive a restart */
    ck_assert_uint_eq(out[1].attempts, 1);
    ck_assert_uint_eq(out[0].expires_at_us, now + MINUTE_US);
    ck_assert(memcmp(out[1].envelope, "k1", 2) == 0);
    hub_store_dead_t dead;
    ck_assert_int_eq(hub_store_dlq_get(store, s[2], &dead, arena), 0);
    ck_assert_str_eq(dead.reason, "ttl expired");
    ck_assert_uint_eq(dead.msg.attempts, 0);
    hub_store_msg_t m;
    hub_store_outcome_t outcome;
    make_msg(&m, "S", "R", "k1", "again");
    m.accepted_at_us = now + 1;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    ck_assert_int_eq(outcome, HUB_STORE_DUPLICATE); /* dedup survives too */
    ck_assert_uint_eq(m.seq, s[1]);
    uint64_t expired[4];
    size_t n;
    ck_assert_int_eq(hub_store_expired(store, now + MINUTE_US, expired, 4, &n), 0);
    ck_assert_uint_eq(n, 2);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

static void write_garbage(const char *path, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    unsigned char buf[4096];
    unsigned x = 12345;
    for (size_t done = 0; done < size; done += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 16);
        }
        ck_assert_int_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    }
    close(fd);
}

START_TEST(corrupt_file_is_refused)
{
    char path[PATH_MAX + 16], err[512];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    write_garbage(path, 64 * 1024);
    hub_store_t *store = (hub_store_t *)0x1;
    err[0] = 0;
    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), HUB_ESTORE);
    ck_assert_ptr_null(store);
    ck_assert_msg(strstr(err, dir) && strstr(err, "move") && strstr(err, "backup"),
                  "unhelpful message: %s", err);

    /* A short file of garbage, too. */
    write_garbage(path, 4096);
    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), HUB_ESTORE);
}
END_TEST

START_TEST(foreign_lmdb_file_is_refused)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {5, "hello"}, v = {5, "world"};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    hub_store_t *store = NULL;
    char err[512] = "";
    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), HUB_ESTORE);
    ck_assert_ptr_null(store);
    ck_assert_msg(strstr(err, "not a Liên Thông Hub store") != NULL, "message: %s", err);
}
END_TEST

static hub_store_outcome_t append_expiring(hub_store_t *store, const char *id, uint64_t *seq)
{
    hub_store_msg_t m;
    hub_store_outcome_t outcome;
    make_msg(&m, "S", "R", id, id);
    m.expires_at_us = 1000 + (uint64_t)strlen(id);
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    *seq = m.seq;
    return outcome;
}

/* ---- what members hold, quotas, reserve, format upgrade ---------------- */

/* What one member holds, by an independent count over what the store lets
 * anyone read: every queued message (all receivers) and every dead letter. */
typedef struct {
    char member[32];
    hub_store_held_t as_sender, as_receiver;
} held_row_t;

typedef struct {
    held_row_t rows[16];
    int n;
    hub_store_held_t total;
    char receivers[16][32];
    int n_receivers;
} held_count_t;

static held_row_t *held_row(held_count_t *c, const char *member)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->rows[i].member, member))
            return &c->rows[i];
    ck_assert_int_lt(c->n, 16);
    held_row_t *r = &c->rows[c->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->member, sizeof r->member, "%s", member);
    return r;
}

static void held_count_msg(held_count_t *c, const hub_store_msg_t *m)
{
    held_row_t *s = held_row(c, m->sender);
    s->as_sender.msgs++;
    s->as_sender.bytes += m->envelope_len;
    held_row_t *r = held_row(c, m->receiver);
    r->as_receiver.msgs++;
    r->as_receiver.bytes += m->envelope_len;
    c->total.msgs++;
    c->total.bytes += m->envelope_len;
}

static void on_receiver(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    (void)depth;
    (void)oldest;
    held_count_t *c = user;
    ck_assert_int_lt(c->n_receivers, 16);
    snprintf(c->receivers[c->n_receivers++], 32, "%s", receiver);
}

/* Asserts that hub_store_held() and _total() agree with the count, for the
 * members named (a member the store does not know gets zeros) and every
 * member found. */
static void assert_held_exact(hub_store_t *store, const char *const *members)
{
    held_count_t c = {0};
    for (int i = 0; members && members[i]; i++)
        held_row(&c, members[i]);
    ck_assert_int_eq(hub_store_queues(store, on_receiver, &c), 0);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    enum { MAX = 20000 };
    hub_store_msg_t *q = calloc(MAX, sizeof *q);
    ck_assert_ptr_nonnull(q);
    for (int i = 0; i < c.n_receivers; i++) {
        size_t n = read_all(store, c.receivers[i], q, MAX, arena);
        ck_assert_uint_lt(n, MAX);
        for (size_t j = 0; j < n; j++)
            held_count_msg(&c, &q[j]);
    }
    free(q);
    hub_store_dead_t *dead = calloc(MAX, sizeof *dead);
    ck_assert_ptr_nonnull(dead);
    size_t n;
    ck_assert_int_eq(hub_store_dlq_list(store, 0, MAX, dead, &n, NULL), 0);
    ck_assert_uint_lt(n, MAX);
    for (size_t j = 0; j < n; j++)
        held_count_msg(&c, &dead[j].msg);
    free(dead);
    hub_store_arena_destroy(&arena);
    for (int i = 0; i < c.n; i++) {
        hub_store_held_t s = {99, 99}, r = {99, 99};
        ck_assert_int_eq(hub_store_held(store, c.rows[i].member, &s, &r), 0);
        ck_assert_msg(s.msgs == c.rows[i].as_sender.msgs && s.bytes == c.rows[i].as_sender.bytes,
                      "%s as sender: store says %llu msgs %llu bytes, count says %llu %llu",
                      c.rows[i].member, (unsigned long long)s.msgs, (unsigned long long)s.bytes,
                      (unsigned long long)c.rows[i].as_sender.msgs,
                      (unsigned long long)c.rows[i].as_sender.bytes);
        ck_assert_msg(r.msgs == c.rows[i].as_receiver.msgs &&
                          r.bytes == c.rows[i].as_receiver.bytes,
                      "%s as receiver: store says %llu msgs %llu bytes, count says %llu %llu",
                      c.rows[i].member, (unsigned long long)r.msgs, (unsigned long long)r.bytes,
                      (unsigned long long)c.rows[i].as_receiver.msgs,
                      (unsigned long long)c.rows[i].as_receiver.bytes);
    }
    hub_store_held_t total = {99, 99};
    ck_assert_int_eq(hub_store_held_total(store, &total), 0);
    ck_assert_msg(total.msgs == c.total.msgs && total.bytes == c.total.bytes,
                  "total: store says %llu msgs %llu bytes, count says %llu %llu",
                  (unsigned long long)total.msgs, (unsigned long long)total.bytes,
                  (unsigned long long)c.total.msgs, (unsigned long long)c.total.bytes);
}

/* Asserts one member's figures. */
static void assert_held(hub_store_t *store, const char *member, uint64_t s_msgs,
                        uint64_t s_bytes, uint64_t r_msgs, uint64_t r_bytes)
{
    hub_store_held_t s, r;
    ck_assert_int_eq(hub_store_held(store, member, &s, &r), 0);
    ck_assert_msg(s.msgs == s_msgs && s.bytes == s_bytes && r.msgs == r_msgs &&
                      r.bytes == r_bytes,
                  "%s holds %llu/%llu as sender and %llu/%llu as receiver; expected "
                  "%llu/%llu and %llu/%llu",
                  member, (unsigned long long)s.msgs, (unsigned long long)s.bytes,
                  (unsigned long long)r.msgs, (unsigned long long)r.bytes,
                  (unsigned long long)s_msgs, (unsigned long long)s_bytes,
                  (unsigned long long)r_msgs, (unsigned long long)r_bytes);
}

static const char *const ABC[] = {"A", "B", "C", "NOBODY", NULL};

START_TEST(held_counts_follow_every_path)
{
    hub_store_t *store = open_store(NULL);
    hub_store_held_t h = {7, 7};
    ck_assert_int_eq(hub_store_held(store, "A", &h, NULL), 0);
    ck_assert_uint_eq(h.msgs + h.bytes, 0);
    ck_assert_int_eq(hub_store_held(store, "A", NULL, NULL), 0);
    ck_assert_int_eq(hub_store_held(store, "", &h, NULL), HUB_EINVAL);
    ck_assert_int_eq(hub_store_held(NULL, "A", &h, NULL), HUB_EINVAL);
    ck_assert_int_eq(hub_store_held_total(store, NULL), HUB_EINVAL);

    /* One call: A->B 3, 5 and 7 bytes, C->B 11, A->C 13; a settled one and a
     * duplicate count nothing. */
    hub_store_msg_t m[7];
    hub_store_outcome_t out[7];
    make_msg(&m[0], "A", "B", "h1", "abc");
    make_msg(&m[1], "A", "B", "h2", "abcde");
    make_msg(&m[2], "A", "B", "h3", "abcdefg");
    make_msg(&m[3], "C", "B", "h4", "abcdefghijk");
    make_msg(&m[4], "A", "C", "h5", "abcdefghijklm");
    make_msg(&m[5], "A", "B", "h6", "settled, so not held");
    m[5].settled = true;
    make_msg(&m[6], "A", "B", "h1", "a duplicate of h1");
    ck_assert_int_eq(hub_store_append(store, m, 7, out), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(out[i], HUB_STORE_OK);
    ck_assert_int_eq(out[6], HUB_STORE_DUPLICATE);
    assert_held(store, "A", 4, 28, 0, 0);
    assert_held(store, "B", 0, 0, 4, 26);
    assert_held(store, "C", 1, 11, 1, 13);
    ck_assert_int_eq(hub_store_held_total(store, &h), 0);
    ck_assert_uint_eq(h.msgs, 5);
    ck_assert_uint_eq(h.bytes, 39);
    assert_held_exact(store, ABC);

    /* ack: gone; an ack by another receiver, or again, changes nothing. */
    ck_assert_int_eq(hub_store_ack(store, "C", &m[0].seq, 1), 0);
    uint64_t acked[] = {m[0].seq, m[3].seq};
    ck_assert_int_eq(hub_store_ack(store, "B", acked, 2), 0);
    ck_assert_int_eq(hub_store_ack(store, "B", acked, 2), 0);
    assert_held(store, "A", 3, 25, 0, 0);
    assert_held(store, "B", 0, 0, 2, 12);
    assert_held(store, "C", 0, 0, 1, 13);
    assert_held_exact(store, ABC);

    /* Dead letters are still held. */
    uint64_t dl[] = {m[1].seq, m[4].seq};
    ck_assert_int_eq(hub_store_dead_letter(store, dl, 2, "ttl expired"), 0);
    assert_held(store, "A", 3, 25, 0, 0);
    assert_held_exact(store, ABC);
    /* Replay moves one: still held, once. */
    uint64_t replayed;
    ck_assert_int_eq(hub_store_dlq_replay(store, m[1].seq, 0, 0, &replayed), 0);
    assert_held(store, "A", 3, 25, 0, 0);
    assert_held(store, "B", 0, 0, 2, 12);
    assert_held_exact(store, ABC);
    /* Purge one, then purge older. */
    ck_assert_int_eq(hub_store_dlq_purge(store, m[4].seq), 0);
    assert_held(store, "A", 2, 12, 0, 0);
    assert_held(store, "C", 0, 0, 0, 0);
    assert_held_exact(store, ABC);
    ck_assert_int_eq(hub_store_dead_letter(store, &replayed, 1, "retry budget exhausted"), 0);
    size_t purged;
    ck_assert_int_eq(hub_store_dlq_purge_older(store, UINT64_MAX, &purged), 0);
    ck_assert_uint_eq(purged, 1);
    assert_held(store, "A", 1, 7, 0, 0);
    assert_held(store, "B", 0, 0, 1, 7);
    assert_held_exact(store, ABC);

    /* A batch: an aborted one changes nothing, a committed one counts. */
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(append1(store, "C", "A", "in-batch", NULL), HUB_STORE_OK);
    assert_held(store, "C", 1, 8, 0, 0); /* the batch's thread sees it */
    hub_store_batch_abort(store);
    assert_held(store, "C", 0, 0, 0, 0);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(append1(store, "C", "A", "in-batch", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    assert_held(store, "C", 1, 8, 0, 0);
    assert_held(store, "A", 1, 7, 1, 8);

    /* Counts are kept across close and reopen. */
    hub_store_close(&store);
    store = open_store(NULL);
    ck_assert_uint_eq(hub_store_upgraded_from(store), 0);
    assert_held(store, "A", 1, 7, 1, 8);
    assert_held(store, "B", 0, 0, 1, 7);
    assert_held(store, "C", 1, 8, 0, 0);
    assert_held_exact(store, ABC);

    /* Many members in one call (the per-call table grows), then all acked. */
    enum { N = 600 };
    hub_store_msg_t *batch = calloc(N, sizeof *batch);
    hub_store_outcome_t *outcomes = calloc(N, sizeof *outcomes);
    char (*names)[3][24] = calloc(N, sizeof *names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i][0], 24, "S%d", i % 97);
        snprintf(names[i][1], 24, "R%d", i % 89);
        snprintf(names[i][2], 24, "many-%d", i);
        make_msg(&batch[i], names[i][0], names[i][1], names[i][2], names[i][2]);
    }
    ck_assert_int_eq(hub_store_append(store, batch, N, outcomes), 0);
    uint64_t bytes = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(outcomes[i], HUB_STORE_OK);
        bytes += batch[i].envelope_len;
    }
    ck_assert_int_eq(hub_store_held_total(store, &h), 0);
    ck_assert_uint_eq(h.msgs, N + 2);
    ck_assert_uint_eq(h.bytes, bytes + 7 + 8);
    uint64_t s0_bytes = 0, s0_msgs = 0;
    for (int i = 0; i < N; i += 97) {
        s0_msgs++;
        s0_bytes += batch[i].envelope_len;
    }
    assert_held(store, "S0", s0_msgs, s0_bytes, 0, 0);
    uint64_t *seqs = calloc(N, sizeof *seqs);
    for (int r = 0; r < 89; r++) {
        size_t k = 0;
        for (int i = r; i < N; i += 89)
            seqs[k++] = batch[i].seq;
        ck_assert_int_eq(hub_store_ack(store, names[r][1], seqs, k), 0);
    }
    free(seqs);
    assert_held(store, "S0", 0, 0, 0, 0);
    assert_held(store, "R0", 0, 0, 0, 0);
    ck_assert_int_eq(hub_store_held_total(store, &h), 0);
    ck_assert_uint_eq(h.msgs, 2);
    ck_assert_uint_eq(h.bytes, 15);
    assert_held_exact(store, ABC);
    free(names);
    free(outcomes);
    free(batch);
    hub_store_close(&store);
}
END_TEST

/* Appends n messages "PREFIX-i" of `envelope` from sender to receiver in ONE
 * call with `quota`; counts the outcomes. */
typedef struct {
    int ok, quota_sender, quota_receiver, store_full, other;
} tally_t;

static tally_t append_n(hub_store_t *store, const char *sender, const char *receiver,
                        const char *prefix, int n, const char *envelope,
                        const hub_store_quota_t *quota)
{
    hub_store_msg_t *m = calloc((size_t)n, sizeof *m);
    hub_store_outcome_t *out = calloc((size_t)n, sizeof *out);
    char (*ids)[32] = calloc((size_t)n, 32);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 32, "%s-%d", prefix, i);
        make_msg(&m[i], sender, receiver, ids[i], envelope);
        if (quota)
            m[i].quota = *quota;
    }
    ck_assert_int_eq(hub_store_append(store, m, (size_t)n, out), 0);
    tally_t t = {0};
    for (int i = 0; i < n; i++) {
        switch (out[i]) {
        case HUB_STORE_OK: t.ok++; break;
        case HUB_STORE_QUOTA_SENDER: t.quota_sender++; break;
        case HUB_STORE_QUOTA_RECEIVER: t.quota_receiver++; break;
        case HUB_STORE_FULL: t.store_full++; break;
        default: t.other++; break;
        }
        if (out[i] != HUB_STORE_OK && out[i] != HUB_STORE_DUPLICATE)
            ck_assert_uint_eq(m[i].seq, 0);
    }
    free(ids);
    free(out);
    free(m);
    return t;
}

START_TEST(quotas_in_messages_and_bytes)
{
    hub_store_t *store = open_store(NULL);
    /* Receiver quota in messages, within one call: a batch of 100 to a
     * receiver that may hold 50 stores 50. */
    hub_store_quota_t rq = {.receiver_msgs = 50};
    tally_t t = append_n(store, "A", "OFFLINE", "r", 100, "1234", &rq);
    ck_assert_int_eq(t.ok, 50);
    ck_assert_int_eq(t.quota_receiver, 50);
    assert_held(store, "OFFLINE", 0, 0, 50, 200);
    /* ... and across calls; another receiver is not affected. */
    t = append_n(store, "A", "OFFLINE", "r2", 1, "1234", &rq);
    ck_assert_int_eq(t.quota_receiver, 1);
    t = append_n(store, "A", "ONLINE", "o", 3, "1234", &rq);
    ck_assert_int_eq(t.ok, 3);
    /* Without a quota the same message is stored (0 = no limit). */
    t = append_n(store, "A", "OFFLINE", "r3", 1, "1234", NULL);
    ck_assert_int_eq(t.ok, 1);

    /* Sender quota in messages: A holds 54 already. */
    hub_store_quota_t sq = {.sender_msgs = 56};
    t = append_n(store, "A", "ONLINE", "s", 5, "1234", &sq);
    ck_assert_int_eq(t.ok, 2);
    ck_assert_int_eq(t.quota_sender, 3);
    t = append_n(store, "B", "ONLINE", "s", 5, "1234", &sq);
    ck_assert_int_eq(t.ok, 5);
    /* Both over: the sender is named first. */
    hub_store_quota_t both = {.sender_msgs = 1, .receiver_msgs = 1};
    t = append_n(store, "A", "OFFLINE", "b", 1, "1234", &both);
    ck_assert_int_eq(t.quota_sender, 1);

    /* Bytes: C may hold 10 bytes as a sender. 4 + 4 fit, 4 more do not, 2
     * more still do (10 is not past 10); an envelope larger than the quota
     * never fits. */
    hub_store_quota_t sb = {.sender_bytes = 10};
    t = append_n(store, "C", "D", "c", 3, "1234", &sb);
    ck_assert_int_eq(t.ok, 2);
    ck_assert_int_eq(t.quota_sender, 1);
    t = append_n(store, "C", "D", "c2", 2, "12", &sb);
    ck_assert_int_eq(t.ok, 1);
    ck_assert_int_eq(t.quota_sender, 1);
    assert_held(store, "C", 3, 10, 0, 0);
    t = append_n(store, "E", "D", "e", 1, "12345678901", &sb);
    ck_assert_int_eq(t.quota_sender, 1);
    /* Receiver bytes. */
    hub_store_quota_t rb = {.receiver_bytes = 12};
    t = append_n(store, "E", "D", "e2", 2, "1", &rb); /* D holds 10 */
    ck_assert_int_eq(t.ok, 2);
    t = append_n(store, "E", "D", "e3", 1, "1", &rb);
    ck_assert_int_eq(t.quota_receiver, 1);
    t = append_n(store, "E", "F", "e4", 1, "1", &rb);
    ck_assert_int_eq(t.ok, 1);

    /* A refused message is not remembered: once there is room it is new.
     * Dead letters still count; acking frees room. */
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t q[8];
    ck_assert_uint_eq(read_all(store, "D", q, 8, arena), 5);
    ck_assert_int_eq(hub_store_dead_letter(store, &q[0].seq, 1, "ttl expired"), 0);
    t = append_n(store, "E", "D", "e3", 1, "1", &rb);
    ck_assert_int_eq(t.quota_receiver, 1);
    ck_assert_int_eq(hub_store_dlq_purge(store, q[0].seq), 0); /* C's 4 bytes */
    t = append_n(store, "E", "D", "e3", 1, "1", &rb);
    ck_assert_int_eq(t.ok, 1);
    uint64_t s1 = q[1].seq;
    ck_assert_int_eq(hub_store_ack(store, "D", &s1, 1), 0);
    t = append_n(store, "C", "D", "c3", 1, "1234", &sb);
    ck_assert_int_eq(t.ok, 1);
    assert_held_exact(store, (const char *const[]){"A", "B", "C", "D", "E", "F", "OFFLINE",
                                                    "ONLINE", NULL});
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(reserve_keeps_the_last_of_the_store_from_one_flow)
{
    hub_store_limits_t limits = default_limits;
    limits.max_bytes = 1u << 20;
    limits.reserve_percent = 51;
    hub_store_t *store = NULL;
    char err[512] = "";
    ck_assert_int_eq(hub_store_open(dir, &limits, &store, err, sizeof err), HUB_EINVAL);
    ck_assert_ptr_null(store);
    ck_assert_msg(strstr(err, "reserve_percent is 51"), "%s", err);

    limits.reserve_percent = 40; /* the reserve line is at 50% */
    store = open_store(&limits);
    static char envelope[1501];
    memset(envelope, 'e', sizeof envelope - 1);
    /* A floods its offline partner B: refused at the reserve line, not at
     * the 90% line. */
    int accepted = 0, i;
    tally_t t = {.ok = 4};
    for (i = 0; i < 1000 && t.ok == 4; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "a%d", i);
        t = append_n(store, "A", "B", prefix, 4, envelope, NULL);
        accepted += t.ok;
        ck_assert_int_eq(t.store_full + t.quota_receiver + t.other, 0);
    }
    ck_assert_int_gt(t.quota_sender, 0);
    uint64_t used, max;
    ck_assert_int_eq(hub_store_usage(store, &used, &max, NULL), 0);
    ck_assert_msg(used <= max / 2 && used >= max / 100 * 40, "used %llu of %llu",
                  (unsigned long long)used, (unsigned long long)max);
    ck_assert_int_gt(accepted, 100);

    /* Another sender to the same receiver: the receiver holds it all. */
    t = append_n(store, "E", "B", "e", 1, envelope, NULL);
    ck_assert_int_eq(t.quota_receiver, 1);
    /* An unrelated flow still gets the rest, up to the 90% line. */
    int other = 0;
    t.ok = 4;
    for (i = 0; i < 1000 && t.ok == 4; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "c%d", i);
        t = append_n(store, "C", "D", prefix, 4, envelope, NULL);
        other += t.ok;
    }
    ck_assert_int_gt(t.store_full, 0);
    ck_assert_int_eq(t.quota_sender + t.quota_receiver + t.other, 0);
    ck_assert_int_gt(other, 100);
    ck_assert_int_eq(hub_store_usage(store, &used, NULL, NULL), 0);
    ck_assert_uint_ge(used, max / 100 * 80);
    /* A still cannot send, to anyone. */
    t = append_n(store, "A", "D", "a-late", 1, "x", NULL);
    ck_assert_int_eq(t.store_full + t.quota_sender, 1);
    assert_held_exact(store, (const char *const[]){"A", "B", "C", "D", "E", NULL});
    hub_store_close(&store);

    /* Without a reserve the same flood goes on to the 90% line. */
    teardown();
    setup();
    limits.reserve_percent = 0;
    store = open_store(&limits);
    t.ok = 4;
    for (i = 0; i < 1000 && t.ok == 4; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "a%d", i);
        t = append_n(store, "A", "B", prefix, 4, envelope, NULL);
    }
    ck_assert_int_gt(t.store_full, 0);
    ck_assert_int_eq(t.quota_sender + t.quota_receiver, 0);
    ck_assert_int_eq(hub_store_usage(store, &used, NULL, NULL), 0);
    ck_assert_uint_ge(used, max / 100 * 80);
    hub_store_close(&store);
}
END_TEST

/* Makes the store in `dir` look as format 1 wrote it: no held table, and
 * "format" 1 in meta. */
static void make_format_1(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, held;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, default_limits.max_bytes), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "held", 0, &held), 0);
    ck_assert_int_eq(mdb_drop(txn, held, 1), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t one[4] = {1, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, one};
    ck_assert_int_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The "format" in meta, and whether a held table exists. */
static uint32_t stored_format(bool *has_held)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, held;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    *has_held = mdb_dbi_open(txn, "held", 0, &held) == 0;
    MDB_val k = {6, "format"}, v;
    ck_assert_int_eq(mdb_get(txn, meta, &k, &v), 0);
    ck_assert_uint_eq(v.mv_size, 4);
    uint32_t format = ((const uint8_t *)v.mv_data)[0];
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return format;
}

START_TEST(format_1_store_is_upgraded)
{
    hub_store_t *store = open_store(NULL);
    bool has_held;
    /* Queued, dead-lettered, acknowledged and settled messages. */
    hub_store_msg_t m[5];
    hub_store_outcome_t out[5];
    make_msg(&m[0], "A", "B", "u1", "12345");
    make_msg(&m[1], "A", "B", "u2", "1234567");
    make_msg(&m[2], "C", "B", "u3", "123");
    make_msg(&m[3], "A", "C", "u4", "1");
    make_msg(&m[4], "C", "A", "u5", "settled");
    m[4].settled = true;
    ck_assert_int_eq(hub_store_append(store, m, 5, out), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &m[1].seq, 1, "ttl expired"), 0);
    ck_assert_int_eq(hub_store_ack(store, "C", &m[3].seq, 1), 0);
    hub_store_close(&store);
    ck_assert_uint_eq(stored_format(&has_held), HUB_STORE_FORMAT);
    ck_assert(has_held);

    make_format_1();
    ck_assert_uint_eq(stored_format(&has_held), 1);
    ck_assert(!has_held);
    store = open_store(NULL);
    ck_assert_uint_eq(hub_store_upgraded_from(store), 1);
    assert_held(store, "A", 2, 12, 0, 0);
    assert_held(store, "B", 0, 0, 3, 15);
    assert_held(store, "C", 1, 3, 0, 0);
    assert_held_exact(store, ABC);
    /* The upgraded counts go on from there. */
    ck_assert_int_eq(hub_store_ack(store, "B", &m[0].seq, 1), 0);
    assert_held(store, "A", 1, 7, 0, 0);
    hub_store_close(&store);
    ck_assert_uint_eq(stored_format(&has_held), HUB_STORE_FORMAT);
    ck_assert(has_held);
    store = open_store(NULL);
    ck_assert_uint_eq(hub_store_upgraded_from(store), 0);
    assert_held(store, "A", 1, 7, 0, 0);
    assert_held_exact(store, ABC);
    ck_assert_uint_eq(hub_store_upgraded_from(NULL), 0);
    hub_store_close(&store);
}
END_TEST

/* The intact bytes of a record, kept by the first damage_record() call. */
typedef struct {
    uint8_t bytes[512];
    size_t len;
} record_copy_t;

/* Overwrites the record of `seq` in the msgs table with the first `keep`
 * bytes of the intact record, as a torn or damaged write would leave it. */
static void damage_record(uint64_t seq, size_t keep, record_copy_t *original)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, default_limits.max_bytes), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(seq >> (56 - 8 * i));
    MDB_val k = {8, key}, v;
    if (original->len == 0) { /* the first call keeps the intact record */
        ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
        ck_assert_uint_le(v.mv_size, sizeof original->bytes);
        memcpy(original->bytes, v.mv_data, v.mv_size);
        original->len = v.mv_size;
    }
    ck_assert_uint_gt(original->len, keep);
    MDB_val nv = {keep, original->bytes};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

START_TEST(truncated_record_is_an_error)
{
    hub_store_t *store = open_store(NULL);
    uint64_t s1, s2;
    ck_assert_int_eq(append_expiring(store, "t1", &s1), HUB_STORE_OK);
    ck_assert_int_eq(append_expiring(store, "t2x", &s2), HUB_STORE_OK);
    hub_store_close(&store);

    static const size_t cuts[] = {0, 5, 27, 30};
    record_copy_t original = {.len = 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        damage_record(s2, cuts[i], &original);
        store = open_store(NULL);
        hub_store_arena_t *arena;
        ck_assert_int_eq(hub_store_arena_new(&arena), 0);
        hub_store_msg_t out[4];
        size_t n = 7;
        ck_assert_int_eq(hub_store_read_queue(store, "R", 0, 4, out, &n, arena), HUB_ESTORE);
        ck_assert_uint_eq(n, 1); /* the readable one before it */
        ck_assert_uint_eq(out[0].seq, s1);
        ck_assert_str_eq(out[0].message_id, "t1");
        ck_assert_uint_eq(out[1].seq, s2); /* names the damaged one */
        ck_assert_int_eq(hub_store_dead_letter(store, &s2, 1, "x"), HUB_ESTORE);
        hub_store_arena_destroy(&arena);
        hub_store_close(&store);
    }

    /* Acknowledging the damaged message removes it and unblocks the queue. */
    store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    ck_assert_int_eq(hub_store_ack(store, "OTHER", &s2, 1), 0);
    hub_store_msg_t out[4];
    size_t n;
    ck_assert_int_eq(hub_store_read_queue(store, "R", 0, 4, out, &n, arena), HUB_ESTORE);
    ck_assert_int_eq(hub_store_ack(store, "R", &s2, 1), 0);
    ck_assert_int_eq(hub_store_read_queue(store, "R", 0, 4, out, &n, arena), 0);
    ck_assert_uint_eq(n, 1);
    uint64_t seqs[4];
    ck_assert_int_eq(hub_store_expired(store, UINT64_MAX, seqs, 4, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(seqs[0], s1);
    queue_stats_t stats = {0};
    ck_assert_int_eq(hub_store_queues(store, on_queue, &stats), 0);
    ck_assert_int_eq(stats.n, 1);
    ck_assert_uint_eq(stats.items[0].depth, 1);
    assert_held_exact(store, NULL); /* the ack of the damaged one recounted */
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(damaged_dead_letter_can_be_purged)
{
    hub_store_t *store = open_store(NULL);
    uint64_t s[3];
    ck_assert_int_eq(append1(store, "S", "R", "g1", &s[0]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "g2", &s[1]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "g3", &s[2]), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_dead_letter(store, s, 3, "ttl expired"), 0);
    hub_store_close(&store);
    record_copy_t original = {.len = 0};
    damage_record(s[1], 10, &original);

    store = open_store(NULL);
    hub_store_dead_t dead[4];
    size_t n = 9;
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 4, dead, &n, NULL), HUB_ESTORE);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(dead[0].msg.seq, s[0]);
    ck_assert_uint_eq(dead[1].msg.seq, s[1]);
    ck_assert_int_eq(hub_store_dlq_get(store, s[1], &dead[0], NULL), HUB_ESTORE);
    ck_assert_int_eq(hub_store_dlq_replay(store, s[1], 0, 0, NULL), HUB_ESTORE);
    assert_held(store, "S", 3, 6, 0, 0); /* counted when it was whole */
    ck_assert_int_eq(hub_store_dlq_purge(store, s[1]), 0);
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 4, dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(dead[1].msg.seq, s[2]);
    /* Whose the damaged record was is unknown: the purge recounted. */
    assert_held(store, "S", 2, 4, 0, 0);
    assert_held(store, "R", 0, 0, 2, 4);
    hub_store_close(&store);
}
END_TEST

START_TEST(other_format_version_is_refused)
{
    hub_store_t *store = open_store(NULL);
    ck_assert_int_eq(append1(store, "S", "R", "v1", NULL), HUB_STORE_OK);
    hub_store_close(&store);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, default_limits.max_bytes), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    /* One past the newest format this build reads. */
    uint8_t newer[4] = {HUB_STORE_FORMAT + 1, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, newer};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char err[512] = "";
    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), HUB_ESTORE);
    ck_assert_ptr_null(store);
    char want[32];
    snprintf(want, sizeof want, "format %u", HUB_STORE_FORMAT + 1);
    ck_assert_msg(strstr(err, want) != NULL, "message: %s", err);
    /* What to do about it, not only what is wrong. */
    ck_assert_msg(strstr(err, "hubctl restore") != NULL, "message: %s", err);
}
END_TEST

/* A store written by hubd 0.1 (format 1: the meta table without store_id
 * and created_at, as at commit 09db37b) is upgraded in place when opened:
 * its messages stay queued and readable, and it gets an id. */
START_TEST(older_store_gets_an_id_kept_for_good)
{
    hub_store_t *store = open_store(NULL);
    ck_assert_int_eq(append1(store, "S", "R", "m1", NULL), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "m2", NULL), HUB_STORE_OK);
    hub_store_close(&store);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, default_limits.max_bytes), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t one[4] = {1, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, one};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    MDB_val idk = {8, "store_id"}, atk = {10, "created_at"};
    ck_assert_int_eq(mdb_del(txn, dbi, &idk, NULL), 0);
    ck_assert_int_eq(mdb_del(txn, dbi, &atk, NULL), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char err[512] = "";
    hub_store_info_t info;
    ck_assert_int_eq(hub_store_inspect(dir, &info, err, sizeof err), 0);
    ck_assert_uint_eq(info.format, 1);
    ck_assert_str_eq(info.store_id, "");
    ck_assert_uint_eq(info.messages, 2);

    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), 0);
    ck_assert_uint_eq(hub_store_opened_format(store), 1);
    hub_store_msg_t out[4];
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    ck_assert_uint_eq(read_all(store, "R", out, 4, arena), 2);
    ck_assert_str_eq(out[0].message_id, "m1");
    ck_assert_str_eq(out[1].message_id, "m2");
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);

    ck_assert_int_eq(hub_store_inspect(dir, &info, err, sizeof err), 0);
    ck_assert_uint_eq(info.format, HUB_STORE_FORMAT);
    ck_assert_uint_eq(strlen(info.store_id), 32);
    ck_assert_uint_ne(info.created_at_us, 0);
    char id[33];
    memcpy(id, info.store_id, sizeof id);
    /* Opening again changes nothing: the id is the store's for good. */
    ck_assert_int_eq(hub_store_open(dir, &default_limits, &store, err, sizeof err), 0);
    ck_assert_uint_eq(hub_store_opened_format(store), HUB_STORE_FORMAT);
    hub_store_close(&store);
    ck_assert_int_eq(hub_store_inspect(dir, &info, err, sizeof err), 0);
    ck_assert_str_eq(info.store_id, id);
}
END_TEST

/* ---- ID reuse: the de-duplication record keeps the envelope's digest ---- */

/* Appends one message whose digest is 32 bytes of `digest_byte` (0: none). */
static hub_store_outcome_t append_digest(hub_store_t *store, const char *id,
                                         const char *envelope, uint8_t digest_byte,
                                         uint64_t *seq)
{
    hub_store_msg_t m;
    hub_store_outcome_t outcome;
    make_msg(&m, "S", "R", id, envelope);
    memset(m.digest, digest_byte, sizeof m.digest);
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    if (seq)
        *seq = m.seq;
    return outcome;
}

static uint64_t depth_of(hub_store_t *store, const char *receiver)
{
    hub_store_msg_t out[8];
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    size_t n = read_all(store, receiver, out, 8, arena);
    hub_store_arena_destroy(&arena);
    return n;
}

START_TEST(reused_id_with_other_digest_is_refused)
{
    hub_store_t *store = open_store(NULL);
    uint64_t first, seq = 0;
    ck_assert_int_eq(append_digest(store, "m1", "first", 0xA1, &first), HUB_STORE_OK);
    /* The same envelope again: the original seq, nothing stored. */
    ck_assert_int_eq(append_digest(store, "m1", "first", 0xA1, &seq), HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(seq, first);
    /* Other content under the same id: refused, naming the original seq. */
    seq = 0;
    ck_assert_int_eq(append_digest(store, "m1", "other", 0xB2, &seq), HUB_STORE_ID_REUSED);
    ck_assert_uint_eq(seq, first);
    /* A caller that gives no digest cannot tell: a duplicate, as before. */
    ck_assert_int_eq(append_digest(store, "m1", "other", 0, &seq), HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(depth_of(store, "R"), 1);

    /* Within one call the first wins, the second is judged against it. */
    hub_store_msg_t m[3];
    hub_store_outcome_t out[3];
    make_msg(&m[0], "S", "R", "m2", "a");
    make_msg(&m[1], "S", "R", "m2", "b");
    make_msg(&m[2], "S", "R", "m2", "a");
    memset(m[0].digest, 0xC3, sizeof m[0].digest);
    memset(m[1].digest, 0xD4, sizeof m[1].digest);
    memset(m[2].digest, 0xC3, sizeof m[2].digest);
    ck_assert_int_eq(hub_store_append(store, m, 3, out), 0);
    ck_assert_int_eq(out[0], HUB_STORE_OK);
    ck_assert_int_eq(out[1], HUB_STORE_ID_REUSED);
    ck_assert_int_eq(out[2], HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(m[1].seq, m[0].seq);
    ck_assert_uint_eq(m[2].seq, m[0].seq);

    /* The digest is durable: after a reopen, and after the message was
     * acknowledged (the id is kept for its window). */
    ck_assert_int_eq(hub_store_ack(store, "R", &first, 1), 0);
    hub_store_close(&store);
    store = open_store(NULL);
    ck_assert_int_eq(append_digest(store, "m1", "other", 0xB2, &seq), HUB_STORE_ID_REUSED);
    ck_assert_uint_eq(seq, first);
    ck_assert_int_eq(append_digest(store, "m1", "first", 0xA1, &seq), HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(seq, first);
    /* A settled append keeps its digest too. */
    hub_store_msg_t st;
    hub_store_outcome_t so;
    make_msg(&st, "S", "R", "m3", "settled");
    memset(st.digest, 0xE5, sizeof st.digest);
    st.settled = true;
    ck_assert_int_eq(hub_store_append(store, &st, 1, &so), 0);
    ck_assert_int_eq(so, HUB_STORE_OK);
    ck_assert_int_eq(append_digest(store, "m3", "changed", 0xF6, NULL), HUB_STORE_ID_REUSED);
    hub_store_close(&store);

    /* No window, no de-duplication: nothing is refused. */
    hub_store_limits_t none = default_limits;
    none.dedup_window_us = 0;
    store = open_store(&none);
    ck_assert_int_eq(append_digest(store, "m1", "third", 0x17, NULL), HUB_STORE_OK);
    hub_store_close(&store);
}
END_TEST

/* A format-3 store (de-duplication records of 17 bytes, without digest) is
 * upgraded in place: nothing rewritten, its id kept, old records still
 * de-duplicate (as duplicates: their digest is unknown), new ones keep
 * their digest. */
START_TEST(format_3_store_is_upgraded_to_4)
{
    hub_store_t *store = open_store(NULL);
    uint64_t old_seq, seq;
    ck_assert_int_eq(append_digest(store, "old", "x", 0x11, &old_seq), HUB_STORE_OK);
    hub_store_close(&store);
    char err[512] = "";
    hub_store_info_t before, after;
    ck_assert_int_eq(hub_store_inspect(dir, &before, err, sizeof err), 0);

    /* What format 3 wrote: "format" 3, ids values without the digest. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, ids;
    MDB_cursor *c;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, default_limits.max_bytes), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    uint8_t three[4] = {3, 0, 0, 0};
    MDB_val k = {6, "format"}, v = {4, three};
    ck_assert_int_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_cursor_open(txn, ids, &c), 0);
    int n_ids = 0;
    while (mdb_cursor_get(c, &k, &v, n_ids ? MDB_NEXT : MDB_FIRST) == 0) {
        ck_assert_uint_eq(v.mv_size, 49);
        uint8_t old[17];
        memcpy(old, v.mv_data, sizeof old);
        MDB_val ov = {sizeof old, old};
        ck_assert_int_eq(mdb_cursor_put(c, &k, &ov, MDB_CURRENT), 0);
        n_ids++;
    }
    mdb_cursor_close(c);
    ck_assert_int_eq(n_ids, 1);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    store = open_store(NULL);
    ck_assert_uint_eq(hub_store_opened_format(store), 3);
    ck_assert_uint_eq(hub_store_upgraded_from(store), 3);
    /* The old record cannot tell content apart: a duplicate. */
    ck_assert_int_eq(append_digest(store, "old", "y", 0x22, &seq), HUB_STORE_DUPLICATE);
    ck_assert_uint_eq(seq, old_seq);
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "old", &seq, &state), 0);
    ck_assert_uint_eq(seq, old_seq);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    /* What is accepted from now on keeps its digest. */
    ck_assert_int_eq(append_digest(store, "new", "x", 0x33, NULL), HUB_STORE_OK);
    ck_assert_int_eq(append_digest(store, "new", "y", 0x44, NULL), HUB_STORE_ID_REUSED);
    hub_store_close(&store);

    ck_assert_int_eq(hub_store_inspect(dir, &after, err, sizeof err), 0);
    ck_assert_uint_eq(after.format, HUB_STORE_FORMAT);
    ck_assert_str_eq(after.store_id, before.store_id);
    ck_assert_uint_eq(after.created_at_us, before.created_at_us);
    store = open_store(NULL);
    ck_assert_uint_eq(hub_store_upgraded_from(store), 0);
    hub_store_close(&store);
}
END_TEST

/* One writer thread appends and acks while the test thread reads. */
typedef struct {
    hub_store_t *store;
    int batches;
    int failures;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    for (int i = 0; i < w->batches; i++) {
        hub_store_msg_t batch[8];
        hub_store_outcome_t outcomes[8];
        for (int j = 0; j < 8; j++) {
            char id[32];
            snprintf(id, sizeof id, "w%d-%d", i, j);
            make_msg(&batch[j], "S", "R", id, "payload");
        }
        if (hub_store_append(w->store, batch, 8, outcomes) != 0)
            w->failures++;
        uint64_t seq = batch[0].seq;
        if (hub_store_ack(w->store, "R", &seq, 1) != 0)
            w->failures++;
    }
    return NULL;
}

START_TEST(reads_run_beside_writes)
{
    hub_store_t *store = open_store(NULL);
    writer_t w = {store, 100, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_main, &w), 0);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    static hub_store_msg_t out[1000];
    for (int round = 0; round < 200; round++) {
        size_t n;
        ck_assert_int_eq(hub_store_read_queue(store, "R", 0, 1000, out, &n, arena), 0);
        for (size_t i = 1; i < n; i++)
            ck_assert_uint_gt(out[i].seq, out[i - 1].seq);
        hub_store_arena_reset(arena);
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(w.failures, 0);
    size_t n;
    ck_assert_int_eq(hub_store_read_queue(store, "R", 0, 1000, out, &n, arena), 0);
    ck_assert_uint_eq(n, 100 * 7);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(open_creates_missing_directories)
{
    char nested[PATH_MAX + 32];
    snprintf(nested, sizeof nested, "%s/a/b/store", dir);
    hub_store_t *store = NULL;
    char err[512] = "";
    ck_assert_int_eq(hub_store_open(nested, NULL, &store, err, sizeof err), 0);
    uint64_t max = 0;
    ck_assert_int_eq(hub_store_usage(store, NULL, &max, NULL), 0);
    ck_assert_uint_eq(max, 1ull << 30); /* the default map size */
    hub_store_close(&store);
    struct stat st;
    ck_assert_int_eq(stat(nested, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);

    ck_assert_int_eq(hub_store_open("", NULL, &store, err, sizeof err), HUB_EINVAL);
    if (geteuid() != 0) {
        chmod(nested, 0);
        ck_assert_int_eq(hub_store_open(nested, NULL, &store, err, sizeof err), HUB_EPERM);
        ck_assert_ptr_nonnull(strstr(err, "owned"));
        chmod(nested, 0700);
    }
}
END_TEST

/* ---- batches ------------------------------------------------------------ */

/* LMDB's id of the last committed transaction in `dir` (store closed). */
static size_t last_txnid(void)
{
    MDB_env *env;
    MDB_envinfo info;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_env_info(env, &info), 0);
    mdb_env_close(env);
    return info.me_last_txnid;
}

START_TEST(batch_commits_as_one_transaction)
{
    hub_store_t *store = open_store(NULL);
    uint64_t pre;
    ck_assert_int_eq(append1(store, "S", "R", "pre", &pre), HUB_STORE_OK);
    hub_store_close(&store);
    size_t txnid = last_txnid();

    store = open_store(NULL);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    uint64_t s[3];
    ck_assert_int_eq(append1(store, "S", "R", "b0", &s[0]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "b1", &s[1]), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "b2", &s[2]), HUB_STORE_OK);
    ck_assert_uint_gt(s[0], pre);
    uint64_t acked[] = {pre, s[0]};
    ck_assert_int_eq(hub_store_ack(store, "R", acked, 2), 0);
    ck_assert_int_eq(hub_store_note_attempts(store, &s[1], 1), 0);
    ck_assert_int_eq(hub_store_note_attempts(store, &s[1], 1), 0);
    ck_assert_int_eq(hub_store_note_attempts(store, &s[2], 1), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &s[2], 1, "retry budget exhausted"), 0);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    ck_assert_int_eq(hub_store_batch_commit(store), HUB_EINVAL); /* no batch any more */
    hub_store_close(&store);
    /* Five write calls, one LMDB commit. */
    ck_assert_uint_eq(last_txnid(), txnid + 1);

    store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 1);
    ck_assert_uint_eq(out[0].seq, s[1]);
    ck_assert_uint_eq(out[0].attempts, 2);
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "pre", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    ck_assert_int_eq(hub_store_lookup(store, "S", "b0", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    hub_store_dead_t dead;
    ck_assert_int_eq(hub_store_dlq_get(store, s[2], &dead, arena), 0);
    ck_assert_str_eq(dead.reason, "retry budget exhausted");
    ck_assert_uint_eq(dead.msg.attempts, 1);
    ck_assert(memcmp(dead.msg.envelope, "b2", 2) == 0);
    uint64_t s3;
    ck_assert_int_eq(append1(store, "S", "R", "after", &s3), HUB_STORE_OK);
    ck_assert_uint_gt(s3, s[2]);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

/* What the store shows: the queue of R, dead letters, and (S, id). */
static void expect_only_keep(hub_store_t *store, uint64_t keep)
{
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 1);
    ck_assert_uint_eq(out[0].seq, keep);
    ck_assert_uint_eq(out[0].attempts, 0);
    hub_store_dead_t dead[4];
    size_t n = 99;
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 4, dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 0);
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "x", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "S", "y", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "S", "keep", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    hub_store_arena_destroy(&arena);
}

START_TEST(batch_abort_stores_nothing)
{
    hub_store_t *store = open_store(NULL);
    uint64_t keep, x, y;
    ck_assert_int_eq(append1(store, "S", "R", "keep", &keep), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(append1(store, "S", "R", "x", &x), HUB_STORE_OK);
    ck_assert_int_eq(append1(store, "S", "R", "y", &y), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_note_attempts(store, &keep, 1), 0);
    ck_assert_int_eq(hub_store_dead_letter(store, &x, 1, "ttl expired"), 0);
    ck_assert_int_eq(hub_store_ack(store, "R", &keep, 1), 0);
    hub_store_batch_abort(store);
    hub_store_batch_abort(store); /* no batch: nothing to do */
    ck_assert_int_eq(hub_store_batch_commit(store), HUB_EINVAL);
    expect_only_keep(store, keep);
    hub_store_close(&store);

    store = open_store(NULL);
    expect_only_keep(store, keep);
    uint64_t next;
    ck_assert_int_eq(append1(store, "S", "R", "next", &next), HUB_STORE_OK);
    ck_assert_uint_gt(next, keep);
    hub_store_close(&store);
}
END_TEST

/* Reads from a thread that does not own the batch. */
typedef struct {
    hub_store_t *store;
    uint64_t dead_seq;
    size_t queued;
    int queue_rc, dead_rc, lookup_rc;
    hub_store_state_t state;
} peek_t;

static void *peek_main(void *arg)
{
    peek_t *p = arg;
    hub_store_arena_t *arena = NULL;
    hub_store_msg_t out[8];
    hub_store_dead_t dead;
    uint64_t seq;
    p->queue_rc = hub_store_arena_new(&arena);
    if (p->queue_rc == 0)
        p->queue_rc = hub_store_read_queue(p->store, "R", 0, 8, out, &p->queued, arena);
    p->dead_rc = hub_store_dlq_get(p->store, p->dead_seq, &dead, NULL);
    p->lookup_rc = hub_store_lookup(p->store, "S", "b1", &seq, &p->state);
    hub_store_arena_destroy(&arena);
    return NULL;
}

static peek_t peek(hub_store_t *store, uint64_t dead_seq)
{
    peek_t p = {.store = store, .dead_seq = dead_seq};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, peek_main, &p), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    return p;
}

/* Appends from a thread that does not own the batch. */
typedef struct {
    hub_store_t *store;
    hub_store_msg_t msg;
    hub_store_outcome_t outcome;
    int rc;
    atomic_bool done;
} late_writer_t;

static void *late_writer_main(void *arg)
{
    late_writer_t *w = arg;
    w->rc = hub_store_append(w->store, &w->msg, 1, &w->outcome);
    atomic_store(&w->done, true);
    return NULL;
}

/* A hub_store_queues() callback inside a batch: its reads nest in the
 * batch's read, its writes are refused. */
typedef struct {
    hub_store_t *store;
    hub_store_arena_t *arena;
    uint64_t depth, read, write_seq;
    int read_rc, write_rc;
} nested_t;

static void on_queue_nested(const char *receiver, uint64_t depth, uint64_t oldest, void *user)
{
    (void)oldest;
    nested_t *t = user;
    hub_store_msg_t out[8];
    size_t n = 0;
    t->depth += depth;
    t->read_rc = hub_store_read_queue(t->store, receiver, 0, 8, out, &n, t->arena);
    t->read += n;
    t->write_rc = hub_store_note_attempts(t->store, &t->write_seq, 1);
}

START_TEST(batch_reads_see_it_on_its_thread_only)
{
    hub_store_t *store = open_store(NULL);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    uint64_t s1, s2, seq, dead_count = 0;
    hub_store_state_t state;
    ck_assert_int_eq(append1(store, "S", "R", "b1", &s1), HUB_STORE_OK);
    hub_store_msg_t m;
    hub_store_outcome_t outcome;
    make_msg(&m, "S", "R", "b2", "b2");
    m.expires_at_us = 5;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &outcome), 0);
    s2 = m.seq;

    /* The owner sees its batch ... */
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 2);
    ck_assert_uint_eq(out[0].seq, s1);
    ck_assert_int_eq(hub_store_lookup(store, "S", "b1", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_QUEUED);
    uint64_t expired[4];
    size_t n;
    ck_assert_int_eq(hub_store_expired(store, 10, expired, 4, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(expired[0], s2);
    /* ... and another thread does not. */
    peek_t p = peek(store, s1);
    ck_assert_int_eq(p.queue_rc, 0);
    ck_assert_uint_eq(p.queued, 0);
    ck_assert_int_eq(p.lookup_rc, HUB_ENOTFOUND);

    ck_assert_int_eq(hub_store_dead_letter(store, &s1, 1, "in a batch"), 0);
    hub_store_dead_t dead;
    ck_assert_int_eq(hub_store_dlq_get(store, s1, &dead, arena), 0);
    ck_assert_str_eq(dead.reason, "in a batch");
    ck_assert_int_eq(hub_store_dlq_list(store, 0, 1, &dead, &n, NULL), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(hub_store_usage(store, NULL, NULL, &dead_count), 0);
    ck_assert_uint_eq(dead_count, 1);
    ck_assert_int_eq(hub_store_lookup(store, "S", "b1", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DEAD);
    nested_t nested = {.store = store, .arena = arena, .write_seq = s2};
    ck_assert_int_eq(hub_store_queues(store, on_queue_nested, &nested), 0);
    ck_assert_uint_eq(nested.depth, 1);
    ck_assert_int_eq(nested.read_rc, 0);
    ck_assert_uint_eq(nested.read, 1);
    ck_assert_int_eq(nested.write_rc, HUB_EINVAL);
    p = peek(store, s1);
    ck_assert_int_eq(p.dead_rc, HUB_ENOTFOUND);
    ck_assert_uint_eq(p.queued, 0);

    /* A write from another thread waits for the batch to end. */
    late_writer_t w = {.store = store};
    make_msg(&w.msg, "S", "R", "late", "late");
    atomic_init(&w.done, false);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_writer_main, &w), 0);
    tk_sleep_ms(100);
    ck_assert(!atomic_load(&w.done));
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(w.outcome, HUB_STORE_OK);
    ck_assert_uint_gt(w.msg.seq, s2);

    /* After the commit every thread sees it. */
    p = peek(store, s1);
    ck_assert_int_eq(p.dead_rc, 0);
    ck_assert_int_eq(p.lookup_rc, 0);
    ck_assert_int_eq(p.state, HUB_STORE_STATE_DEAD);
    ck_assert_uint_eq(p.queued, 2);
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 2);
    ck_assert_uint_eq(out[0].attempts, 0); /* the refused write left nothing */
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(batch_failed_call_drops_only_its_own)
{
    hub_store_t *store = open_store(NULL);
    uint64_t pre, s1, s2, s3;
    ck_assert_int_eq(append1(store, "S", "R", "pre", &pre), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(append1(store, "S", "R", "a1", &s1), HUB_STORE_OK);
    /* A malformed item: the whole call is refused, the batch goes on. */
    hub_store_msg_t bad[2];
    hub_store_outcome_t outcomes[2];
    make_msg(&bad[0], "S", "R", "bad0", "x");
    make_msg(&bad[1], "S", "", "bad1", "x");
    ck_assert_int_eq(hub_store_append(store, bad, 2, outcomes), HUB_EINVAL);
    /* A call that fails after writing: the dead letter does not exist. */
    ck_assert_int_eq(hub_store_dlq_replay(store, s1, 0, 0, NULL), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_ack(store, "R", &pre, 1), 0);
    ck_assert_int_eq(append1(store, "S", "R", "a2", &s2), HUB_STORE_OK);
    ck_assert_uint_gt(s1, pre);
    ck_assert_uint_gt(s2, s1);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    ck_assert_int_eq(append1(store, "S", "R", "a3", &s3), HUB_STORE_OK);
    ck_assert_uint_gt(s3, s2);

    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[8];
    ck_assert_uint_eq(read_all(store, "R", out, 8, arena), 3);
    ck_assert_uint_eq(out[0].seq, s1);
    ck_assert_uint_eq(out[1].seq, s2);
    ck_assert_uint_eq(out[2].seq, s3);
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "bad0", &seq, &state), HUB_ENOTFOUND);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

START_TEST(batch_store_full)
{
    hub_store_limits_t limits = default_limits;
    limits.max_bytes = 1u << 20;
    hub_store_t *store = open_store(&limits);
    static char envelope[1501];
    memset(envelope, 'e', sizeof envelope - 1);
    enum { MAX = 1000 };
    uint64_t *seqs = calloc(MAX, sizeof *seqs);
    ck_assert_ptr_nonnull(seqs);

    /* Filling the map inside one batch: the 90% line counts the batch's
     * own pages, so appends are refused item by item (HUB_STORE_FULL), and
     * no call fails for want of pages. */
    size_t accepted = 0;
    bool full = false;
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    for (int i = 0; i < MAX / 4 && !full; i++) {
        hub_store_msg_t batch[4];
        hub_store_outcome_t outcomes[4];
        char ids[4][32];
        for (int j = 0; j < 4; j++) {
            snprintf(ids[j], sizeof ids[j], "m-%d-%d", i, j);
            make_msg(&batch[j], "S", "R", ids[j], envelope);
        }
        ck_assert_int_eq(hub_store_append(store, batch, 4, outcomes), 0);
        for (int j = 0; j < 4; j++) {
            if (outcomes[j] == HUB_STORE_OK) {
                ck_assert(accepted == 0 || batch[j].seq > seqs[accepted - 1]);
                seqs[accepted++] = batch[j].seq;
            } else {
                ck_assert_int_eq(outcomes[j], HUB_STORE_FULL);
                full = true;
            }
        }
    }
    ck_assert(full);
    ck_assert_uint_gt(accepted, 200);
    uint64_t used, max;
    ck_assert_int_eq(hub_store_usage(store, &used, &max, NULL), 0);
    ck_assert_uint_ge(used, max / 10 * 8); /* the owner's usage counts the batch */
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    hub_store_close(&store);

    /* Acks free pages only once their batch commits: an append of many
     * messages after them in the same batch runs out of map half-way and
     * fails as a whole; the ack next to it is kept. */
    store = open_store(&limits);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(hub_store_ack(store, "R", seqs, accepted), 0);
    enum { LATE = 150 };
    hub_store_msg_t *late = calloc(LATE, sizeof *late);
    hub_store_outcome_t *outcomes = calloc(LATE, sizeof *outcomes);
    char (*ids)[16] = calloc(LATE, 16);
    ck_assert(late && outcomes && ids);
    for (int i = 0; i < LATE; i++) {
        snprintf(ids[i], 16, "late-%d", i);
        make_msg(&late[i], "S", "R", ids[i], envelope);
    }
    ck_assert_int_eq(hub_store_append(store, late, LATE, outcomes), HUB_EFULL);
    for (int i = 0; i < LATE; i++)
        ck_assert_uint_eq(late[i].seq, 0);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    hub_store_close(&store);

    store = open_store(&limits);
    hub_store_arena_t *arena;
    ck_assert_int_eq(hub_store_arena_new(&arena), 0);
    hub_store_msg_t out[4];
    ck_assert_uint_eq(read_all(store, "R", out, 4, arena), 0);
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "late-0", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "S", "m-0-0", &seq, &state), 0);
    ck_assert_int_eq(state, HUB_STORE_STATE_DONE);
    /* Once the acks are committed their pages are free again, to the
     * second transaction after them (LMDB keeps the previous snapshot). */
    ck_assert_int_eq(append1(store, "S", "R", "tick", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_append(store, late, LATE, outcomes), 0);
    for (int i = 0; i < LATE; i++) {
        ck_assert_int_eq(outcomes[i], HUB_STORE_OK);
        ck_assert_uint_gt(late[i].seq, seqs[accepted - 1]);
    }
    free(ids);
    free(outcomes);
    free(late);
    free(seqs);
    hub_store_arena_destroy(&arena);
    hub_store_close(&store);
}
END_TEST

static void *commit_main(void *arg)
{
    static int rc;
    hub_store_t *store = arg;
    rc = hub_store_batch_commit(store);
    hub_store_batch_abort(store);
    return &rc;
}

START_TEST(batch_misuse_and_close_with_open_batch)
{
    ck_assert_int_eq(hub_store_batch_begin(NULL), HUB_EINVAL);
    ck_assert_int_eq(hub_store_batch_commit(NULL), HUB_EINVAL);
    hub_store_batch_abort(NULL);

    hub_store_t *store = open_store(NULL);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(hub_store_batch_begin(store), HUB_EINVAL);
    ck_assert_int_eq(append1(store, "S", "R", "lost", NULL), HUB_STORE_OK);
    /* Only the thread that began the batch can end it. */
    pthread_t th;
    void *res;
    ck_assert_int_eq(pthread_create(&th, NULL, commit_main, store), 0);
    ck_assert_int_eq(pthread_join(th, &res), 0);
    ck_assert_int_eq(*(int *)res, HUB_EINVAL);
    ck_assert_int_eq(hub_store_batch_begin(store), HUB_EINVAL); /* still open */
    hub_store_close(&store);
    ck_assert_ptr_null(store);

    /* Closing aborted the batch: nothing of it is stored (and under ASan,
     * nothing of its transaction leaks). */
    store = open_store(NULL);
    uint64_t seq;
    hub_store_state_t state;
    ck_assert_int_eq(hub_store_lookup(store, "S", "lost", &seq, &state), HUB_ENOTFOUND);
    ck_assert_int_eq(append1(store, "S", "R", "kept", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    hub_store_close(&store);
}
END_TEST

/* ---- PostgreSQL only ------------------------------------------------------ */

START_TEST(pg_schema_is_checked_at_open)
{
    hub_store_t *store = NULL;
    char err[512] = "";
    /* An empty database: refused until the schema is created. */
    ck_assert_int_eq(hub_store_open_pg(pg_dsn, false, &default_limits, &store, err, sizeof err),
                     HUB_ESTORE);
    ck_assert_ptr_null(store);
    ck_assert_msg(strstr(err, "hubctl store init"), "%s", err);
    uint32_t from = 99;
    ck_assert_int_eq(hub_store_pg_init(pg_dsn, &from, err, sizeof err), 0);
    ck_assert_uint_eq(from, 0);
    ck_assert_int_eq(hub_store_pg_init(pg_dsn, &from, err, sizeof err), 0);
    ck_assert_uint_eq(from, HUB_STORE_PG_SCHEMA);
    ck_assert_int_eq(hub_store_open_pg(pg_dsn, false, &default_limits, &store, err, sizeof err), 0);
    ck_assert_str_eq(hub_store_backend_name(store), "postgresql");
    ck_assert_int_eq(append1(store, "A", "B", "m1", NULL), HUB_STORE_OK);
    hub_store_close(&store);
    hub_store_info_t info;
    ck_assert_int_eq(hub_store_pg_inspect(pg_dsn, &info, err, sizeof err), 0);
    ck_assert_uint_eq(info.messages, 1);
    ck_assert_uint_eq(info.format, HUB_STORE_PG_SCHEMA);
    ck_assert_uint_eq(strlen(info.store_id), 32);
    /* A database of schema 1 (before the nodes' counts of migration 2) is
     * refused, with what to run, and brought up to date by init. */
    pg_sql("DROP TABLE hub_count_nodes, hub_flow_counts, hub_delegation_counts");
    pg_sql("DELETE FROM hub_schema_version WHERE version = 2");
    ck_assert_int_eq(hub_store_open_pg(pg_dsn, false, &default_limits, &store, err, sizeof err),
                     HUB_ESTORE);
    ck_assert_msg(strstr(err, "version 1, this build needs 2"), "%s", err);
    ck_assert_int_eq(hub_store_pg_init(pg_dsn, &from, err, sizeof err), 0);
    ck_assert_uint_eq(from, 1);
    pg_sql("SELECT count(*) FROM hub_flow_counts, hub_delegation_counts, hub_count_nodes");
    /* A newer schema is refused, also when told to migrate. */
    pg_sql("INSERT INTO hub_schema_version (version) VALUES (99)");
    ck_assert_int_eq(hub_store_open_pg(pg_dsn, true, &default_limits, &store, err, sizeof err),
                     HUB_ESTORE);
    ck_assert_msg(strstr(err, "newer"), "%s", err);
    ck_assert_int_eq(hub_store_pg_init(pg_dsn, NULL, err, sizeof err), HUB_ESTORE);
}
END_TEST

START_TEST(pg_bad_dsn_says_what_is_wrong)
{
    hub_store_t *store = NULL;
    char err[512] = "";
    ck_assert_int_eq(hub_store_open_pg("host=127.0.0.1 port=1 connect_timeout=2", true,
                                       &default_limits, &store, err, sizeof err),
                     HUB_EIO);
    ck_assert_msg(strstr(err, "cannot reach PostgreSQL"), "%s", err);
    char dsn[512];
    snprintf(dsn, sizeof dsn, "%s user=nosuchrole", pg_dsn);
    ck_assert_int_eq(hub_store_open_pg(dsn, true, &default_limits, &store, err, sizeof err),
                     HUB_EPERM);
    ck_assert_msg(strstr(err, "refused the login"), "%s", err);
    ck_assert_int_eq(
        hub_store_open_pg("this is not a dsn", true, &default_limits, &store, err, sizeof err),
        HUB_EINVAL);
    ck_assert_int_eq(hub_store_open_pg("", true, &default_limits, &store, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_ptr_null(store);
    /* A server that takes no writes (as a standby, or set read-only). */
    snprintf(dsn, sizeof dsn, "%s options='-c default_transaction_read_only=on'", pg_dsn);
    ck_assert_int_eq(hub_store_open_pg(dsn, true, &default_limits, &store, err, sizeof err),
                     HUB_EIO);
    ck_assert_msg(strstr(err, "takes no writes"), "%s", err);
    ck_assert_ptr_null(store);
}
END_TEST

START_TEST(pg_lost_connection_fails_the_commit_then_reconnects)
{
    hub_store_t *store = open_store(NULL);
    ck_assert_int_eq(append1(store, "A", "B", "before", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    hub_store_msg_t m;
    make_msg(&m, "A", "B", "lost", "x");
    hub_store_outcome_t oc;
    ck_assert_int_eq(hub_store_append(store, &m, 1, &oc), 0);
    /* The server drops every other connection: the batch's commit fails
     * with HUB_EAGAIN (did not complete; retryable: hubd answers it
     * UNAVAILABLE) and stores nothing. */
    pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
           "pg_backend_pid() AND datname = current_database()");
    ck_assert_int_eq(hub_store_batch_commit(store), HUB_EAGAIN);
    /* The next calls connect again (after a short backoff). */
    int rc = HUB_EAGAIN;
    hub_store_outcome_t oc2 = HUB_STORE_FULL;
    for (int i = 0; i < 50 && rc != 0; i++) {
        hub_store_msg_t m2;
        make_msg(&m2, "A", "B", "after", "y");
        rc = hub_store_append(store, &m2, 1, &oc2);
        if (rc != 0)
            usleep(100000);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(oc2, HUB_STORE_OK);
    hub_store_state_t st;
    ck_assert_int_eq(hub_store_lookup(store, "A", "lost", NULL, &st), HUB_ENOTFOUND);
    ck_assert_int_eq(hub_store_lookup(store, "A", "after", NULL, &st), 0);
    /* Connections cut while idle (waiting until their sessions ended): the
     * next batch and the next single call connect again at once and
     * succeed, nothing to retry. */
    pg_sql("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid <> "
           "pg_backend_pid() AND datname = current_database()");
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    make_msg(&m, "A", "B", "idle1", "z");
    ck_assert_int_eq(hub_store_append(store, &m, 1, &oc), 0);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    pg_sql("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid <> "
           "pg_backend_pid() AND datname = current_database()");
    ck_assert_int_eq(append1(store, "A", "B", "idle2", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_lookup(store, "A", "idle1", NULL, &st), 0);
    hub_store_close(&store);
}
END_TEST

/* A multi-host store_dsn: libpq tries the hosts in order and keeps the
 * first that takes writes (here the first host does not answer at all),
 * which is how hubd finds the new primary after a failover. */
START_TEST(pg_multi_host_dsn_finds_the_server_that_takes_writes)
{
    const char *port = strstr(pg_dsn, "port=");
    ck_assert_ptr_nonnull(port);
    char dsn[512];
    snprintf(dsn, sizeof dsn,
             "host=127.0.0.1,127.0.0.1 port=1,%d user=hub dbname=postgres "
             "target_session_attrs=read-write connect_timeout=5",
             atoi(port + 5));
    hub_store_t *store = NULL;
    char err[512] = "";
    ck_assert_msg(hub_store_open_pg(dsn, true, &default_limits, &store, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_int_eq(append1(store, "A", "B", "multi", NULL), HUB_STORE_OK);
    hub_store_close(&store);
}
END_TEST

static long pg_count_msgs(void)
{
    PGconn *c = PQconnectdb(pg_dsn);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "SELECT count(*) FROM hub_msgs");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return n;
}

/* A group commit is one PostgreSQL transaction: nothing of a batch is seen
 * from outside before its commit, all of it after, and a call inserts many
 * messages at once. */
START_TEST(pg_batch_is_one_transaction)
{
    hub_store_t *store = open_store(NULL);
    ck_assert_int_eq(append1(store, "A", "B", "before", NULL), HUB_STORE_OK);
    ck_assert_int_eq(hub_store_batch_begin(store), 0);
    for (int call = 0; call < 3; call++) {
        hub_store_msg_t m[100];
        hub_store_outcome_t oc[100];
        char ids[100][16];
        for (int i = 0; i < 100; i++) {
            snprintf(ids[i], sizeof ids[i], "c%d-%d", call, i);
            make_msg(&m[i], "A", i % 2 ? "B" : "C", ids[i], "payload");
        }
        ck_assert_int_eq(hub_store_append(store, m, 100, oc), 0);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(oc[i], HUB_STORE_OK);
    }
    uint64_t before = 1;
    ck_assert_int_eq(hub_store_ack(store, "B", &before, 1), 0);
    ck_assert_int_eq(pg_count_msgs(), 1);
    ck_assert_int_eq(hub_store_batch_commit(store), 0);
    ck_assert_int_eq(pg_count_msgs(), 300);
    hub_store_close(&store);
}
END_TEST

static long pg_long(const char *sql)
{
    PGconn *c = PQconnectdb(pg_dsn);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(c);
    return n;
}

/* Two active nodes (cluster = on) on one database: each has its own store
 * handle, commits a batch per cycle (hub_commit.c: appends, then acks; or
 * acks alone), and seqs from its own block (preset_seq). Both append the
 * same message ids at once (a member failing over resends to the other
 * node while the first node's commit is in flight). */
#define TWO_ROUNDS 60
#define TWO_SHARED 8 /* ids both nodes append in a round */
#define TWO_OWN 24   /* ids only one node appends in a round */
#define TWO_RCV 4

typedef struct {
    hub_store_t *store;
    int node;
    pthread_barrier_t *start;
    uint64_t next_seq;
    hub_store_outcome_t shared[TWO_ROUNDS][TWO_SHARED];
    uint64_t shared_seq[TWO_ROUNDS][TWO_SHARED];
    int failed; /* the first failing call's rc; 0: none */
    char what[128];
} two_node_t;

static void two_fail(two_node_t *n, int rc, const char *what, int round)
{
    if (rc != 0 && n->failed == 0) {
        n->failed = rc;
        snprintf(n->what, sizeof n->what, "%s in round %d: %s", what, round, hub_strerror(rc));
    }
}

/* Acknowledges what the receivers hold, one call per receiver (in an
 * order of the node's own), as a node does for the receivers connected
 * to it. */
static void two_acks(two_node_t *n, int round)
{
    for (int k = 0; k < TWO_RCV; k++) {
        char rcv[16];
        snprintf(rcv, sizeof rcv, "R%d", n->node ? TWO_RCV - 1 - k : k);
        hub_store_msg_t out[16];
        hub_store_arena_t *arena = NULL;
        size_t got = 0;
        int rc = hub_store_arena_new(&arena);
        if (rc == 0)
            rc = hub_store_read_queue(n->store, rcv, 0, 16, out, &got, arena);
        two_fail(n, rc, "read_queue", round);
        uint64_t seqs[16];
        for (size_t i = 0; i < got; i++)
            seqs[i] = out[i].seq;
        if (rc == 0 && got > 0)
            two_fail(n, hub_store_ack(n->store, rcv, seqs, got), "ack", round);
        hub_store_arena_destroy(&arena);
    }
}

static void *two_node_run(void *arg)
{
    two_node_t *n = arg;
    /* Every round meets the other node at the barrier, failed or not. */
    for (int round = 0; round < TWO_ROUNDS; round++) {
        hub_store_msg_t m[TWO_SHARED + TWO_OWN];
        hub_store_outcome_t oc[TWO_SHARED + TWO_OWN];
        char ids[TWO_SHARED + TWO_OWN][32], snd[TWO_SHARED + TWO_OWN][8],
            rcv[TWO_SHARED + TWO_OWN][8];
        for (int i = 0; i < TWO_SHARED + TWO_OWN; i++) {
            bool shared = i < TWO_SHARED;
            if (shared)
                snprintf(ids[i], sizeof ids[i], "shared-%d-%d", round, i);
            else
                snprintf(ids[i], sizeof ids[i], "own%d-%d-%d", n->node, round, i);
            snprintf(snd[i], sizeof snd[i], "S%d", shared ? i % 2 : (i + n->node) % 3);
            snprintf(rcv[i], sizeof rcv[i], "R%d", (i * 7 + round + n->node) % TWO_RCV);
            if (shared)
                snprintf(rcv[i], sizeof rcv[i], "R%d", i % TWO_RCV);
            make_msg(&m[i], snd[i], rcv[i], ids[i], ids[i]);
            /* Odd shared ids: other content from the second node. */
            memset(m[i].digest, shared && i % 2 && n->node ? 0xB2 : 0xA1, sizeof m[i].digest);
            m[i].preset_seq = n->next_seq++;
        }
        pthread_barrier_wait(n->start);
        if (n->failed)
            continue;
        int rc = hub_store_batch_begin(n->store);
        two_fail(n, rc, "batch_begin", round);
        if (rc != 0)
            continue;
        bool acks_first = (round + n->node) % 3 == 0;
        if (acks_first)
            two_acks(n, round);
        if (round % 5 != 4) /* now and then a cycle with acks alone */
            two_fail(n, hub_store_append(n->store, m, TWO_SHARED + TWO_OWN, oc), "append", round);
        else
            for (int i = 0; i < TWO_SHARED; i++)
                oc[i] = HUB_STORE_FULL;
        if (!acks_first)
            two_acks(n, round);
        rc = hub_store_batch_commit(n->store);
        two_fail(n, rc, "batch_commit", round);
        for (int i = 0; i < TWO_SHARED; i++) {
            n->shared[round][i] = round % 5 == 4 ? HUB_STORE_FULL : oc[i];
            n->shared_seq[round][i] = m[i].seq;
        }
        for (int i = TWO_SHARED; rc == 0 && round % 5 != 4 && i < TWO_SHARED + TWO_OWN; i++)
            if (oc[i] != HUB_STORE_OK)
                two_fail(n, HUB_ESTORE, "an own id not stored", round);
    }
    return NULL;
}

START_TEST(pg_two_nodes_append_at_once)
{
    /* A deadlock is found (and one of its transactions failed) sooner. */
    pg_sql("ALTER SYSTEM SET deadlock_timeout = '50ms'");
    pg_sql("SELECT pg_reload_conf()");
    two_node_t *nodes = calloc(2, sizeof *nodes);
    ck_assert_ptr_nonnull(nodes);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        nodes[k].store = open_store(NULL);
        nodes[k].node = k;
        nodes[k].start = &start;
        nodes[k].next_seq = (uint64_t)(k + 1) << 32; /* each node's seq block */
    }
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, two_node_run, &nodes[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&start);
    pg_sql("ALTER SYSTEM RESET deadlock_timeout");
    pg_sql("SELECT pg_reload_conf()");
    for (int k = 0; k < 2; k++)
        ck_assert_msg(nodes[k].failed == 0, "node %d: %s", k, nodes[k].what);
    /* Each shared id: stored once, by one node; the other node's append is
     * a duplicate (the same envelope) or ID_REUSED (other content), naming
     * the stored seq. */
    for (int round = 0; round < TWO_ROUNDS; round++) {
        if (round % 5 == 4)
            continue;
        for (int i = 0; i < TWO_SHARED; i++) {
            hub_store_outcome_t o0 = nodes[0].shared[round][i], o1 = nodes[1].shared[round][i];
            ck_assert_msg((o0 == HUB_STORE_OK) != (o1 == HUB_STORE_OK),
                          "shared-%d-%d: outcomes %d and %d", round, i, o0, o1);
            hub_store_outcome_t lost = o0 == HUB_STORE_OK ? o1 : o0;
            ck_assert_int_eq(lost, i % 2 ? HUB_STORE_ID_REUSED : HUB_STORE_DUPLICATE);
            ck_assert_uint_eq(nodes[0].shared_seq[round][i], nodes[1].shared_seq[round][i]);
        }
    }
    long shared = (TWO_ROUNDS - TWO_ROUNDS / 5) * TWO_SHARED;
    long own = 2L * (TWO_ROUNDS - TWO_ROUNDS / 5) * TWO_OWN;
    ck_assert_int_eq(pg_long("SELECT count(*) FROM hub_ids WHERE "
                             "substring(message_id FROM 1 FOR 6) = 'shared'::bytea"),
                     shared);
    ck_assert_int_eq(pg_long("SELECT count(*) FROM hub_ids"), shared + own);
    /* What the members hold still adds up after both nodes' acks. */
    ck_assert_int_eq(pg_long("SELECT msgs FROM hub_held WHERE kind = 't'"),
                     pg_long("SELECT count(*) FROM hub_msgs"));
    ck_assert_int_eq(pg_long("SELECT coalesce(sum(queued), 0) FROM hub_held WHERE kind = 'r'"),
                     pg_long("SELECT count(*) FROM hub_msgs WHERE NOT dead"));
    for (int k = 0; k < 2; k++)
        hub_store_close(&nodes[k].store);
    free(nodes);
}
END_TEST

/* The store's contract: both backends pass every one of these. */
#define STORE_CONTRACT_TESTS \
    append_and_read_in_order, seq_monotonic_across_reopen, dedup_window, dedup_within_batch, \
    ack_removes_and_is_idempotent, preset_seqs_are_kept_and_never_reused, \
    settled_message_keeps_only_its_id, queue_full_per_receiver, dead_letter_queue, \
    purge_older_spans_transactions, expired_scan, lookup_states_and_prune, queue_statistics, \
    reopen_keeps_everything, held_counts_follow_every_path, quotas_in_messages_and_bytes, \
    reserve_keeps_the_last_of_the_store_from_one_flow, reused_id_with_other_digest_is_refused, \
    reads_run_beside_writes, batch_abort_stores_nothing, \
    batch_reads_see_it_on_its_thread_only, batch_failed_call_drops_only_its_own, \
    batch_misuse_and_close_with_open_batch

/* One append call of many messages (a group commit of a busy hub) stops
 * at the same lines as calls of a few: the store measures its size only
 * now and then inside a call and bounds it in between, and must neither
 * go past the 90% line nor past the reserve line of one flow. */
START_TEST(one_large_append_stops_at_the_lines)
{
    hub_store_limits_t limits = default_limits;
    limits.max_bytes = 1u << 20;
    static char envelope[1501];
    memset(envelope, 'e', sizeof envelope - 1);
    hub_store_t *store = open_store(&limits);
    tally_t t = append_n(store, "A", "B", "a", 1000, envelope, NULL);
    ck_assert_int_gt(t.ok, 200);
    ck_assert_int_eq(t.ok + t.store_full, 1000);
    uint64_t used, max;
    ck_assert_int_eq(hub_store_usage(store, &used, &max, NULL), 0);
    ck_assert_msg(used <= max / 10 * 9 && used >= max / 10 * 8, "used %llu of %llu",
                  (unsigned long long)used, (unsigned long long)max);
    /* What one call took, calls of four take too (to within a page's
     * records: separate commits keep their own free-list pages). */
    hub_store_close(&store);
    teardown();
    setup();
    store = open_store(&limits);
    int small = 0;
    tally_t s = {.ok = 4};
    for (int i = 0; i < 1000 && s.ok == 4; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "s%d", i);
        s = append_n(store, "A", "B", prefix, 4, envelope, NULL);
        small += s.ok;
    }
    ck_assert_msg(t.ok >= small - 8 && t.ok <= small + 8, "one call took %d, calls of 4 took %d",
                  t.ok, small);
    hub_store_close(&store);

    /* The reserve line: one flow's single call stops there. */
    teardown();
    setup();
    limits.reserve_percent = 40; /* the reserve line is at 50% */
    store = open_store(&limits);
    t = append_n(store, "A", "B", "r", 1000, envelope, NULL);
    ck_assert_int_gt(t.ok, 100);
    ck_assert_int_gt(t.quota_sender, 0);
    ck_assert_int_eq(t.store_full + t.quota_receiver + t.other, 0);
    ck_assert_int_eq(hub_store_usage(store, &used, &max, NULL), 0);
    ck_assert_msg(used <= max / 2 && used >= max / 100 * 40, "used %llu of %llu",
                  (unsigned long long)used, (unsigned long long)max);
    hub_store_close(&store);
}
END_TEST

/* On PostgreSQL, the contract and its own tests. Left out, as LMDB's own: the
 * file's damage and formats, LMDB's page accounting of the 90% line
 * (store_full_keeps_what_is_stored, batch_store_full: PostgreSQL counts
 * envelope bytes plus HUB_STORE_PG_ROW_BYTES a message, so a small append
 * still fits where LMDB has no page left), its transaction ids and the
 * directory's modes. */
static Suite *pg_suite(void)
{
    const tk_case_t cases[] = {
        TK_CASE("contract", setup, teardown, 120, STORE_CONTRACT_TESTS),
        TK_CASE("postgresql", setup, teardown, 120,
                pg_schema_is_checked_at_open, pg_batch_is_one_transaction,
                pg_two_nodes_append_at_once,
                pg_bad_dsn_says_what_is_wrong,
                pg_lost_connection_fails_the_commit_then_reconnects,
                pg_multi_host_dsn_finds_the_server_that_takes_writes),
    };
    return tk_suite("store-postgresql", cases, sizeof cases / sizeof cases[0]);
}

static Suite *store_suite(void)
{
    const tk_case_t cases[] = {
        TK_CASE("contract", setup, teardown, 60, STORE_CONTRACT_TESTS),
        TK_CASE("lmdb", setup, teardown, 60, store_full_keeps_what_is_stored,
                corrupt_file_is_refused, foreign_lmdb_file_is_refused,
                other_format_version_is_refused, older_store_gets_an_id_kept_for_good,
                truncated_record_is_an_error, damaged_dead_letter_can_be_purged,
                format_1_store_is_upgraded, format_3_store_is_upgraded_to_4,
                open_creates_missing_directories, batch_commits_as_one_transaction,
                batch_store_full, one_large_append_stops_at_the_lines),
    };
    return tk_suite("store", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    pg_dsn = getenv("HUB_TEST_PG_DSN");
    if (pg_dsn && !*pg_dsn)
        pg_dsn = NULL;
    /* Not TK_MAIN: the PostgreSQL run (with_postgres.sh) picks its suite at run time. */
    return tk_run_suite(pg_dsn ? pg_suite() : store_suite());
}
