/* test_msgpool.c — hub_msgpool: frame buffers handed out again once ZeroMQ
 * is done with them, bounded, and never for what does not fit. */
#include "hub_msgpool.h"
#include "testkit.h"

#include <check.h>
#include <string.h>
#include <zmq.h>

START_TEST(a_closed_message_gives_its_buffer_back)
{
    hub_msgpool_t *pool = hub_msgpool_new(4096, 4);
    ck_assert_ptr_nonnull(pool);
    zmq_msg_t a, b;
    ck_assert_int_eq(hub_msgpool_msg(pool, &a, 1000), 0);
    ck_assert_uint_eq(zmq_msg_size(&a), 1000);
    void *data = zmq_msg_data(&a);
    memset(data, 7, 1000);
    zmq_msg_close(&a);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 1);
    ck_assert_int_eq(hub_msgpool_msg(pool, &b, 4096), 0);
    ck_assert_ptr_eq(zmq_msg_data(&b), data); /* the same buffer again */
    ck_assert_uint_eq(zmq_msg_size(&b), 4096);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 0);
    zmq_msg_close(&b);
    hub_msgpool_destroy(&pool);
    ck_assert_ptr_null(pool);
    hub_msgpool_destroy(&pool); /* NULL is fine */
}
END_TEST

START_TEST(what_does_not_fit_is_not_pooled)
{
    hub_msgpool_t *pool = hub_msgpool_new(4096, 4);
    zmq_msg_t m;
    ck_assert_int_eq(hub_msgpool_msg(pool, &m, 4097), 0);
    ck_assert_uint_eq(zmq_msg_size(&m), 4097);
    memset(zmq_msg_data(&m), 1, 4097);
    zmq_msg_close(&m);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 0);
    ck_assert_int_eq(hub_msgpool_msg(NULL, &m, 10), 0); /* no pool: zmq_msg_init_size */
    ck_assert_uint_eq(zmq_msg_size(&m), 10);
    zmq_msg_close(&m);
    hub_msgpool_destroy(&pool);
}
END_TEST

START_TEST(idle_buffers_are_bounded)
{
    hub_msgpool_t *pool = hub_msgpool_new(256, 3);
    zmq_msg_t m[6];
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(hub_msgpool_msg(pool, &m[i], 256), 0);
    for (int i = 0; i < 6; i++)
        zmq_msg_close(&m[i]);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 3); /* the others were freed */
    hub_msgpool_destroy(&pool);
}
END_TEST

/* Through a socket pair: the buffer is ZeroMQ's until the receiver closes
 * the message, and comes back then; the bytes arrive intact. */
START_TEST(a_sent_message_comes_back_when_received_and_closed)
{
    void *ctx = zmq_ctx_new();
    void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
    ck_assert_int_eq(zmq_bind(rx, "inproc://msgpool"), 0);
    ck_assert_int_eq(zmq_connect(tx, "inproc://msgpool"), 0);
    hub_msgpool_t *pool = hub_msgpool_new(1 << 16, 2);
    zmq_msg_t m;
    ck_assert_int_eq(hub_msgpool_msg(pool, &m, 50000), 0);
    for (size_t i = 0; i < 50000; i++)
        ((unsigned char *)zmq_msg_data(&m))[i] = (unsigned char)(i * 31);
    ck_assert_int_eq(zmq_msg_send(&m, tx, 0), 50000);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 0); /* on its way */
    zmq_msg_t in;
    zmq_msg_init(&in);
    ck_assert_int_eq(zmq_msg_recv(&in, rx, 0), 50000);
    for (size_t i = 0; i < 50000; i++)
        ck_assert_uint_eq(((unsigned char *)zmq_msg_data(&in))[i], (unsigned char)(i * 31));
    zmq_msg_close(&in);
    ck_assert_uint_eq(hub_msgpool_idle(pool), 1);
    zmq_close(tx);
    zmq_close(rx);
    ck_assert_int_eq(zmq_ctx_term(ctx), 0);
    hub_msgpool_destroy(&pool);
}
END_TEST

TK_MAIN("msgpool", TK_CASE("msgpool", NULL, NULL, 0, a_closed_message_gives_its_buffer_back,
                           what_does_not_fit_is_not_pooled, idle_buffers_are_bounded,
                           a_sent_message_comes_back_when_received_and_closed))
