/* YAML output of JSON values (get -o yaml). Strings stay plain where YAML 1.2's core
 * schema reads them back as the same string and are double-quoted (JSON escapes are valid
 * YAML) everywhere else, so a printed workload spec applies unchanged. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/ctl.h"

/* True when a plain scalar with this text would be resolved as something other than a
 * string: null, a boolean or a number of the core schema (and strtod's spellings, which
 * are a superset, so the test errs on the side of quoting). */
static bool reads_as_other_type(const char *s)
{
    static const char *const words[] = {"null", "~", "true", "false"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    if (strncasecmp(s, "0o", 2) == 0)
        return true;
    char *end;
    strtod(s, &end);
    if (end != s && *end == '\0')
        return true;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    return *p == '.' && isalpha((unsigned char)p[1]);
}

static bool needs_quotes(const char *s, bool flow)
{
    if (*s == '\0' || reads_as_other_type(s))
        return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` \t", *s) != NULL)
        return true;
    size_t n = strlen(s);
    if (s[n - 1] == ' ' || s[n - 1] == ':' || s[n - 1] == '\t')
        return true;
    if (strstr(s, ": ") != NULL || strstr(s, " #") != NULL)
        return true;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return true;
        if (flow && strchr(",[]{}", c) != NULL)
            return true;
    }
    return false;
}

static void print_string(const char *s, bool flow, FILE *out)
{
    if (!needs_quotes(s, flow)) {
        fputs(s, out);
        return;
    }
    json_t *str = json_string(s);
    char *text = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
    fputs(text ? text : "\"\"", out);
    free(text);
    json_decref(str);
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

/* Scalars, empty containers and lists of scalars fit on the key's line. */
static bool fits_inline(const json_t *v)
{
    if (is_scalar(v))
        return true;
    if (json_is_object(v))
        return json_object_size(v) == 0;
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!is_scalar(item))
            return false;
    }
    return true;
}

static void print_inline(const json_t *v, bool flow, FILE *out)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        print_string(json_string_value(v), flow, out);
        break;
    case JSON_INTEGER:
        fprintf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        fputs(text ? text : "0", out);
        free(text);
        break;
    }
    case JSON_TRUE:
        fputs("true", out);
        break;
    case JSON_FALSE:
        fputs("false", out);
        break;
    case JSON_NULL:
        fputs("null", out);
        break;
    case JSON_OBJECT:
        fputs("{}", out);
        break;
    case JSON_ARRAY: {
        fputc('[', out);
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item)
        {
            if (i > 0)
                fputs(", ", out);
            print_inline(item, true, out);
        }
        fputc(']', out);
        break;
    }
    }
}

/* Writes a mapping or a list in block style at indent. With first_inline the first line
 * continues a "- " already written. */
static void print_block(const json_t *v, int indent, bool first_inline, FILE *out)
{
    if (json_is_object(v)) {
        const char *key;
        const json_t *child;
        bool first = true;
        json_object_foreach((json_t *)v, key, child)
        {
            if (!(first && first_inline))
                fprintf(out, "%*s", indent, "");
            first = false;
            print_string(key, false, out);
            fputc(':', out);
            if (fits_inline(child)) {
                fputc(' ', out);
                print_inline(child, false, out);
                fputc('\n', out);
            } else {
                fputc('\n', out);
                print_block(child, indent + 2, false, out);
            }
        }
        return;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!(i == 0 && first_inline))
            fprintf(out, "%*s", indent, "");
        fputs("- ", out);
        if (fits_inline(item)) {
            print_inline(item, false, out);
            fputc('\n', out);
        } else if (json_is_object(item)) {
            print_block(item, indent + 2, true, out);
        } else {
            fputc('\n', out);
            print_block(item, indent + 2, false, out);
        }
    }
}

void ctl_yaml_print(const json_t *value, FILE *out)
{
    if (fits_inline(value)) {
        print_inline(value, false, out);
        fputc('\n', out);
        return;
    }
    print_block(value, 0, false, out);
}
