/* greet — an adapter written outside the source tree (tests/package/run.sh
 * builds it in a Debian 12 root with the installed SDK only):
 *   gcc -o greet greet.c $(pkg-config --cflags --libs lienthong-adp)
 * It offers greet/v1 and answers {"greeting":"xin chao <payload>"}.
 * Usage: greet HUB-ENDPOINT HUB.pub MEMBER.secret */
#include <adp.h>
#include <hub_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int greet(adp_client_t *c, const adp_message_t *msg, adp_reply_t *reply, void *user)
{
    (void)c;
    (void)user;
    size_t size = msg->payload_len + 32;
    char *text = malloc(size);
    if (!text)
        return HUB_ENOMEM;
    int n = snprintf(text, size, "{\"greeting\":\"xin chao %.*s\"}", (int)msg->payload_len,
                     (const char *)msg->payload);
    snprintf(reply->content_type, sizeof reply->content_type, "application/json");
    reply->payload = (unsigned char *)text;
    reply->payload_len = (size_t)n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: greet HUB-ENDPOINT HUB.pub MEMBER.secret\n");
        return 2;
    }
    adp_config_t cfg = {argv[1], argv[2], argv[3], 5000, "greet", NULL};
    adp_client_t *c = NULL;
    char err[512] = "";
    if (adp_new(&cfg, &c, err, sizeof err) != 0 || adp_offer(c, "greet/v1", greet, NULL) != 0 ||
        adp_start(c, err, sizeof err) != 0) {
        fprintf(stderr, "greet: %s\n", err);
        adp_close(&c);
        return 1;
    }
    printf("greet: ready\n");
    fflush(stdout);
    for (;;)
        adp_run(c, 1000);
}
