/* Aligned tables, ages and pretty JSON: the output forms every listing shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"
#include "ctl/ctl.h"

/* Columns are three spaces apart, as kubectl prints them. */
#define GAP 3

void ctl_table_init(struct ctl_table *t, size_t n_cols, const char *const *headers)
{
    t->n_cols = n_cols;
    t->n_rows = 0;
    t->cells = NULL;
    ctl_table_add(t, headers);
}

void ctl_table_add(struct ctl_table *t, const char *const *cells)
{
    t->cells = gy_xrealloc(t->cells, (t->n_rows + 1) * t->n_cols * sizeof(*t->cells));
    for (size_t c = 0; c < t->n_cols; c++)
        t->cells[t->n_rows * t->n_cols + c] = gy_xstrdup(cells[c] ? cells[c] : "<none>");
    t->n_rows++;
}

char *ctl_cell(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    if (out == NULL)
        out = gy_xstrdup("");
    return out;
}

/* Display width of UTF-8 text: code points, not bytes, so that names with accents or
 * em-dashes in messages do not push the columns out of line. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void ctl_table_print(const struct ctl_table *t, FILE *out)
{
    ctl_table_print_indent(t, "", out);
}

void ctl_table_print_indent(const struct ctl_table *t, const char *indent, FILE *out)
{
    size_t *width = gy_xcalloc(t->n_cols ? t->n_cols : 1, sizeof(*width));
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t w = text_width(t->cells[r * t->n_cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        fputs(indent, out);
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            fputs(cell, out);
            if (c + 1 < t->n_cols)
                fprintf(out, "%*s", (int)(width[c] - text_width(cell) + GAP), "");
        }
        fputc('\n', out);
    }
    free(width);
}

void ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

const char *ctl_age_format(uint64_t now_ms, uint64_t then_ms, char buf[32])
{
    if (then_ms == 0) {
        snprintf(buf, 32, "<unknown>");
        return buf;
    }
    uint64_t s = now_ms > then_ms ? (now_ms - then_ms) / 1000 : 0;
    if (s < 120)
        snprintf(buf, 32, "%llus", (unsigned long long)s);
    else if (s < 120 * 60)
        snprintf(buf, 32, "%llum", (unsigned long long)(s / 60));
    else if (s < 48 * 3600)
        snprintf(buf, 32, "%lluh", (unsigned long long)(s / 3600));
    else if (s < 2 * 365 * 86400ULL)
        snprintf(buf, 32, "%llud", (unsigned long long)(s / 86400));
    else
        snprintf(buf, 32, "%lluy", (unsigned long long)(s / (365 * 86400ULL)));
    return buf;
}

uint64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *ctl_json_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

long long ctl_json_int(const json_t *obj, const char *key)
{
    return (long long)json_integer_value(json_object_get(obj, key));
}

void ctl_json_print(const json_t *value, FILE *out)
{
    json_dumpf(value, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
}
