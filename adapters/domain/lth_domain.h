/* lth_domain — names shared by the city's adapters: the services they offer
 * and the content types of the lth.domain.v1 payloads (proto/domain.proto,
 * proto/DOMAIN.md).
 *
 * An envelope carrying a domain message has the content type
 * "application/x-protobuf; proto=lth.domain.v1.<Type>". Receivers check it
 * with lth_domain_content_type_is() before decoding.
 */
#ifndef LTH_DOMAIN_H
#define LTH_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LTH_SERVICE_CITIZEN_LOOKUP "citizen.lookup/v1"
#define LTH_SERVICE_CITIZEN_VERIFY "citizen.verify/v1"
#define LTH_SERVICE_DOSSIER_SUBMIT "dossier.submit/v1"
#define LTH_SERVICE_DOSSIER_STATUS "dossier.status/v1"
#define LTH_SERVICE_CATALOGUE_PUBLISH "catalogue.published/v1" /* the topic */
#define LTH_SERVICE_CATALOGUE_ACK "catalogue.ack/v1"

#define LTH_DOMAIN_PACKAGE "lth.domain.v1"
/* The content type of a domain message, e.g.
 * LTH_DOMAIN_CONTENT_TYPE("Dossier"). */
#define LTH_DOMAIN_CONTENT_TYPE(type) "application/x-protobuf; proto=" LTH_DOMAIN_PACKAGE "." type

/* true when `content_type` is application/x-protobuf with the parameter
 * proto=lth.domain.v1.<type> (case-insensitive media type, spaces around ';'
 * and '=' allowed, other parameters ignored). A content type without a proto
 * parameter does not match: the sender must say what it sent. */
bool lth_domain_content_type_is(const char *content_type, const char *type);

/* Reads the text file at path whole into *text (NUL-terminated; free() it),
 * refused when it is larger than max bytes or holds a NUL byte. `what`
 * names the file in err ("the catalogue file"). HUB_ENOENT / HUB_EIO (cannot
 * read), HUB_EINVAL (too large), HUB_EPARSE (not text), HUB_ENOMEM. */
int lth_domain_read_text(const char *path, const char *what, size_t max, char **text, char *err,
                         size_t err_size);

/* ---- decoding a domain message (the lth_*_decode functions) ----
 *
 * Every decoder clears the caller's struct, checks the content type, unpacks
 * the payload, applies its message's rules and frees what it unpacked; only
 * the rules differ, and they are the reader's read(). */

struct ProtobufCMessageDescriptor;

typedef struct {
    const struct ProtobufCMessageDescriptor *descriptor; /* the protobuf-c message */
    const char *type;                                    /* its name in proto=, e.g. "Dossier" */
    const char *wrong_type; /* the problem when the content type names another */
    const char *unparsed;   /* the problem when the payload does not unpack */
    /* Checks the unpacked message (msg) against its rules and copies it
     * into out: NULL, or the problem in a sentence. */
    const char *(*read)(const void *msg, void *out);
} lth_domain_reader_t;

/* The reader of lth.domain.v1.<type> (a string literal) with its problems
 * in the decoders' words. */
#define LTH_DOMAIN_READER(type, descriptor_, read_)                                                \
    {                                                                                              \
        (descriptor_), type, "the content type is not " LTH_DOMAIN_CONTENT_TYPE(type),             \
            "the payload is not a " type, (read_)                                                  \
    }

/* Decodes payload into out (out_size bytes, cleared first) with reader: 0,
 * or HUB_EPARSE with the problem in *problem (a static sentence; problem may
 * be NULL). A NULL out is "no output". */
int lth_domain_decode(const lth_domain_reader_t *reader, const char *content_type,
                      const uint8_t *payload, size_t len, void *out, size_t out_size,
                      const char **problem);

/* Defines the public decoder of lth.domain.v1.<type> into out_type_, as
 * declared in the module's header: int name_(content_type, payload, len,
 * out_type_ *out, problem), lth_domain_decode with that type's reader. */
#define LTH_DOMAIN_DECODER(name_, out_type_, type, descriptor_, read_)                             \
    int name_(const char *content_type, const uint8_t *payload, size_t len, out_type_ *out,        \
              const char **problem)                                                                \
    {                                                                                              \
        static const lth_domain_reader_t reader = LTH_DOMAIN_READER(type, descriptor_, read_);     \
        return lth_domain_decode(&reader, content_type, payload, len, out, sizeof *out, problem);  \
    }

/* Copies src (NULL reads as "") into dst of size bytes; false, leaving dst
 * alone, when it does not fit. */
bool lth_domain_copy(char *dst, size_t size, const char *src);

#endif
