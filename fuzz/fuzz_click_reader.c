/*
 * fuzz_click_reader — the clicks decoder of the clicks-to-events and counts
 * jobs (click_reader_decode): Confluent-framed Avro records from the clicks
 * topic, which any producer can write, read through avro-c's resolver
 * against a writer schema from the registry (a `_schemas` record away from
 * outside input too). Byte 0 even: the datum (rest of the input) under the
 * clicklog job's own writer schema. Odd: the first line of the rest is the
 * writer schema, what follows it the datum. Every decode answers CLICK_OK
 * with ts, userid and event (never NULL) or CLICK_EBAD with a reason; the
 * registry is never consulted (the schema is cached), so never
 * CLICK_EUNAVAILABLE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/click_reader/click_reader.h"
#include "jobs/clicklog/clicklog_avro.h"

static void decode(click_reader_t *cr, int32_t id, const uint8_t *datum, size_t n)
{
    uint8_t *msg = malloc(n + 5); /* exact size: ASan sees overreads */
    msg[0] = 0;
    msg[1] = (uint8_t)(id >> 24);
    msg[2] = (uint8_t)(id >> 16);
    msg[3] = (uint8_t)(id >> 8);
    msg[4] = (uint8_t)id;
    memcpy(msg + 5, datum, n);
    click_t c;
    char reason[256] = "";
    int rc = click_reader_decode(cr, msg, n + 5, &c, reason, sizeof reason);
    if (rc == CLICK_OK) {
        if (!c.userid || !c.event)
            abort();
    } else if (rc != CLICK_EBAD || !reason[0]) {
        abort();
    }
    free(msg);
}

static click_reader_t *std;

static void std_free(void)
{
    click_reader_free(std);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    if (!std) {
        std = click_reader_new("http://127.0.0.1:1"); /* never reached: ids are cached */
        click_reader__put_schema(std, 1, CLICKLOG_AVRO_SCHEMA);
        atexit(std_free); /* runs before the leak check: what is left is a real leak */
    }
    if (data[0] % 2 == 0) {
        decode(std, 1, data + 1, size - 1);
        return 0;
    }
    const uint8_t *p = data + 1, *nl = memchr(p, '\n', size - 1);
    size_t sl = nl ? (size_t)(nl - p) : size - 1;
    char *schema = malloc(sl + 1);
    memcpy(schema, p, sl);
    schema[sl] = 0;
    click_reader_t *cr = click_reader_new("http://127.0.0.1:1");
    click_reader__put_schema(cr, 7, schema);
    size_t dn = nl ? size - 1 - sl - 1 : 0;
    decode(cr, 7, nl ? nl + 1 : p, dn);
    click_reader_free(cr);
    free(schema);
    return 0;
}
