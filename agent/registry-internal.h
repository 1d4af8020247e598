/* What the files of the registry client (registry*.c) share; not for the rest of the
 * agent. */
#ifndef GANTRY_AGENT_REGISTRY_INTERNAL_H
#define GANTRY_AGENT_REGISTRY_INTERNAL_H

#include <stddef.h>

#include "common/image_ref.h"

/* Copies s[0..n) (or up to a NUL) into buf for a message: bytes outside printable ASCII
 * become '?', and what does not fit in len is cut. For text a server sent. */
void agent_reg_text_clean(const char *s, size_t n, char *buf, size_t len);

/* Copies s into buf for a message about a file the operator wrote (a configuration key or
 * value, an auth file's key): printable ASCII stays, '"', '\\' and the rest become \xNN,
 * and a long s is cut with "...". Returns buf. */
const char *agent_reg_quote(const char *s, char *buf, size_t len);

/* "sha256:" and the lower-case hex of a 32-byte SHA-256. */
void agent_reg_digest_format(const unsigned char md[32], char out[GY_IMAGE_DIGEST_LEN + 1]);

/* The digest of data[0..len), as "sha256:HEX". */
void agent_reg_sha256(const void *data, size_t len, char out[GY_IMAGE_DIGEST_LEN + 1]);

#endif
