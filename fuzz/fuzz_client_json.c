/*
 * fuzz_client_json — `eddy consume --json` turns arbitrary record bytes into
 * JSON strings (client_json_write_bytes). For any input the output must be
 * one JSON string of printable ASCII and valid UTF-8, and undoing our escapes
 * (\udcXX -> byte XX, \uXXXX and \n etc. -> the byte) must give back exactly
 * the input: the encoding is lossless and unambiguous.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    client_json_write_bytes(f, size ? data : (const uint8_t *)"", size);
    fclose(f);

    unsigned char *back = malloc(size + 1);
    size_t n = 0, i = 1;
    if (outlen < 2 || out[0] != '"' || out[outlen - 1] != '"')
        abort();
    while (i < outlen - 1) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == '"')
            abort(); /* must have been escaped */
        if (c != '\\') {
            back[n++] = c;
            i++;
            continue;
        }
        if (i + 1 >= outlen - 1)
            abort();
        char e = out[i + 1];
        const char *simple = strchr("\"\\nrtbf", e);
        if (simple && e) {
            static const char map[] = "\"\\\n\r\t\b\f";
            back[n++] = (unsigned char)map[simple - "\"\\nrtbf"];
            i += 2;
            continue;
        }
        if (e != 'u' || i + 6 > outlen - 1)
            abort();
        int v = 0;
        for (int k = 2; k < 6; k++) {
            int h = hexval(out[i + k]);
            if (h < 0)
                abort();
            v = v * 16 + h;
        }
        if (v >= 0xdc80 && v <= 0xdcff)
            back[n++] = (unsigned char)(v - 0xdc00); /* surrogateescape */
        else if (v < 0x20)
            back[n++] = (unsigned char)v;
        else
            abort(); /* we never write other \u escapes */
        i += 6;
    }
    if (n != size || (size && memcmp(back, data, size)))
        abort();
    free(back);
    free(out);
    return 0;
}
