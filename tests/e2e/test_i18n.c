/* End to end: the operators' language and the member directory as
 * configured, through a real hubd and hubctl: hubd's lang = en makes the
 * dashboard's catalogue English unless ?lang=vi asks; a member directory
 * with a bad line stops hubd at start-up naming the line; hubctl's config
 * key lang is used when the locale names no language we have, and LANG
 * wins when it does. */
#include "hubfix.h"
#include "testkit.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A "VN/GOV/BCA/CSDLQGDC"
#define OPS "VN/GOV/HN-LGSP/OPS"
#define DIRECTORY "member_id\tname\tunit\tcontact\n" A "\tBộ Công an\tCơ sở dữ liệu quốc gia về dân cư\t\n"

static hubfix_t fix;

static void teardown(void) { hubfix_cleanup(&fix); }

/* GET path from the hub's HTTP endpoint: the status, the body in *out. */
static long get(const char *path, char **out)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s%s", fix.http, path);
    tk_reply_t r = tk_http("GET", url, NULL, NULL);
    *out = r.body;
    return r.status;
}

static const char *catalogue_lang(const char *path)
{
    static char lang[8];
    char *body = NULL;
    long status = get(path, &body);
    ck_assert_msg(status == 200, "GET %s: %ld %s", path, status, body);
    json_t *j = json_loads(body, 0, NULL);
    ck_assert_msg(j, "GET %s: not JSON: %s", path, body);
    snprintf(lang, sizeof lang, "%s", json_string_value(json_object_get(j, "lang")));
    json_decref(j);
    free(body);
    return lang;
}

static void write_directory(const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/members.tsv", fix.dir);
    tk_write_file(path, text);
}

START_TEST(hub_lang_key_sets_the_default)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nlang = en\nmembers_file = members.tsv\n");
    HUBFIX_ADD_MEMBERS(&fix, A, OPS);
    write_directory(DIRECTORY);
    hubfix_start(&fix);
    ck_assert_str_eq(catalogue_lang("/i18n.json"), "en");
    ck_assert_str_eq(catalogue_lang("/i18n.json?lang=vi"), "vi");
    ck_assert_str_eq(catalogue_lang("/i18n.json?lang=en"), "en");

    /* hubctl: its own lang key when the locale names neither vi nor en. */
    char ctl_conf[PATH_MAX], text[1024];
    snprintf(ctl_conf, sizeof ctl_conf, "%s/hubctl.conf", fix.dir);
    snprintf(text, sizeof text, "http_url = http://%s\nlang = en\n", fix.http);
    tk_write_file(ctl_conf, text);
    unsetenv("LC_ALL");
    unsetenv("LC_MESSAGES");
    char *argv[] = {(char *)tk_bin("hubctl"), "--config", ctl_conf, "members", NULL};
    setenv("LANG", "C.UTF-8", 1);
    TK_RUN_SAYS(argv, 30000, 0, "AGENCY", "Bộ Công an — Cơ sở dữ liệu");
    /* A Vietnamese locale wins over the config. */
    setenv("LANG", "vi_VN.UTF-8", 1);
    TK_RUN_SAYS(argv, 30000, 0, "CƠ QUAN", "Bộ Công an — Cơ sở dữ liệu");
    /* A bad lang in hubctl's config is refused, naming the choices. */
    snprintf(text, sizeof text, "http_url = http://%s\nlang = fr\n", fix.http);
    tk_write_file(ctl_conf, text);
    TK_RUN_SAYS(argv, 30000, 1, "lang must be vi (Vietnamese) or en (English)");
}
END_TEST

START_TEST(bad_directory_stops_hubd)
{
    hubfix_init(&fix, "http_listen = 127.0.0.1:0\nmembers_file = members.tsv\n");
    hubfix_add_member(&fix, A, true);
    write_directory(DIRECTORY A "\tBộ Công an again\tx\t\n");
    char *argv[] = {(char *)tk_bin("hubd"), "--config", fix.conf_path, NULL};
    TK_RUN_SAYS(argv, 30000, 1, "members.tsv:3: " A " is listed twice");
}
END_TEST

TK_MAIN("i18n", TK_CASE("i18n", NULL, teardown, 120, hub_lang_key_sets_the_default,
                        bad_directory_stops_hubd))
