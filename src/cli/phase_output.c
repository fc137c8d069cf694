/* Phase-diagram outputs: the CSV tables, and the picture: a heat map drawn
 * by gnuplot (plot.c), renamed into place with the tables only on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_status.h"
#include "output.h"
#include "phase_output.h"
#include "plot.h"
#include "report.h"
#include "sgdstab/config.h"
#include "sgdstab/moments.h"
#include "sgdstab/outfile.h"
#include "sgdstab/phase.h"
#include "sgdstab/stability.h"
#include "sgdstab/theory.h"

static void csv_bool(FILE *f, int v, const char *sep)
{
    fprintf(f, "%s%s", v ? "true" : "false", sep);
}

/* The first column: a row's batch size, or its momentum. */
static void row_key(FILE *f, int momentum_axis, size_t batch, double momentum)
{
    if (momentum_axis)
        cli_csv_number(f, momentum, ",");
    else
        fprintf(f, "%zu,", batch);
}

static void write_grid(FILE *f, const sgdstab_phase_point *g, size_t count,
                       const cli_plot_options *o)
{
    fprintf(f, "%s,lr,spectral_radius,escape_rate_per_step,"
            "escape_rate_per_epoch,stable%s\n",
            o->momentum_axis ? "momentum" : "batch",
            o->lyapunov ? ",lyapunov_exponent,lyapunov_stderr" : "");
    for (size_t i = 0; i < count; i++) {
        row_key(f, o->momentum_axis, g[i].batch, g[i].momentum);
        cli_csv_number(f, g[i].lr, ",");
        cli_csv_number(f, g[i].radius.rho, ",");
        cli_csv_number(f, g[i].escape_rate_per_step, ",");
        cli_csv_number(f, g[i].escape_rate_per_epoch, ",");
        csv_bool(f, g[i].stable, o->lyapunov ? "," : "\n");
        if (o->lyapunov) {
            cli_csv_number(f, g[i].lyapunov, ",");
            cli_csv_number(f, g[i].lyapunov_stderr, "\n");
        }
    }
}

const char *cli_lyapunov_crossing(const sgdstab_phase_boundary *b)
{
    static const char *const names[] = {"inside", "below", "above",
                                        "unknown"};
    return names[b->crossing];
}

double cli_phase_boundary_lr(const sgdstab_phase_boundary *b)
{
    return b->critical.kind == SGDSTAB_MINIMUM_OK ? b->critical.lr_critical
                                                  : 0.0;
}

static void write_boundary(FILE *f, const sgdstab_phase_boundary *bd,
                           size_t nb, const cli_plot_options *o)
{
    fprintf(f, "%s,lr_critical,lr_critical_mean,wu_ma_e,wu_wang_su,"
            "mulayoff_michaeli_top,mulayoff_michaeli_trace%s\n",
            o->momentum_axis ? "momentum" : "batch",
            o->lyapunov ? ",lr_lyapunov,lyapunov_crossing" : "");
    for (size_t i = 0; i < nb; i++) {
        row_key(f, o->momentum_axis, bd[i].batch, bd[i].momentum);
        cli_csv_number(f, cli_phase_boundary_lr(&bd[i]), ",");
        cli_csv_number(f, bd[i].lr_critical_mean, ",");
        cli_csv_number(f, bd[i].bounds.wu_ma_e, ",");
        cli_csv_number(f, bd[i].bounds.wu_wang_su, ",");
        cli_csv_number(f, bd[i].bounds.mulayoff_michaeli_top, ",");
        cli_csv_number(f, bd[i].bounds.mulayoff_michaeli_trace,
                       o->lyapunov ? "," : "\n");
        if (o->lyapunov) {
            cli_csv_number(f, bd[i].lr_lyapunov, ",");
            fprintf(f, "%s\n", cli_lyapunov_crossing(&bd[i]));
        }
    }
}

int cli_log_spaced_sizes(const size_t *b, size_t m)
{
    if (m < 3 || b[0] == 0 || b[m - 1] < 8 * b[0])
        return 0;
    double step = log((double)b[m - 1] / (double)b[0]) / (double)(m - 1);
    return log((double)b[m - 1] / (double)b[m - 2]) > 0.5 * step;
}

/* ------------------------------------------------ the picture's options */

void cli_phase_style_init(cli_phase_style *s)
{
    *s = (cli_phase_style){NULL, CLI_LEGEND_BELOW, CLI_CURVES_ALL,
                           CLI_COLOR_RATE, {NAN, NAN}};
}

static const char *const CURVE_NAMES[] = {"exact", "mean", "wu-ma-e",
                                          "wu-wang-su", "mm-top", "mm-trace",
                                          "lyapunov"};
#define NCURVES (sizeof CURVE_NAMES / sizeof CURVE_NAMES[0])

int cli_parse_curves(const char *cmd, const char *text, unsigned *out)
{
    unsigned bits = 0;
    const char *p = text;
    do {
        size_t len = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < NCURVES; i++)
            if (len == strlen(CURVE_NAMES[i]) &&
                !strncmp(p, CURVE_NAMES[i], len))
                bit = 1u << i;
        if (len == 3 && !strncmp(p, "all", 3))
            bit = CLI_CURVES_ALL;
        if (len == 4 && !strncmp(p, "none", 4) && !strchr(text, ','))
            bit = 0x80;   /* none: alone only */
        if (!bit)
            return cli_usage_error(cmd, "--curves: '%s' is not a comma-"
                                   "separated list of exact, mean, wu-ma-e, "
                                   "wu-wang-su, mm-top, mm-trace, lyapunov "
                                   "(or all, none)", text);
        bits |= bit;
        p += len + (p[len] == ',');
    } while (p[-1] == ',' || *p);
    *out = bits & CLI_CURVES_ALL;
    return EXIT_OK;
}

int cli_parse_color(const char *cmd, const char *text, cli_color *out)
{
    if (!strcmp(text, "rate") || !strcmp(text, "relative")) {
        *out = strcmp(text, "rate") ? CLI_COLOR_RELATIVE : CLI_COLOR_RATE;
        return EXIT_OK;
    }
    return cli_usage_error(cmd, "--color: '%s' is not rate or relative",
                           text);
}

int cli_parse_color_range(const char *cmd, const char *text, cli_color color,
                          double range[2])
{
    char *mid, *end;
    double lo = strtod(text, &mid), hi = NAN;
    if (mid != text && *mid == ':')
        hi = strtod(mid + 1, &end);
    int ok = mid != text && *mid == ':' && end != mid + 1 && *end == '\0' &&
             isfinite(lo) && isfinite(hi);
    if (color == CLI_COLOR_RATE && ok && lo < 0 && hi > 0) {
        range[0] = lo;
        range[1] = hi;
        return EXIT_OK;
    }
    if (color == CLI_COLOR_RELATIVE && ok && lo > 0 && lo < 1 && hi > 1) {
        range[0] = lo;
        range[1] = hi;
        return EXIT_OK;
    }
    return cli_usage_error(cmd, color == CLI_COLOR_RATE
        ? "--color-range: '%s' is not LO:HI with LO < 0 < HI (escape rates "
          "per step at the ends of the colour bar)"
        : "--color-range: '%s' is not LO:HI with 0 < LO < 1 < HI (values of "
          "eta/eta*(B) at the ends of the colour bar)", text);
}

void cli_phase_title(char *buf, size_t size, const char *name, size_t n,
                     size_t p, sgdstab_sampling sampling, const char *loss)
{
    const char *base = strrchr(name, '/');
    snprintf(buf, size, "%s: n = %zu, p = %s, sampling %s, loss %s",
             base ? base + 1 : name, n, cli_params(p).s,
             sgdstab_sampling_name(sampling), loss);
}

/* ------------------------------------------------ cells */

/* The cells around grid values x[0..m) (on a log axis when lg), each
 * centred on its value (geometrically on a log axis) so that a curve
 * through the values passes through the cells' centres: lo[i], hi[i].
 * Adjacent centred cells share their edges when such a tiling exists:
 * edge e_1 = t fixes e_{i+1} = 2u_i − e_i (u = x or ln x), and t is taken
 * in the middle of the interval where every edge stays between its two
 * values.  When there is none, each cell is as wide as its nearer
 * neighbour allows, with gaps between cells. */
static double axis_u(const double *x, size_t i, int lg)
{
    return lg ? log(x[i]) : x[i];
}

static void cell_edges(const double *x, size_t m, int lg, double *lo,
                       double *hi)
{
    double tlo = -INFINITY, thi = INFINITY, c = 0, sg = 1;
    if (m > 1) {
        tlo = axis_u(x, 0, lg);
        thi = axis_u(x, 1, lg);
    }
    for (size_t i = 1; i + 1 < m; i++) {
        /* e_{i+1} = sg·t + c must lie in (u_i, u_{i+1}) */
        double ui = axis_u(x, i, lg), un = axis_u(x, i + 1, lg);
        sg = -sg;
        c = 2 * ui - c;
        tlo = fmax(tlo, sg > 0 ? ui - c : c - un);
        thi = fmin(thi, sg > 0 ? un - c : c - ui);
    }
    double e = 0.5 * (tlo + thi);      /* e_1 */
    for (size_t i = 0; i < m; i++) {
        double ui = axis_u(x, i, lg), half;
        if (m == 1)
            half = lg ? log(1.25) : 0.5;
        else if (tlo < thi)
            half = i == 0 ? e - ui : ui - e;
        else
            half = 0.5 * fmin(i > 0 ? ui - axis_u(x, i - 1, lg) : INFINITY,
                              i + 1 < m ? axis_u(x, i + 1, lg) - ui
                                        : INFINITY);
        if (i > 0)
            e = 2 * ui - e;            /* e_{i+1} */
        lo[i] = lg ? exp(ui - half) : ui - half;
        hi[i] = lg ? exp(ui + half) : ui + half;
    }
}
/* ------------------------------------------------ the colour scale */

/* The plotted quantity x at a grid point: the escape rate ln ρ per step,
 * or ln(η/η*(B)) (+∞ where no learning rate is stable).  Both are < 0
 * exactly at stable points. */
static double quantity(const cli_plot_options *o,
                       const sgdstab_phase_boundary *bd,
                       const sgdstab_phase_point *pt)
{
    if (o->style.color == CLI_COLOR_RATE)
        return pt->escape_rate_per_step;
    double crit = cli_phase_boundary_lr(bd);
    return crit > 0 ? log(pt->lr / crit) : INFINITY;
}

/* Colour c in [−1, 1] of x: sign(x)·g(|x|), g piecewise linear through
 * knots (v, c) from (0, 0), one set for each side (0: x < 0, 1: x > 0),
 * saturating at the last knot.  Escape rates: knots at the quantiles of
 * |x| on that side (so stable and unstable points both spread over their
 * half of the palette, whatever their magnitudes: rates of −1e-7 beside
 * +1 still show); η/η*(B): linear in ln(η/η*) to the range's ends. */
#define NQUANT 9
typedef struct {
    size_t m;
    double v[NQUANT + 2], c[NQUANT + 2];
} scale_side;

typedef struct {
    scale_side side[2];
} colour_scale;

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Append knot (v, c); a tie keeps one knot at the level of its last. */
static void add_knot(scale_side *s, double v, double c)
{
    if (s->m > 0 && v <= s->v[s->m - 1]) {
        s->c[s->m - 1] = c;
        return;
    }
    s->v[s->m] = v;
    s->c[s->m++] = c;
}

/* Quantile knots of the sorted |x| a[0..m); end > 0: the colour bar ends
 * there (values beyond saturate), else at the largest |x|. */
static void quantile_side(scale_side *s, const double *a, size_t m,
                          double end)
{
    s->m = 0;
    add_knot(s, 0, 0);
    size_t levels = NQUANT + (end > 0);
    for (size_t j = 0; j < NQUANT && m > 0; j++)
        add_knot(s, fmin(a[j * (m - 1) / (NQUANT - 1)], end > 0 ? end
                                                               : INFINITY),
                 (double)(j + 1) / (double)levels);
    if (end > 0)
        add_knot(s, end, 1);
}

static int make_scale(const cli_plot_options *o,
                      const sgdstab_phase_boundary *bd,
                      const sgdstab_phase_point *grid, size_t nb, size_t nl,
                      colour_scale *cs)
{
    const double *range = o->style.color_range;
    int ranged = !isnan(range[0]);
    double *a = malloc((nb * nl + 1) * sizeof *a), top = 0;
    if (!a)
        return -1;
    for (int side = 0; side < 2; side++) {
        size_t m = 0;
        for (size_t i = 0; i < nb * nl; i++) {
            double x = quantity(o, &bd[i / nl], &grid[i]);
            top = isfinite(x) ? fmax(top, fabs(x)) : top;
            if (isfinite(x) && x != 0 && (x > 0) == side)
                a[m++] = fabs(x);
        }
        qsort(a, m, sizeof *a, compare_double);
        double end = !ranged ? 0 : o->style.color == CLI_COLOR_RATE
                   ? fabs(range[side]) : fabs(log(range[side]));
        if (o->style.color == CLI_COLOR_RATE)
            quantile_side(&cs->side[side], a, m, end);
        else
            cs->side[side] = (scale_side){2, {0, end > 0 ? end : top},
                                          {0, 1}};
    }
    free(a);
    /* A side without points borrows the other's knots; none: [0, 1]. */
    for (int side = 0; side < 2; side++)
        if (cs->side[side].m < 2 || !(cs->side[side].v[1] > 0))
            cs->side[side] = cs->side[!side];
    for (int side = 0; side < 2; side++)
        if (cs->side[side].m < 2 || !(cs->side[side].v[1] > 0))
            cs->side[side] = (scale_side){2, {0, 1}, {0, 1}};
    return 0;
}

static double colour(const colour_scale *cs, double x)
{
    if (isnan(x))
        return NAN;
    const scale_side *s = &cs->side[x > 0];
    double a = fabs(x), sign = x < 0 ? -1 : 1;
    for (size_t k = 1; k < s->m; k++)
        if (a <= s->v[k])
            return sign * (s->c[k - 1] + (s->c[k] - s->c[k - 1]) *
                           (a - s->v[k - 1]) / (s->v[k] - s->v[k - 1]));
    return sign * s->c[s->m - 1];
}

/* Colour-bar tics on one side: the bar's end, then candidates v[] (|x|
 * values, ascending) at least `gap` apart in colour and from 0, labelled
 * with the rate or with η/η*(B) = e^{±v}. */
static void side_tics(FILE *f, const colour_scale *cs, int side, int rel,
                      const double *v, size_t m, double gap)
{
    const scale_side *s = &cs->side[side];
    double sign = side ? 1 : -1, last = 2;
    for (size_t k = m + 1; k-- > 0;) {
        double a = k == m ? s->v[s->m - 1] : v[k];
        double c = colour(cs, sign * a);
        if (!(a > 0) || fabs(c) > last - gap || fabs(c) < gap)
            continue;
        last = fabs(c);
        if (rel)
            fprintf(f, ", '%.3g' %.17g", exp(sign * a), c);
        else
            fprintf(f, ", '%.2g' %.17g", sign * a, c);
    }
}

/* gap: the colour distance of one line of text on the bar. */
static void colour_tics(FILE *f, const colour_scale *cs, cli_color color,
                        double gap)
{
    int rel = color == CLI_COLOR_RELATIVE;
    fprintf(f, "set cbtics ('%s' 0", rel ? "1" : "0");
    for (int side = 0; side < 2; side++) {
        const scale_side *s = &cs->side[side];
        if (!rel) {
            side_tics(f, cs, side, 0, s->v, s->m, gap);
            continue;
        }
        /* η/η* at 1-2-5 multiples, ln of them, up to the bar's end */
        double v[40];
        size_t m = 0;
        for (double d = 1; m + 3 <= 40 && log(d) <= s->v[1]; d *= 10)
            for (int k = 0; k < 3; k++)
                v[m++] = log(d * (double[]){2, 5, 10}[k]);
        side_tics(f, cs, side, 1, v, m, gap);
    }
    fprintf(f, ")\n");
}

/* ------------------------------------------------ the script */

static void number(FILE *f, double v, const char *sep)
{
    if (isfinite(v))
        fprintf(f, "%.17g%s", v, sep);
    else
        fprintf(f, "NaN%s", sep);
}

/* The curves in CURVE_NAMES order: data block, column, style, label. */
static const struct {
    const char *block;
    int column;
    const char *style, *label;
} CURVES[NCURVES] = {
    {"$boundary", 2, "linespoints lw 3 pt 7 ps 0.7 lc rgb 'black'",
     "exact boundary η*(B)"},
    {"$boundary", 3, "lines lw 2 dt 2 lc rgb '#555555'",
     "mean limit 2/λ_{max}(H)"},
    {"$theory", 5, "lines lw 2 dt 3 lc rgb '#e7298a'",
     "Wu–Ma–E 1/(s√b), no bound"},
    {"$theory", 2, "lines lw 2 lc rgb '#1b9e77'",
     "Wu–Wang–Su 1/(‖H‖_F√(bμ_{min}))"},
    {"$theory", 3, "lines lw 2 dt 2 lc rgb '#d95f02'",
     "Mulayoff–Michaeli (top)"},
    {"$theory", 4, "lines lw 2 dt 4 lc rgb '#7570b3'",
     "Mulayoff–Michaeli (trace)"},
    {"$boundary", 4, "linespoints lw 2.5 dt (6,3) pt 6 ps 1.3 "
     "lc rgb 'black'", "Monte Carlo λ_1 = 0 (typical run)"},
};
/* Drawing order: theory first, the exact boundary last (on top). */
static const int CURVE_ORDER[NCURVES] = {3, 4, 5, 2, 1, 6, 0};

/* The characters a label shows: UTF-8 sequences count once, and the
 * markup of gnuplot's enhanced text (_{…}, ^{…}) not at all. */
static size_t shown_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80 && !strchr("_^{}", *s);
    return n;
}

typedef struct {
    const cli_plot_options *o;
    const sgdstab_phase_boundary *bd;
    size_t nb, nl;
    const sgdstab_phase_point *grid;
    const double *lrs;
    double *cell[4];    /* batch lo, hi; lr lo, hi */
    unsigned curves;    /* the ones drawn */
} phase_picture;

/* A row's place on the x axis: its batch size or its momentum. */
static double row_x(const cli_plot_options *o, const sgdstab_phase_boundary *b)
{
    return o->momentum_axis ? b->momentum : (double)b->batch;
}

/* The legend's label of curve i: the exact boundary and the noise-free
 * limit are named for the optimizer (plain SGD's 2/λmax otherwise). */
static const char *curve_label(const cli_plot_options *o, size_t i)
{
    if (i == 0 && o->momentum_axis)
        return "exact boundary η*(β)";
    if (i == 1 && o->lifted)
        return "noise-free limit (η* at full batch)";
    return CURVES[i].label;
}

/* Title, legend, labels, axes, palette. */
static void write_frame(FILE *f, const phase_picture *pp,
                        const colour_scale *cs)
{
    const cli_plot_options *o = pp->o;
    cli_frame fr = {o->width, o->height, o->style.title, o->style.legend, 0,
                    0, 17};
    for (size_t i = 0; i < NCURVES; i++)
        if (pp->curves & 1u << i) {
            fr.entries++;
            size_t len = shown_chars(curve_label(o, i));
            fr.label_chars = len > fr.label_chars ? len : fr.label_chars;
        }
    /* two lines of text (17 px each), in colour units (2 per box) */
    double gap = 2 * 34 / fmax(cli_plot_frame(f, &fr), 100);
    fprintf(f, "set xlabel '%s'\nset ylabel 'learning rate η'\n",
            o->momentum_axis ? "momentum β" : "batch size B");
    if (o->style.color == CLI_COLOR_RATE)
        fprintf(f, "set cblabel \"escape rate ln ρ_⊥ per step\\n(< 0 "
                "stable, > 0 escapes; quantile scale)\"\n");
    else
        fprintf(f, "set cblabel \"η / η*(B)\\n(< 1 stable, > 1 escapes; "
                "log scale)\"\n");
    double xlo = pp->cell[0][0], xhi = pp->cell[1][pp->nb - 1];
    double ylo = pp->cell[2][0], yhi = pp->cell[3][pp->nl - 1];
    if (o->log_batch) {
        fprintf(f, "set logscale x\n");
        cli_plot_log_tics(f, "x", xlo, xhi);
    }
    if (o->log_lr) {
        fprintf(f, "set logscale y\n");
        cli_plot_log_tics(f, "y", ylo, yhi);
    }
    fprintf(f, "set xrange [%.17g:%.17g]\nset yrange [%.17g:%.17g]\n", xlo,
            xhi, ylo, yhi);
    fprintf(f, "set cbrange [-1:1]\n");
    colour_tics(f, cs, o->style.color, gap);
    fprintf(f, "set palette defined (0 '#2166ac', 0.25 '#92c5de', "
            "0.5 '#f7f7f7', 0.75 '#f4a582', 1 '#b2182b')\n");
    /* grey behind the cells: gaps between them are no data, not rate 0 */
    fprintf(f, "set object 1 rectangle from graph 0,0 to graph 1,1 behind "
            "fc rgb '#d0d0d0' fs solid noborder\n");
    fprintf(f, "set tics out\nset grid front lc rgb '#bbbbbb' lw 0.5\n");
}

/* The closed-form curves at every batch size, or at 400 log-spaced. */
static void write_theory(FILE *f, const cli_plot_options *o, size_t lo,
                         size_t hi)
{
    size_t prev = 0, count = hi - lo + 1 > 400 ? 400 : hi - lo + 1;
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

/* Data blocks: cells (x y xlow xhigh ylow yhigh colour), the boundary at
 * the solved batch sizes (the cells' centres), the theory's curves. */
static void write_data(FILE *f, const phase_picture *pp,
                       const colour_scale *cs)
{
    const sgdstab_phase_boundary *bd = pp->bd;
    size_t nb = pp->nb, nl = pp->nl;
    fprintf(f, "$cells << EOD\n");
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < nl; j++) {
            const sgdstab_phase_point *pt = &pp->grid[i * nl + j];
            double c = colour(cs, quantity(pp->o, &bd[i], pt));
            fprintf(f, "%.17g %.17g %.17g %.17g %.17g %.17g ",
                    row_x(pp->o, &bd[i]), pp->lrs[j], pp->cell[0][i],
                    pp->cell[1][i], pp->cell[2][j], pp->cell[3][j]);
            number(f, c, "\n");
        }
    fprintf(f, "EOD\n$boundary << EOD\n");
    for (size_t i = 0; i < nb; i++) {
        fprintf(f, "%.17g ", row_x(pp->o, &bd[i]));
        number(f, bd[i].critical.kind == SGDSTAB_MINIMUM_OK
                      ? bd[i].critical.lr_critical : NAN, " ");
        number(f, bd[i].lr_critical_mean, " ");
        number(f, bd[i].lr_lyapunov, "\n");
    }
    fprintf(f, "EOD\n");
    if (pp->o->theory)
        write_theory(f, pp->o, bd[0].batch, bd[nb - 1].batch);
}

static void write_script(FILE *f, void *ctx)
{
    const phase_picture *pp = ctx;
    colour_scale cs;
    if (make_scale(pp->o, pp->bd, pp->grid, pp->nb, pp->nl, &cs))
        return;
    write_frame(f, pp, &cs);
    write_data(f, pp, &cs);
    fprintf(f, "plot $cells using 1:2:3:4:5:6:7 with boxxyerror "
            "fs solid 1.0 noborder lc palette notitle");
    for (size_t k = 0; k < NCURVES; k++) {
        int i = CURVE_ORDER[k];
        if (pp->curves & 1u << i)
            fprintf(f, ", \\\n  %s using 1:%d with %s title '%s'",
                    CURVES[i].block, CURVES[i].column, CURVES[i].style,
                    curve_label(pp->o, (size_t)i));
    }
    fputc('\n', f);
}

int cli_phase_files_open(const char *cmd, const char *grid,
                         const char *boundary, const char *plot,
                         cli_phase_files *pf)
{
    memset(pf, 0, sizeof *pf);
    pf->plot_path = plot;
    if (plot && cli_plot_format(plot) < 0)
        return cli_usage_error(cmd, "--plot: %s: the picture's name must end "
                               "in .png or .svg", plot);
    sgdstab_outfile_group_begin();
    pf->grouped = 1;
    if ((grid && !(pf->grid = cli_csv_open(grid))) ||
        (boundary && !(pf->boundary = cli_csv_open(boundary))) ||
        (plot && !(pf->plot = cli_csv_open(plot)))) {
        cli_phase_files_abort(pf);
        return EXIT_DATA;
    }
    return EXIT_OK;
}

void cli_phase_files_abort(cli_phase_files *pf)
{
    sgdstab_outfile_abort(pf->grid);
    sgdstab_outfile_abort(pf->boundary);
    sgdstab_outfile_abort(pf->plot);
    if (pf->grouped)
        sgdstab_outfile_group_abort();
    memset(pf, 0, sizeof *pf);
}

/* The picture: the cells' edges, the curves there are data for. */
static int draw(const char *cmd, cli_phase_files *pf,
                const cli_plot_options *o, const sgdstab_phase_boundary *bd,
                size_t nb, const sgdstab_phase_point *grid, const double *lrs,
                size_t nl)
{
    phase_picture pp = {o, bd, nb, nl, grid, lrs, {NULL}, o->style.curves};
    double *bx = malloc(nb * sizeof *bx);
    for (int k = 0; k < 4; k++)
        pp.cell[k] = malloc((k < 2 ? nb : nl) * sizeof(double));
    int status = EXIT_DATA;
    if (bx && pp.cell[0] && pp.cell[1] && pp.cell[2] && pp.cell[3]) {
        for (size_t i = 0; i < nb; i++)
            bx[i] = row_x(o, &bd[i]);
        cell_edges(bx, nb, o->log_batch, pp.cell[0], pp.cell[1]);
        cell_edges(lrs, nl, o->log_lr, pp.cell[2], pp.cell[3]);
        if (!o->theory)
            pp.curves &= ~(unsigned)CLI_CURVES_THEORY;
        if (!o->lyapunov)
            pp.curves &= ~(unsigned)CLI_CURVE_LYAPUNOV;
        status = cli_gnuplot(cmd, pf->plot_path, pf->plot, o->width,
                             o->height, write_script, &pp);
    } else {
        cli_data_error(cmd, NULL, "out of memory");
    }
    free(bx);
    for (int k = 0; k < 4; k++)
        free(pp.cell[k]);
    return status;
}

int cli_phase_files_write(const char *cmd, cli_phase_files *pf,
                          const cli_plot_options *o,
                          const sgdstab_phase_boundary *bd, size_t nb,
                          const sgdstab_phase_point *grid, const double *lrs,
                          size_t nl)
{
    int status = EXIT_OK;
    if (pf->grid)
        write_grid(sgdstab_outfile_stream(pf->grid), grid, nb * nl, o);
    if (pf->boundary)
        write_boundary(sgdstab_outfile_stream(pf->boundary), bd, nb, o);
    if (pf->plot && nb > 0 && nl > 0)
        status = draw(cmd, pf, o, bd, nb, grid, lrs, nl);
    /* Everything is in the temporary files: install them all, or none. */
    sgdstab_outfile **files[3] = {&pf->grid, &pf->boundary, &pf->plot};
    for (int i = 0; i < 3 && !status; i++)
        if (*files[i]) {
            status = cli_csv_commit(*files[i]);
            *files[i] = NULL;
        }
    if (status) {
        cli_phase_files_abort(pf);
        return status;
    }
    memset(pf, 0, sizeof *pf);
    return cli_outputs_commit();
}
