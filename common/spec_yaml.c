/* The YAML reader of spec files: libyaml's event stream into one JSON tree and one position
 * table per document, then the JSON codec for each document; see spec.h. */
#include "common/spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/xalloc.h"

/* ---------------------------------------------------------------------------------------
 * Scalars: the YAML 1.2 core schema */

static bool is_one_of(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

static bool all_digits(const char *s, int base)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;
        bool ok = (c >= '0' && c <= '9' && c - '0' < base) ||
                  (base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
        if (!ok)
            return false;
    }
    return true;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    size_t whole = 0, frac = 0;
    while (*s >= '0' && *s <= '9') {
        s++;
        whole++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            frac++;
        }
    }
    if (whole == 0 && frac == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

enum scalar_result { SCALAR_OK, SCALAR_RANGE, SCALAR_NOT_FINITE };

/* The JSON value of a plain scalar: null, a boolean, an integer or a real when the text
 * matches the core schema, else a string. */
static enum scalar_result resolve_plain(const char *s, json_t **out)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    static const char *const infs[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                       "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
    *out = NULL;
    if (is_one_of(s, nulls, 5)) {
        *out = json_null();
        return SCALAR_OK;
    }
    if (is_one_of(s, trues, 3) || is_one_of(s, falses, 3)) {
        *out = json_boolean(is_one_of(s, trues, 3));
        return SCALAR_OK;
    }
    if (is_one_of(s, infs, 12))
        return SCALAR_NOT_FINITE;
    int base = 0;
    const char *digits = s;
    if (strncmp(s, "0x", 2) == 0 && all_digits(s + 2, 16)) {
        base = 16;
        digits = s + 2;
    } else if (strncmp(s, "0o", 2) == 0 && all_digits(s + 2, 8)) {
        base = 8;
        digits = s + 2;
    } else if (all_digits(s[0] == '-' || s[0] == '+' ? s + 1 : s, 10)) {
        base = 10;
    }
    if (base != 0) {
        errno = 0;
        char *end;
        long long v = strtoll(digits, &end, base);
        if (errno == ERANGE || *end != '\0')
            return SCALAR_RANGE;
        *out = json_integer(v);
        return SCALAR_OK;
    }
    if (is_float(s)) {
        errno = 0;
        double v = strtod(s, NULL);
        if (errno == ERANGE && (v > 1.0 || v < -1.0))
            return SCALAR_RANGE;
        *out = json_real(v);
        return SCALAR_OK;
    }
    *out = json_string(s);
    return SCALAR_OK;
}

/* ---------------------------------------------------------------------------------------
 * Tree building */

struct frame {
    json_t *node; /* an object or an array */
    char *path;
    char *key;       /* objects: the key whose value comes next, NULL while a key is due */
    bool drop_value; /* objects: the value after the current key is not kept */
    size_t index;    /* arrays: the index of the next item */
};

struct builder {
    struct gy_spec_problems *problems;
    struct gy_yaml_document *docs;
    size_t n_docs;
    json_t *root; /* the current document's content, once complete */
    struct gy_spec_positions *pos;
    bool in_document;
    struct frame *stack;
    size_t depth;
    size_t cap;
    /* While > 0, events belong to a node being dropped (nested this deep inside it). */
    size_t skip;
    /* What to do with the parent once the dropped node ends. */
    bool skip_was_key;
};

static int mark_line(const yaml_mark_t *m)
{
    return (int)(m->line + 1 > INT32_MAX ? INT32_MAX : m->line + 1);
}

static int mark_column(const yaml_mark_t *m)
{
    return (int)(m->column + 1 > INT32_MAX ? INT32_MAX : m->column + 1);
}

static void record(struct builder *b, const char *path, const yaml_mark_t *m)
{
    if (gy_spec_positions_add(b->pos, path, mark_line(m), mark_column(m)) < 0) {
        fprintf(stderr, "gantry: out of memory recording spec positions\n");
        abort();
    }
}

static struct frame *top(struct builder *b)
{
    return b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
}

static bool expects_key(const struct builder *b)
{
    return b->depth > 0 && json_is_object(b->stack[b->depth - 1].node) &&
           b->stack[b->depth - 1].key == NULL;
}

/* The path of the value that comes next, recording its position (the key's for mapping
 * values, the item's own for list items). */
static char *next_path(struct builder *b, const yaml_mark_t *m)
{
    struct frame *f = top(b);
    if (f == NULL) {
        record(b, "", m);
        return gy_xstrdup("");
    }
    if (json_is_array(f->node)) {
        char *p = gy_xasprintf("%s[%zu]", f->path, f->index);
        record(b, p, m);
        return p;
    }
    return f->path[0] == '\0' ? gy_xstrdup(f->key) : gy_xasprintf("%s.%s", f->path, f->key);
}

/* Hands a finished value to its parent (or makes it the document), taking the reference. */
static void attach(struct builder *b, json_t *value)
{
    struct frame *f = top(b);
    if (f == NULL) {
        json_decref(b->root);
        b->root = value;
        return;
    }
    if (json_is_array(f->node)) {
        json_array_append_new(f->node, value);
        f->index++;
        return;
    }
    if (f->drop_value)
        json_decref(value);
    else
        json_object_set_new(f->node, f->key, value);
    free(f->key);
    f->key = NULL;
    f->drop_value = false;
}

/* A value that could not be read takes the place of null, so the structure stays whole. */
static void attach_nothing(struct builder *b)
{
    struct frame *f = top(b);
    if (f != NULL && json_is_object(f->node))
        f->drop_value = true;
    attach(b, json_null());
}

#define PROBLEM_AT(b, path, m, ...)                                                                \
    gy_spec_problem_add_at((b)->problems, (path), mark_line(m), mark_column(m), __VA_ARGS__)

/* Starts dropping the node that begins with this event. */
static void skip_node(struct builder *b)
{
    b->skip = 1;
    b->skip_was_key = expects_key(b);
}

/* The dropped node ended: a dropped key also drops the value after it. */
static void skip_done(struct builder *b)
{
    struct frame *f = top(b);
    if (b->skip_was_key) {
        f->key = gy_xstrdup("");
        f->drop_value = true;
    } else {
        attach_nothing(b);
    }
}

/* Anchors are refused: with aliases they would let a small file expand into a huge one,
 * and specs are short enough to write out. */
static void check_anchor(struct builder *b, const yaml_char_t *anchor, const char *path,
                         const yaml_mark_t *m)
{
    char ex[GY_SPEC_EXCERPT_BUF];
    if (anchor != NULL)
        PROBLEM_AT(b, path, m, "anchors (&%s) are not supported: write the value out in full",
                   gy_spec_excerpt((const char *)anchor, ex));
}

static void on_key(struct builder *b, const yaml_event_t *e)
{
    struct frame *f = top(b);
    const char *key = (const char *)e->data.scalar.value;
    char *path = f->path[0] == '\0' ? gy_xstrdup(key) : gy_xasprintf("%s.%s", f->path, key);
    f->key = gy_xstrdup(key);
    check_anchor(b, e->data.scalar.anchor, path, &e->start_mark);
    if (strlen(key) != e->data.scalar.length) {
        PROBLEM_AT(b, f->path, &e->start_mark, "keys must not contain NUL characters");
        f->drop_value = true;
    } else if (json_object_get(f->node, key) != NULL) {
        int line = 0, column = 0;
        gy_spec_positions_lookup(b->pos, path, &line, &column);
        gy_spec_problem_add_at(b->problems, path, mark_line(&e->start_mark),
                               mark_column(&e->start_mark),
                               "duplicate key (first defined at line %d, column %d)", line, column);
        f->drop_value = true;
    } else {
        record(b, path, &e->start_mark);
    }
    free(path);
}

static void on_scalar(struct builder *b, const yaml_event_t *e)
{
    if (expects_key(b)) {
        on_key(b, e);
        return;
    }
    char *path = next_path(b, &e->start_mark);
    check_anchor(b, e->data.scalar.anchor, path, &e->start_mark);
    char ex[GY_SPEC_EXCERPT_BUF];
    const char *text = (const char *)e->data.scalar.value;
    const char *tag = (const char *)e->data.scalar.tag;
    json_t *value = NULL;
    if (strlen(text) != e->data.scalar.length) {
        PROBLEM_AT(b, path, &e->start_mark, "strings must not contain NUL characters");
    } else if (tag != NULL && strcmp(tag, "tag:yaml.org,2002:str") != 0 && strcmp(tag, "!") != 0) {
        PROBLEM_AT(b, path, &e->start_mark, "the tag %s is not supported (only !!str is)",
                   gy_spec_excerpt(tag, ex));
    } else if (tag != NULL || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        value = json_string(text);
        if (value == NULL)
            PROBLEM_AT(b, path, &e->start_mark, "the text is not valid UTF-8");
    } else {
        switch (resolve_plain(text, &value)) {
        case SCALAR_OK:
            if (value == NULL)
                PROBLEM_AT(b, path, &e->start_mark, "the text is not valid UTF-8");
            break;
        case SCALAR_RANGE:
            PROBLEM_AT(b, path, &e->start_mark, "the number %s is out of range",
                       gy_spec_excerpt(text, ex));
            break;
        case SCALAR_NOT_FINITE:
            PROBLEM_AT(b, path, &e->start_mark, "%s is not supported: numbers must be finite",
                       text);
            break;
        }
    }
    free(path);
    if (value == NULL)
        attach_nothing(b);
    else
        attach(b, value);
}

static void on_collection_start(struct builder *b, const yaml_event_t *e, bool mapping)
{
    if (expects_key(b)) {
        PROBLEM_AT(b, top(b)->path, &e->start_mark,
                   "a key must be a plain value, not a mapping or a list");
        skip_node(b);
        return;
    }
    char *path = next_path(b, &e->start_mark);
    check_anchor(b, mapping ? e->data.mapping_start.anchor : e->data.sequence_start.anchor, path,
                 &e->start_mark);
    if (b->depth >= GY_SPEC_YAML_DEPTH_MAX) {
        PROBLEM_AT(b, path, &e->start_mark, "nested deeper than 64 levels");
        free(path);
        skip_node(b);
        return;
    }
    if (b->depth == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->stack = gy_xrealloc(b->stack, b->cap * sizeof(b->stack[0]));
    }
    struct frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof(*f));
    f->node = mapping ? json_object() : json_array();
    if (f->node == NULL) {
        fprintf(stderr, "gantry: out of memory building a spec document\n");
        abort();
    }
    f->path = path;
}

static void on_collection_end(struct builder *b)
{
    struct frame f = b->stack[--b->depth];
    free(f.path);
    free(f.key);
    attach(b, f.node);
}

static void on_document_start(struct builder *b)
{
    b->in_document = true;
    b->root = NULL;
    b->pos = gy_spec_positions_new();
    if (b->pos == NULL) {
        fprintf(stderr, "gantry: out of memory building a spec document\n");
        abort();
    }
}

static void on_document_end(struct builder *b)
{
    b->in_document = false;
    /* An empty document (a stray `---`, or only comments) holds no workload. */
    if (b->root == NULL || json_is_null(b->root)) {
        json_decref(b->root);
        gy_spec_positions_free(b->pos);
    } else {
        b->docs = gy_xrealloc(b->docs, (b->n_docs + 1) * sizeof(b->docs[0]));
        b->docs[b->n_docs].doc = b->root;
        b->docs[b->n_docs].pos = b->pos;
        b->n_docs++;
    }
    b->root = NULL;
    b->pos = NULL;
}

static void on_event(struct builder *b, const yaml_event_t *e)
{
    if (b->skip > 0) {
        if (e->type == YAML_MAPPING_START_EVENT || e->type == YAML_SEQUENCE_START_EVENT)
            b->skip++;
        else if (e->type == YAML_MAPPING_END_EVENT || e->type == YAML_SEQUENCE_END_EVENT)
            b->skip--;
        if (b->skip == 0)
            skip_done(b);
        return;
    }
    switch (e->type) {
    case YAML_DOCUMENT_START_EVENT:
        on_document_start(b);
        break;
    case YAML_DOCUMENT_END_EVENT:
        on_document_end(b);
        break;
    case YAML_SCALAR_EVENT:
        on_scalar(b, e);
        break;
    case YAML_ALIAS_EVENT: {
        bool key = expects_key(b);
        char ex[GY_SPEC_EXCERPT_BUF];
        char *path = key ? gy_xstrdup(top(b)->path) : next_path(b, &e->start_mark);
        PROBLEM_AT(b, path, &e->start_mark,
                   "aliases (*%s) are not supported: write the value out in full",
                   gy_spec_excerpt((const char *)e->data.alias.anchor, ex));
        free(path);
        if (key) {
            top(b)->key = gy_xstrdup("");
            top(b)->drop_value = true;
        } else {
            attach_nothing(b);
        }
        break;
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        on_collection_start(b, e, e->type == YAML_MAPPING_START_EVENT);
        break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        on_collection_end(b);
        break;
    default:
        break;
    }
}

/* Line and column of a byte offset, for reader errors, which carry no mark. */
static void offset_position(const char *text, size_t len, size_t offset, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*column)++;
        }
    }
}

static void syntax_problem(struct builder *b, const yaml_parser_t *parser, const char *text,
                           size_t len)
{
    const char *problem = parser->problem != NULL ? parser->problem : "invalid YAML";
    if (parser->error == YAML_READER_ERROR) {
        int line, column;
        offset_position(text, len, parser->problem_offset, &line, &column);
        if (parser->problem_value != -1)
            gy_spec_problem_add_at(b->problems, "", line, column, "%s: #%X", problem,
                                   (unsigned)parser->problem_value);
        else
            gy_spec_problem_add_at(b->problems, "", line, column, "%s", problem);
        return;
    }
    const yaml_mark_t *m = &parser->problem_mark;
    if (parser->context != NULL)
        gy_spec_problem_add_at(
            b->problems, "", mark_line(m), mark_column(m), "%s (%s at line %d, column %d)", problem,
            parser->context, mark_line(&parser->context_mark), mark_column(&parser->context_mark));
    else
        gy_spec_problem_add_at(b->problems, "", mark_line(m), mark_column(m), "%s", problem);
}

static void builder_reset_document(struct builder *b)
{
    while (b->depth > 0) {
        struct frame *f = &b->stack[--b->depth];
        json_decref(f->node);
        free(f->path);
        free(f->key);
    }
    json_decref(b->root);
    b->root = NULL;
    gy_spec_positions_free(b->pos);
    b->pos = NULL;
}

int gy_yaml_parse(const char *text, size_t len, struct gy_yaml_document **docs, size_t *n_docs,
                  struct gy_spec_problems *problems)
{
    struct builder b = {.problems = problems};
    size_t before = problems->n;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "gantry: out of memory starting the YAML parser\n");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            syntax_problem(&b, &parser, text, len);
            break;
        }
        bool end = event.type == YAML_STREAM_END_EVENT;
        on_event(&b, &event);
        yaml_event_delete(&event);
        if (end)
            break;
    }
    yaml_parser_delete(&parser);
    builder_reset_document(&b);
    free(b.stack);
    *docs = b.docs;
    *n_docs = b.n_docs;
    return problems->n > before ? -GY_EINVAL : 0;
}

void gy_yaml_documents_free(struct gy_yaml_document *docs, size_t n_docs)
{
    for (size_t i = 0; i < n_docs; i++) {
        json_decref(docs[i].doc);
        gy_spec_positions_free(docs[i].pos);
    }
    free(docs);
}

/* ---------------------------------------------------------------------------------------
 * Spec files */

int gy_spec_file_load_string(const char *name, const char *text, size_t len,
                             struct gy_spec_file *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    out->name = gy_xstrdup(name != NULL ? name : "<string>");
    struct gy_yaml_document *docs = NULL;
    size_t n_docs = 0;
    gy_yaml_parse(text, len, &docs, &n_docs, &out->problems);
    bool syntax_error = out->problems.n > 0;
    if (n_docs == 0 && !syntax_error)
        gy_spec_problem_add_at(&out->problems, "", 1, 1,
                               "no workload spec found (the file has no YAML document)");
    out->specs = n_docs > 0 ? gy_xcalloc(n_docs, sizeof(out->specs[0])) : NULL;
    for (size_t i = 0; i < n_docs; i++) {
        struct gy_spec *spec = &out->specs[i];
        out->n_specs++;
        gy_spec_from_json(docs[i].doc, docs[i].pos, spec, &out->problems);
        if (spec->name == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (out->specs[j].name == NULL || strcmp(out->specs[j].name, spec->name) != 0)
                continue;
            int line = 0, column = 0;
            gy_spec_positions_lookup(docs[j].pos, "name", &line, &column);
            gy_spec_problem_add(&out->problems, docs[i].pos, "name",
                                "workload \"%s\" is defined twice in this file (first at line "
                                "%d)",
                                spec->name, line);
            break;
        }
    }
    gy_yaml_documents_free(docs, n_docs);
    gy_spec_problems_sort(&out->problems, 0);
    if (out->problems.n > 0) {
        char *first = gy_spec_problem_format(out->name, &out->problems.items[0]);
        size_t more = out->problems.n - 1;
        int rc = more == 0 ? gy_error_set(err, GY_EINVAL, "%s", first)
                           : gy_error_set(err, GY_EINVAL, "%s (and %zu more problem%s)", first,
                                          more, more == 1 ? "" : "s");
        free(first);
        return rc;
    }
    return 0;
}

/* Reads a whole stream into memory, refusing more than GY_SPEC_FILE_MAX bytes. */
static int read_all(const char *name, FILE *stream, char **text, size_t *len, struct gy_error *err)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = gy_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= GY_SPEC_FILE_MAX + 1) {
                free(buf);
                return gy_error_set(err, GY_ETOOBIG, "read %s: larger than %u MiB", name,
                                    GY_SPEC_FILE_MAX >> 20);
            }
            cap = cap * 2 > GY_SPEC_FILE_MAX + 1 ? GY_SPEC_FILE_MAX + 1 : cap * 2;
            buf = gy_xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, stream);
        n += got;
        if (got == 0) {
            if (ferror(stream)) {
                int e = errno;
                free(buf);
                return gy_error_sys(err, e, "read %s", name);
            }
            break;
        }
    }
    if (n > GY_SPEC_FILE_MAX) {
        free(buf);
        return gy_error_set(err, GY_ETOOBIG, "read %s: larger than %u MiB", name,
                            GY_SPEC_FILE_MAX >> 20);
    }
    *text = buf;
    *len = n;
    return 0;
}

int gy_spec_file_load_stream(const char *name, FILE *stream, struct gy_spec_file *out,
                             struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    char *text = NULL;
    size_t len = 0;
    int rc = read_all(name, stream, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = gy_spec_file_load_string(name, text, len, out, err);
    free(text);
    return rc;
}

int gy_spec_file_load_path(const char *path, struct gy_spec_file *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(path, "-") == 0)
        return gy_spec_file_load_stream("<stdin>", stdin, out, err);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return gy_error_sys(err, errno, "open %s", path);
    int rc = gy_spec_file_load_stream(path, f, out, err);
    fclose(f);
    return rc;
}

void gy_spec_file_free(struct gy_spec_file *file)
{
    if (file == NULL)
        return;
    for (size_t i = 0; i < file->n_specs; i++)
        gy_spec_free(&file->specs[i]);
    free(file->specs);
    gy_spec_problems_free(&file->problems);
    free(file->name);
    memset(file, 0, sizeof(*file));
}

void gy_spec_file_print_problems(const struct gy_spec_file *file, FILE *stream)
{
    for (size_t i = 0; i < file->problems.n; i++) {
        char *line = gy_spec_problem_format(file->name, &file->problems.items[i]);
        fprintf(stream, "%s\n", line);
        free(line);
    }
}
