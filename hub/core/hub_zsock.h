/* hub_zsock — a ZeroMQ socket driven by a libuv loop.
 *
 * ZMQ_FD is edge-triggered and signals only that ZMQ_EVENTS may have changed.
 * This module polls it readable-only and calls `on_readable` whenever
 * ZMQ_EVENTS says ZMQ_POLLIN. The callback must drain at most a bounded batch
 * and return; if input remains, a uv_idle_t keeps the loop from sleeping and
 * the callback runs again on the next turn. After zmq_sends on the socket
 * the owner calls hub_zsock_kick() before the loop next waits (once for a
 * series of sends will do), because a send can consume the edge. Each look
 * at ZMQ_EVENTS costs libzmq a system call, so the watcher looks as little
 * as it can: the callback may therefore find nothing to read, and must
 * then simply return.
 *
 * The owner keeps the ZeroMQ socket; hub_zsock_close() stops the handles
 * (asynchronously; the loop must run once more) and must be called before
 * zmq_close().
 */
#ifndef HUB_ZSOCK_H
#define HUB_ZSOCK_H

#include <uv.h>
#include <zmq.h>

typedef struct hub_zsock hub_zsock_t;
typedef void (*hub_zsock_cb)(hub_zsock_t *zs, void *socket, void *user);

int hub_zsock_start(uv_loop_t *loop, void *socket, hub_zsock_cb on_readable, void *user,
                    hub_zsock_t **out);
/* Re-reads ZMQ_EVENTS and schedules on_readable when input is pending. */
void hub_zsock_kick(hub_zsock_t *self);
/* Stops reading for a while (input waits in ZeroMQ's queue; nothing is
 * lost) until hub_zsock_resume(). */
void hub_zsock_pause(hub_zsock_t *self);
void hub_zsock_resume(hub_zsock_t *self);
/* Stops watching and frees the wrapper once libuv has closed its handles. */
void hub_zsock_close(hub_zsock_t **self_p);
/* Reads one multipart message without waiting: its first `max` parts into
 * parts (any further part is read and dropped). Returns how many parts were
 * kept, 0 when no message waits; the caller closes the kept parts. */
int hub_zsock_recv_parts(void *socket, zmq_msg_t *parts, int max);

#endif
