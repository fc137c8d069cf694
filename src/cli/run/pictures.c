/* The pictures of the Monte Carlo experiments of `sgdstab run`, drawn by
 * gnuplot: epoch.png (threshold ratios against B) and exit.png (exit times
 * against 1/η with their fitted power laws). */
#include <math.h>
#include <string.h>

#include "write.h"
#include "../exit_status.h"

static const char *const COLOURS[] = {"#1b9e77", "#d95f02", "#7570b3",
                                      "#e7298a", "#66a61e", "#e6ab02",
                                      "#a6761d", "#666666"};
#define NCOLOURS (sizeof COLOURS / sizeof COLOURS[0])

/* What a picture's script reads: the results, and its size. */
typedef struct {
    const run_spec *sp;
    const run_results *res;
    int width, height;
} picture;

/* "case c, " in legends when there are several cases, else nothing. */
static const char *case_label(const picture *pic, size_t c, char *buf,
                              size_t size)
{
    snprintf(buf, size, "case %zu, ", c);
    return pic->res->ncases > 1 ? buf : "";
}

/* The frame, legend below; returns the plot area's height in pixels. */
static double frame(FILE *f, const picture *pic, const char *title,
                    size_t entries, size_t label_chars)
{
    cli_frame fr = {pic->width, pic->height, title, CLI_LEGEND_BELOW,
                    entries, label_chars, 3};
    double height = cli_plot_frame(f, &fr);
    fprintf(f, "set grid lc rgb '#cccccc'\n");
    return height;
}

/* The x axis of the epoch picture: every batch size, padded (gnuplot
 * cannot autoscale a single one). */
static void epoch_axis(FILE *f, const run_results *res)
{
    double lo = INFINITY, hi = 0;
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t i = 0; i < res->cases[c].nepoch; i++) {
            lo = fmin(lo, (double)res->cases[c].epoch[i].batch);
            hi = fmax(hi, (double)res->cases[c].epoch[i].batch);
        }
    fprintf(f, "set xrange [%.17g:%.17g]\n", lo / sqrt(2.0), hi * sqrt(2.0));
    cli_plot_log_tics(f, "x", lo / sqrt(2.0), hi * sqrt(2.0));
}

/* Threshold ratio η_threshold/η*(B) against B, one line per case and
 * sampling, with ±1 standard error bars. */
static void epoch_script(FILE *f, void *ctx)
{
    const picture *pic = ctx;
    const run_spec *sp = pic->sp;
    const run_epoch_spec *ep = &sp->epoch;
    const run_results *res = pic->res;
    char title[256], label[160];
    snprintf(title, sizeof title, "Stability threshold of the one-epoch map, "
             "relative to the exact η*(B) of fresh batches (sampling %s)",
             sgdstab_sampling_name(sp->sampling));
    size_t chars = strlen("exact η*(B)");
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t s = 0, len; s < ep->nsampling; s++)
            if ((len = strlen(case_label(pic, c, label, sizeof label)) +
                       strlen(sgdstab_sampling_name(ep->sampling[s]))) > chars)
                chars = len;
    frame(f, pic, title, 1 + res->ncases * ep->nsampling, chars);
    fprintf(f, "set xlabel 'batch size B'\nset ylabel 'η_{threshold} / "
            "η*(B)'\nset logscale x\n"
            "set offsets 0, 0, graph 0.1, graph 0.1\n");
    epoch_axis(f, res);
    size_t series = 0;
    fprintf(f, "plot 1 with lines lc rgb '#555555' dt 2 title 'exact η*(B)'");
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t s = 0; s < ep->nsampling; s++, series++)
            fprintf(f, ", \\\n  '-' using 1:2:3 with yerrorlines lw 2 pt 7 "
                    "lc rgb '%s' title \"%s%s\" noenhanced",
                    COLOURS[series % NCOLOURS],
                    case_label(pic, c, label, sizeof label),
                    sgdstab_sampling_name(ep->sampling[s]));
    fputc('\n', f);
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t s = 0; s < ep->nsampling; s++) {
            const run_case_result *r = &res->cases[c];
            for (size_t i = 0; i < r->nepoch; i++)
                if (r->epoch[i].sampling == s)
                    fprintf(f, "%zu %.17g %.17g\n", r->epoch[i].batch,
                            r->epoch[i].ratio, r->epoch[i].ratio_stderr);
            fprintf(f, "e\n");
        }
}

/* Did some run of the group exit? */
static int has_points(const run_spec *sp, const run_exit_group *g)
{
    for (size_t l = 0; l < sp->exit.series[g->series].nlr; l++)
        if (g->points[l].stats.exited > 0)
            return 1;
    return 0;
}

/* The legend entry of an exit group of case c. */
static size_t exit_label(const picture *pic, size_t c,
                         const run_exit_group *g, char *buf, size_t size)
{
    const run_exit_series *es = &pic->sp->exit.series[g->series];
    char cl[160];
    snprintf(buf, size, "%sα = %g, b = %g (l* = %zu): slope %.3f ± %.3f, "
             "predicted %g", case_label(pic, c, cl, sizeof cl), es->alpha,
             es->clip, g->jumps, g->fit.slope, g->fit.slope_stderr,
             g->predicted_slope);
    return strlen(buf);
}

/* The axes of the exit picture: 1/η and the exit steps of the points with
 * their error bars, padded; log tics on both. */
static void exit_axes(FILE *f, const picture *pic)
{
    double x0 = INFINITY, x1 = 0, y0 = INFINITY, y1 = 0;
    for (size_t c = 0; c < pic->res->ncases; c++)
        for (size_t i = 0; i < pic->res->cases[c].nexit; i++) {
            const run_exit_group *g = &pic->res->cases[c].exit[i];
            for (size_t l = 0; l < pic->sp->exit.series[g->series].nlr; l++) {
                const run_exit_point *pt = &g->points[l];
                double mean = pt->stats.censored_mean;
                double se = pt->censored_mean_stderr;
                x0 = fmin(x0, 1 / pt->lr);
                x1 = fmax(x1, 1 / pt->lr);
                if (pt->stats.exited > 0) {
                    y0 = fmin(y0, fmax(mean - se, mean / 2));
                    y1 = fmax(y1, mean + se);
                }
            }
        }
    if (!(y1 > 0))
        y0 = 1, y1 = 10;
    x0 /= 1.2, x1 *= 1.2, y0 /= 1.5, y1 *= 1.5;
    fprintf(f, "set xrange [%.17g:%.17g]\nset yrange [%.17g:%.17g]\n", x0, x1,
            y0, y1);
    cli_plot_log_tics(f, "x", x0, x1);
    cli_plot_log_tics(f, "y", y0, y1);
}

/* The plot command: per group, its points only if some run exited and its
 * line only if the slope was fitted (gnuplot complains about empty data). */
static void exit_plot_command(FILE *f, const picture *pic)
{
    size_t colour = 0, clauses = 0;
    char label[400];
    fprintf(f, "plot");
    for (size_t c = 0; c < pic->res->ncases; c++)
        for (size_t i = 0; i < pic->res->cases[c].nexit; i++, colour++) {
            const run_exit_group *g = &pic->res->cases[c].exit[i];
            const char *col = COLOURS[colour % NCOLOURS];
            if (has_points(pic->sp, g)) {
                exit_label(pic, pic->res->cases[c].index, g, label,
                           sizeof label);
                fprintf(f, "%s '-' using 1:2:3 with yerrorbars pt 7 lc rgb "
                        "'%s' title \"%s\" noenhanced",
                        clauses++ ? ", \\\n " : "", col, label);
            }
            if (isfinite(g->fit.slope))
                fprintf(f, "%s '-' using 1:2 with lines lw 2 lc rgb '%s' "
                        "notitle", clauses++ ? ", \\\n " : "", col);
        }
    if (!clauses)
        fprintf(f, " 1 lc rgb 'white' title 'no run exited'");
    fputc('\n', f);
}

/* A group's data: its points, then the fitted line at their learning
 * rates. */
static void exit_data(FILE *f, const run_spec *sp, const run_exit_group *g)
{
    size_t m = sp->exit.series[g->series].nlr;
    for (size_t l = 0; l < m; l++) {
        const run_exit_point *pt = &g->points[l];
        if (pt->stats.exited > 0)
            fprintf(f, "%.17g %.17g %.17g\n", 1 / pt->lr,
                    pt->stats.censored_mean, pt->censored_mean_stderr);
    }
    if (has_points(sp, g))
        fprintf(f, "e\n");
    if (isfinite(g->fit.slope)) {
        for (size_t l = 0; l < m; l++) {
            double x = 1 / g->points[l].lr;
            fprintf(f, "%.17g %.17g\n", x,
                    exp(sgdstab_fit_log_at(&g->fit, log(x))));
        }
        fprintf(f, "e\n");
    }
}

/* Censored mean exit step against 1/η on log-log axes, one colour per
 * group with its fitted power law. */
static void exit_script(FILE *f, void *ctx)
{
    const picture *pic = ctx;
    const run_exit_spec *ex = &pic->sp->exit;
    char title[256], label[400];
    snprintf(title, sizeof title, "First exit from the ball |δ| ≤ %g: "
             "clipped SGD with Pareto noise of scale %g", ex->radius,
             ex->noise_scale);
    size_t entries = 0, chars = 0;
    for (size_t c = 0; c < pic->res->ncases; c++)
        for (size_t i = 0; i < pic->res->cases[c].nexit; i++) {
            const run_exit_group *g = &pic->res->cases[c].exit[i];
            if (has_points(pic->sp, g)) {
                entries++;
                size_t len = exit_label(pic, pic->res->cases[c].index, g,
                                        label, sizeof label);
                chars = len > chars ? len : chars;
            }
        }
    double height = frame(f, pic, title, entries ? entries : 1,
                          entries ? chars : 14);
    /* The full y label where the plot is tall enough for it (a long legend
     * in a small picture leaves little); the report says the rest. */
    static const char full[] = "mean exit step (censored mean, ±1 s.e.)";
    fprintf(f, "set xlabel '1/η'\nset ylabel '%s'\nset logscale xy\n",
            height >= (double)(sizeof full - 3) * CLI_PLOT_CHAR_W
                ? full : "mean exit step");
    exit_axes(f, pic);
    exit_plot_command(f, pic);
    for (size_t c = 0; c < pic->res->ncases; c++)
        for (size_t i = 0; i < pic->res->cases[c].nexit; i++)
            exit_data(f, pic->sp, &pic->res->cases[c].exit[i]);
}

int run_draw_pictures(const run_spec *sp, const run_results *res,
                      run_files *files, int width, int height)
{
    size_t nepoch = 0, nexit = 0;
    for (size_t c = 0; c < res->ncases; c++) {
        nepoch += res->cases[c].nepoch;
        nexit += res->cases[c].nexit;
    }
    picture epoch = {sp, res, width ? width : 960, height ? height : 640};
    picture exit = {sp, res, width ? width : 960,
                    height ? height : 560 + 24 * (int)sp->exit.nseries};
    int st = EXIT_OK;
    if (files->epoch_png && nepoch)
        st = cli_gnuplot("run", files->epoch_png_path, files->epoch_png,
                         epoch.width, epoch.height, epoch_script, &epoch);
    if (!st && files->exit_png && nexit)
        st = cli_gnuplot("run", files->exit_png_path, files->exit_png,
                         exit.width, exit.height, exit_script, &exit);
    return st;
}
