/* A progress bar on stderr for long computations. */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "clock.h"
#include "progress.h"

void cli_progress_init(cli_progress *p, const char *label, int quiet)
{
    p->label = label;
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->start = cli_seconds();
    p->drawn = -1;
    p->shown = 0;
}

int cli_progress_update(void *ctx, size_t done, size_t total)
{
    cli_progress *p = ctx;
    if (!p->enabled || total == 0)
        return 0;
    double now = cli_seconds(), elapsed = now - p->start;
    /* Redraw at most ten times a second, and at the end. */
    if (done < total && p->drawn >= 0 && now - p->drawn < 0.1)
        return 0;
    p->drawn = now;
    enum { WIDTH = 30 };
    int filled = (int)((double)WIDTH * (double)done / (double)total);
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %zu/%zu  %.0f s", p->label, bar, done, total,
            elapsed);
    if (done > 0 && done < total)
        fprintf(stderr, ", about %.0f s left ",
                elapsed * (double)(total - done) / (double)done);
    else
        fprintf(stderr, "%20s", "");
    fflush(stderr);
    p->shown = 1;
    return 0;
}

void cli_progress_finish(cli_progress *p)
{
    if (p->enabled && p->shown) {
        fprintf(stderr, "\r%*s\r", 100, "");
        fflush(stderr);
    }
}
