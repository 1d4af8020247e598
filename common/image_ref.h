/* Image references (`busybox`, `registry.example:5000/team/web:1.4@sha256:...`), parsed
 * and normalised the way Docker and containerd read them. */
#ifndef GANTRY_COMMON_IMAGE_REF_H
#define GANTRY_COMMON_IMAGE_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* The distribution spec limits a repository name, domain included, to 255 characters. */
#define GY_IMAGE_NAME_MAX 255
/* A tag is 1 to 128 characters. */
#define GY_IMAGE_TAG_MAX 128
/* "sha256:" and 64 lower-case hex digits, the only digest algorithm accepted. */
#define GY_IMAGE_DIGEST_LEN 71
/* The longest reference accepted as written: a name, a tag and a digest at their limits. */
#define GY_IMAGE_REF_MAX (GY_IMAGE_NAME_MAX + 1 + GY_IMAGE_TAG_MAX + 1 + GY_IMAGE_DIGEST_LEN)
/* Where a reference without a domain points, as in Docker. */
#define GY_IMAGE_DEFAULT_DOMAIN "docker.io"
#define GY_IMAGE_DEFAULT_TAG    "latest"

/* A normalised reference: `busybox` is {docker.io, library/busybox, latest, ""}. */
struct gy_image_ref {
    char domain[GY_IMAGE_NAME_MAX + 1];   /* "docker.io", "localhost:5000", "[::1]:5000" */
    char path[GY_IMAGE_NAME_MAX + 1];     /* "library/busybox", "team/web" */
    char tag[GY_IMAGE_TAG_MAX + 1];       /* "" only when the reference names a digest alone */
    char digest[GY_IMAGE_DIGEST_LEN + 1]; /* "sha256:HEX" or "" */
};

/* Parses s following the grammar of the distribution project's reference package
 * (github.com/distribution/reference, as Docker and containerd use it):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain    := host [ ":" port ]   host: DNS labels joined by ".", or "[" IPv6 "]"
 *   path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" [0-9a-f]{64}
 *
 * The first component is a domain when it contains "." or ":", is "localhost", or has an
 * upper-case letter (which a path may not). Normalisation then fills in what Docker does:
 * no domain means docker.io ("index.docker.io" is also docker.io), a one-component path
 * on docker.io gets "library/", and a reference with neither tag nor digest gets the tag
 * "latest"; a reference with both keeps both (the digest decides what is pulled).
 *
 * On failure (GY_EINVAL) the message quotes s, with control characters escaped, and
 * names the problem and its 1-based column: `image reference "Web" column 1: repository
 * names must be lower-case ('W')`. out is written only on success. */
int gy_image_ref_parse(const char *s, struct gy_image_ref *out, struct gy_error *err);

/* Writes the full normalised reference ("docker.io/library/busybox:latest",
 * "localhost:5000/x:1@sha256:...") into buf of size len. Returns its length, or -1 (and
 * an empty buf when len > 0) when it does not fit. GY_IMAGE_REF_MAX + 32 always fits. */
int gy_image_ref_format(const struct gy_image_ref *ref, char *buf, size_t len);

/* Like gy_image_ref_format for the repository name alone ("docker.io/library/busybox"). */
int gy_image_ref_name(const struct gy_image_ref *ref, char *buf, size_t len);

/* Checks a registry host as references and registry configurations name it: DNS labels
 * of [A-Za-z0-9-] joined by "." (or a bracketed IPv6 address), with an optional
 * ":PORT" of 1 to 65535. GY_EINVAL with a message that quotes s when it is not one. */
int gy_image_domain_check(const char *s, struct gy_error *err);

/* The longest name of a root filesystem imported on a node (gantry-agent image import). */
#define GY_IMAGE_LOCAL_NAME_MAX 128

/* 0 when name can name an imported root filesystem: 1 to GY_IMAGE_LOCAL_NAME_MAX of
 * [a-z0-9._:-], starting with a letter or digit (a single path component, so it cannot
 * escape the node's store); GY_EINVAL with a message that names the problem otherwise. */
int gy_image_local_name_check(const char *name, struct gy_error *err);

/* True for "sha256:" followed by exactly 64 lower-case hex digits. */
bool gy_image_digest_valid(const char *s);

#endif
