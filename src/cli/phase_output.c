/* Phase-diagram outputs: the CSV tables, and the picture: a heat map drawn
 * by gnuplot (plot.c), renamed into place with the tables only on success. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void csv_bool(FILE *f, int v, const char *sep)
{
    fprintf(f, "%s%s", v ? "true" : "false", sep);
}

static void write_grid(FILE *f, const sgdstab_phase_point *g, size_t count)
{
    fprintf(f, "batch,lr,spectral_radius,escape_rate_per_step,"
            "escape_rate_per_epoch,stable\n");
    for (size_t i = 0; i < count; i++) {
        fprintf(f, "%zu,", g[i].batch);
        cli_csv_number(f, g[i].lr, ",");
        cli_csv_number(f, g[i].radius.rho, ",");
        cli_csv_number(f, g[i].escape_rate_per_step, ",");
        cli_csv_number(f, g[i].escape_rate_per_epoch, ",");
        csv_bool(f, g[i].stable, "\n");
    }
}

double cli_phase_boundary_lr(const sgdstab_phase_boundary *b)
{
    return b->critical.kind == SGDSTAB_MINIMUM_OK ? b->critical.lr_critical
                                                  : 0.0;
}

static void write_boundary(FILE *f, const sgdstab_phase_boundary *bd,
                           size_t nb)
{
    fprintf(f, "batch,lr_critical,lr_critical_mean,wu_ma_e,wu_wang_su,"
            "mulayoff_michaeli_top,mulayoff_michaeli_trace\n");
    for (size_t i = 0; i < nb; i++) {
        fprintf(f, "%zu,", bd[i].batch);
        cli_csv_number(f, cli_phase_boundary_lr(&bd[i]), ",");
        cli_csv_number(f, bd[i].lr_critical_mean, ",");
        cli_csv_number(f, bd[i].bounds.wu_ma_e, ",");
        cli_csv_number(f, bd[i].bounds.wu_wang_su, ",");
        cli_csv_number(f, bd[i].bounds.mulayoff_michaeli_top, ",");
        cli_csv_number(f, bd[i].bounds.mulayoff_michaeli_trace, "\n");
    }
}

int cli_log_spaced_sizes(const size_t *b, size_t m)
{
    if (m < 3 || b[0] == 0 || b[m - 1] < 8 * b[0])
        return 0;
    double step = log((double)b[m - 1] / (double)b[0]) / (double)(m - 1);
    return log((double)b[m - 1] / (double)b[m - 2]) > 0.5 * step;
}

/* Edges of the cells around grid values x[0..m): midpoints (geometric on a
 * log axis), the outer edges as far out as the first inner ones. */
static double edge(const double *x, size_t m, size_t i, int lg)
{
    /* Edge between x[i-1] and x[i], for i = 0..m. */
    if (m == 1)
        return lg ? x[0] * (i ? 1.25 : 0.8) : x[0] + (i ? 0.5 : -0.5);
    if (i == 0)
        return lg ? x[0] * sqrt(x[0] / x[1]) : x[0] - (x[1] - x[0]) / 2;
    if (i == m)
        return lg ? x[m - 1] * sqrt(x[m - 1] / x[m - 2])
                  : x[m - 1] + (x[m - 1] - x[m - 2]) / 2;
    return lg ? sqrt(x[i - 1] * x[i]) : (x[i - 1] + x[i]) / 2;
}

static int compare_abs(const void *x, const void *y)
{
    double a = fabs(*(const double *)x), b = fabs(*(const double *)y);
    return (a > b) - (a < b);
}

/* The colour scale: escape rates r in [−M, M] are shown as
 * asinh(r/τ)/asinh(M/τ), linear within ±τ of the boundary and logarithmic
 * beyond, so that slow and fast rates on both sides stay distinguishable;
 * τ is half the median |r| (at least M·1e-6). */
typedef struct {
    double M, tau, norm;
} colour_scale;

static colour_scale make_scale(const sgdstab_phase_point *grid, size_t count)
{
    colour_scale cs = {0, 1, 1};
    double *r = malloc(count * sizeof *r);
    size_t m = 0;
    for (size_t i = 0; i < count; i++)
        if (isfinite(grid[i].escape_rate_per_step)) {
            cs.M = fmax(cs.M, fabs(grid[i].escape_rate_per_step));
            if (r)
                r[m++] = grid[i].escape_rate_per_step;
        }
    if (!(cs.M > 0))
        cs.M = 1;
    double median = cs.M;
    if (r && m > 0) {
        qsort(r, m, sizeof *r, compare_abs);
        median = fabs(r[m / 2]);
    }
    free(r);
    cs.tau = fmax(median / 2, cs.M * 1e-6);
    cs.norm = asinh(cs.M / cs.tau);
    return cs;
}

static double colour(const colour_scale *cs, double r)
{
    if (!isfinite(r))
        return r > 0 ? 1 : -1;
    return asinh(r / cs->tau) / cs->norm;
}

/* Colour-bar tics at 0 and ±M, ±M/10, ... while they stay apart from 0,
 * labelled with
 * the escape rates they stand for. */
static void colour_tics(FILE *f, const colour_scale *cs)
{
    fprintf(f, "set cbtics ('0' 0");
    int count = 0;
    for (double v = cs->M; colour(cs, v) > 0.1 && count < 6; v /= 10, count++)
        fprintf(f, ", '%.2g' %.17g, '-%.2g' %.17g", v, colour(cs, v), v,
                colour(cs, -v));
    fprintf(f, ")\n");
}

static void number(FILE *f, double v, const char *sep)
{
    if (isfinite(v))
        fprintf(f, "%.17g%s", v, sep);
    else
        fprintf(f, "NaN%s", sep);
}

typedef struct {
    const cli_plot_options *o;
    const sgdstab_phase_boundary *bd;
    size_t nb, nl;
    const sgdstab_phase_point *grid;
    const double *lrs;
} phase_picture;

/* The script: axes, palette, data blocks, one plot command. */
static void write_script(FILE *f, void *ctx)
{
    const phase_picture *pp = ctx;
    const cli_plot_options *o = pp->o;
    const sgdstab_phase_boundary *bd = pp->bd;
    const sgdstab_phase_point *grid = pp->grid;
    const double *lrs = pp->lrs;
    size_t nb = pp->nb, nl = pp->nl;
    double *bx = malloc(nb * sizeof *bx);
    if (!bx)
        return;
    for (size_t i = 0; i < nb; i++)
        bx[i] = (double)bd[i].batch;
    colour_scale cs = make_scale(grid, nb * nl);

    fprintf(f, "set title \"%s\" noenhanced\n", o->title);
    fprintf(f, "set xlabel 'batch size B' offset 0,0.4\n"
            "set ylabel 'learning rate η'\n");
    fprintf(f, "set cblabel 'escape rate ln ρ_⊥ per step "
            "(< 0: stable, > 0: escapes; asinh scale)'\n");
    if (o->log_batch)
        fprintf(f, "set logscale x\n");
    if (o->log_lr)
        fprintf(f, "set logscale y\n");
    fprintf(f, "set xrange [%.17g:%.17g]\nset yrange [%.17g:%.17g]\n",
            edge(bx, nb, 0, o->log_batch), edge(bx, nb, nb, o->log_batch),
            edge(lrs, nl, 0, o->log_lr), edge(lrs, nl, nl, o->log_lr));
    fprintf(f, "set cbrange [-1:1]\nset rmargin 15\n");
    colour_tics(f, &cs);
    fprintf(f, "set palette defined (0 '#2166ac', 0.25 '#92c5de', "
            "0.5 '#f7f7f7', 0.75 '#f4a582', 1 '#b2182b')\n");
    fprintf(f, "set key outside below horizontal maxcols 2 box opaque "
            "spacing 1.1 height 0.6\n");
    fprintf(f, "set tics out\nset grid front lc rgb '#bbbbbb' lw 0.5\n");

    /* Cells: x y xlow xhigh ylow yhigh rate. */
    fprintf(f, "$cells << EOD\n");
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < nl; j++) {
            double r = colour(&cs, grid[i * nl + j].escape_rate_per_step);
            fprintf(f, "%.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", bx[i],
                    lrs[j], edge(bx, nb, i, o->log_batch),
                    edge(bx, nb, i + 1, o->log_batch),
                    edge(lrs, nl, j, o->log_lr),
                    edge(lrs, nl, j + 1, o->log_lr), r);
        }
    fprintf(f, "EOD\n$boundary << EOD\n");
    for (size_t i = 0; i < nb; i++) {
        fprintf(f, "%zu ", bd[i].batch);
        number(f, bd[i].critical.kind == SGDSTAB_MINIMUM_OK
                      ? bd[i].critical.lr_critical : NAN, " ");
        number(f, bd[i].lr_critical_mean, "\n");
    }
    fprintf(f, "EOD\n");
    int theory = o->theory != NULL;
    if (theory) {
        /* The closed-form curves at every batch size, or 400 log-spaced. */
        size_t lo = bd[0].batch, hi = bd[nb - 1].batch, prev = 0;
        size_t count = hi - lo + 1 > 400 ? 400 : hi - lo + 1;
        fprintf(f, "$theory << EOD\n");
        for (size_t t = 0; t < count; t++) {
            double x = count < 2 ? (double)lo
                     : hi - lo + 1 == count ? (double)(lo + t)
                     : (double)lo * pow((double)hi / (double)lo,
                                        (double)t / (double)(count - 1));
            size_t B = (size_t)llround(x);
            double a, b;
            sgdstab_lr_bounds lb;
            if (B == prev || sgdstab_batch_coefficients(o->sampling, o->n, B,
                                                        &a, &b, NULL))
                continue;
            prev = B;
            sgdstab_theory_lr_bounds(o->theory, a, b, &lb);
            fprintf(f, "%zu ", B);
            number(f, lb.wu_wang_su, " ");
            number(f, lb.mulayoff_michaeli_top, " ");
            number(f, lb.mulayoff_michaeli_trace, " ");
            number(f, lb.wu_ma_e, "\n");
        }
        fprintf(f, "EOD\n");
    }
    fprintf(f, "plot $cells using 1:2:3:4:5:6:7 with boxxyerror "
            "fs solid 1.0 noborder lc palette notitle");
    if (theory)
        fprintf(f, ", \\\n  $theory using 1:2 with lines lw 2 lc rgb '#1b9e77' "
                "title 'Wu–Wang–Su bound 1/(‖H‖_F √(b μ_{min}))'"
                ", \\\n  $theory using 1:3 with lines lw 2 dt 2 "
                "lc rgb '#d95f02' title 'Mulayoff–Michaeli bound (top "
                "eigenvector)'"
                ", \\\n  $theory using 1:4 with lines lw 2 dt 4 "
                "lc rgb '#7570b3' title 'Mulayoff–Michaeli bound (trace)'"
                ", \\\n  $theory using 1:5 with lines lw 2 dt 3 "
                "lc rgb '#e7298a' title 'Wu–Ma–E condition 1/(s √b) (not a "
                "bound)'");
    fprintf(f, ", \\\n  $boundary using 1:3 with lines lw 2 dt 2 "
            "lc rgb '#555555' title 'mean stability 2/λ_{max}(H)'"
            ", \\\n  $boundary using 1:2 with linespoints lw 3 pt 7 ps 0.7 "
            "lc rgb 'black' title 'exact boundary η*(B)'\n");
    free(bx);
}

int cli_phase_files_open(const char *cmd, const char *grid,
                         const char *boundary, const char *plot,
                         cli_phase_files *pf)
{
    memset(pf, 0, sizeof *pf);
    pf->plot_path = plot;
    sgdstab_error err;
    if (plot && cli_plot_format(plot) < 0)
        return cli_usage_error(cmd, "--plot: %s: the picture's name must end "
                               "in .png or .svg", plot);
    if ((grid && !(pf->grid = cli_csv_open(grid))) ||
        (boundary && !(pf->boundary = cli_csv_open(boundary))))
        goto fail;
    if (plot && !(pf->plot = sgdstab_outfile_open(plot, &err))) {
        cli_report(&err);
        goto fail;
    }
    return EXIT_OK;
fail:
    cli_phase_files_abort(pf);
    return EXIT_DATA;
}

void cli_phase_files_abort(cli_phase_files *pf)
{
    sgdstab_outfile_abort(pf->grid);
    sgdstab_outfile_abort(pf->boundary);
    sgdstab_outfile_abort(pf->plot);
    memset(pf, 0, sizeof *pf);
}

int cli_phase_files_write(const char *cmd, cli_phase_files *pf,
                          const cli_plot_options *o,
                          const sgdstab_phase_boundary *bd, size_t nb,
                          const sgdstab_phase_point *grid, const double *lrs,
                          size_t nl)
{
    int status = EXIT_OK;
    if (pf->grid)
        write_grid(sgdstab_outfile_stream(pf->grid), grid, nb * nl);
    if (pf->boundary)
        write_boundary(sgdstab_outfile_stream(pf->boundary), bd, nb);
    if (pf->plot && nb > 0 && nl > 0)
        status = cli_gnuplot(cmd, pf->plot_path, pf->plot, o->width,
                             o->height, write_script,
                             &(phase_picture){o, bd, nb, nl, grid, lrs});
    /* Everything is in the temporary files: now rename them all, or none. */
    sgdstab_outfile *files[3] = {pf->grid, pf->boundary, pf->plot};
    for (int i = 0; i < 3; i++) {
        if (!files[i])
            continue;
        if (status)
            sgdstab_outfile_abort(files[i]);
        else if (cli_csv_commit(files[i]))
            status = EXIT_DATA;
    }
    memset(pf, 0, sizeof *pf);
    return status;
}
