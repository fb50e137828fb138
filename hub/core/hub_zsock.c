#include "hub_zsock.h"
#include "hub_error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <zmq.h>

struct hub_zsock {
    uv_poll_t poll;   /* watches ZMQ_FD */
    uv_idle_t idle;   /* runs while input is pending */
    void *socket;
    hub_zsock_cb on_readable;
    void *user;
    int open_handles; /* freed when this reaches 0 after close */
    bool closing;
    bool in_callback;
    bool paused;
    /* ZMQ_EVENTS said POLLIN and nothing has read since: the next run
     * calls on_readable without asking again (each look at ZMQ_EVENTS is
     * a system call in libzmq: a poll() on its mailbox). */
    bool input_seen;
};

static void zsock__on_idle(uv_idle_t *idle);

static bool zsock__pending_input(hub_zsock_t *self)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(self->socket, ZMQ_EVENTS, &events, &len) != 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

static void zsock__run(hub_zsock_t *self)
{
    if (self->paused)
        uv_idle_stop(&self->idle);
    if (self->closing || self->in_callback || self->paused)
        return;
    if (self->input_seen || zsock__pending_input(self)) {
        self->input_seen = false;
        self->in_callback = true;
        self->on_readable(self, self->socket, self->user);
        self->in_callback = false;
    }
    if (self->closing || self->paused)
        return;
    if (zsock__pending_input(self)) {
        self->input_seen = true;
        uv_idle_start(&self->idle, zsock__on_idle);
    } else {
        uv_idle_stop(&self->idle);
    }
}

static void zsock__on_idle(uv_idle_t *idle)
{
    zsock__run(idle->data);
}

static void zsock__on_poll(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    zsock__run(poll->data);
}

int hub_zsock_start(uv_loop_t *loop, void *socket, hub_zsock_cb on_readable, void *user,
                    hub_zsock_t **out)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(socket, ZMQ_FD, &fd, &len) != 0)
        return HUB_EZMQ;
    hub_zsock_t *self = calloc(1, sizeof *self);
    if (!self)
        return HUB_ENOMEM;
    self->socket = socket;
    self->on_readable = on_readable;
    self->user = user;
    if (uv_poll_init(loop, &self->poll, fd) != 0) {
        free(self);
        return HUB_EIO;
    }
    uv_idle_init(loop, &self->idle);
    self->poll.data = self;
    self->idle.data = self;
    self->open_handles = 2;
    uv_poll_start(&self->poll, UV_READABLE, zsock__on_poll);
    /* Messages may already be waiting: the edge may have passed before we
     * started watching. */
    uv_idle_start(&self->idle, zsock__on_idle);
    *out = self;
    return 0;
}

void hub_zsock_kick(hub_zsock_t *self)
{
    if (!self || self->closing || self->paused || self->in_callback)
        return;
    /* A running idle handle looks at ZMQ_EVENTS itself, soon. */
    if (uv_is_active((uv_handle_t *)&self->idle))
        return;
    if (zsock__pending_input(self)) {
        self->input_seen = true;
        uv_idle_start(&self->idle, zsock__on_idle);
    }
}

void hub_zsock_pause(hub_zsock_t *self)
{
    if (!self || self->closing || self->paused)
        return;
    self->paused = true;
    uv_poll_stop(&self->poll);
    uv_idle_stop(&self->idle);
}

void hub_zsock_resume(hub_zsock_t *self)
{
    if (!self || self->closing || !self->paused)
        return;
    self->paused = false;
    uv_poll_start(&self->poll, UV_READABLE, zsock__on_poll);
    /* The edge may have passed while paused. */
    uv_idle_start(&self->idle, zsock__on_idle);
}

static void zsock__on_closed(uv_handle_t *handle)
{
    hub_zsock_t *self = handle->data;
    if (--self->open_handles == 0)
        free(self);
}

void hub_zsock_close(hub_zsock_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hub_zsock_t *self = *self_p;
    self->closing = true;
    uv_poll_stop(&self->poll);
    uv_idle_stop(&self->idle);
    uv_close((uv_handle_t *)&self->poll, zsock__on_closed);
    uv_close((uv_handle_t *)&self->idle, zsock__on_closed);
    *self_p = NULL;
}

int hub_zsock_recv_parts(void *socket, zmq_msg_t *parts, int max)
{
    int count = 0;
    bool more = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (count < max)
            parts[count++] = part;
        else
            zmq_msg_close(&part);
    }
    return count;
}
