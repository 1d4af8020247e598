/* Parsers and printers for the quantities of workload specs: cpu (cores or millicores),
 * memory (bytes with binary or decimal units), durations, percentages and counts. */
#ifndef GANTRY_COMMON_QUANTITY_H
#define GANTRY_COMMON_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Largest values accepted, so sums over a fleet cannot overflow int64. */
#define GY_CPU_MAX_MILLIS   INT64_C(1000000000)                /* one million cores */
#define GY_MEMORY_MAX_BYTES (INT64_C(1) << 60)                 /* 1 EiB */
#define GY_DURATION_MAX_MS  (INT64_C(10) * 365 * 86400 * 1000) /* ten years */

/* Buffer large enough for any printed quantity. */
#define GY_QUANTITY_BUF 32

/* "2", "0.5", "1.25" cores or "250m" millicores into millicores. Finer than 1m, negative,
 * exponents and values above GY_CPU_MAX_MILLIS are errors. */
int gy_cpu_parse(const char *s, int64_t *millis, struct gy_error *err);
/* "250m" or "2" (whole cores are printed without unit). */
const char *gy_cpu_format(int64_t millis, char buf[GY_QUANTITY_BUF]);

/* Bytes with an optional unit: Ki Mi Gi Ti Pi Ei (powers of 1024) or K M G T P E (powers of
 * 1000, lower-case k too); fractions round up to a whole byte ("1.5Ki" = 1536). */
int gy_memory_parse(const char *s, int64_t *bytes, struct gy_error *err);
/* The largest binary unit that divides the value exactly ("64Mi"), else plain bytes. */
const char *gy_memory_format(int64_t bytes, char buf[GY_QUANTITY_BUF]);

/* One or more <number><unit> terms, unit ms, s, m or h ("500ms", "30s", "1m30s", "1.5h"),
 * into milliseconds. A bare "0" is zero. Precision finer than 1ms is an error. */
int gy_duration_parse(const char *s, int64_t *ms, struct gy_error *err);
/* "500ms", "30s", "1.5s", "2m", "1h30m". */
const char *gy_duration_format(int64_t ms, char buf[GY_QUANTITY_BUF]);

/* "70%" (the % is optional) into an integer percentage 0..100000. */
int gy_percent_parse(const char *s, int64_t *percent, struct gy_error *err);

/* A plain non-negative decimal integer no larger than max. */
int gy_count_parse(const char *s, int64_t max, int64_t *out, struct gy_error *err);

#endif
