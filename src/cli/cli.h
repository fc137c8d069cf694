/* Internal interface of the sgdstab command-line tool: one file per
 * subcommand, sharing option parsing, problem loading and output helpers. */
#ifndef SGDSTAB_CLI_H
#define SGDSTAB_CLI_H

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "sgdstab/config.h"
#include "sgdstab/moments.h"
#include "sgdstab/outfile.h"
#include "sgdstab/phase.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

/* Exit statuses of every subcommand. */
enum { EXIT_OK = 0, EXIT_DATA = 1, EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;  /* one line for `sgdstab --help` */
    int (*run)(int argc, char **argv);
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_critical(int argc, char **argv);
int cmd_evolve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_phase(int argc, char **argv);
int cmd_simulate(int argc, char **argv);

/* ---- options.c: options shared by the subcommands */

enum {
    OPT_LR = 256, OPT_BATCH, OPT_SAMPLING, OPT_LOSS, OPT_HESSIAN, OPT_RANK_TOL,
    OPT_NEGATIVE_CURVATURE, OPT_MAX_MEMORY, OPT_JSON, OPT_CSV,
    OPT_FIRST_PRIVATE  /* subcommands number theirs from here */
};

#define CLI_OPT(name, has_arg, id) {name, has_arg, NULL, id}
#define CLI_OPT_LR CLI_OPT("lr", required_argument, OPT_LR)
#define CLI_OPT_BATCH CLI_OPT("batch", required_argument, OPT_BATCH)
#define CLI_OPT_SAMPLING CLI_OPT("sampling", required_argument, OPT_SAMPLING)
#define CLI_OPT_LOSS CLI_OPT("loss", required_argument, OPT_LOSS)
#define CLI_OPT_HESSIAN CLI_OPT("hessian", required_argument, OPT_HESSIAN)
#define CLI_OPT_RANK_TOL CLI_OPT("rank-tol", required_argument, OPT_RANK_TOL)
#define CLI_OPT_NEGATIVE_CURVATURE \
    CLI_OPT("negative-curvature", required_argument, OPT_NEGATIVE_CURVATURE)
#define CLI_OPT_MAX_MEMORY \
    CLI_OPT("max-memory", required_argument, OPT_MAX_MEMORY)
#define CLI_OPT_JSON CLI_OPT("json", no_argument, OPT_JSON)
#define CLI_OPT_CSV CLI_OPT("csv", required_argument, OPT_CSV)
#define CLI_OPT_HELP CLI_OPT("help", no_argument, 'h')
#define CLI_OPT_END {NULL, 0, NULL, 0}

/* Help text shared by the subcommands that take these options. */
#define CLI_HELP_PROBLEM_OPTIONS \
    "  --hessian H.npy   the Hessian (p, p) at the minimum, if not in FILE;\n" \
    "                    H - G then acts as a deterministic part of every\n" \
    "                    minibatch Hessian (default: H = G)\n" \
    "  --loss L          loss convention: half-mean (default; L = (1/2n) sum\n" \
    "                    |f - y|^2), mse (PyTorch MSELoss: mean over n*k\n" \
    "                    entries, no 1/2; scale 2/k) or a positive number c\n" \
    "                    scaling every A_i = J_i^T J_i (and H) by c; without\n" \
    "                    --loss, the \"loss\" of FILE's meta.json if it has one\n" \
    "  --rank-tol RTOL   relative rank tolerance of J (see 'sgdstab info')\n" \
    "  --negative-curvature TOL\n" \
    "                    with H: negative eigenvalues down to -TOL*lambda_max(H)\n" \
    "                    are flat, their sign below what H resolves (the\n" \
    "                    level of the training residual and of rounding):\n" \
    "                    not 'not a minimum'; on directions J moves they are\n" \
    "                    analyzed with curvature |h|, else left out\n" \
    "                    (default 1e-6: at any eta <= 2/lambda_max such a\n" \
    "                    direction needs >= 500000 steps to matter; at most\n" \
    "                    0.01); strict (= 0): every negative eigenvalue makes\n" \
    "                    H no minimum\n" \
    "  --max-memory SIZE the memory loading and factorizing FILE may take\n" \
    "                    (e.g. 8G, 512M; default: what the system has\n" \
    "                    available, or SGDSTAB_MAX_MEMORY); a larger problem\n" \
    "                    is refused before it is read\n"
#define CLI_HELP_SAMPLING \
    "  --sampling S      how batches are drawn: without (default; B distinct\n" \
    "                    samples), with (B i.i.d. draws) or bernoulli (each\n" \
    "                    sample kept with probability B/n, sum divided by B)\n"

typedef struct {
    const char *cmd;        /* subcommand name, for messages */
    const char *file;
    const char *hessian;
    const char *batch;      /* raw text; each subcommand parses its form */
    const char *loss;       /* the loss convention as text outputs name it:
                               --loss as given, "half-mean" by default, or
                               "L from the file's metadata" (in loss_text) */
    const char *csv;
    double lr;
    int have_lr;
    int have_loss;          /* --loss was given */
    const char *loss_name;  /* the convention for sgdstab_loss_scale */
    char loss_text[64];
    double rank_rtol;
    double flat_rtol;       /* --negative-curvature (reduce.h) */
    double max_memory;      /* --max-memory in bytes; 0: the default */
    sgdstab_sampling sampling;
    int json;
} cli_args;

void cli_args_init(cli_args *a, const char *cmd);

/* Handle a common option or an operand (getopt's 1); 0 when handled,
 * EXIT_USAGE (after printing the error) otherwise. */
int cli_common_option(cli_args *a, int c, const char *arg);

/* getopt_long wrapper that reports unknown options and missing values as
 * one line naming the subcommand, and returns '?' then; operands come back
 * as 1 (in optarg) and -h as 'h'. */
int cli_getopt(int argc, char **argv, const char *cmd,
               const struct option *longopts);
/* The same with short options beyond -h, in getopt's syntax (e.g. "o:"). */
int cli_getopt_short(int argc, char **argv, const char *cmd,
                     const char *shortopts, const struct option *longopts);

/* Report a usage error in one line and return EXIT_USAGE (silently when cmd
 * is NULL: callers that word the message themselves pass NULL down to the
 * parsers below). */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Untrusted text (an argument, a file name, a spec's string) made safe to
 * quote in a one-line message: control bytes become \n, \t, \r or \xHH,
 * and so do DEL, bytes of invalid UTF-8, C1 controls and the line
 * separators and bidi overrides; text that does not fit in size bytes ends
 * in "...".  Returns buf, e.g. for a "%s" (CLI_QUOTE_SIZE suits a message). */
#define CLI_QUOTE_SIZE 256
const char *cli_quote(const char *s, char *buf, size_t size);

/* Strict number parsing for option values: the whole text must be a finite
 * number that is 0 or at least DBL_MIN in magnitude (or a whole number ≥
 * min); on failure a usage error naming the
 * option is printed and −1 returned. */
int cli_parse_double(const char *cmd, const char *opt, const char *text,
                     double *out);
int cli_parse_size(const char *cmd, const char *opt, const char *text,
                   size_t min, size_t *out);

/* --batch for many sizes: "1,2,4", "all" (1..n), "A:B" (every integer),
 * "A:B:log" (A, 2A, 4A, ..., B) or "A:B:N:log" (N log-spaced, rounded),
 * where each size may be "n" for the number of samples; sorted, without
 * duplicates.  *list is malloc'd. */
int cli_parse_batches(const char *cmd, const char *text, size_t n,
                      size_t **list, size_t *count);

/* --lr for many learning rates: "A:B:N" (N evenly spaced, ends included),
 * "A:B:N:log" (N log-spaced), "A:B" and "A:B:log" (N = CLI_LR_STEPS), or a
 * list "0.1,0.5,2"; 0 < A < B.  Sorted, without duplicates; *log_spaced
 * tells whether a log range was asked for.  *list is malloc'd. */
#define CLI_LR_STEPS 40
int cli_parse_lrs(const char *cmd, const char *text, double **list,
                  size_t *count, int *log_spaced);

/* Usage errors unless FILE, --lr, --batch were given. */
int cli_require(const cli_args *a, int need_lr, int need_batch);

/* ---- common.c: loading and the analysis pipeline */

/* Load FILE (and --hessian) and factorize; prints the error and returns
 * EXIT_DATA on failure.  Without --loss, the "loss" of FILE's metadata (if
 * any) sets a->loss and a->loss_name.  At a minimum the metadata calls not
 * interpolating, a note says so on stderr (cli_note_interpolation). */
int cli_load(cli_args *a, sgdstab_problem **prob, sgdstab_reduced **red);

/* Print err as one line naming file (and saying "out of memory" when that
 * is the cause); returns EXIT_DATA, or exits at once on SGDSTAB_ENOMEM. */
int cli_report_file(const char *file, const sgdstab_error *err);

/* The configuration the options give (--lr if given, --sampling, the loss
 * scale of the convention for red's k; batch 0), or EXIT_DATA after an
 * error line. */
int cli_config(const cli_args *a, const sgdstab_reduced *red,
               sgdstab_config *cfg);

/* sgdstab_config_check for what the subcommand uses (config.h): EXIT_OK,
 * a usage error (EXIT_USAGE), or for a value out of range for this
 * problem's curvature a data error naming FILE (EXIT_DATA). */
int cli_config_check(const cli_args *a, const sgdstab_reduced *red,
                     const sgdstab_config *cfg, unsigned uses);

/* The stability workspace for a reduced problem. */
int cli_stability(const cli_args *a, const sgdstab_reduced *red,
                  sgdstab_stability **s);

/* What most subcommands work on: the loaded problem, its reduced
 * coordinates, the configuration of the options and the stability
 * workspace. */
typedef struct {
    sgdstab_problem *prob;
    sgdstab_reduced *red;
    sgdstab_config cfg;
    sgdstab_stability *stab;
} cli_session;

/* cli_load, cli_config with the batch size given (0: none yet),
 * cli_config_check for `uses`, then cli_stability; on failure the error is
 * printed, everything released and the status returned. */
int cli_session_open(cli_args *a, size_t batch, unsigned uses,
                     cli_session *ses);
void cli_session_close(cli_session *ses);

/* Negative curvature of H taken as flat (reduce.h): a text line after
 * label (nothing when there is none) and the JSON keys
 * negative_curvature_tolerance, flat_negative_count, flat_negative_min (in
 * the loss convention c), flat_moved_count (those on directions J moves,
 * analyzed with curvature |h|) and, for lr > 0, flat_negative_steps: about
 * 1/(c·lr·|λmin|), the steps in which the most negative of them would grow
 * the RMS distance by a factor e (∞: none). */
void cli_print_flat(const char *label, const sgdstab_reduced *red, double c,
                    double lr);
void cli_json_flat(cJSON *obj, const sgdstab_reduced *red, double c,
                   double lr);

/* S_0 from --init: a (p, p) symmetric positive semidefinite matrix
 * (λmin ≥ −1e-10·λmax); *S is malloc'd.  Errors name the file. */
int cli_load_init(const char *path, size_t p, double **S);

/* The exact E‖δ_t‖² (m2) and E L_t (loss) for t = 0..steps from
 * S_0 (NULL: I/p) at cfg, as `evolve` reports them: with the directions
 * that never move, in cfg's loss convention. */
int cli_exact_evolve(const cli_session *ses, const sgdstab_config *cfg,
                     size_t steps, const double *S0, double *m2,
                     double *loss);

/* ---- output.c */

/* One error line "sgdstab CMD: FILE: message", the file and the formatted
 * message escaped (cli_quote): keys and values of a spec are untrusted. */
void cli_error_line(const char *cmd, const char *file, const char *fmt,
                    va_list ap);

/* Print a library error (one line) and return EXIT_DATA. */
int cli_report(const sgdstab_error *err);

/* JSON numbers carry 17 significant digits (non-finite ones become null). */
void cli_json_number(cJSON *obj, const char *key, double value);
cJSON *cli_json_value(double value);  /* the same, as an item */
void cli_json_size(cJSON *obj, const char *key, size_t value);

/* Print obj to stdout and free it; returns EXIT_OK or EXIT_DATA. */
int cli_json_print(cJSON *obj);

/* The JSON keys loss (half-mean, mse or the number, as --loss or FILE's
 * metadata gave it) and loss_scale (c). */
void cli_json_loss(cJSON *obj, const cli_args *a, const sgdstab_problem *prob,
                   double scale);

/* What FILE's metadata says of the minimum (provenance.h):
 * - the note on stderr, one line, when it is not interpolating;
 * - the JSON keys residual_rms, max_residual, target_rms (null when not
 *   given) and interpolating (true, false or null);
 * - the text line, after label, about the training residual (nothing when
 *   the metadata gives none). */
void cli_note_interpolation(const cli_args *a, const sgdstab_problem *prob);
void cli_json_provenance(cJSON *obj, const sgdstab_problem *prob);
void cli_print_residual(const char *label, const sgdstab_problem *prob);

/* A number in CSV: 17 significant digits, "nan"/"inf" as such. */
void cli_csv_number(FILE *f, double value, const char *sep);

/* Open --csv FILE (atomically replaced on commit); NULL after printing the
 * error. */
sgdstab_outfile *cli_csv_open(const char *path);
int cli_csv_commit(sgdstab_outfile *of);

/* Refuse (usage error, one line) an output that is the same file
 * (sgdstab_same_file) as an input (a->file, a->hessian, input) or as
 * another output, unless it is written in place (a device, FIFO,
 * /dev/stdout); NULL entries are skipped. */
int cli_check_outputs(const cli_args *a, const char *input,
                      const char *const *outputs, size_t no);

/* sgdstab_outfile_group_commit, the error printed: EXIT_OK or EXIT_DATA. */
int cli_outputs_commit(void);

/* Final check that stdout was written completely. */
int cli_finish_stdout(int status);

/* ---- progress.c: a progress bar on stderr, drawn only when stderr is a
 * terminal and not --quiet */

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

/* ---- plot.c: pictures drawn by gnuplot */

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

/* ---- phase_output.c: phase-diagram tables, and the picture drawn by
 * gnuplot */

/* η*(B) as reported: 0 where no learning rate is stable. */
double cli_phase_boundary_lr(const sgdstab_phase_boundary *b);

/* Do the sorted batch sizes grow geometrically (a log axis suits them)? */
int cli_log_spaced_sizes(const size_t *b, size_t m);

/* The curves of a phase diagram (--curves), as bits. */
enum {
    CLI_CURVE_EXACT = 1, CLI_CURVE_MEAN = 2, CLI_CURVE_WU_MA_E = 4,
    CLI_CURVE_WU_WANG_SU = 8, CLI_CURVE_MM_TOP = 16, CLI_CURVE_MM_TRACE = 32,
    CLI_CURVES_ALL = 63
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
 * mm-trace, or all / none), --color rate|relative and --color-range LO:HI
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
    sgdstab_sampling sampling;
    size_t n;                   /* samples (for the theory curves' b) */
    const sgdstab_theory *theory;  /* NULL: no theory curves */
} cli_plot_options;

/* The output files of a phase diagram, any of them NULL: the grid CSV
 * (batch,lr,spectral_radius,escape_rate_per_step,escape_rate_per_epoch,
 * stable), the boundary CSV (batch,lr_critical,lr_critical_mean and the
 * theory's limits) and the picture, a heat map of the escape rate per step
 * with the exact boundary, the mean limit and the theory curves.  Opened
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
