/*
 * avro_wire_check — an independent (avro-c only, no Eddy code) reader and
 * writer of Confluent-framed Avro, for it_avro_wire.py.
 *
 *   avro_wire_check decode SCHEMA_FILE ID   stdin: one framed message per line
 *       in hex; checks the header is exactly 00 + ID (big-endian) and the
 *       datum decodes to the end; prints avro-c's JSON of each, one per line.
 *   avro_wire_check encode SCHEMA_FILE ID   prints (hex) two framed messages
 *       of the test schema W, built with avro-c's value API.
 * Exit status 1 with a message on the first mismatch.
 */
#include <avro.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static avro_schema_t load_schema(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    avro_schema_t s;
    if (avro_schema_from_json_length(buf, n, &s)) {
        fprintf(stderr, "schema: %s\n", avro_strerror());
        exit(1);
    }
    return s;
}

static int decode(avro_schema_t schema, uint32_t id)
{
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    char line[1 << 16];
    static uint8_t msg[1 << 15];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned x;
            sscanf(p, "%2x", &x);
            msg[n++] = (uint8_t)x;
        }
        if (n < 5 || msg[0] != 0 ||
            ((uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 | msg[4]) != id) {
            fprintf(stderr, "bad header: %zu bytes, %02x %02x%02x%02x%02x, want 00 + id %u\n", n,
                    msg[0], msg[1], msg[2], msg[3], msg[4], id);
            return 1;
        }
        avro_reader_t r = avro_reader_memory((const char *)msg + 5, (int64_t)(n - 5));
        avro_value_reset(&v);
        if (avro_value_read(r, &v)) {
            fprintf(stderr, "datum does not decode: %s\n", avro_strerror());
            return 1;
        }
        /* the datum must end exactly where the message does */
        char extra;
        if (avro_read(r, &extra, 1) == 0) {
            fprintf(stderr, "trailing bytes after the datum\n");
            return 1;
        }
        avro_reader_free(r);
        char *json;
        avro_value_to_json(&v, 1, &json);
        printf("%s\n", json);
        free(json);
    }
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    return 0;
}

static void set_str(avro_value_t *rec, const char *f, const char *s)
{
    avro_value_t x;
    avro_value_get_by_name(rec, f, &x, NULL);
    avro_value_set_string(&x, s);
}

static int encode(avro_schema_t schema, uint32_t id)
{
    avro_value_iface_t *iface = avro_generic_class_from_schema(schema);
    avro_value_t v, x, y;
    avro_generic_value_new(iface, &v);
    for (int k = 0; k < 2; k++) {
        avro_value_reset(&v);
        set_str(&v, "s", k ? "zwei ü" : "eins");
        avro_value_get_by_name(&v, "i", &x, NULL);
        avro_value_set_int(&x, k ? -7 : 42);
        avro_value_get_by_name(&v, "l", &x, NULL);
        avro_value_set_long(&x, k ? 1461801600000LL : -1);
        avro_value_get_by_name(&v, "d", &x, NULL);
        avro_value_set_double(&x, k ? 0.25 : 3.5);
        avro_value_get_by_name(&v, "b", &x, NULL);
        avro_value_set_boolean(&x, k);
        avro_value_get_by_name(&v, "u", &x, NULL);
        avro_value_set_branch(&x, k ? 1 : 0, &y);
        if (k)
            avro_value_set_string(&y, "some");
        else
            avro_value_set_null(&y);
        avro_value_get_by_name(&v, "e", &x, NULL);
        avro_value_set_enum(&x, k);
        avro_value_get_by_name(&v, "a", &x, NULL);
        for (int i = 0; i < 3 * k; i++) {
            avro_value_append(&x, &y, NULL);
            avro_value_set_int(&y, i * 100);
        }
        avro_value_get_by_name(&v, "m", &x, NULL);
        if (k) {
            avro_value_add(&x, "k1", &y, NULL, NULL);
            avro_value_set_long(&y, 1);
        }
        char buf[4096];
        buf[0] = 0;
        buf[1] = (char)(id >> 24), buf[2] = (char)(id >> 16), buf[3] = (char)(id >> 8), buf[4] = (char)id;
        avro_writer_t w = avro_writer_memory(buf + 5, sizeof buf - 5);
        if (avro_value_write(w, &v)) {
            fprintf(stderr, "write: %s\n", avro_strerror());
            return 1;
        }
        int64_t n = avro_writer_tell(w) + 5;
        avro_writer_free(w);
        for (int64_t i = 0; i < n; i++)
            printf("%02x", (uint8_t)buf[i]);
        printf("\n");
    }
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: avro_wire_check decode|encode SCHEMA_FILE ID\n");
        return 2;
    }
    avro_schema_t s = load_schema(argv[2]);
    uint32_t id = (uint32_t)strtoul(argv[3], NULL, 10);
    int rc = !strcmp(argv[1], "decode") ? decode(s, id) : encode(s, id);
    avro_schema_decref(s);
    return rc;
}
