/* How the autoscaler reads a stored workload spec: the autoscale block and the requests,
 * peeked at without unpacking the spec when the workload is not autoscaled. */
#include "scheduler/fleet/autoscaler_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void autoscaler_live_free(struct workload_live *live)
{
    if (live == NULL)
        return;
    if (live->metric != NULL)
        gantry__metric_source__free_unpacked(live->metric, NULL);
    free(live);
}

/* Reads one base-128 varint; false past the end or beyond 64 bits. */
static bool varint_read(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

/* Finds field in a packed protobuf message without unpacking it (the last occurrence, as
 * for scalars): its value when a varint, its bytes when length-delimited. 1 when found, 0
 * when absent, -1 when the encoding is not understood. */
static int pb_field(const uint8_t *p, size_t len, unsigned field, uint64_t *value,
                    const uint8_t **bytes, size_t *n_bytes)
{
    const uint8_t *end = p + len;
    int found = 0;
    while (p < end) {
        uint64_t key, n;
        if (!varint_read(&p, end, &key))
            return -1;
        bool wanted = key >> 3 == field;
        switch (key & 7) {
        case 0: /* varint */
            if (!varint_read(&p, end, &n))
                return -1;
            if (wanted) {
                *value = n;
                found = 1;
            }
            break;
        case 1: /* 64 bits */
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (!varint_read(&p, end, &n) || n > (uint64_t)(end - p))
                return -1;
            if (wanted) {
                *bytes = p;
                *n_bytes = (size_t)n;
                found = 1;
            }
            p += n;
            break;
        case 5: /* 32 bits */
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return found;
}

/* Whether a packed WorkloadSpec has autoscaling on (Autoscale.enabled), and where its
 * Resources are, read without unpacking the rest: most workloads are not autoscaled, and
 * every new or changed one is looked at. False when the encoding is not understood (then
 * it is unpacked whole). */
static bool spec_peek(const uint8_t *p, size_t len, bool *autoscaled, const uint8_t **res,
                      size_t *res_len)
{
    const uint8_t *as = NULL;
    size_t as_len = 0;
    uint64_t enabled = 0, unused;
    *res = NULL;
    *res_len = 0;
    int has_as = pb_field(p, len, 10, &unused, &as, &as_len);
    if (has_as < 0 || pb_field(p, len, 6, &unused, res, res_len) < 0 ||
        (has_as > 0 && pb_field(as, as_len, 1, &enabled, &as, &as_len) < 0))
        return false;
    *autoscaled = enabled != 0;
    return true;
}

void autoscaler_workload_decode(struct workload_as *w, const void *blob, size_t len,
                                uint64_t generation)
{
    w->generation = generation;
    bool autoscaled;
    const uint8_t *res;
    size_t res_len;
    if (w->live == NULL && spec_peek(blob, len, &autoscaled, &res, &res_len) && !autoscaled) {
        /* Not autoscaled, before or now: only its requests are kept. */
        Gantry__Resources *r = res != NULL ? gantry__resources__unpack(NULL, res_len, res) : NULL;
        w->cpu_request_millis = r != NULL ? r->cpu_millis : 0;
        w->memory_request_bytes = r != NULL ? r->memory_bytes : 0;
        if (r != NULL)
            gantry__resources__free_unpacked(r, NULL);
        return;
    }
    Gantry__WorkloadSpec *spec = gantry__workload_spec__unpack(NULL, len, blob);
    const Gantry__Autoscale *a = spec != NULL ? spec->autoscale : NULL;
    if (a == NULL || !a->enabled) {
        /* Not (or no longer) autoscaled: nothing but the requests is kept. */
        autoscaler_live_free(w->live);
        w->live = NULL;
    } else if (w->live == NULL) {
        w->live = gy_xcalloc(1, sizeof(*w->live));
    } else if (w->live->metric != NULL) {
        /* A new generation of an autoscaled workload keeps its periods and figures. */
        gantry__metric_source__free_unpacked(w->live->metric, NULL);
        w->live->metric = NULL;
    }
    if (spec == NULL)
        return;
    if (spec->resources != NULL) {
        w->cpu_request_millis = spec->resources->cpu_millis;
        w->memory_request_bytes = spec->resources->memory_bytes;
    }
    if (w->live != NULL) {
        struct sch_as_policy p;
        memset(&p, 0, sizeof(p));
        p.min = a->min;
        p.max = a->max;
        p.cpu_percent = a->cpu_percent;
        p.memory_percent = a->memory_percent;
        p.scale_down_after_ms = a->scale_down_after_ms;
        p.idle_after_ms = a->idle_after_ms;
        if (a->metric != NULL && a->metric->target > 0 &&
            (a->metric->n_exec > 0 || a->metric->http_port != 0)) {
            p.has_metric = true;
            p.metric_target = a->metric->target;
            size_t n = gantry__metric_source__get_packed_size(a->metric);
            uint8_t *buf = gy_xmalloc(n ? n : 1);
            gantry__metric_source__pack(a->metric, buf);
            w->live->metric = gantry__metric_source__unpack(NULL, n, buf);
            free(buf);
        }
        w->live->policy = p;
    }
    gantry__workload_spec__free_unpacked(spec, NULL);
}
