/* openapi_doc.h - the API reference, host/http/openapi.yaml, embedded at
 * build time (host/CMakeLists.txt, embed.cmake) and served at GET
 * /openapi.yaml. */
#ifndef PAGOFLEX_OPENAPI_DOC_H
#define PAGOFLEX_OPENAPI_DOC_H

#include <stddef.h>

extern const unsigned char api_openapi_yaml[]; /* api_openapi_yaml_len bytes, then a NUL */
extern const size_t api_openapi_yaml_len;

#endif
