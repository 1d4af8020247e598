/* Framing codec; see frame.h. */
#include "proto/frame.h"

#include <stdlib.h>
#include <string.h>

void gy_frame_decoder_init(struct gy_frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame != 0 ? max_frame : GY_FRAME_MAX_DEFAULT;
}

void gy_frame_decoder_free(struct gy_frame_decoder *d)
{
    free(d->body);
    d->body = NULL;
}

void gy_frame_header_write(uint8_t header[GY_FRAME_HEADER_SIZE], uint32_t len)
{
    header[0] = (uint8_t)(len >> 24);
    header[1] = (uint8_t)(len >> 16);
    header[2] = (uint8_t)(len >> 8);
    header[3] = (uint8_t)len;
}

long gy_frame_decoder_feed(struct gy_frame_decoder *d, const uint8_t *data, size_t n,
                           const uint8_t **frame, size_t *frame_len, struct gy_error *err)
{
    *frame = NULL;
    *frame_len = 0;
    if (d->failed)
        return gy_error_set(err, GY_EPROTO, "frame stream already failed");

    /* The previous call handed out a complete frame: start the next one. */
    if (d->header_len == GY_FRAME_HEADER_SIZE && d->body_got == d->body_len) {
        d->header_len = 0;
        d->body_len = 0;
        d->body_got = 0;
    }

    size_t used = 0;
    while (d->header_len < GY_FRAME_HEADER_SIZE && used < n)
        d->header[d->header_len++] = data[used++];
    if (d->header_len < GY_FRAME_HEADER_SIZE)
        return (long)used;

    if (d->body_len == 0 && d->body_got == 0) {
        uint32_t len = (uint32_t)d->header[0] << 24 | (uint32_t)d->header[1] << 16 |
                       (uint32_t)d->header[2] << 8 | (uint32_t)d->header[3];
        if (len > d->max_frame) {
            d->failed = true;
            return gy_error_set(err, GY_ETOOBIG, "frame of %u bytes exceeds the limit of %zu", len,
                                d->max_frame);
        }
        d->body_len = len;
        if (len > 0) {
            /* Grow lazily to what the peer has actually announced; reuse otherwise. */
            uint8_t *body = realloc(d->body, len);
            if (body == NULL) {
                d->failed = true;
                return gy_error_set(err, GY_ENOMEM, "allocate frame of %u bytes", len);
            }
            d->body = body;
        }
    }

    size_t want = d->body_len - d->body_got;
    size_t take = n - used < want ? n - used : want;
    if (take > 0) {
        memcpy(d->body + d->body_got, data + used, take);
        d->body_got += take;
        used += take;
    }
    if (d->body_got == d->body_len) {
        static const uint8_t empty[1];
        *frame = d->body_len > 0 ? d->body : empty;
        *frame_len = d->body_len;
    }
    return (long)used;
}

int gy_frame_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len, struct gy_error *err)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > UINT32_MAX)
        return gy_error_set(err, GY_ETOOBIG, "message of %zu bytes is too large to frame", size);
    uint8_t *buf = malloc(GY_FRAME_HEADER_SIZE + size);
    if (buf == NULL)
        return gy_error_set(err, GY_ENOMEM, "allocate frame of %zu bytes", size);
    gy_frame_header_write(buf, (uint32_t)size);
    protobuf_c_message_pack(msg, buf + GY_FRAME_HEADER_SIZE);
    *out = buf;
    *out_len = GY_FRAME_HEADER_SIZE + size;
    return 0;
}

ProtobufCMessage *gy_frame_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *body,
                                  size_t len, struct gy_error *err)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, body);
    if (msg == NULL)
        gy_error_set(err, GY_EPROTO, "malformed %s message (%zu bytes)", desc->short_name, len);
    return msg;
}
