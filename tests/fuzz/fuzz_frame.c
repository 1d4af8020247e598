/* Fuzz target: arbitrary bytes through the frame decoder (in input-chosen chunk sizes),
 * and every complete frame through the protobuf decoders of Command and AgentFrame. */
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"
#include "proto/gantry.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* The first byte picks the chunk size, so the fuzzer explores split points too. */
    size_t chunk = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct gy_frame_decoder d;
    gy_frame_decoder_init(&d, 64 * 1024);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        const uint8_t *p = data + off;
        off += n;
        while (n > 0) {
            const uint8_t *frame;
            size_t flen;
            struct gy_error err;
            long used = gy_frame_decoder_feed(&d, p, n, &frame, &flen, &err);
            if (used < 0)
                goto done;
            p += used;
            n -= (size_t)used;
            if (frame == NULL)
                continue;
            ProtobufCMessage *m = gy_frame_unpack(&gantry__command__descriptor, frame, flen, &err);
            if (m != NULL)
                protobuf_c_message_free_unpacked(m, NULL);
            m = gy_frame_unpack(&gantry__agent_frame__descriptor, frame, flen, &err);
            if (m != NULL)
                protobuf_c_message_free_unpacked(m, NULL);
        }
    }
done:
    gy_frame_decoder_free(&d);
    return 0;
}
