/* The one clock of the command line: for timings and progress. */
#ifndef SGDSTAB_CLI_CLOCK_H
#define SGDSTAB_CLI_CLOCK_H

#include <time.h>

/* Seconds on the monotonic clock (from an arbitrary origin). */
static inline double cli_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
