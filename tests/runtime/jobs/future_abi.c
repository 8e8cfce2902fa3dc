/* Test job exporting only a future descriptor symbol (eddy_job_v2). */
#include "eddy/job.h"

static int future_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    return 0;
}

__attribute__((visibility("default"))) const eddy_job_desc_t eddy_job_v2 = {
    .abi_version = 2,
    .name = "future-abi",
    .process = future_process,
};
