/* Phase diagrams' outputs: the grid and boundary tables and the picture
 * drawn by gnuplot, and the options that style them. */
#ifndef SGDSTAB_CLI_PHASE_OUTPUT_H
#define SGDSTAB_CLI_PHASE_OUTPUT_H

#include <stddef.h>

#include "plot.h"
#include "sgdstab/config.h"
#include "sgdstab/outfile.h"
#include "sgdstab/phase.h"
#include "sgdstab/theory.h"

/* η*(B) as reported: 0 where no learning rate is stable. */
double cli_phase_boundary_lr(const sgdstab_phase_boundary *b);

/* Do the sorted batch sizes grow geometrically (a log axis suits them)? */
int cli_log_spaced_sizes(const size_t *b, size_t m);

/* The curves of a phase diagram (--curves), as bits. */
enum {
    CLI_CURVE_EXACT = 1, CLI_CURVE_MEAN = 2, CLI_CURVE_WU_MA_E = 4,
    CLI_CURVE_WU_WANG_SU = 8, CLI_CURVE_MM_TOP = 16, CLI_CURVE_MM_TRACE = 32,
    CLI_CURVE_LYAPUNOV = 64, CLI_CURVES_ALL = 127,
    CLI_CURVES_THEORY = CLI_CURVE_WU_MA_E | CLI_CURVE_WU_WANG_SU |
                        CLI_CURVE_MM_TOP | CLI_CURVE_MM_TRACE
};
/* What the heat map's colour shows (--color). */
typedef enum { CLI_COLOR_RATE, CLI_COLOR_RELATIVE } cli_color;

/* The picture's settings, as the options give them. */
typedef struct {
    const char *title;
    cli_legend legend;
    unsigned curves;            /* CLI_CURVE_* bits */
    cli_color color;
    double color_range[2];      /* NaN: from the data */
} cli_phase_style;

/* cli_phase_style defaults: every curve, rate colours, legend below. */
void cli_phase_style_init(cli_phase_style *s);
/* --curves LIST (comma-separated exact mean wu-ma-e wu-wang-su mm-top
 * mm-trace lyapunov, or all / none), --color rate|relative and --color-range LO:HI
 * (checked against the colour: LO < 0 < HI for rate, 0 < LO < 1 < HI for
 * relative); usage errors naming the option (silent with cmd NULL). */
int cli_parse_curves(const char *cmd, const char *text, unsigned *out);
int cli_parse_color(const char *cmd, const char *text, cli_color *out);
int cli_parse_color_range(const char *cmd, const char *text, cli_color color,
                          double range[2]);
/* The default title: "NAME: n = .., p = .., sampling S, loss L". */
void cli_phase_title(char *buf, size_t size, const char *name, size_t n,
                     size_t p, sgdstab_sampling sampling, const char *loss);

typedef struct {
    cli_phase_style style;
    int width, height;          /* pixels */
    int log_batch, log_lr;      /* logarithmic axes */
    int momentum_axis;          /* the rows are momenta, not batch sizes */
    int lifted;                 /* an optimizer with a buffer: the mean
                                   curve is its noise-free limit */
    sgdstab_sampling sampling;
    size_t n;                   /* samples (for the theory curves' b) */
    const sgdstab_theory *theory;  /* NULL: no theory curves */
    int lyapunov;               /* the Monte Carlo λ₁ was computed */
} cli_plot_options;

/* A row's crossing in words: inside, below, above or unknown. */
const char *cli_lyapunov_crossing(const sgdstab_phase_boundary *b);

/* The output files of a phase diagram, any of them NULL: the grid CSV
 * (batch,lr,spectral_radius,escape_rate_per_step,escape_rate_per_epoch,
 * stable, and with the Monte Carlo lyapunov_exponent,lyapunov_stderr), the
 * boundary CSV (batch,lr_critical,lr_critical_mean and the theory's limits,
 * and lr_lyapunov,lyapunov_crossing; the first column is momentum when the
 * rows are) and the picture, a heat map of the escape rate per step with
 * the exact boundary, the mean limit, the theory curves and the Monte
 * Carlo boundary.  Opened
 * before the work (so that a bad path fails at once), then written and
 * installed together (an outfile group, which joins the caller's if there
 * is one): all of them or none. */
typedef struct {
    sgdstab_outfile *grid, *boundary, *plot;
    const char *plot_path;
    int grouped;                /* a group was begun for these files */
} cli_phase_files;

int cli_phase_files_open(const char *cmd, const char *grid,
                         const char *boundary, const char *plot,
                         cli_phase_files *pf);
int cli_phase_files_write(const char *cmd, cli_phase_files *pf,
                          const cli_plot_options *o,
                          const sgdstab_phase_boundary *bd, size_t nb,
                          const sgdstab_phase_point *grid, const double *lrs,
                          size_t nl);
void cli_phase_files_abort(cli_phase_files *pf);

#endif
