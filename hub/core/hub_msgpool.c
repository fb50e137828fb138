/* hub_msgpool.c — see hub_msgpool.h. */
#include "hub_msgpool.h"

#include "hub_error.h"

#include <pthread.h>
#include <stdlib.h>

struct hub_msgpool {
    pthread_mutex_t lock; /* idle[] and n_idle: ZeroMQ's I/O thread returns buffers */
    size_t buf_size;
    size_t keep;  /* idle buffers kept at most; more are freed */
    size_t n_idle;
    void **idle;  /* keep slots */
};

hub_msgpool_t *hub_msgpool_new(size_t buf_size, size_t keep)
{
    hub_msgpool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->idle = calloc(keep ? keep : 1, sizeof *self->idle);
    if (!self->idle || pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self->idle);
        free(self);
        return NULL;
    }
    self->buf_size = buf_size;
    self->keep = keep;
    return self;
}

/* ZeroMQ's free function for the pool's messages (any thread). */
static void msgpool__release(void *data, void *hint)
{
    hub_msgpool_t *self = hint;
    pthread_mutex_lock(&self->lock);
    if (self->n_idle < self->keep) {
        self->idle[self->n_idle++] = data;
        data = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    free(data);
}

int hub_msgpool_msg(hub_msgpool_t *self, zmq_msg_t *msg, size_t len)
{
    if (!self || len > self->buf_size || len == 0)
        return zmq_msg_init_size(msg, len) == 0 ? 0 : HUB_ENOMEM;
    void *buf = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->n_idle > 0)
        buf = self->idle[--self->n_idle];
    pthread_mutex_unlock(&self->lock);
    if (!buf && !(buf = malloc(self->buf_size)))
        return HUB_ENOMEM;
    if (zmq_msg_init_data(msg, buf, len, msgpool__release, self) != 0) {
        msgpool__release(buf, self);
        return HUB_ENOMEM;
    }
    return 0;
}

size_t hub_msgpool_idle(hub_msgpool_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->n_idle;
    pthread_mutex_unlock(&self->lock);
    return n;
}

void hub_msgpool_destroy(hub_msgpool_t **self_p)
{
    hub_msgpool_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->n_idle; i++)
        free(self->idle[i]);
    free(self->idle);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
