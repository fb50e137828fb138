/* rawhop — the middle of the raw libzmq baseline: one ROUTER that forwards
 * between a client DEALER and a server DEALER, both ways, the way hubd sits
 * between two members but doing nothing else. With --curve-secret-file the
 * ROUTER is a CURVE server (both hops encrypted, no ZAP handler: the
 * baseline measures the cipher, not admission).
 *
 *   rawhop --endpoint tcp://127.0.0.1:* --ready-file FILE [--curve-secret-file FILE]
 *
 * Protocol, one ZeroMQ frame per message on every hop (as the hub's):
 *   server -> relay  "S"                       registers the server; relay answers "OK"
 *   client -> relay  PAYLOAD                   relay -> server: [len][client rid][PAYLOAD]
 *   server -> relay  [len][client rid][PAYLOAD] relay -> client: PAYLOAD
 * The server echoes what it gets, so a client's round trip is two hops each way.
 * Runs until killed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static int rawhop__ready(const char *path, const char *endpoint)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "endpoint=%s\npid=%ld\n", endpoint, (long)getpid());
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL, *ready = NULL, *secret_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--endpoint"))
            endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--ready-file"))
            ready = argv[i + 1];
        else if (!strcmp(argv[i], "--curve-secret-file"))
            secret_file = argv[i + 1];
    }
    if (!endpoint || !ready) {
        fprintf(stderr,
                "usage: rawhop --endpoint EP --ready-file FILE [--curve-secret-file FILE]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0, one = 1, hwm = 100000;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (secret_file) {
        char z85[64] = "";
        FILE *f = fopen(secret_file, "r");
        if (!f || !fgets(z85, sizeof z85, f)) {
            fprintf(stderr, "rawhop: cannot read %s\n", secret_file);
            return 1;
        }
        fclose(f);
        z85[strcspn(z85, "\r\n")] = '\0';
        uint8_t secret[32];
        if (!zmq_z85_decode(secret, z85)) {
            fprintf(stderr, "rawhop: %s does not hold a Z85 key\n", secret_file);
            return 1;
        }
        zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, secret, 32);
    }
    if (zmq_bind(router, endpoint) != 0) {
        fprintf(stderr, "rawhop: cannot bind %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        return 1;
    }
    char bound[256];
    size_t len = sizeof bound;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, bound, &len);
    if (rawhop__ready(ready, bound) != 0) {
        fprintf(stderr, "rawhop: cannot write %s\n", ready);
        return 1;
    }

    uint8_t server_rid[256];
    size_t server_rid_len = 0;
    for (;;) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, router, 0) < 0 || zmq_msg_recv(&body, router, 0) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        size_t rlen = zmq_msg_size(&rid), blen = zmq_msg_size(&body);
        const uint8_t *b = zmq_msg_data(&body);
        bool from_server =
            server_rid_len == rlen && rlen > 0 && memcmp(server_rid, zmq_msg_data(&rid), rlen) == 0;
        if (blen == 1 && b[0] == 'S' && rlen <= sizeof server_rid) {
            memcpy(server_rid, zmq_msg_data(&rid), rlen);
            server_rid_len = rlen;
            zmq_send(router, server_rid, server_rid_len, ZMQ_SNDMORE);
            zmq_send(router, "OK", 2, 0);
        } else if (from_server) {
            size_t clen = blen > 0 ? b[0] : 0;
            if (blen >= 1 + clen && clen > 0) {
                zmq_msg_t out;
                zmq_msg_init_size(&out, blen - 1 - clen);
                memcpy(zmq_msg_data(&out), b + 1 + clen, blen - 1 - clen);
                zmq_send(router, b + 1, clen, ZMQ_SNDMORE);
                if (zmq_msg_send(&out, router, 0) < 0)
                    zmq_msg_close(&out);
            }
        } else if (server_rid_len > 0 && rlen < 256) {
            zmq_msg_t out;
            zmq_msg_init_size(&out, 1 + rlen + blen);
            uint8_t *o = zmq_msg_data(&out);
            o[0] = (uint8_t)rlen;
            memcpy(o + 1, zmq_msg_data(&rid), rlen);
            memcpy(o + 1 + rlen, b, blen);
            zmq_send(router, server_rid, server_rid_len, ZMQ_SNDMORE);
            if (zmq_msg_send(&out, router, 0) < 0)
                zmq_msg_close(&out);
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    zmq_close(router);
    zmq_ctx_term(ctx);
    return 0;
}
