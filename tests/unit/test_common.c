/* Unit tests for the shared modules: member ids, config files, key files and
 * key directories, frames and envelopes, the hash map. */
#include "hub_conf.h"
#include "hub_ctype.h"
#include "hub_error.h"
#include "hub_fsguard.h"
#include "hub_id.h"
#include "hub_keys.h"
#include "hub_map.h"
#include "hub_wire.h"
#include "testkit.h"
#include "tkwire.h"

#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(member_ids)
{
    TK_ASSERT_YES_NO(hub_member_id_valid, {"VN/GOV/HN-STP/HOTICH", true},
                     {"VN/GOV/BCA/CSDLQGDC", true}, {"a/b/c/d_1", true}, {"", false},
                     {"VN/GOV/HN-STP", false}, {"VN/GOV/HN-STP/HOTICH/X", false},
                     {"VN//HN-STP/HOTICH", false}, {"VN/GOV/HN-STP/", false},
                     {"/GOV/HN-STP/X", false}, {"VN/GOV/HN.STP/HOTICH", false},
                     {"VN/GOV/HN STP/HOTICH", false}, {"VN/GOV/Sở/HOTICH", false});
    char longpart[80];
    memset(longpart, 'A', 65);
    longpart[65] = '\0';
    char id[128];
    snprintf(id, sizeof id, "VN/GOV/%s/X", longpart);
    ck_assert(!hub_member_id_valid(id));
    ck_assert_ptr_nonnull(strstr(hub_member_id_problem("VN/GOV/X"), "four parts"));
    char s[256];
    ck_assert_int_eq(hub_member_id_to_slug("VN/GOV/HN-STP/HOTICH", s, sizeof s), 0);
    ck_assert_str_eq(s, "VN.GOV.HN-STP.HOTICH");
    ck_assert_int_eq(hub_member_id_to_slug("bad", s, sizeof s), HUB_EINVAL);
    ck_assert_int_eq(hub_member_id_to_slug("VN/GOV/HN-STP/HOTICH", s, 5), HUB_EINVAL);
}
END_TEST

START_TEST(services)
{
    TK_ASSERT_YES_NO(hub_service_valid, {"citizen.lookup/v1", true}, {"echo/v1", true},
                     {"citizen.lookup", false}, {"/v1", false}, {"a/", false}, {"a/b/c", false},
                     {"a b/v1", false}, {"", false});
}
END_TEST

typedef struct {
    char keys[8][32];
    char values[8][64];
    int n;
} conf_seen_t;

static int conf_collect(const char *key, const char *value, void *user, char *err,
                        size_t err_size)
{
    conf_seen_t *seen = user;
    if (!strcmp(key, "bad")) {
        snprintf(err, err_size, "bad is not allowed");
        return HUB_EINVAL;
    }
    snprintf(seen->keys[seen->n], 32, "%s", key);
    snprintf(seen->values[seen->n], 64, "%s", value);
    seen->n++;
    return 0;
}

START_TEST(member_service_split)
{
    char member[HUB_MEMBER_ID_MAX + 1];
    const char *service = NULL;
    ck_assert(hub_member_service_split("VN/GOV/HN-VP/TTHC/catalogue.published/v1", member,
                                       &service));
    ck_assert_str_eq(member, "VN/GOV/HN-VP/TTHC");
    ck_assert_str_eq(service, "catalogue.published/v1");
    ck_assert(!hub_member_service_split("VN/GOV/HN-VP/TTHC", member, &service));
    ck_assert(!hub_member_service_split("VN/GOV/HN-VP/TTHC/", member, &service));
    ck_assert(!hub_member_service_split("VN/GOV//TTHC/x/v1", member, &service));
    ck_assert(!hub_member_service_split("VN/GOV/HN-VP/TTHC/noversion", member, &service));
}
END_TEST

START_TEST(config_files)
{
    conf_seen_t seen = {0};
    char err[HUB_ERRMSG_MAX];
    int rc = hub_conf_parse_text("t.conf", "# comment\n\n a = 1 \nb=\"  two \"\r\nc.d-e = x=y\n",
                                 conf_collect, &seen, err, sizeof err);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(seen.n, 3);
    ck_assert_str_eq(seen.keys[0], "a");
    ck_assert_str_eq(seen.values[0], "1");
    ck_assert_str_eq(seen.values[1], "  two ");
    ck_assert_str_eq(seen.keys[2], "c.d-e");
    ck_assert_str_eq(seen.values[2], "x=y");

    memset(&seen, 0, sizeof seen);
    rc = hub_conf_parse_text("t.conf", "a = 1\n\nno equals here\n", conf_collect, &seen, err,
                             sizeof err);
    ck_assert_int_eq(rc, HUB_EPARSE);
    ck_assert_msg(strstr(err, "t.conf:3:"), "%s", err);
    rc = hub_conf_parse_text("t.conf", "a = 1\nbad = 2\n", conf_collect, &seen, err, sizeof err);
    ck_assert_int_eq(rc, HUB_EINVAL);
    ck_assert_str_eq(err, "t.conf:2: bad is not allowed");
    rc = hub_conf_parse_text("t.conf", "Upper = 2\n", conf_collect, &seen, err, sizeof err);
    ck_assert_int_eq(rc, HUB_EPARSE);
    rc = hub_conf_parse_file("/nonexistent/x.conf", conf_collect, &seen, err, sizeof err);
    ck_assert_int_eq(rc, HUB_ENOENT);
    ck_assert_msg(strstr(err, "/nonexistent/x.conf"), "%s", err);

    unsigned long long v;
    ck_assert_int_eq(hub_conf_uint("k", "42", 1, 100, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(hub_conf_uint("k", "-1", 1, 100, &v, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(hub_conf_uint("k", "101", 1, 100, &v, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(hub_conf_uint("k", "4x", 1, 100, &v, err, sizeof err), HUB_EINVAL);
    ck_assert_int_eq(hub_conf_uint("k", "", 1, 100, &v, err, sizeof err), HUB_EINVAL);
    ck_assert_msg(strstr(err, "from 1 to 100"), "%s", err);
}
END_TEST

START_TEST(key_files_round_trip)
{
    char dir[PATH_MAX];
    tk_tmpdir(dir);
    hub_keypair_t kp, back;
    ck_assert_int_eq(hub_keypair_generate("VN/GOV/BCA/CSDLQGDC", &kp), 0);
    char pub[PATH_MAX], sec[PATH_MAX], err[HUB_ERRMSG_MAX];
    ck_assert_int_eq(hub_keypair_write(&kp, dir, pub, sec, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(pub, "VN.GOV.BCA.CSDLQGDC.pub"));
    struct stat st;
    ck_assert_int_eq(stat(sec, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    ck_assert_int_eq(hub_keyfile_read(sec, &back, err, sizeof err), 0);
    ck_assert(back.has_secret);
    ck_assert_str_eq(back.member_id, kp.member_id);
    ck_assert_str_eq(back.curve_public, kp.curve_public);
    ck_assert_str_eq(back.curve_secret, kp.curve_secret);
    ck_assert_int_eq(memcmp(back.sign_secret, kp.sign_secret, 64), 0);
    ck_assert_int_eq(hub_keyfile_read(pub, &back, err, sizeof err), 0);
    ck_assert(!back.has_secret);
    ck_assert_str_eq(back.curve_secret, "");
    ck_assert_int_eq(memcmp(back.sign_public, kp.sign_public, 32), 0);

    /* Never overwritten. */
    ck_assert_int_eq(hub_keypair_write(&kp, dir, NULL, NULL, err, sizeof err), HUB_EEXIST);
    /* A readable secret is refused. */
    chmod(sec, 0640);
    ck_assert_int_eq(hub_keyfile_read(sec, &back, err, sizeof err), HUB_EPERM);
    ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
    chmod(sec, 0600);
    /* A public key that does not match the secret is refused. */
    hub_keypair_t other;
    hub_keypair_generate("VN/GOV/BCA/CSDLQGDC", &other);
    char text[1024], path[PATH_MAX];
    snprintf(path, sizeof path, "%s/mismatch.secret", dir);
    snprintf(text, sizeof text, "member-id = X/Y/Z/W\ncurve-public-key = %s\ncurve-secret-key = %s\n",
             other.curve_public, kp.curve_secret);
    tk_write_file(path, text);
    chmod(path, 0600);
    ck_assert_int_eq(hub_keyfile_read(path, &back, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "does not match"), "%s", err);
    /* Garbage keys. */
    tk_write_file(path, "member-id = X/Y/Z/W\ncurve-public-key = not-a-key\n");
    ck_assert_int_eq(hub_keyfile_read(path, &back, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, ":2: curve-public-key must be"), "%s", err);
    hub_keypair_wipe(&kp);
    hub_keypair_wipe(&other);
    tk_rmrf(dir);
}
END_TEST

START_TEST(key_directory)
{
    char dir[PATH_MAX], secrets[PATH_MAX], err[HUB_ERRMSG_MAX];
    tk_tmpdir(dir);
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    const char *ids[] = {"VN/GOV/BCA/CSDLQGDC", "VN/GOV/HN-STP/HOTICH", "VN/GOV/VPCP/DVCQG"};
    hub_keypair_t kps[3];
    for (int i = 0; i < 3; i++) {
        hub_keypair_generate(ids[i], &kps[i]);
        ck_assert_int_eq(hub_keypair_write(&kps[i], dir, NULL, NULL, err, sizeof err), 0);
    }
    /* The .secret files are in the same dir: a key dir must hold only .pub
     * files, but .secret files are ignored by name... they end in .secret. */
    hub_keydir_t *kd = NULL;
    ck_assert_int_eq(hub_keydir_load(dir, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 3);
    for (int i = 0; i < 3; i++) {
        const hub_keypair_t *e = hub_keydir_find_key(kd, kps[i].curve_public);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->member_id, ids[i]);
        ck_assert(!e->has_secret);
        ck_assert_ptr_eq(hub_keydir_find_member(kd, ids[i]), e);
    }
    ck_assert_ptr_null(hub_keydir_find_member(kd, "VN/GOV/NO/SUCH"));
    hub_keydir_destroy(&kd);
    ck_assert_ptr_null(kd);
    hub_keydir_destroy(&kd); /* tolerates NULL */

    /* Two files, one key: refused, naming both members. */
    char path[PATH_MAX], text[512];
    snprintf(path, sizeof path, "%s/copy.pub", dir);
    snprintf(text, sizeof text, "member-id = VN/GOV/XX/COPY\ncurve-public-key = %s\n",
             kps[0].curve_public);
    tk_write_file(path, text);
    ck_assert_int_eq(hub_keydir_load(dir, &kd, err, sizeof err), HUB_EEXIST);
    ck_assert_ptr_null(kd);
    ck_assert_msg(strstr(err, "VN/GOV/XX/COPY") && strstr(err, ids[0]), "%s", err);
    /* A malformed .pub file: refused, naming the file and line. */
    tk_write_file(path, "member-id = VN/GOV/XX\n");
    ck_assert_int_eq(hub_keydir_load(dir, &kd, err, sizeof err), HUB_EPARSE);
    ck_assert_msg(strstr(err, "copy.pub:1:"), "%s", err);
    /* Missing directory. */
    ck_assert_int_eq(hub_keydir_load("/nonexistent/keys", &kd, err, sizeof err), HUB_ENOENT);
    for (int i = 0; i < 3; i++)
        hub_keypair_wipe(&kps[i]);
    tk_rmrf(dir);
}
END_TEST

/* A key directory or trust file that others may write is refused, naming
 * the path, its mode and the fix; fixing the mode makes it load again. */
START_TEST(writable_trust_files_are_refused)
{
    char dir[PATH_MAX], keys[PATH_MAX], err[HUB_ERRMSG_MAX], path[PATH_MAX];
    tk_tmpdir(dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    ck_assert_int_eq(mkdir(keys, 0755), 0);
    hub_keypair_t kp;
    hub_keypair_generate("VN/GOV/BCA/CSDLQGDC", &kp);
    char secrets[PATH_MAX];
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    ck_assert_int_eq(hub_keypair_write(&kp, secrets, NULL, NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/VN.GOV.BCA.CSDLQGDC.pub", secrets);
    char *text = tk_read_file(path);
    ck_assert_ptr_nonnull(text);
    char pub[PATH_MAX];
    snprintf(pub, sizeof pub, "%s/member.pub", keys);
    tk_write_file(pub, text);
    free(text);
    hub_keydir_t *kd = NULL;
    ck_assert_int_eq(hub_fsguard_check(keys, "key directory", err, sizeof err), 0);
    ck_assert_int_eq(hub_keydir_load(keys, &kd, err, sizeof err), 0);
    hub_keydir_destroy(&kd);

    /* The directory at 0777: anyone could plant a .pub. */
    ck_assert_int_eq(chmod(keys, 0777), 0);
    ck_assert_int_eq(hub_keydir_load(keys, &kd, err, sizeof err), HUB_EPERM);
    ck_assert_ptr_null(kd);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "chmod go-w %s'", keys);
    ck_assert_msg(strstr(err, "key directory") && strstr(err, "mode 0777") && strstr(err, want),
                  "%s", err);
    ck_assert_int_eq(chmod(keys, 0755), 0);
    /* A file in it that group may write. */
    ck_assert_int_eq(chmod(pub, 0664), 0);
    ck_assert_int_eq(hub_keydir_load(keys, &kd, err, sizeof err), HUB_EPERM);
    snprintf(want, sizeof want, "chmod go-w %s'", pub);
    ck_assert_msg(strstr(err, "mode 0664") && strstr(err, want) && strstr(err, "in the key "),
                  "%s", err);
    ck_assert_int_eq(chmod(pub, 0644), 0);
    ck_assert_int_eq(hub_keydir_load(keys, &kd, err, sizeof err), 0);
    ck_assert_uint_eq(hub_keydir_count(kd), 1);
    hub_keydir_destroy(&kd);
    /* A plain file (a policy, a CRL) writable by others; the sticky bit
     * does not help a file. */
    ck_assert_int_eq(chmod(pub, 01646), 0);
    ck_assert_int_eq(hub_fsguard_check(pub, "policy file", err, sizeof err), HUB_EPERM);
    ck_assert_msg(strstr(err, "policy file") && strstr(err, "mode 1646"), "%s", err);
    /* A missing path is left for the loader to report. */
    ck_assert_int_eq(hub_fsguard_check("/nonexistent/policy.conf", "policy file", err,
                                       sizeof err),
                     0);
    /* Owned by another user (only root can give a file away). */
    if (geteuid() == 0) {
        ck_assert_int_eq(chmod(pub, 0644), 0);
        ck_assert_int_eq(chown(pub, 4242, 4242), 0);
        ck_assert_int_eq(hub_keydir_load(keys, &kd, err, sizeof err), HUB_EPERM);
        ck_assert_msg(strstr(err, "uid 4242") && strstr(err, "chown 0 "), "%s", err);
    }
    hub_keypair_wipe(&kp);
    tk_rmrf(dir);
}
END_TEST

/* Message ids come from a per-thread pool of random bytes: 10,000 are
 * distinct and well formed, and a forked child does not repeat the ids its
 * parent goes on to make (the pool is emptied in the child). */
START_TEST(uuids_are_unique_even_across_fork)
{
    enum { N = 10000 };
    hub_map_t *seen = hub_map_new();
    ck_assert_ptr_nonnull(seen);
    static char ids[N][37];
    for (int i = 0; i < N; i++) {
        hub_uuid_new(ids[i]);
        ck_assert_msg(hub_uuid_valid(ids[i]), "%s", ids[i]);
        ck_assert_int_eq(ids[i][14], '4');
        ck_assert(strchr("89ab", ids[i][19]) != NULL);
        ck_assert_msg(hub_map_get(seen, ids[i]) == NULL, "repeated id %s", ids[i]);
        ck_assert_int_eq(hub_map_put(seen, ids[i], ids[i]), 0);
    }
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    char mine[37];
    hub_uuid_new(mine); /* the pool is part used when the fork happens */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char child[37];
        hub_uuid_new(child);
        ssize_t w = write(fds[1], child, sizeof child);
        _exit(w == (ssize_t)sizeof child ? 0 : 1);
    }
    char parent_next[37], child_id[37];
    hub_uuid_new(parent_next);
    ck_assert_int_eq(read(fds[0], child_id, sizeof child_id), (ssize_t)sizeof child_id);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(strcmp(child_id, parent_next) != 0, "child and parent made the same id");
    ck_assert(hub_uuid_valid(child_id));
    close(fds[0]);
    close(fds[1]);
    hub_map_destroy(&seen);
}
END_TEST

/* A citizen lookup from the one-stop shop to the population database,
 * with message id `id`, a "{}" payload and a 5 s TTL; nothing else set. */
static Lth__V1__Envelope lookup_envelope(char *id)
{
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.sender = "VN/GOV/HN-VP/TTHC";
    env.receiver = "VN/GOV/BCA/CSDLQGDC";
    env.service = "citizen.lookup/v1";
    env.payload.data = (uint8_t *)"{}";
    env.payload.len = 2;
    env.ttl_ms = 5000;
    return env;
}

START_TEST(frames_and_envelopes)
{
    char id[37];
    hub_uuid_new(id);
    ck_assert(hub_uuid_valid(id));
    ck_assert_int_eq(id[14], '4');
    ck_assert(!hub_uuid_valid("not-a-uuid"));
    ck_assert(!hub_uuid_valid("8BAAD061-B716-49DD-83B6-D1433901A9C3"));

    Lth__V1__Envelope env = lookup_envelope(id);
    env.content_type = "application/json";
    size_t len = lth__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(len);
    lth__v1__envelope__pack(&env, buf);
    ProtobufCBinaryData item = {len, buf};
    Lth__V1__Batch batch = tkw_batch(&item, 1);
    hub_frame_t frame = tkw_batch_frame(&batch);
    uint8_t *wire;
    size_t wire_len;
    ck_assert_int_eq(hub_frame_encode(&frame, &wire, &wire_len), 0);

    hub_frame_t *back = NULL;
    ck_assert_int_eq(hub_frame_decode(wire, wire_len, &back), 0);
    ck_assert_uint_eq(back->protocol_version, HUB_PROTOCOL_VERSION);
    ck_assert_int_eq(back->body_case, LTH__V1__FRAME__BODY_BATCH);
    ck_assert_uint_eq(back->batch->n_envelopes, 1);
    hub_envelope_t *e = NULL;
    ck_assert_int_eq(hub_envelope_decode(back->batch->envelopes[0].data,
                                         back->batch->envelopes[0].len, &e),
                     0);
    ck_assert_str_eq(e->message_id, id);
    ck_assert_str_eq(e->service, "citizen.lookup/v1");
    ck_assert_uint_eq(e->ttl_ms, 5000);
    const char *problem = NULL;
    ck_assert_int_eq(hub_envelope_check(e, &problem), 0);
    hub_envelope_free(&e);
    ck_assert_ptr_null(e);
    hub_frame_free(&back);
    ck_assert_ptr_null(back);

    /* Every truncation decodes to an error or a frame, never a crash. */
    for (size_t n = 0; n < wire_len; n++) {
        hub_frame_t *f = NULL;
        int rc = hub_frame_decode(wire, n, &f);
        ck_assert(rc == 0 || rc == HUB_EPARSE || rc == HUB_EINVAL);
        hub_frame_free(&f);
    }
    /* The message id read without decoding: whole, cut short, not protobuf. */
    char peeked[HUB_UUID_LEN + 1];
    hub_envelope_peek_id(buf, len, peeked);
    ck_assert_str_eq(peeked, id);
    for (size_t n = 0; n < len; n++) {
        hub_envelope_peek_id(buf, n, peeked);
        ck_assert(n < 38 ? !peeked[0] : !strcmp(peeked, id));
    }
    hub_envelope_peek_id((const uint8_t *)"\x0a\xff\xff\xff", 4, peeked);
    ck_assert_str_eq(peeked, "");
    /* A frame with no body is refused. */
    hub_frame_t empty = LTH__V1__FRAME__INIT;
    uint8_t *ebuf;
    size_t elen;
    hub_frame_encode(&empty, &ebuf, &elen);
    ck_assert_int_eq(hub_frame_decode(ebuf, elen, &back), HUB_EINVAL);
    free(ebuf);

    /* Field checks name the field. */
    env.sender = "nobody";
    ck_assert_int_eq(hub_envelope_check(&env, &problem), HUB_EINVAL);
    ck_assert_ptr_nonnull(strstr(problem, "sender"));
    env.sender = "VN/GOV/HN-VP/TTHC";
    env.service = "lookup";
    ck_assert_int_eq(hub_envelope_check(&env, &problem), HUB_EINVAL);
    ck_assert_ptr_nonnull(strstr(problem, "service"));
    env.service = "citizen.lookup/v1";
    env.kind = LTH__V1__KIND__KIND_REPLY;
    ck_assert_int_eq(hub_envelope_check(&env, &problem), HUB_EINVAL);
    ck_assert_ptr_nonnull(strstr(problem, "correlation_id"));
    env.message_id = "123";
    ck_assert_int_eq(hub_envelope_check(&env, &problem), HUB_EINVAL);
    ck_assert_ptr_nonnull(strstr(problem, "message_id"));
    ck_assert_str_eq(hub_nack_code_name(LTH__V1__NACK_CODE__NACK_SENDER_MISMATCH),
                     "SENDER_MISMATCH");
    free(wire);
    free(buf);
}
END_TEST

START_TEST(hash_map)
{
    hub_map_t *m = hub_map_new();
    char key[32];
    for (long i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        ck_assert_int_eq(hub_map_put(m, key, (void *)(i + 1)), 0);
    }
    ck_assert_uint_eq(hub_map_size(m), 10000);
    for (long i = 0; i < 10000; i += 2) {
        snprintf(key, sizeof key, "k%ld", i);
        ck_assert_ptr_eq(hub_map_remove(m, key), (void *)(i + 1));
    }
    ck_assert_uint_eq(hub_map_size(m), 5000);
    for (long i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        ck_assert_ptr_eq(hub_map_get(m, key), i % 2 ? (void *)(i + 1) : NULL);
    }
    size_t cursor = 0, count = 0;
    while (hub_map_next(m, &cursor, NULL, NULL))
        count++;
    ck_assert_uint_eq(count, 5000);
    ck_assert_int_eq(hub_map_put(m, "k1", (void *)7), 0);
    ck_assert_ptr_eq(hub_map_get(m, "k1"), (void *)7);
    ck_assert_uint_eq(hub_map_size(m), 5000);
    hub_map_destroy(&m);
    ck_assert_ptr_null(m);
    /* A map that owns its values frees them with itself (the sanitizers
     * and valgrind see a leak otherwise); removed keys are not visited. */
    m = hub_map_new();
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        ck_assert_int_eq(hub_map_put(m, name, strdup(name)), 0);
    }
    free(hub_map_remove(m, "v7"));
    hub_map_destroy_all(&m, free);
    ck_assert_ptr_null(m);
    hub_map_destroy_all(&m, free); /* NULL is fine */
}
END_TEST

/* Appends one length-delimited field (number, bytes) to buf at *len. */
static void append_ld(uint8_t *buf, size_t *len, unsigned number, const void *data, size_t n)
{
    buf[(*len)++] = (uint8_t)(number << 3 | 2);
    buf[(*len)++] = (uint8_t)n; /* short values only */
    memcpy(buf + *len, data, n);
    *len += n;
}

START_TEST(envelope_encoding_is_unambiguous)
{
    char id[37];
    hub_uuid_new(id);
    Lth__V1__Envelope env = lookup_envelope(id);
    uint8_t sig[64] = {1};
    env.signature.data = sig;
    env.signature.len = sizeof sig;
    uint8_t hashes[2][32] = {{2}, {3}};
    ProtobufCBinaryData path[2] = {{32, hashes[0]}, {32, hashes[1]}};
    Lth__V1__BatchProof proof = LTH__V1__BATCH_PROOF__INIT;
    proof.leaf_index = 1;
    proof.leaf_count = 4;
    proof.path = path;
    proof.n_path = 2;
    env.batch_proof = &proof;
    uint8_t buf[1024];
    size_t len = lth__v1__envelope__pack(&env, buf);
    char why[HUB_ERRMSG_MAX];

    /* What the SDK encodes passes, repeated path included. */
    ck_assert_int_eq(hub_envelope_check_encoding(buf, len, why, sizeof why), 0);
    /* Order does not matter: fields may come in any order, once each. */
    uint8_t moved[1100];
    size_t mlen = 0;
    append_ld(moved, &mlen, 5, "citizen.lookup/v1", 17);
    env.service = "";
    size_t rest = lth__v1__envelope__pack(&env, moved + mlen);
    ck_assert_int_eq(hub_envelope_check_encoding(moved, mlen + rest, why, sizeof why), 0);
    env.service = "citizen.lookup/v1";

    /* A second service: protobuf-c reads the last, others the first. */
    uint8_t twice[1100];
    memcpy(twice, buf, len);
    size_t tlen = len;
    append_ld(twice, &tlen, 5, "secret.dump/v1", 14);
    hub_envelope_t *decoded = NULL;
    ck_assert_int_eq(hub_envelope_decode(twice, tlen, &decoded), 0); /* protobuf-c takes it */
    ck_assert_str_eq(decoded->service, "secret.dump/v1");
    hub_envelope_free(&decoded);
    ck_assert_int_eq(hub_envelope_check_encoding(twice, tlen, why, sizeof why), HUB_EINVAL);
    ck_assert_msg(strstr(why, "field 5 (service) appears twice") != NULL, "%s", why);

    /* A scalar (ttl_ms = 7, varint) twice. */
    memcpy(twice, buf, len);
    twice[len] = 7 << 3 | 0;
    twice[len + 1] = 1;
    ck_assert_int_eq(hub_envelope_check_encoding(twice, len + 2, why, sizeof why), HUB_EINVAL);
    ck_assert_msg(strstr(why, "field 7 (ttl_ms)") != NULL, "%s", why);

    /* batch_proof twice: protobuf-c would merge the two. */
    uint8_t pbuf[256];
    size_t plen = lth__v1__batch_proof__pack(&proof, pbuf);
    memcpy(twice, buf, len);
    tlen = len;
    /* Tag 16 takes two bytes. */
    twice[tlen++] = (uint8_t)(16 << 3 | 2 | 0x80);
    twice[tlen++] = 1;
    twice[tlen++] = (uint8_t)plen;
    memcpy(twice + tlen, pbuf, plen);
    tlen += plen;
    ck_assert_int_eq(hub_envelope_check_encoding(twice, tlen, why, sizeof why), HUB_EINVAL);
    ck_assert_msg(strstr(why, "field 16 (batch_proof) appears twice") != NULL, "%s", why);

    /* Inside batch_proof: leaf_index twice is refused, path repeats. */
    uint8_t inner[300];
    memcpy(inner, pbuf, plen);
    size_t ilen = plen;
    inner[ilen++] = 1 << 3 | 0;
    inner[ilen++] = 0;
    env.batch_proof = NULL;
    size_t base = lth__v1__envelope__pack(&env, twice);
    twice[base++] = (uint8_t)(16 << 3 | 2 | 0x80);
    twice[base++] = 1;
    twice[base++] = (uint8_t)ilen;
    memcpy(twice + base, inner, ilen);
    ck_assert_int_eq(hub_envelope_check_encoding(twice, base + ilen, why, sizeof why),
                     HUB_EINVAL);
    ck_assert_msg(strstr(why, "batch_proof.leaf_index") != NULL, "%s", why);
    env.batch_proof = &proof;

    /* Not wire format: a length past the end, a group, field number 0. */
    ck_assert_int_eq(hub_envelope_check_encoding(buf, len - 1, why, sizeof why), HUB_EPARSE);
    uint8_t group[] = {1 << 3 | 3, 1 << 3 | 4};
    ck_assert_int_eq(hub_envelope_check_encoding(group, sizeof group, why, sizeof why),
                     HUB_EPARSE);
    uint8_t zero[] = {0 << 3 | 0, 1};
    ck_assert_int_eq(hub_envelope_check_encoding(zero, sizeof zero, why, sizeof why),
                     HUB_EPARSE);
    /* Every truncation gives an answer, never a crash (ASan watches). */
    for (size_t n = 0; n <= len; n++)
        (void)hub_envelope_check_encoding(buf, n, why, sizeof why);
    ck_assert_int_eq(hub_envelope_check_encoding(NULL, 0, why, sizeof why), 0);
}
END_TEST

/* The arena behind the hub's per-turn decoding: pieces stay put and
 * aligned until a reset, a release gives back only what came after its
 * mark, large pieces get chunks of their own, and an envelope decoded into
 * it reads as the malloc'ed decode does. */
START_TEST(arena)
{
    hub_arena_t a;
    hub_arena_init(&a);
    uint8_t *first = hub_arena_alloc(&a, 100);
    ck_assert_ptr_nonnull(first);
    ck_assert_uint_eq((uintptr_t)first % 16, 0);
    memset(first, 0xab, 100);
    hub_arena_mark_t mark = hub_arena_mark(&a);
    /* Enough to need several chunks, and one piece larger than a chunk. */
    for (int i = 0; i < 2000; i++) {
        uint8_t *p = hub_arena_alloc(&a, 1000 + (size_t)i % 17);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, i & 0xff, 1000);
    }
    uint8_t *big = hub_arena_alloc(&a, 3u * HUB_ARENA_CHUNK);
    ck_assert_ptr_nonnull(big);
    memset(big, 1, 3u * HUB_ARENA_CHUNK);
    hub_arena_release(&a, mark);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(first[i], 0xab); /* what came before the mark stays */
    uint8_t *next = hub_arena_alloc(&a, 16);
    ck_assert_ptr_eq(next, first + 112); /* and the space after it is reused */
    ck_assert_ptr_nonnull(hub_arena_alloc(&a, 0));

    char id[HUB_UUID_LEN + 1];
    hub_uuid_new(id);
    Lth__V1__Envelope env = LTH__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.sender = "VN/GOV/000.00.01.H01/QLHT";
    env.receiver = "VN/GOV/000.00.02.H02/DVC";
    env.service = "citizen.lookup/v1";
    static uint8_t payload[2048];
    memset(payload, 'x', sizeof payload);
    env.payload.data = payload;
    env.payload.len = sizeof payload;
    uint8_t buf[4096];
    size_t len = lth__v1__envelope__pack(&env, buf);
    for (int round = 0; round < 3; round++) {
        hub_envelope_t *in = NULL;
        ck_assert_int_eq(hub_envelope_decode_in(&a, buf, len, &in), 0);
        ck_assert_str_eq(in->message_id, id);
        ck_assert_str_eq(in->service, "citizen.lookup/v1");
        ck_assert_uint_eq(in->payload.len, sizeof payload);
        ck_assert_int_eq(memcmp(in->payload.data, payload, sizeof payload), 0);
        hub_arena_reset(&a);
    }
    hub_envelope_t *bad = NULL;
    ck_assert_int_eq(hub_envelope_decode_in(&a, buf, len - 1, &bad), HUB_EPARSE);
    hub_frame_t *frame = NULL;
    ck_assert_int_ne(hub_frame_decode_in(&a, buf, len - 1, &frame), 0);
    ck_assert_ptr_null(frame);
    hub_arena_destroy(&a);
}
END_TEST

/* Two decoded Deliveries frames hold the same items. */
static void ts__same_deliveries(const hub_frame_t *a, const hub_frame_t *b)
{
    ck_assert_int_eq(a->body_case, b->body_case);
    ck_assert_uint_eq(a->protocol_version, b->protocol_version);
    if (a->body_case != LTH__V1__FRAME__BODY_DELIVERIES)
        return;
    ck_assert_uint_eq(a->deliveries->n_items, b->deliveries->n_items);
    ck_assert_int_eq(!a->deliveries->receipts, !b->deliveries->receipts);
    if (a->deliveries->receipts)
        ck_assert_uint_eq(a->deliveries->receipts->n_acks, b->deliveries->receipts->n_acks);
    for (size_t i = 0; i < a->deliveries->n_items; i++) {
        const Lth__V1__DeliveredEnvelope *x = a->deliveries->items[i], *y = b->deliveries->items[i];
        ck_assert_uint_eq(x->hub_seq, y->hub_seq);
        ck_assert_uint_eq(x->attempt, y->attempt);
        ck_assert_uint_eq(x->envelope.len, y->envelope.len);
        ck_assert_uint_eq(x->sender_sign_key.len, y->sender_sign_key.len);
        ck_assert(x->envelope.len == 0 ||
                  !memcmp(x->envelope.data, y->envelope.data, x->envelope.len));
        ck_assert(
            x->sender_sign_key.len == 0 ||
            !memcmp(x->sender_sign_key.data, y->sender_sign_key.data, x->sender_sign_key.len));
    }
}

/* hub_frame_view() reads a Deliveries frame in place with the result
 * protobuf-c gives, and gives up (to protobuf-c) on any other shape: every
 * one-byte change of an encoded frame decodes the same both ways. */
START_TEST(deliveries_read_in_place)
{
    uint8_t env_bytes[3][40], key[32];
    for (int i = 0; i < 3; i++)
        memset(env_bytes[i], 'a' + i, sizeof env_bytes[i]);
    memset(key, 7, sizeof key);
    Lth__V1__DeliveredEnvelope items[3], *ptrs[3];
    for (int i = 0; i < 3; i++) {
        lth__v1__delivered_envelope__init(&items[i]);
        items[i].hub_seq = 1000u + (uint64_t)i * 300u;
        items[i].attempt = (uint32_t)i + 1;
        items[i].envelope.data = env_bytes[i];
        items[i].envelope.len = sizeof env_bytes[i];
        items[i].sender_sign_key.data = key;
        items[i].sender_sign_key.len = i == 2 ? 0 : sizeof key;
        ptrs[i] = &items[i];
    }
    Lth__V1__Ack ack = LTH__V1__ACK__INIT, *acks[1] = {&ack};
    ack.message_id = "0b6f1f7e-3c1a-4c2e-9a51-7d1f4e2b8c90";
    ack.hub_seq = 5;
    Lth__V1__Receipts rc = LTH__V1__RECEIPTS__INIT;
    rc.acks = acks;
    rc.n_acks = 1;
    for (int with_receipts = 0; with_receipts < 2; with_receipts++) {
        Lth__V1__Deliveries dl = LTH__V1__DELIVERIES__INIT;
        dl.items = ptrs;
        dl.n_items = 3;
        dl.receipts = with_receipts ? &rc : NULL;
        hub_frame_t f = LTH__V1__FRAME__INIT;
        f.body_case = LTH__V1__FRAME__BODY_DELIVERIES;
        f.deliveries = &dl;
        uint8_t *buf = NULL;
        size_t len = 0;
        ck_assert_int_eq(hub_frame_encode(&f, &buf, &len), 0);
        hub_arena_t a;
        hub_arena_init(&a);
        hub_frame_t *viewed = NULL, *decoded = NULL;
        ck_assert_int_eq(hub_frame_view(&a, buf, len, &viewed), 0);
        ck_assert_int_eq(hub_frame_decode_in(&a, buf, len, &decoded), 0);
        ts__same_deliveries(viewed, decoded);
        /* In place: the envelope points into the frame's bytes. */
        ck_assert(viewed->deliveries->items[1]->envelope.data > buf &&
                  viewed->deliveries->items[1]->envelope.data < buf + len);
        for (size_t i = 0; i < len; i++) {
            for (int delta = 1; delta < 256; delta += 37) {
                uint8_t saved = buf[i];
                buf[i] = (uint8_t)(saved + delta);
                viewed = decoded = NULL;
                int r1 = hub_frame_view(&a, buf, len, &viewed);
                int r2 = hub_frame_decode_in(&a, buf, len, &decoded);
                ck_assert_int_eq(r1, r2);
                if (r1 == 0)
                    ts__same_deliveries(viewed, decoded);
                buf[i] = saved;
                hub_arena_reset(&a);
            }
        }
        hub_arena_destroy(&a);
        free(buf);
    }
}
END_TEST

/* The parts hub_ct_next gives for ct, as "text|name|value" lines (value:
 * hub_ct_value's; "-" without '='; "!" after a part left open). */
static void ts__ct_parts(const char *ct, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    const char *cursor = ct;
    hub_ct_part_t part;
    while (hub_ct_next(&cursor, &part)) {
        char value[64];
        hub_ct_value(&part, value, sizeof value, NULL);
        n += (size_t)snprintf(out + n, size - n, "%.*s|%.*s|%s%s\n", (int)part.text_len, part.text,
                              (int)part.name_len, part.name, part.value ? value : "-",
                              part.open ? "!" : "");
    }
}

START_TEST(content_type_parameters)
{
    /* Escapes inside a quoted string; a value that is not one quoted
     * string is kept as written; a quote left open swallows the rest and
     * says so. */
    static const char *const cases[][2] = {
        {"application/json", "application/json|application/json|-\n"},
        {"a/b; x=1 ;Y = \"two; z=3\" ;; k",
         "a/b|a/b|-\nx=1|x|1\nY = \"two; z=3\"|Y|two; z=3\n||-\nk|k|-\n"},
        {"a/b; q=\"say \\\"hi\\\"; \\\\\"; r=x\"y\"",
         "a/b|a/b|-\nq=\"say \\\"hi\\\"; \\\\\"|q|say \"hi\"; \\\nr=x\"y\"|r|x\"y\"\n"},
        {"a/b; n=\"open; lth-origin=\"X\"",
         "a/b|a/b|-\nn=\"open; lth-origin=\"X\"|n|\"open; lth-origin=\"X\"!\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[512];
        ts__ct_parts(cases[i][0], got, sizeof got);
        ck_assert_str_eq(got, cases[i][1]);
    }
    /* Names ignore case; values are cut to the buffer and say so. */
    const char *cursor = "a/b; LTH-Procedure=P1; v=\"0123456789\"";
    hub_ct_part_t part;
    ck_assert(hub_ct_next(&cursor, &part) && !hub_ct_named(&part, "a"));
    ck_assert(hub_ct_next(&cursor, &part) && hub_ct_named(&part, "lth-procedure"));
    ck_assert(!hub_ct_named(&part, "lth-proc"));
    ck_assert(hub_ct_next(&cursor, &part));
    char small[5];
    bool cut = false;
    ck_assert_uint_eq(hub_ct_value(&part, small, sizeof small, &cut), 4);
    ck_assert_str_eq(small, "0123");
    ck_assert(cut);
    ck_assert(!hub_ct_next(&cursor, &part));
    cursor = NULL;
    ck_assert(!hub_ct_next(&cursor, &part));
}
END_TEST

TK_MAIN("common",
        TK_CASE("common", NULL, NULL, 0, member_ids, services, member_service_split, config_files,
                key_files_round_trip, key_directory, writable_trust_files_are_refused,
                frames_and_envelopes, envelope_encoding_is_unambiguous,
                uuids_are_unique_even_across_fork, hash_map, arena, deliveries_read_in_place,
                content_type_parameters))
