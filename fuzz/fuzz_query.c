/* Fuzzes the ML query server's body decoder (POST /queries.json): every
 * input is parsed twice, by als_query_parse (the plain-query scanner, with
 * jansson behind it) and by the jansson parser alone, and the two must agree
 * on acceptance, on every field, and on the error message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml/als_query.h"

static void same_or_abort(const als_query_t *a, const als_query_t *b)
{
    if (a->kind != b->kind || a->num != b->num || !a->user != !b->user ||
        (a->user && strcmp(a->user, b->user) != 0))
        abort();
    if (!a->items != !b->items || !a->categories != !b->categories ||
        !a->cat_black != !b->cat_black || !a->white != !b->white || !a->black != !b->black)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ea[256] = "", eb[256] = "";
    als_query_t a, b;
    const int ra = als_query_parse((const char *)data, size, &a, ea, sizeof ea);
    const int rb = als_query_parse_tree((const char *)data, size, &b, eb, sizeof eb);
    if (ra != rb)
        abort();
    if (ra == 0) {
        same_or_abort(&a, &b);
        als_query_fini(&a);
        als_query_fini(&b);
    } else if (!ea[0] || strcmp(ea, eb) != 0) {
        abort(); /* a refusal says why, the same way whichever parser saw it */
    }
    return 0;
}
