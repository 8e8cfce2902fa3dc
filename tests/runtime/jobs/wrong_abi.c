/* Test job built "against another ABI": its descriptor claims a version this
 * eddy does not support. Submitting it must be refused with a message. */
#include "eddy/job.h"

static int wrong_process(eddy_ctx_t *ctx, const eddy_record_t *recs, size_t n)
{
    return 0;
}

__attribute__((visibility("default"))) const eddy_job_desc_t eddy_job_v1 = {
    .abi_version = EDDY_JOB_ABI_VERSION + 1,
    .name = "wrong-abi",
    .process = wrong_process,
};
