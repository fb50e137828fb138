/* tkloop — the two threads of a unit test of a server on a libuv loop
 * (hub_http, hub_ops): the loop runs in the test's main thread, and a
 * client thread of the test's own talks to the server over real sockets.
 *
 * The client thread cannot use Check's assertions: it records its first
 * failure with TK_CHECK in its harness's `failure` array (a char array),
 * and the main thread asserts that the array is empty once both have ended.
 */
#ifndef TKLOOP_H
#define TKLOOP_H

#include "testkit.h"

#include <uv.h>

/* In the client thread: TK_THREAD_CHECK into the harness h's `failure`. */
#define TK_CHECK(h, cond, ...) TK_THREAD_CHECK((h)->failure, cond, __VA_ARGS__)

/* Runs client(arg) in a thread of its own while loop runs in this thread
 * until nothing is left on it, then joins the thread. wake is initialised
 * here with on_wake and data arg: the client's uv_async_send(wake) is how it
 * asks the loop for something and, at its end, says that it is done
 * (on_wake then closes the server and wake, and the loop ends). */
void tk_loop_with_client(uv_loop_t *loop, uv_async_t *wake, uv_async_cb on_wake,
                         void *(*client)(void *), void *arg);

/* A close callback that records that it ran: sets the bool flag points to. */
void tk_set_flag(void *flag);

#endif
