/* click_reader: decoding framed Avro clicks (schemas injected with the test
 * hook, no registry). The datum walk refuses what avro-c would allocate or
 * leak on before avro-c sees it (found by fuzz_click_reader). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/click_reader/click_reader.h"
#include "jobs/clicklog/clicklog_avro.h"

/* magic, id 1, then date "d", time "t", ts 5 (zigzag 10), userid "u",
 * event "view", subevent null, item "i9", rating 4 (zigzag 8), attrs {} */
static const uint8_t CLICK[] = {0, 0, 0, 0, 1, 2, 'd', 2, 't', 10, 2, 'u', 8, 'v', 'i', 'e', 'w',
                                0, 2, 4, 'i', '9', 2, 8, 0};

static click_reader_t *reader(void)
{
    click_reader_t *cr = click_reader_new("http://127.0.0.1:1"); /* never asked */
    assert_non_null(cr);
    click_reader__put_schema(cr, 1, CLICKLOG_AVRO_SCHEMA);
    return cr;
}

static void test_click_decodes(void **state)
{
    (void)state;
    click_reader_t *cr = reader();
    click_t c;
    char why[256];
    assert_int_equal(click_reader_decode(cr, CLICK, sizeof CLICK, &c, why, sizeof why), CLICK_OK);
    assert_int_equal(c.ts, 5);
    assert_string_equal(c.userid, "u");
    assert_string_equal(c.event, "view");
    assert_string_equal(c.item, "i9");
    assert_true(c.has_rating);
    assert_int_equal(c.rating, 4);
    click_reader_free(cr);
}

static void test_hostile_datums_never_reach_avro_c(void **state)
{
    (void)state;
    click_reader_t *cr = reader();
    click_t c;
    char why[256];
    /* date declares 2^40 bytes: avro-c would allocate that much first */
    const uint8_t huge[] = {0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 'x'};
    assert_int_equal(click_reader_decode(cr, huge, sizeof huge, &c, why, sizeof why), CLICK_EBAD);
    assert_non_null(strstr(why, "schema id 1: truncated, malformed or trailing bytes"));
    /* every truncation of a good click, and a trailing byte */
    for (size_t cut = 6; cut < sizeof CLICK; cut++) {
        why[0] = 0;
        assert_int_equal(click_reader_decode(cr, CLICK, cut, &c, why, sizeof why), CLICK_EBAD);
        assert_non_null(strstr(why, "schema id 1: truncated, malformed or trailing bytes"));
    }
    uint8_t longer[sizeof CLICK + 1];
    memcpy(longer, CLICK, sizeof CLICK);
    longer[sizeof CLICK] = 0;
    assert_int_equal(click_reader_decode(cr, longer, sizeof longer, &c, why, sizeof why),
                     CLICK_EBAD);
    /* and the reader still decodes good clicks afterwards */
    assert_int_equal(click_reader_decode(cr, CLICK, sizeof CLICK, &c, why, sizeof why), CLICK_OK);
    click_reader_free(cr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_click_decodes),
        cmocka_unit_test(test_hostile_datums_never_reach_avro_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
