#include "lth_report.h"

#include "hub_error.h"
#include "hub_vec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lth_outcome_t lth_report_classify(int status, uint64_t due_at_us, uint64_t done_at_us,
                                  uint64_t now_us)
{
    if (status == LTH_STATUS_DONE || status == LTH_STATUS_RESULT_HANDED_OVER)
        return due_at_us == 0 || done_at_us <= due_at_us ? LTH_OUTCOME_ON_TIME : LTH_OUTCOME_LATE;
    /* Ended without a result: refused at reception; returned after
     * acceptance or withdrawn. */
    if (status == LTH_STATUS_NOT_ACCEPTED)
        return LTH_OUTCOME_NOT_ACCEPTED;
    if (status == LTH_STATUS_RETURNED || status == LTH_STATUS_WITHDRAWN)
        return LTH_OUTCOME_RETURNED;
    return due_at_us != 0 && now_us > due_at_us ? LTH_OUTCOME_OVERDUE : LTH_OUTCOME_IN_PROGRESS;
}

const char *lth_outcome_name(lth_outcome_t outcome)
{
    static const char *const names[] = {"in progress", "on time",  "late",
                                        "overdue",     "returned", "not accepted"};
    return outcome <= LTH_OUTCOME_NOT_ACCEPTED ? names[outcome] : "?";
}

void lth_report_init(lth_report_t *r, uint64_t now_us)
{
    memset(r, 0, sizeof *r);
    r->as_of_us = now_us;
}

void lth_report_free(lth_report_t *r)
{
    if (!r)
        return;
    free(r->rows);
    r->rows = NULL;
    r->n_rows = r->cap_rows = 0;
}

static void lth__count(lth_report_row_t *row, lth_outcome_t o)
{
    row->dossiers++;
    switch (o) {
    case LTH_OUTCOME_ON_TIME:
        row->on_time++;
        break;
    case LTH_OUTCOME_LATE:
        row->late++;
        break;
    case LTH_OUTCOME_OVERDUE:
        row->overdue++;
        break;
    case LTH_OUTCOME_RETURNED:
        row->returned++;
        break;
    case LTH_OUTCOME_NOT_ACCEPTED:
        row->not_accepted++;
        break;
    default:
        row->in_progress++;
        break;
    }
}

static int lth__row_cmp(const char *code, const char *authority, const lth_report_row_t *row)
{
    int c = strcmp(code, row->procedure_code);
    return c ? c : strcmp(authority, row->authority);
}

int lth_report_add(lth_report_t *r, const char *procedure_code, const char *authority, int status,
                   uint64_t due_at_us, uint64_t done_at_us)
{
    lth_report_dossier_t d = {.procedure_code = procedure_code,
                              .authority = authority,
                              .status = status,
                              .due_at_us = due_at_us,
                              .done_at_us = done_at_us};
    return lth_report_add_dossier(r, &d);
}

/* The local date (Asia/Ho_Chi_Minh, UTC+7) of a time, as a day number. */
static uint64_t lth__local_day(uint64_t us)
{
    return (us / 1000000u + 7u * 3600u) / 86400u;
}

static void lth__figures(lth_report_row_t *row, const lth_report_dossier_t *d, lth_outcome_t o)
{
    if (o == LTH_OUTCOME_ON_TIME && d->due_at_us &&
        lth__local_day(d->done_at_us) < lth__local_day(d->due_at_us))
        row->early++;
    if (d->decided_at_us) {
        row->decided++;
        row->working_us += d->working_us;
    }
    row->synced += d->synced;
    row->online += d->online;
    row->with_result += d->has_result && (o == LTH_OUTCOME_ON_TIME || o == LTH_OUTCOME_LATE);
    row->paid += d->paid;
    row->paid_online += d->paid && d->paid_online;
    if (d->rating > 0) {
        row->rated++;
        row->rating_sum += d->rating;
    }
}

int lth_report_add_dossier(lth_report_t *r, const lth_report_dossier_t *d)
{
    const char *procedure_code = d ? d->procedure_code : NULL, *authority = d ? d->authority : NULL;
    if (!r || !procedure_code || !authority || strlen(procedure_code) >= LTH_PROCEDURE_CODE_MAX ||
        strlen(authority) >= LTH_MEMBER_MAX)
        return HUB_EINVAL;
    int status = d->status;
    uint64_t due_at_us = d->due_at_us, done_at_us = d->done_at_us;
    /* Binary search for the row; insert it in order when absent. */
    size_t lo = 0, hi = r->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = lth__row_cmp(procedure_code, authority, &r->rows[mid]);
        if (c == 0) {
            lo = mid;
            break;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    lth_report_row_t *row;
    if (lo < r->n_rows && lth__row_cmp(procedure_code, authority, &r->rows[lo]) == 0) {
        row = &r->rows[lo];
    } else {
        if (HUB_VEC_RESERVE(r->rows, r->n_rows, r->cap_rows, 16) != 0)
            return HUB_ENOMEM;
        memmove(&r->rows[lo + 1], &r->rows[lo], (r->n_rows - lo) * sizeof *r->rows);
        r->n_rows++;
        row = &r->rows[lo];
        memset(row, 0, sizeof *row);
        snprintf(row->procedure_code, sizeof row->procedure_code, "%s", procedure_code);
        snprintf(row->authority, sizeof row->authority, "%s", authority);
    }
    lth_outcome_t o = lth_report_classify(status, due_at_us, done_at_us, r->as_of_us);
    lth__count(row, o);
    lth__count(&r->total, o);
    lth__figures(row, d, o);
    lth__figures(&r->total, d, o);
    return 0;
}

int lth_report_format_parse(const char *text, lth_report_format_t *out)
{
    static const char *const names[] = {"json", "table", "csv"};
    for (int i = 0; text && i < 3; i++) {
        if (!strcmp(text, names[i])) {
            *out = (lth_report_format_t)i;
            return 0;
        }
    }
    return HUB_EINVAL;
}

const char *lth_report_content_type(lth_report_format_t format)
{
    switch (format) {
    case LTH_REPORT_TABLE:
        return "text/plain; charset=utf-8";
    case LTH_REPORT_CSV:
        return "text/csv; charset=utf-8";
    default:
        return "application/json";
    }
}

static const char *lth__name(const char *code)
{
    const char *name = lth_procedure_name(code);
    return name ? name : "";
}

/* Columns of a text table: code points, not bytes (names are UTF-8). */
static size_t lth__width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void lth__pad(FILE *f, const char *s, size_t width)
{
    fputs(s, f);
    for (size_t w = lth__width(s); w < width; w++)
        fputc(' ', f);
}

static void lth__iso_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Refused at reception: appended after the figures, so that the columns
 * before it keep their places. */
#define LTH__NOT_ACCEPTED_TITLE "not accepted"

static const char *const lth__count_titles[] = {"dossiers", "on time",     "late",
                                                "overdue",  "in progress", "returned"};

static void lth__counts(const lth_report_row_t *row, unsigned long v[6])
{
    v[0] = row->dossiers;
    v[1] = row->on_time;
    v[2] = row->late;
    v[3] = row->overdue;
    v[4] = row->in_progress;
    v[5] = row->returned;
}

/* The reform-index figures of a row, as rendered: average working hours,
 * five percentages, average satisfaction (0 when nothing to average). */
#define LTH__N_FIGURES 7
static const char *const lth__figure_titles[LTH__N_FIGURES] = {
    "early", "avg work h", "synced %", "online %", "e-result %", "paid online %", "satisfaction"};
static const char *const lth__figure_keys[LTH__N_FIGURES] = {
    "early",           "avg_working_hours", "pct_synced", "pct_online", "pct_electronic_result",
    "pct_paid_online", "avg_satisfaction"};

static double lth__pct(unsigned long part, unsigned long whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void lth__figure_values(const lth_report_row_t *row, double v[LTH__N_FIGURES])
{
    v[0] = (double)row->early;
    v[1] = row->decided ? (double)row->working_us / 3600e6 / (double)row->decided : 0.0;
    v[2] = lth__pct(row->synced, row->dossiers);
    v[3] = lth__pct(row->online, row->dossiers);
    v[4] = lth__pct(row->with_result, row->on_time + row->late);
    v[5] = lth__pct(row->paid_online, row->paid);
    v[6] = row->rated ? row->rating_sum / (double)row->rated : 0.0;
}

static void lth__render_table(const lth_report_t *r, FILE *f)
{
    char when[32];
    lth__iso_time(r->as_of_us, when);
    fprintf(f, "Dossiers per procedure and authority, as of %s\n", when);
    size_t wc = strlen("procedure"), wn = strlen("name"), wa = strlen("authority");
    for (size_t i = 0; i < r->n_rows; i++) {
        const lth_report_row_t *row = &r->rows[i];
        if (lth__width(row->procedure_code) > wc)
            wc = lth__width(row->procedure_code);
        if (lth__width(lth__name(row->procedure_code)) > wn)
            wn = lth__width(lth__name(row->procedure_code));
        if (lth__width(row->authority) > wa)
            wa = lth__width(row->authority);
    }
    lth__pad(f, "procedure", wc + 2);
    lth__pad(f, "name", wn + 2);
    lth__pad(f, "authority", wa);
    for (int k = 0; k < 6; k++)
        fprintf(f, "  %s", lth__count_titles[k]);
    for (int k = 0; k < LTH__N_FIGURES; k++)
        fprintf(f, "  %s", lth__figure_titles[k]);
    fprintf(f, "  %s", LTH__NOT_ACCEPTED_TITLE);
    fputc('\n', f);
    double fv[LTH__N_FIGURES];
    unsigned long v[6];
    for (size_t i = 0; i <= r->n_rows; i++) {
        const lth_report_row_t *row = i < r->n_rows ? &r->rows[i] : &r->total;
        if (i == r->n_rows) {
            for (size_t k = 0; k < wc + wn + wa + 4; k++)
                fputc('-', f);
            for (int k = 0; k < 6; k++)
                for (size_t j = 0; j < strlen(lth__count_titles[k]) + 2; j++)
                    fputc('-', f);
            for (int k = 0; k < LTH__N_FIGURES; k++)
                for (size_t j = 0; j < strlen(lth__figure_titles[k]) + 2; j++)
                    fputc('-', f);
            for (size_t j = 0; j < strlen(LTH__NOT_ACCEPTED_TITLE) + 2; j++)
                fputc('-', f);
            fputc('\n', f);
            lth__pad(f, "total", wc + wn + wa + 4);
        } else {
            lth__pad(f, row->procedure_code, wc + 2);
            lth__pad(f, lth__name(row->procedure_code), wn + 2);
            lth__pad(f, row->authority, wa);
        }
        lth__counts(row, v);
        for (int k = 0; k < 6; k++)
            fprintf(f, "  %*lu", (int)strlen(lth__count_titles[k]), v[k]);
        lth__figure_values(row, fv);
        fprintf(f, "  %*lu", (int)strlen(lth__figure_titles[0]), row->early);
        for (int k = 1; k < LTH__N_FIGURES; k++)
            fprintf(f, "  %*.*f", (int)strlen(lth__figure_titles[k]), k == 1 || k == 6 ? 2 : 1,
                    fv[k]);
        fprintf(f, "  %*lu", (int)strlen(LTH__NOT_ACCEPTED_TITLE), row->not_accepted);
        fputc('\n', f);
    }
}

static void lth__csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void lth__render_csv(const lth_report_t *r, FILE *f)
{
    fputs("procedure_code,procedure_name,authority,dossiers,on_time,late,overdue,in_progress,"
          "returned",
          f);
    for (int k = 0; k < LTH__N_FIGURES; k++)
        fprintf(f, ",%s", lth__figure_keys[k]);
    fputs(",not_accepted\r\n", f);
    unsigned long v[6];
    double fv[LTH__N_FIGURES];
    for (size_t i = 0; i < r->n_rows; i++) {
        const lth_report_row_t *row = &r->rows[i];
        lth__csv_field(f, row->procedure_code);
        fputc(',', f);
        lth__csv_field(f, lth__name(row->procedure_code));
        fputc(',', f);
        lth__csv_field(f, row->authority);
        lth__counts(row, v);
        for (int k = 0; k < 6; k++)
            fprintf(f, ",%lu", v[k]);
        lth__figure_values(row, fv);
        fprintf(f, ",%lu", row->early);
        for (int k = 1; k < LTH__N_FIGURES; k++)
            fprintf(f, ",%.2f", fv[k]);
        fprintf(f, ",%lu\r\n", row->not_accepted);
    }
}

static void lth__json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void lth__json_counts(FILE *f, const lth_report_row_t *row)
{
    fprintf(f,
            "\"dossiers\":%lu,\"on_time\":%lu,\"late\":%lu,\"overdue\":%lu,"
            "\"in_progress\":%lu,\"returned\":%lu",
            row->dossiers, row->on_time, row->late, row->overdue, row->in_progress, row->returned);
    double fv[LTH__N_FIGURES];
    lth__figure_values(row, fv);
    fprintf(f, ",\"received\":%lu,\"early\":%lu", row->dossiers, row->early);
    for (int k = 1; k < LTH__N_FIGURES; k++)
        fprintf(f, ",\"%s\":%.2f", lth__figure_keys[k], fv[k]);
    fprintf(f,
            ",\"decided\":%lu,\"working_us\":%" PRIu64 ",\"synced\":%lu,\"online\":%lu,"
            "\"with_result\":%lu,\"paid\":%lu,\"paid_online\":%lu,\"rated\":%lu",
            row->decided, row->working_us, row->synced, row->online, row->with_result, row->paid,
            row->paid_online, row->rated);
    fprintf(f, ",\"not_accepted\":%lu", row->not_accepted);
}

static void lth__render_json(const lth_report_t *r, FILE *f)
{
    char when[32];
    lth__iso_time(r->as_of_us, when);
    fprintf(f, "{\"as_of\":\"%s\",\"as_of_us\":%" PRIu64 ",\"rows\":[", when, r->as_of_us);
    for (size_t i = 0; i < r->n_rows; i++) {
        const lth_report_row_t *row = &r->rows[i];
        fputs(i ? ",{\"procedure_code\":" : "{\"procedure_code\":", f);
        lth__json_string(f, row->procedure_code);
        fputs(",\"procedure_name\":", f);
        lth__json_string(f, lth__name(row->procedure_code));
        fputs(",\"authority\":", f);
        lth__json_string(f, row->authority);
        fputc(',', f);
        lth__json_counts(f, row);
        fputc('}', f);
    }
    fputs("],\"total\":{", f);
    lth__json_counts(f, &r->total);
    fputs("}}\n", f);
}

int lth_report_render(const lth_report_t *r, lth_report_format_t format, char **out,
                      size_t *out_len)
{
    if (!r || !out || !out_len)
        return HUB_EINVAL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return HUB_ENOMEM;
    switch (format) {
    case LTH_REPORT_TABLE:
        lth__render_table(r, f);
        break;
    case LTH_REPORT_CSV:
        lth__render_csv(r, f);
        break;
    default:
        lth__render_json(r, f);
        break;
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return HUB_ENOMEM;
    }
    *out = buf;
    *out_len = len;
    return 0;
}
