/* Fuzzes what a PUT /v1/schedules/NAME body goes through before anything is
 * stored or run: the driver's schedule validation (JSON, the command
 * allow-list, train's allowed flags, every_ms/cron, files) and the cron
 * parser on the same bytes as an expression. Any input is accepted or
 * refused with a message; an accepted cron gives a next time or -1. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_cron.h"
#include "runtime/rt_sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char es[512];
    char *p = malloc(size + 1);
    memcpy(p, data, size);
    p[size] = 0;
    if (rt_sched__def_check(p, size, es, sizeof es) != 0 && !es[0])
        abort(); /* a refusal always says why */
    core_cron_t c;
    if (core_cron_parse(p, &c, es, sizeof es) == 0) {
        int64_t t = core_cron_next(&c, 1764087750000LL);
        if (t != -1 && t <= 1764087750000LL)
            abort(); /* strictly after */
    }
    free(p);
    return 0;
}
