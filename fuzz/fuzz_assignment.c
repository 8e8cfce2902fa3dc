/*
 * fuzz_assignment — the consumer-protocol Assignment bytes a group leader
 * sends in SyncGroup, which the coordinator keeps and decodes to answer who
 * owns a partition (broker_cg__assignment_has, behind the lag endpoint).
 * Input: byte 0 = topic length (0..15), the topic, 4 bytes of partition,
 * then the assignment. Checks:
 *   - a match is really in the bytes: the topic and the big-endian partition
 *     both occur in the assignment;
 *   - a well-formed assignment we build that lists (topic, partition), with
 *     the fuzzer's bytes as user_data, always matches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_cg.h"
#include "core/core_buf.h"

static bool contains(const uint8_t *h, size_t hn, const void *n, size_t nn)
{
    if (nn == 0)
        return true;
    for (size_t i = 0; i + nn <= hn; i++)
        if (!memcmp(h + i, n, nn))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    size_t raw = data[0] % 16;
    if (raw > size - 5)
        raw = size - 5;
    char topic[16];
    memcpy(topic, data + 1, raw);
    topic[raw] = 0;
    size_t tl = strlen(topic); /* a topic name is a C string here */
    const uint8_t *pp = data + 1 + raw;
    int32_t partition = (int32_t)core_be32(pp);
    size_t n = size - (size_t)(pp + 4 - data);
    uint8_t *a = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    memcpy(a, pp + 4, n);

    if (broker_cg__assignment_has(a, n, topic, partition) &&
        (!contains(a, n, topic, tl) || !contains(a, n, pp, 4)))
        abort(); /* matched something that is not there */

    core_buf_t b;
    core_buf_init(&b);
    core_wr_i16(&b, 1);
    core_wr_i32(&b, 2);
    core_wr_str(&b, "other", 5);
    core_wr_i32(&b, 1);
    core_wr_i32(&b, partition);
    core_wr_str(&b, topic, (int64_t)tl);
    core_wr_i32(&b, 2);
    core_wr_i32(&b, partition ^ 1);
    core_wr_i32(&b, partition);
    core_wr_bytes(&b, a, (int64_t)n);
    if (!broker_cg__assignment_has(b.data, b.len, topic, partition))
        abort();
    core_buf_fini(&b);
    free(a);
    return 0;
}
