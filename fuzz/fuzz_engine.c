/*
 * fuzz_engine — engine.json (als_engine_parse): written by users and carried
 * as text in schedule definitions (PUT /v1/schedules, rt_sched) to `eddy
 * train`. Any bytes are accepted or refused with CORE_ERR_INVAL and a
 * message; an accepted engine is one training can start from: parameters
 * that pass als_params_check, 1..ALS_ENGINE_MAX_EVENTS distinct non-empty
 * event names with finite weights, a non-empty id without '/', holdout in
 * [0, 1) and queryNum in 1..1000.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_err.h"
#include "ml/als_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ALS_ENGINE_MAX_FILE)
        return 0;
    char *text = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    memcpy(text, data, size);
    als_engine_t e;
    char err[512] = "";
    int rc = als_engine_parse(text, size, &e, err, sizeof err);
    if (rc != 0) {
        if (rc != CORE_ERR_INVAL || !err[0])
            abort(); /* a refusal says why */
    } else {
        if (als_params_check(&e.params, err, sizeof err) != 0)
            abort();
        if (!e.id[0] || strchr(e.id, '/') || e.nevents < 1 || e.nevents > ALS_ENGINE_MAX_EVENTS)
            abort();
        for (int i = 0; i < e.nevents; i++) {
            if (!e.events[i].name[0] || (!e.events[i].use_rating && !isfinite(e.events[i].weight)))
                abort();
            for (int j = 0; j < i; j++)
                if (!strcmp(e.events[i].name, e.events[j].name))
                    abort(); /* one weight per event */
        }
        if (!(e.holdout >= 0 && e.holdout < 1) || e.query_num < 1 || e.query_num > 1000)
            abort();
    }
    free(text);
    return 0;
}
