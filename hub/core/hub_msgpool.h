/* hub_msgpool.h — buffers for the frames the hub sends, kept for reuse.
 *
 * A Deliveries frame is cut near HUB__FRAME_SOFT_MAX (128 KiB), the size at
 * which glibc starts serving malloc from fresh pages: built in a new
 * zmq_msg_init_size() buffer each time, its first write touched pages the
 * kernel had to fault in and zero (a tenth of the loop thread's time on the
 * online-only path, perf in docs/bench-notes/onl21.md). A pool hands out
 * ZeroMQ messages whose data is one of a few buffers of a fixed size, taken
 * back when ZeroMQ is done with the message — in its I/O thread, so the pool
 * is locked.
 *
 * Ownership: hub_msgpool_msg() initialises *msg (the caller then owns it as
 * any zmq_msg_t: send it or close it); the buffer returns to the pool when
 * ZeroMQ frees the message. A pool is destroyed after the ZeroMQ context
 * that may still hold its messages has ended (zmq_ctx_term). */
#ifndef HUB_MSGPOOL_H
#define HUB_MSGPOOL_H

#include <stddef.h>
#include <zmq.h>

typedef struct hub_msgpool hub_msgpool_t;

/* A pool of buffers of buf_size bytes, keeping at most keep of them idle.
 * Returns NULL when out of memory. */
hub_msgpool_t *hub_msgpool_new(size_t buf_size, size_t keep);

/* Initialises *msg with len bytes of data: a pool buffer when len fits,
 * else zmq_msg_init_size(). 0, or HUB_ENOMEM. */
int hub_msgpool_msg(hub_msgpool_t *self, zmq_msg_t *msg, size_t len);

/* Buffers idle in the pool now (for tests and metrics). */
size_t hub_msgpool_idle(hub_msgpool_t *self);

/* Frees the pool and its idle buffers; NULL is fine; *self_p becomes NULL.
 * No message of the pool may be alive (see above). */
void hub_msgpool_destroy(hub_msgpool_t **self_p);

#endif
