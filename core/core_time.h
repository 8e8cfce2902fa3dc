/*
 * core_time — clocks. Timeouts and durations use the monotonic clock; record
 * timestamps and log lines use the wall clock (milliseconds since the epoch).
 */
#ifndef EDDY_CORE_TIME_H
#define EDDY_CORE_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t core_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static inline int64_t core_mono_ms(void)
{
    return core_mono_us() / 1000;
}
static inline int64_t core_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
