/* Quantity parsing with exact integer arithmetic; see quantity.h. */
#include "common/quantity.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A decimal number split at the point: whole part and up to 18 fraction digits. */
struct decimal {
    uint64_t whole;
    uint64_t frac;   /* the fraction digits as an integer */
    int frac_digits; /* how many of them */
};

static const uint64_t pow10_table[19] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
    1000000000000000000ULL,
};

/* Reads digits[.digits] from *p and advances it. Returns false when there is no digit at
 * all, a value overflows, or the fraction has more than 18 digits. */
static bool decimal_read(const char **p, struct decimal *d, bool *overflow)
{
    const char *s = *p;
    *overflow = false;
    d->whole = 0;
    d->frac = 0;
    d->frac_digits = 0;
    bool any = false;
    while (*s >= '0' && *s <= '9') {
        uint64_t digit = (uint64_t)(*s - '0');
        if (d->whole > (UINT64_MAX - digit) / 10) {
            *overflow = true;
            return false;
        }
        d->whole = d->whole * 10 + digit;
        any = true;
        s++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            if (d->frac_digits == 18) {
                *overflow = true;
                return false;
            }
            d->frac = d->frac * 10 + (uint64_t)(*s - '0');
            d->frac_digits++;
            any = true;
            s++;
        }
    }
    *p = s;
    return any;
}

/* whole*mult + frac*mult/10^digits; *exact says whether the fraction part divided evenly.
 * Returns false on overflow. */
static bool decimal_scale(const struct decimal *d, uint64_t mult, uint64_t *out, bool *exact)
{
    if (mult != 0 && d->whole > UINT64_MAX / mult)
        return false;
    uint64_t v = d->whole * mult;
    uint64_t den = pow10_table[d->frac_digits];
    /* frac < den <= 1e18 and mult <= 2^60: split mult to avoid overflowing the product. */
    __uint128_t num = (__uint128_t)d->frac * mult;
    uint64_t q = (uint64_t)(num / den);
    *exact = (num % den) == 0;
    if (v > UINT64_MAX - q)
        return false;
    *out = v + q;
    return true;
}

static int empty_error(struct gy_error *err, const char *what)
{
    return gy_error_set(err, GY_EPARSE, "invalid %s: empty value", what);
}

int gy_cpu_parse(const char *s, int64_t *millis, struct gy_error *err)
{
    if (s == NULL || *s == '\0')
        return empty_error(err, "cpu quantity");
    const char *p = s;
    struct decimal d;
    bool overflow;
    if (!decimal_read(&p, &d, &overflow)) {
        if (overflow)
            return gy_error_set(err, GY_ERANGE,
                                "cpu quantity \"%s\" is too large (max %" PRId64 " cores)", s,
                                GY_CPU_MAX_MILLIS / 1000);
        return gy_error_set(err, GY_EPARSE,
                            "invalid cpu quantity \"%s\": expected cores (\"0.5\", \"2\") or "
                            "millicores (\"250m\")",
                            s);
    }
    uint64_t mult;
    if (strcmp(p, "m") == 0)
        mult = 1;
    else if (*p == '\0')
        mult = 1000;
    else
        return gy_error_set(err, GY_EPARSE,
                            "invalid cpu quantity \"%s\": unknown unit \"%s\" (use cores like "
                            "\"0.5\" or millicores like \"500m\")",
                            s, p);
    uint64_t v;
    bool exact;
    if (!decimal_scale(&d, mult, &v, &exact) || v > (uint64_t)GY_CPU_MAX_MILLIS)
        return gy_error_set(err, GY_ERANGE,
                            "cpu quantity \"%s\" is too large (max %" PRId64 " cores)", s,
                            GY_CPU_MAX_MILLIS / 1000);
    if (!exact)
        return gy_error_set(err, GY_ERANGE,
                            "cpu quantity \"%s\" is finer than the smallest unit, 1m", s);
    *millis = (int64_t)v;
    return 0;
}

const char *gy_cpu_format(int64_t millis, char buf[GY_QUANTITY_BUF])
{
    if (millis % 1000 == 0)
        snprintf(buf, GY_QUANTITY_BUF, "%" PRId64, millis / 1000);
    else
        snprintf(buf, GY_QUANTITY_BUF, "%" PRId64 "m", millis);
    return buf;
}

struct memory_unit {
    const char *suffix;
    uint64_t mult;
};

static const struct memory_unit memory_units[] = {
    {"Ki", 1ULL << 10},
    {"Mi", 1ULL << 20},
    {"Gi", 1ULL << 30},
    {"Ti", 1ULL << 40},
    {"Pi", 1ULL << 50},
    {"Ei", 1ULL << 60},
    {"k", 1000ULL},
    {"K", 1000ULL},
    {"M", 1000000ULL},
    {"G", 1000000000ULL},
    {"T", 1000000000000ULL},
    {"P", 1000000000000000ULL},
    {"E", 1000000000000000000ULL},
};

int gy_memory_parse(const char *s, int64_t *bytes, struct gy_error *err)
{
    if (s == NULL || *s == '\0')
        return empty_error(err, "memory quantity");
    const char *p = s;
    struct decimal d;
    bool overflow;
    if (!decimal_read(&p, &d, &overflow)) {
        if (overflow)
            return gy_error_set(err, GY_ERANGE, "memory quantity \"%s\" is too large (max 1Ei)", s);
        return gy_error_set(err, GY_EPARSE,
                            "invalid memory quantity \"%s\": expected a number with an optional "
                            "unit, like \"64Mi\" or \"1G\"",
                            s);
    }
    uint64_t mult = 1;
    if (*p != '\0') {
        mult = 0;
        for (size_t i = 0; i < sizeof(memory_units) / sizeof(memory_units[0]); i++) {
            if (strcmp(p, memory_units[i].suffix) == 0) {
                mult = memory_units[i].mult;
                break;
            }
        }
        if (mult == 0)
            return gy_error_set(err, GY_EPARSE,
                                "invalid memory quantity \"%s\": unknown unit \"%s\" (use Ki, "
                                "Mi, Gi, Ti, Pi, Ei, K, M, G, T, P or E)",
                                s, p);
    }
    uint64_t v;
    bool exact;
    if (!decimal_scale(&d, mult, &v, &exact))
        return gy_error_set(err, GY_ERANGE, "memory quantity \"%s\" is too large (max 1Ei)", s);
    if (!exact)
        v++; /* a fraction of a byte rounds up */
    if (v > (uint64_t)GY_MEMORY_MAX_BYTES)
        return gy_error_set(err, GY_ERANGE, "memory quantity \"%s\" is too large (max 1Ei)", s);
    *bytes = (int64_t)v;
    return 0;
}

const char *gy_memory_format(int64_t bytes, char buf[GY_QUANTITY_BUF])
{
    static const char *const binary[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
    if (bytes > 0) {
        for (int i = 0; i < 6; i++) {
            int64_t mult = INT64_C(1) << (10 * (6 - i));
            if (bytes % mult == 0) {
                snprintf(buf, GY_QUANTITY_BUF, "%" PRId64 "%s", bytes / mult, binary[i]);
                return buf;
            }
        }
    }
    snprintf(buf, GY_QUANTITY_BUF, "%" PRId64, bytes);
    return buf;
}

int gy_duration_parse(const char *s, int64_t *ms, struct gy_error *err)
{
    if (s == NULL || *s == '\0')
        return empty_error(err, "duration");
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    const char *p = s;
    uint64_t total = 0;
    while (*p != '\0') {
        struct decimal d;
        bool overflow;
        if (!decimal_read(&p, &d, &overflow)) {
            if (overflow)
                return gy_error_set(err, GY_ERANGE, "duration \"%s\" is too long (max 10 years)",
                                    s);
            return gy_error_set(err, GY_EPARSE,
                                "invalid duration \"%s\": expected a number and a unit (ms, s, "
                                "m, h), like \"500ms\", \"30s\" or \"1m30s\"",
                                s);
        }
        uint64_t mult;
        if (strncmp(p, "ms", 2) == 0) {
            mult = 1;
            p += 2;
        } else if (*p == 's') {
            mult = 1000;
            p++;
        } else if (*p == 'm') {
            mult = 60000;
            p++;
        } else if (*p == 'h') {
            mult = 3600000;
            p++;
        } else if (*p == '\0') {
            return gy_error_set(err, GY_EPARSE,
                                "invalid duration \"%s\": missing unit (ms, s, m or h)", s);
        } else {
            return gy_error_set(err, GY_EPARSE,
                                "invalid duration \"%s\": unknown unit at \"%s\" (use ms, s, m "
                                "or h)",
                                s, p);
        }
        uint64_t v;
        bool exact;
        if (!decimal_scale(&d, mult, &v, &exact) || v > (uint64_t)GY_DURATION_MAX_MS ||
            total + v > (uint64_t)GY_DURATION_MAX_MS)
            return gy_error_set(err, GY_ERANGE, "duration \"%s\" is too long (max 10 years)", s);
        if (!exact)
            return gy_error_set(err, GY_ERANGE,
                                "duration \"%s\" is finer than the smallest unit, 1ms", s);
        total += v;
    }
    *ms = (int64_t)total;
    return 0;
}

const char *gy_duration_format(int64_t ms, char buf[GY_QUANTITY_BUF])
{
    if (ms <= 0) {
        snprintf(buf, GY_QUANTITY_BUF, ms == 0 ? "0s" : "%" PRId64 "ms", ms);
        return buf;
    }
    if (ms < 1000) {
        snprintf(buf, GY_QUANTITY_BUF, "%" PRId64 "ms", ms);
        return buf;
    }
    int64_t h = ms / 3600000, m = (ms / 60000) % 60, sec = (ms / 1000) % 60, rest = ms % 1000;
    size_t n = 0;
    if (h > 0)
        n += (size_t)snprintf(buf + n, GY_QUANTITY_BUF - n, "%" PRId64 "h", h);
    if (m > 0)
        n += (size_t)snprintf(buf + n, GY_QUANTITY_BUF - n, "%" PRId64 "m", m);
    if (rest > 0) {
        char frac[8];
        snprintf(frac, sizeof(frac), "%03" PRId64, rest);
        for (int i = 2; i > 0 && frac[i] == '0'; i--)
            frac[i] = '\0';
        snprintf(buf + n, GY_QUANTITY_BUF - n, "%" PRId64 ".%ss", sec, frac);
    } else if (sec > 0) {
        snprintf(buf + n, GY_QUANTITY_BUF - n, "%" PRId64 "s", sec);
    }
    return buf;
}

int gy_percent_parse(const char *s, int64_t *percent, struct gy_error *err)
{
    if (s == NULL || *s == '\0')
        return empty_error(err, "percentage");
    size_t len = strlen(s);
    char digits[32];
    if (len >= sizeof(digits))
        return gy_error_set(err, GY_ERANGE, "percentage \"%s\" is too large (max 100000%%)", s);
    memcpy(digits, s, len + 1);
    if (digits[len - 1] == '%')
        digits[len - 1] = '\0';
    struct gy_error inner;
    if (gy_count_parse(digits, 100000, percent, &inner) < 0)
        return gy_error_set(err, inner.code,
                            "invalid percentage \"%s\": expected a whole "
                            "number like \"70%%\" (0 to 100000)",
                            s);
    return 0;
}

int gy_count_parse(const char *s, int64_t max, int64_t *out, struct gy_error *err)
{
    if (s == NULL || *s == '\0')
        return empty_error(err, "number");
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return gy_error_set(err, GY_EPARSE, "invalid number \"%s\": expected digits only", s);
        uint64_t digit = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10 || v * 10 + digit > (uint64_t)max)
            return gy_error_set(err, GY_ERANGE, "number \"%s\" is too large (max %" PRId64 ")", s,
                                max);
        v = v * 10 + digit;
    }
    *out = (int64_t)v;
    return 0;
}
