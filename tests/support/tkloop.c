#include "tkloop.h"

#include <pthread.h>

void tk_loop_with_client(uv_loop_t *loop, uv_async_t *wake, uv_async_cb on_wake,
                         void *(*client)(void *), void *arg)
{
    ck_assert_int_eq(uv_async_init(loop, wake, on_wake), 0);
    wake->data = arg;
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, client, arg), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(thread, NULL);
}

void tk_set_flag(void *flag)
{
    *(bool *)flag = true;
}
