/* Pictures drawn by gnuplot: running it, and the frame, legend and log
 * tics the pictures share. */
#ifndef SGDSTAB_CLI_PLOT_H
#define SGDSTAB_CLI_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "sgdstab/outfile.h"

/* The width in pixels of a character of the pictures' font (an estimate,
 * for laying out legends and labels). */
#define CLI_PLOT_CHAR_W 7.3

/* 0 for F.png, 1 for F.svg, −1 otherwise. */
int cli_plot_format(const char *path);
/* Kill and reap the gnuplot process running, if any (async-signal-safe:
 * for the signal handler, before temporary files are removed, so that
 * gnuplot cannot create one again after). */
void cli_plot_stop(void);

/* Usage error (returned) unless gnuplot is on PATH. */
int cli_plot_check(const char *cmd);
/* Draw path's picture (width × height pixels, PNG or SVG by its name) into
 * the temporary file of `of`, which is not committed: script(f, ctx) writes
 * the gnuplot commands after the terminal and the output are set.  Errors
 * (gnuplot missing, failing or complaining) are printed naming cmd and path
 * and return EXIT_DATA. */
int cli_gnuplot(const char *cmd, const char *path, sgdstab_outfile *of,
                int width, int height, void (*script)(FILE *f, void *ctx),
                void *ctx);

/* --plot-size W,H (640 <= W <= 4000, 480 <= H <= 4000); usage error. */
int cli_parse_plot_size(const char *cmd, const char *text, int *w, int *h);

/* Where the legend goes: below the plot (under the x axis's label), in a
 * corner inside the plot, or nowhere. */
typedef enum {
    CLI_LEGEND_BELOW, CLI_LEGEND_TOP_LEFT, CLI_LEGEND_TOP_RIGHT,
    CLI_LEGEND_BOTTOM_LEFT, CLI_LEGEND_BOTTOM_RIGHT, CLI_LEGEND_NONE
} cli_legend;
/* --legend below|top-left|top-right|bottom-left|bottom-right|none. */
int cli_parse_legend(const char *cmd, const char *text, cli_legend *out);
/* --title: no control characters, at most 400 bytes; usage error. */
int cli_check_title(const char *cmd, const char *text);

/* The frame of a picture: its title (wrapped to the width), the right
 * margin and the legend's place, with the bottom margin reserved for a
 * legend below the plot.  Returns the plot area's height in pixels (an
 * estimate, for spacing labels). */
typedef struct {
    int width, height;          /* pixels */
    const char *title;
    cli_legend legend;
    size_t entries;             /* legend entries */
    size_t label_chars;         /* the longest legend label, characters */
    double right_chars;         /* right margin, characters */
} cli_frame;
double cli_plot_frame(FILE *f, const cli_frame *fr);
/* Tics of a log axis ("x", "y", ...) from lo to hi: at least four
 * labelled ones (1, 1-2-5, 1-2-3-5-7 or 1..9 per decade, or evenly
 * spaced on a short axis) and unlabelled minor ones at 1..9 per decade. */
void cli_plot_log_tics(FILE *f, const char *axis, double lo, double hi);

#endif
