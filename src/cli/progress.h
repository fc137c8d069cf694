/* A progress bar on stderr, drawn only when stderr is a terminal and not
 * --quiet. */
#ifndef SGDSTAB_CLI_PROGRESS_H
#define SGDSTAB_CLI_PROGRESS_H

#include <stddef.h>

typedef struct {
    const char *label;
    int enabled, shown;
    double start, drawn;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *label, int quiet);
/* An sgdstab_progress_fn (phase.h) with ctx = the cli_progress; never asks
 * to stop (Ctrl-C ends the process, main.c removes partial outputs). */
int cli_progress_update(void *ctx, size_t done, size_t total);
/* Erase the bar. */
void cli_progress_finish(cli_progress *p);

#endif
