/* The two ciphers, alone (issue 21, target 3): CURVE's XSalsa20-Poly1305
 * (libsodium's crypto_box_afternm, what libzmq seals every CurveZMQ
 * message with) and TLS's AES-128-GCM (OpenSSL's EVP, what nats-server's
 * TLS 1.3 connections use on a CPU with AES-NI), each sealing 128 KiB
 * frames (the hub's Deliveries frames are cut near that size) in this
 * thread for the measured window.
 *
 * A "message" of these rows is one KiB sealed, so that msg/s reads as KiB/s
 * and the CPU column as µs per KiB: the cipher's share of a row's
 * CPU per message is that figure times the KiB its messages cross CURVE or
 * TLS with (BENCHMARKS.md, "The cipher's share").
 */
#include "bench.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CIPHER__FRAME (128u * 1024u)

static uint64_t cipher__cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One frame sealed; false on a cipher error. */
static bool cipher__seal(bool aes, EVP_CIPHER_CTX *ctx, const uint8_t *key, uint8_t *nonce,
                         const uint8_t *in, uint8_t *out)
{
    if (!aes) {
        /* crypto_box_afternm's layout: 32 zero bytes, then the message. */
        return crypto_box_afternm(out, in, CIPHER__FRAME + crypto_box_ZEROBYTES, nonce, key) == 0;
    }
    int len = 0, fin = 0;
    uint8_t tag[16];
    return EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
           EVP_EncryptUpdate(ctx, out, &len, in, (int)CIPHER__FRAME) == 1 &&
           EVP_EncryptFinal_ex(ctx, out + len, &fin) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag) == 1;
}

void bench_cipher(bool aes, bench_result_t *out)
{
    if (sodium_init() < 0) {
        bench_result_na(out, "sodium_init failed");
        return;
    }
    size_t n = CIPHER__FRAME + crypto_box_ZEROBYTES;
    uint8_t *in = calloc(1, n), *sealed = calloc(1, n);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t key[crypto_box_BEFORENMBYTES], nonce[crypto_box_NONCEBYTES] = {0};
    randombytes_buf(key, sizeof key);
    if (!in || !sealed || !ctx ||
        EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, NULL) != 1) {
        bench_result_na(out, "cannot set up the ciphers (out of memory or OpenSSL error)");
        goto done;
    }
    randombytes_buf(in + crypto_box_ZEROBYTES, CIPHER__FRAME);
    bench_window_t w;
    bench_window_init(&w);
    /* A short warm-up (caches, CPU clock), then the measured window. */
    uint64_t warm_until = bench_now_ns() + 200000000u;
    while (bench_now_ns() < warm_until)
        (void)cipher__seal(aes, ctx, key, nonce, aes ? in + crypto_box_ZEROBYTES : in, sealed);
    w.self0_ns = cipher__cpu_ns();
    w.t0_ns = bench_now_ns();
    uint64_t until = w.t0_ns + (uint64_t)(bench_opts.measure_s * 1e9);
    uint64_t now = w.t0_ns;
    while (now < until) {
        sodium_increment(nonce, aes ? 12 : sizeof nonce); /* a fresh nonce per frame */
        if (!cipher__seal(aes, ctx, key, nonce, aes ? in + crypto_box_ZEROBYTES : in, sealed)) {
            bench_window_error(&w, "%s failed", aes ? "AES-128-GCM" : "crypto_box_afternm");
            break;
        }
        atomic_fetch_add(&w.completed, CIPHER__FRAME / 1024u);
        now = bench_now_ns();
    }
    w.t1_ns = now;
    w.self1_ns = cipher__cpu_ns();
    bench_lat_t lat = {0};
    bench_result_from(out, &w, &lat);
    bench_lat_free(&lat);
    /* The figure that does not depend on how busy the machine is: this
     * thread's CPU per KiB, in the middle's CPU column. */
    if (out->completed)
        out->cpu_us = (double)(w.self1_ns - w.self0_ns) / 1000.0 / (double)out->completed;
    if (!out->errors)
        snprintf(out->note, sizeof out->note,
                 "a message is 1 KiB sealed; %.3f µs of this thread's CPU per KiB (the CPU "
                 "column); no latency",
                 out->cpu_us);
done:
    EVP_CIPHER_CTX_free(ctx);
    free(in);
    free(sealed);
}
