/* Length-prefixed framing for protobuf messages on a byte stream: a 4-byte big-endian
 * length, then that many bytes of message. */
#ifndef GANTRY_PROTO_FRAME_H
#define GANTRY_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/error.h"

#define GY_FRAME_HEADER_SIZE 4
/* Default largest accepted message; a header announcing more is a protocol error. */
#define GY_FRAME_MAX_DEFAULT (16u * 1024u * 1024u)

/* Streaming decoder. Memory is bounded: it never holds more than one frame (header plus
 * at most max_frame bytes), whatever the peer sends. */
struct gy_frame_decoder {
    uint8_t header[GY_FRAME_HEADER_SIZE];
    size_t header_len; /* header bytes received */
    uint8_t *body;
    size_t body_len; /* announced length, valid once header_len == 4 */
    size_t body_got;
    size_t max_frame;
    bool failed; /* a protocol error poisons the stream */
};

void gy_frame_decoder_init(struct gy_frame_decoder *d, size_t max_frame);
void gy_frame_decoder_free(struct gy_frame_decoder *d);

/* Consumes bytes from data (at most n) until one frame is complete. Returns the number of
 * bytes consumed (>= 0) or a negative error (frame larger than max_frame, allocation
 * failure, or a stream already failed). When *frame is set non-NULL a frame is complete:
 * *frame and *frame_len stay valid until the next call. Call it in a loop until all data
 * is consumed:
 *
 *     while (n > 0) {
 *         ssize_t used = gy_frame_decoder_feed(&d, p, n, &f, &flen, err);
 *         if (used < 0) return used;
 *         p += used; n -= used;
 *         if (f != NULL) handle(f, flen);
 *     }
 */
long gy_frame_decoder_feed(struct gy_frame_decoder *d, const uint8_t *data, size_t n,
                           const uint8_t **frame, size_t *frame_len, struct gy_error *err);

/* Packs msg into a new buffer of header + body; the caller frees *out. */
int gy_frame_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len,
                  struct gy_error *err);

/* Writes the 4-byte big-endian header for a body of len bytes. */
void gy_frame_header_write(uint8_t header[GY_FRAME_HEADER_SIZE], uint32_t len);

/* Decodes a frame body as a message of type desc; the caller frees the result with
 * protobuf_c_message_free_unpacked. Garbage gives GY_EPROTO, never a crash. */
ProtobufCMessage *gy_frame_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *body,
                                  size_t len, struct gy_error *err);

#endif
