/* Unit tests for the small shared helpers (issue 13, item 3): config-relative
 * paths and the member-side settings (hub_conf), byte order (hub_bytes.h),
 * the UTF-8 validator (hub_utf8.h), the growable buffer (hub_buf.h), the
 * vector macro (hub_vec.h) and packing any protobuf-c message (hub_wire). */
#include "hub_buf.h"
#include "hub_bytes.h"
#include "hub_conf.h"
#include "hub_error.h"
#include "hub_utf8.h"
#include "hub_vec.h"
#include "hub_wire.h"
#include "testkit.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(config_relative_paths)
{
    char dir[PATH_MAX];
    hub_conf_base_dir("/etc/lienthong/hubd.conf", dir, sizeof dir);
    ck_assert_str_eq(dir, "/etc/lienthong");
    hub_conf_base_dir("hubd.conf", dir, sizeof dir);
    ck_assert_str_eq(dir, ".");
    hub_conf_base_dir("/hubd.conf", dir, sizeof dir);
    ck_assert_str_eq(dir, "/");
    hub_conf_base_dir("conf/a.conf", dir, sizeof dir);
    ck_assert_str_eq(dir, "conf");

    char out[32], err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_conf_path("/etc/x", "k", "keys/a.pub", out, sizeof out, err, sizeof err),
                     0);
    ck_assert_str_eq(out, "/etc/x/keys/a.pub");
    ck_assert_int_eq(hub_conf_path("/etc/x", "k", "/abs/a.pub", out, sizeof out, err, sizeof err),
                     0);
    ck_assert_str_eq(out, "/abs/a.pub");
    ck_assert_int_eq(hub_conf_path("/etc/x", "k", "", out, sizeof out, err, sizeof err), 0);
    ck_assert_str_eq(out, ""); /* empty stays empty: "not set" */
    ck_assert_int_eq(hub_conf_path("/etc/x", "key_file", "a-name-much-longer-than-the-room", out,
                                   sizeof out, err, sizeof err),
                     HUB_EINVAL);
    ck_assert_str_eq(err, "key_file: path too long");

    char lang[8];
    ck_assert_int_eq(hub_conf_lang("lang", "en", lang, sizeof lang, err, sizeof err), 0);
    ck_assert_str_eq(lang, "en");
    ck_assert_int_eq(hub_conf_lang("lang", "fr", lang, sizeof lang, err, sizeof err), HUB_EINVAL);
    ck_assert_str_eq(err, "lang must be vi (Vietnamese) or en (English), not 'fr'");
}
END_TEST

static int member_entry(const char *key, const char *value, void *user, char *err, size_t err_size)
{
    int rc = hub_conf_member_entry(user, key, value, err, err_size);
    if (rc == HUB_ENOTFOUND) {
        snprintf(err, err_size, "unknown setting '%s'", key);
        return HUB_EINVAL;
    }
    return rc;
}

START_TEST(member_side_settings)
{
    hub_conf_member_t m;
    char err[HUB_ERRMSG_MAX];
    hub_conf_member_init(&m, "/srv/adapter/echo.conf");
    ck_assert_int_eq(hub_conf_parse_text("echo.conf",
                                         "hub_endpoint = tcp://127.0.0.1:5555\n"
                                         "hub_key_file = keys/hub.pub\n"
                                         "member_key_file = /secrets/me.secret\n",
                                         member_entry, &m, err, sizeof err),
                     0);
    ck_assert_str_eq(m.hub_endpoint, "tcp://127.0.0.1:5555");
    ck_assert_str_eq(m.hub_key_file, "/srv/adapter/keys/hub.pub");
    ck_assert_str_eq(m.member_key_file, "/secrets/me.secret");
    /* A key that is not a member setting is left to the caller, err untouched. */
    err[0] = '\0';
    ck_assert_int_eq(hub_conf_member_entry(&m, "plugin", "echo", err, sizeof err), HUB_ENOTFOUND);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(
        hub_conf_parse_text("echo.conf", "tick_ms = 5\n", member_entry, &m, err, sizeof err),
        HUB_EINVAL);
    ck_assert_str_eq(err, "echo.conf:1: unknown setting 'tick_ms'");
}
END_TEST

/* hub_endpoints: the nodes of one hub, checked one by one. */
START_TEST(member_side_endpoint_lists)
{
    hub_conf_member_t m;
    char err[HUB_ERRMSG_MAX];
    hub_conf_member_init(&m, "a.conf");
    ck_assert_int_eq(hub_conf_parse_text("a.conf",
                                         "hub_endpoints =  tcp://10.0.0.1:5555 ,tcp://hub-2:5555,"
                                         " ipc:///run/lth/hub.sock\n",
                                         member_entry, &m, err, sizeof err),
                     0);
    ck_assert_str_eq(m.hub_endpoint,
                     "tcp://10.0.0.1:5555,tcp://hub-2:5555,ipc:///run/lth/hub.sock");
    char list[HUB_ENDPOINTS_MAX][HUB_ENDPOINT_MAX];
    size_t n = 0;
    ck_assert_int_eq(hub_endpoint_list_parse("hub_endpoint", m.hub_endpoint, list,
                                             HUB_ENDPOINTS_MAX, &n, err, sizeof err),
                     0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[1], "tcp://hub-2:5555");
    static const struct {
        const char *text;
        const char *err;
    } bad[] = {
        {"hub_endpoints = tcp://10.0.0.1:5555, 10.0.0.2:5555\n",
         "b.conf:1: hub_endpoints: '10.0.0.2:5555' (item 2) is not a hub endpoint; write "
         "tcp://HOST:PORT"},
        {"hub_endpoints = tcp://10.0.0.1:5555,\n", "b.conf:1: hub_endpoints: item 2 of"},
        {"hub_endpoints =\n", "b.conf:1: hub_endpoints: item 1 of"},
        {"hub_endpoints = tcp://10.0.0.1:0\n", "(item 1) is not a hub endpoint"},
        {"hub_endpoints = tcp://10.0.0.1:55a5\n", "(item 1) is not a hub endpoint"},
        {"hub_endpoints = tcp://:5555\n", "(item 1) is not a hub endpoint"},
        {"hub_endpoints = tcp://a b:5555\n", "(item 1) is not a hub endpoint"},
        {"hub_endpoint = tcp://a:1, tcp://b:2\n",
         "b.conf:1: hub_endpoint names one endpoint; list several hub nodes with hub_endpoints"},
        {"hub_endpoints = tcp://a:1\nhub_endpoint = tcp://b:2\n",
         "b.conf:2: both hub_endpoint and hub_endpoints are set"},
        {"hub_endpoints = tcp://a:1,tcp://a:2,tcp://a:3,tcp://a:4,tcp://a:5,tcp://a:6,tcp://a:7,"
         "tcp://a:8,tcp://a:9,tcp://a:10,tcp://a:11,tcp://a:12,tcp://a:13,tcp://a:14,tcp://a:15,"
         "tcp://a:16,tcp://a:17\n",
         "more than 16 endpoints"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_conf_member_init(&m, "b.conf");
        err[0] = '\0';
        ck_assert_int_eq(
            hub_conf_parse_text("b.conf", bad[i].text, member_entry, &m, err, sizeof err),
            HUB_EINVAL);
        ck_assert_msg(strstr(err, bad[i].err), "case %zu: %s", i, err);
    }
}
END_TEST

/* Each order writes the bytes it names and reads them back, one row per
 * order with both widths. */
START_TEST(byte_order)
{
    static const struct {
        const char *name;
        void (*put32)(uint8_t *, uint32_t);
        uint32_t (*get32)(const uint8_t *);
        const char *bytes32;
        void (*put64)(uint8_t *, uint64_t);
        uint64_t (*get64)(const uint8_t *);
        const char *bytes64;
    } orders[] = {
        {"big-endian", hub_put_be32, hub_get_be32, "\x01\x02\x03\x04", hub_put_be64, hub_get_be64,
         "\x01\x02\x03\x04\x05\x06\x07\x08"},
        {"little-endian", hub_put_le32, hub_get_le32, "\x04\x03\x02\x01", hub_put_le64,
         hub_get_le64, "\x08\x07\x06\x05\x04\x03\x02\x01"},
    };
    uint8_t b[8];
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        orders[i].put32(b, 0x01020304u);
        ck_assert_msg(!memcmp(b, orders[i].bytes32, 4), "%s 32-bit bytes", orders[i].name);
        ck_assert_uint_eq(orders[i].get32(b), 0x01020304u);
        orders[i].put64(b, 0x0102030405060708ull);
        ck_assert_msg(!memcmp(b, orders[i].bytes64, 8), "%s 64-bit bytes", orders[i].name);
        ck_assert_uint_eq(orders[i].get64(b), 0x0102030405060708ull);
    }
    hub_put_be64(b, UINT64_MAX);
    ck_assert_uint_eq(hub_get_be64(b), UINT64_MAX);
}
END_TEST

static size_t utf8_len(const char *s)
{
    return hub_utf8_len((const uint8_t *)s, strlen(s));
}

START_TEST(utf8_validator)
{
    ck_assert_uint_eq(utf8_len("a"), 1);
    ck_assert_uint_eq(utf8_len("\xc3\xa9"), 2);         /* é */
    ck_assert_uint_eq(utf8_len("\xe1\xbb\x87"), 3);     /* ệ */
    ck_assert_uint_eq(utf8_len("\xf0\x9f\x98\x80"), 4); /* U+1F600 */
    ck_assert_uint_eq(utf8_len("\xc0\xaf"), 0);         /* overlong '/' */
    ck_assert_uint_eq(utf8_len("\xe0\x80\xaf"), 0);     /* overlong, 3 bytes */
    ck_assert_uint_eq(utf8_len("\xed\xa0\x80"), 0);     /* a surrogate */
    ck_assert_uint_eq(utf8_len("\xf4\x90\x80\x80"), 0); /* above U+10FFFF */
    ck_assert_uint_eq(utf8_len("\x80"), 0);             /* a continuation byte alone */
    ck_assert_uint_eq(utf8_len("\xe1\xbb"), 0);         /* cut short */
    ck_assert_uint_eq(utf8_len("\xe1\x41\x87"), 0);     /* not a continuation */
}
END_TEST

START_TEST(growable_buffer)
{
    hub_buf_t b = {0};
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(hub_buf_put(&b, "", 0), 0);
    ck_assert_str_eq(b.data, ""); /* anything written, even "", gives a string */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(hub_buf_puts(&b, "0123456789"), 0);
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_uint_eq(strlen(b.data), 10000);
    ck_assert(!memcmp(b.data + 9990, "0123456789", 10));
    /* The first failure sticks: nothing more is written. */
    b.error = HUB_ENOMEM;
    ck_assert_int_eq(hub_buf_puts(&b, "more"), HUB_ENOMEM);
    ck_assert_uint_eq(b.len, 10000);
    hub_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(b.error, 0);
    volatile size_t huge = SIZE_MAX; /* no overflow of len + n */
    ck_assert_int_eq(hub_buf_put(&b, "x", huge), HUB_ENOMEM);
    hub_buf_free(&b);
    /* printf-style, growing past the first allocation, and sticky too. */
    ck_assert_int_eq(hub_buf_printf(&b, "%s=%d;", "a", 1), 0);
    ck_assert_int_eq(hub_buf_printf(&b, "%02000d", 7), 0);
    ck_assert_uint_eq(b.len, 2004);
    ck_assert_uint_eq(strlen(b.data), 2004);
    ck_assert(!strncmp(b.data, "a=1;000", 7) && b.data[2003] == '7');
    b.error = HUB_ENOMEM;
    ck_assert_int_eq(hub_buf_printf(&b, "%d", 2), HUB_ENOMEM);
    ck_assert_uint_eq(b.len, 2004);
    hub_buf_free(&b);
}
END_TEST

typedef struct {
    char name[24];
    int n;
} vec_item_t;

START_TEST(vector_macro)
{
    vec_item_t *items = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(HUB_VEC_RESERVE(items, n, cap, 4), 0);
        ck_assert_uint_gt(cap, n);
        snprintf(items[n].name, sizeof items[n].name, "item %d", i);
        items[n++].n = i;
    }
    ck_assert_uint_eq(cap, 128); /* 4, doubled */
    ck_assert_str_eq(items[99].name, "item 99");
    ck_assert_int_eq(items[0].n, 0);
    free(items);
    /* A capacity that cannot be allocated is refused, the array kept. */
    uint64_t *big = NULL;
    size_t big_n = 0, big_cap = SIZE_MAX / 8;
    ck_assert_int_eq(HUB_VEC_RESERVE(big, big_n, big_cap, 4), 0); /* room already */
    big_n = big_cap;
    ck_assert_int_eq(HUB_VEC_RESERVE(big, big_n, big_cap, 4), HUB_ENOMEM);
    ck_assert_ptr_null(big);
}
END_TEST

START_TEST(protobuf_packing)
{
    Lth__V1__Heartbeat hb = LTH__V1__HEARTBEAT__INIT;
    hb.sent_at_us = 300;
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(hub_pb_pack(&hb.base, &buf, &len), 0);
    ck_assert_uint_eq(len, lth__v1__heartbeat__get_packed_size(&hb));
    Lth__V1__Heartbeat *back = lth__v1__heartbeat__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(back->sent_at_us, 300);
    lth__v1__heartbeat__free_unpacked(back, NULL);
    free(buf);
    /* An empty message still gives a buffer the caller frees. */
    Lth__V1__Heartbeat empty = LTH__V1__HEARTBEAT__INIT;
    ck_assert_int_eq(hub_pb_pack(&empty.base, &buf, &len), 0);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(len, 0);
    free(buf);
}
END_TEST

TK_MAIN("helpers", TK_CASE("helpers", NULL, NULL, 0, config_relative_paths, member_side_settings,
                           member_side_endpoint_lists, byte_order, utf8_validator, growable_buffer,
                           vector_macro, protobuf_packing))
