/* stdwh_tool - the host's Standard Webhooks services on the command line,
 * for the interoperability test against the official npm library:
 *   stdwh_tool sign SECRET MSG_ID TIMESTAMP BODY_FILE      prints the signature
 *   stdwh_tool verify SECRET MSG_ID TIMESTAMP SIGNATURE BODY_FILE NOW
 *                                                          exit 0 valid, 1 refused
 * Exit 2 on a usage or I/O error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "services.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            unsigned char *grown = realloc(buf, cap = cap ? 2 * cap : 4096);
            if (!grown)
                break;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            fclose(f);
            *len = n;
            return buf;
        }
    }
    fclose(f);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    services_plugin sp;
    services_init(&sp, "stdwh_tool");
    int sign = argc == 6 && strcmp(argv[1], "sign") == 0;
    int verify = argc == 8 && strcmp(argv[1], "verify") == 0;
    if (!sign && !verify) {
        fprintf(stderr, "usage: stdwh_tool sign SECRET MSG_ID TS BODY_FILE | "
                        "verify SECRET MSG_ID TS SIGNATURE BODY_FILE NOW\n");
        return 2;
    }
    size_t len = 0;
    unsigned char *body = read_file(argv[sign ? 5 : 6], &len);
    pagoflex_arena *arena = arena_new();
    int rc = 2;
    if (!body || !arena) {
        fprintf(stderr, "stdwh_tool: cannot read the body file\n");
        goto cleanup;
    }
    if (sign) {
        char *sig = NULL;
        if (sp.table.stdwebhooks_sign(arena, argv[2], argv[3], strtoll(argv[4], NULL, 10), body,
                                      len, &sig) != PAGOFLEX_OK) {
            fprintf(stderr, "stdwh_tool: the secret is not a whsec_<base64> key\n");
            goto cleanup;
        }
        printf("%s\n", sig);
        rc = 0;
    } else {
        pagoflex_header h[] = {
            {"webhook-id", argv[3]}, {"webhook-timestamp", argv[4]},
            {"webhook-signature", argv[5]}};
        rc = sp.table.stdwebhooks_verify(argv[2], h, 3, body, len, strtoll(argv[7], NULL, 10),
                                         300) == PAGOFLEX_OK ? 0 : 1;
        printf("%s\n", rc == 0 ? "valid" : "refused");
    }
cleanup:
    arena_free(arena);
    free(body);
    return rc;
}
