/* sgdstab phase FILE --batch LIST --lr SPEC: the stability phase diagram. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "phase_output.h"
#include "plot.h"
#include "progress.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/phase.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"
#include "sgdstab/theory.h"

static const char PHASE_HELP[] =
    "Usage: sgdstab phase FILE --batch LIST --lr SPEC [--sampling S]\n"
    "                     [--csv F] [--boundary-csv F] [--json]\n"
    "                     [--plot F.png|F.svg] [--plot-size W,H] [--quiet]\n"
    "                     [--title T] [--legend L] [--curves LIST]\n"
    "                     [--color rate|relative] [--color-range LO:HI]\n"
    "                     [--hessian H.npy] [--loss L] [--rank-tol RTOL]\n"
    "                     [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                     [--params P]\n"
    "                     [--optimizer O] [--momentum BETA] [--nesterov] ...\n"
    "                     [--lyapunov [--runs R] [--steps T] [--seed S]\n"
    "                     [--threads N]]\n"
    "       sgdstab phase FILE --batch B --momentum LIST --lr SPEC [...]\n"
    "\n"
    "The stability phase diagram over batch size B and learning rate eta: at\n"
    "every grid point the exact spectral radius rho of the second-moment map\n"
    "T on the range and the escape rate ln rho per step and (n/B) ln rho per\n"
    "epoch (< 0: SGD stays, > 0: it leaves at that exponential rate); for\n"
    "every B the exact boundary eta*(B) (an eigenproblem, not read off the\n"
    "grid), the mean-stability limit 2/lambda_max(H) and, when H = G, the\n"
    "theory's learning-rate limits (see 'sgdstab verify').  A point is stable\n"
    "exactly when eta <= eta*(B).  All solves share one factorization and\n"
    "warm-started eigensolver bases.\n"
    "\n"
    "With --momentum LIST (two or more values) and one batch size B, the rows\n"
    "are momenta instead of batch sizes: the (beta, eta) diagram with the\n"
    "exact boundary eta*(beta) and the noise-free limit of each beta; the\n"
    "first column of the tables is then momentum, and the JSON adds\n"
    "\"momenta\" and a \"momentum\" key to every point and row.  The other\n"
    "optimizer options apply to every row; the theory's limits are plain\n"
    "SGD's and are left out with any optimizer but plain SGD.\n"
    "\n"
    "With --lyapunov, the typical run beside the mean square: at every grid\n"
    "point the top Lyapunov exponent lambda_1 of the random product of the\n"
    "steps, per step, by Monte Carlo ('sgdstab simulate --lyapunov': R runs\n"
    "of T steps, the same seed at every point), and per row the learning\n"
    "rate where lambda_1 first turns >= 0 going up eta, interpolated in\n"
    "ln eta between the two grid points around it: the Monte Carlo boundary.\n"
    "lambda_1 <= (1/2) ln rho, so it lies at or above eta*(B); between the two\n"
    "the mean square diverges (through rare runs) while almost every run\n"
    "stays.  Its accuracy is the grid's spacing and lambda_1's standard error\n"
    "(in the CSV and JSON), not the exact engine's.\n"
    "\n"
    "Options:\n"
    "  --batch LIST      batch sizes: 1,2,4,8 | all | A:B | A:B:log |\n"
    "                    A:B:N:log (as for 'sgdstab critical')  (required)\n"
    "  --lr SPEC         learning rates: A:B:N (N evenly spaced, A and B\n"
    "                    included), A:B:N:log (log-spaced), A:B or A:B:log\n"
    "                    (N = 40), or a list 0.1,0.5,2; 0 < A < B  (required)\n"
    CLI_HELP_SAMPLING
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "  --momentum LIST   also: 0,0.5,0.9 or A:B:N (N evenly spaced), each in\n"
    "                    [0, 1): the rows of a (beta, eta) diagram\n"
    "  --csv F           the grid, one row per point: batch,lr,\n"
    "                    spectral_radius,escape_rate_per_step,\n"
    "                    escape_rate_per_epoch,stable (true/false), and with\n"
    "                    --lyapunov lyapunov_exponent,lyapunov_stderr; rows\n"
    "                    by batch, then lr, ascending\n"
    "  --boundary-csv F  one row per batch size: batch,lr_critical,\n"
    "                    lr_critical_mean,wu_ma_e,wu_wang_su,\n"
    "                    mulayoff_michaeli_top,mulayoff_michaeli_trace (the\n"
    "                    exact eta*(B), 2/lambda_max(H), Wu-Ma-E's condition\n"
    "                    1/(s sqrt b), Wu-Wang-Su's 1/(|H|_F sqrt(b mu_min))\n"
    "                    and the two Mulayoff-Michaeli bounds; nan when H is\n"
    "                    supplied), and with --lyapunov lr_lyapunov (the\n"
    "                    Monte Carlo boundary; nan when not within the grid)\n"
    "                    and lyapunov_crossing (inside, below: lambda_1 >= 0\n"
    "                    at the smallest eta; above: lambda_1 < 0 at all;\n"
    "                    unknown: no finite estimate)\n"
    "  --json            JSON on stdout: {\"file\", \"n\", \"k\", \"p\", \"input\",\n"
    "                    \"rank\",\n"
    "                    \"sampling\", \"loss_scale\", \"optimizer\" (as for\n"
    "                    analyze), \"lr_critical_mean\",\n"
    "                    \"batches\", \"lrs\", \"grid\": [{\"batch\", \"lr\",\n"
    "                    \"spectral_radius\", \"escape_rate_per_step\",\n"
    "                    \"escape_rate_per_epoch\", \"stable\"}, ...],\n"
    "                    \"boundary\": [{the --boundary-csv columns}, ...],\n"
    "                    \"seconds\", \"solves\", \"operator_applications\"\n"
    "                    (of the noise operator, in all)}; with --lyapunov\n"
    "                    also \"lyapunov\": {\"runs\", \"steps\", \"seed\",\n"
    "                    \"seconds\"}, lyapunov_exponent and lyapunov_stderr\n"
    "                    in every point, lr_lyapunov and lyapunov_crossing in\n"
    "                    every boundary row\n"
    "  --plot F          draw the diagram with gnuplot to F (.png or .svg): a\n"
    "                    heat map over (B, eta), each cell centred on its grid\n"
    "                    point, with the exact boundary eta*(B) through the\n"
    "                    centres of the cells of the batch sizes solved, the\n"
    "                    mean limit and the theory curves; log axes where the\n"
    "                    grid is logarithmic (labelled 1-2-5 tics)\n"
    "  --plot-size W,H   picture size in pixels (default 960,720; at least\n"
    "                    640,480)\n"
    "  --title T         the picture's title (default: FILE's base name, n,\n"
    "                    p, sampling and loss)\n"
    "  --legend L        where the curves' legend goes: below (default;\n"
    "                    under the plot and its axis label), top-left,\n"
    "                    top-right, bottom-left, bottom-right (inside the\n"
    "                    plot, over the cells) or none\n"
    "  --curves LIST     the curves drawn, comma-separated: exact (eta*(B)),\n"
    "                    mean (2/lambda_max(H)), wu-ma-e, wu-wang-su, mm-top,\n"
    "                    mm-trace (Mulayoff-Michaeli), lyapunov (the Monte\n"
    "                    Carlo boundary), or all (default) or none; the\n"
    "                    theory curves exist only when H = G\n"
    "  --color Q         what the colour shows: rate (default), the escape\n"
    "                    rate ln rho per step, blue < 0 (stable), white 0,\n"
    "                    red > 0 (escapes), on a quantile scale: the knots\n"
    "                    of each side are the quantiles of |ln rho| there,\n"
    "                    so that slow rates (-1e-7) show beside fast ones\n"
    "                    (the colour bar's labels give the rates); or\n"
    "                    relative, eta/eta*(B) on a log scale, white at 1,\n"
    "                    blue below (stable), red above, symmetric ends\n"
    "  --color-range LO:HI  the values at the ends of the colour bar; beyond\n"
    "                    them colours saturate: escape rates with LO < 0 < HI\n"
    "                    (the quantile knots are taken within), or eta/eta*\n"
    "                    with 0 < LO < 1 < HI\n"
    "  --lyapunov        add the Monte Carlo lambda_1 and its boundary\n"
    "  --runs R          its runs per grid point (default 8, at least 2)\n"
    "  --steps T         its steps per run, at least 10 (default 2000; the\n"
    "                    first T/10 are left out of the average)\n"
    "  --seed S          its random seed, 0 to 2^32 - 1 (default 1)\n"
    "  --threads N       its worker threads (default: one per processor)\n"
    "  --quiet           no progress bar (it is drawn only when stderr is a\n"
    "                    terminal)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Output files are written whole or not at all (also on Ctrl-C).\n";

enum { OPT_BOUNDARY_CSV = OPT_FIRST_PRIVATE, OPT_PLOT, OPT_PLOT_SIZE,
       OPT_LR_SPEC, OPT_TITLE, OPT_LEGEND, OPT_CURVES, OPT_COLOR,
       OPT_COLOR_RANGE, OPT_LYAPUNOV, OPT_RUNS, OPT_THREADS };

typedef struct {
    const sgdstab_problem *prob;
    const sgdstab_reduced *red;
    const cli_args *a;
    double scale, seconds;
    size_t solves;
    const sgdstab_config *cfg;
    const size_t *batches;
    size_t nb;
    const double *momenta;      /* the rows when nm > 0 (nb = 1) */
    size_t nm;
    const double *lrs;
    size_t nl;
    const sgdstab_phase_boundary *bd;
    const sgdstab_phase_point *grid;
    int theory;
    const sgdstab_lyapunov_options *lyapunov;  /* NULL: no Monte Carlo */
    double lyapunov_seconds;
} phase_report;

/* Rows of the diagram: momenta or batch sizes. */
static size_t rows_of(const phase_report *r)
{
    return r->nm ? r->nm : r->nb;
}

static int print_json(const phase_report *r)
{
    cJSON *o = cli_json_problem(r->prob);
    cli_json_size(o, "rank", r->red->rank_J);
    cJSON_AddStringToObject(o, "sampling",
                            sgdstab_sampling_name(r->a->sampling));
    cli_json_number(o, "loss_scale", r->scale);
    cli_json_optimizer(o, r->cfg);
    const size_t rows = rows_of(r);
    cli_json_number(o, "lr_critical_mean",
                    rows ? r->bd[0].lr_critical_mean : NAN);
    size_t applications = 0;
    for (size_t i = 0; i < rows; i++)
        applications += r->bd[i].critical.matvecs;
    for (size_t i = 0; i < rows * r->nl; i++)
        applications += r->grid[i].radius.matvecs;
    cli_json_size(o, "operator_applications", applications);
    cJSON *bs = cJSON_AddArrayToObject(o, "batches");
    for (size_t i = 0; i < r->nb; i++)
        cJSON_AddItemToArray(bs, cJSON_CreateNumber((double)r->batches[i]));
    if (r->nm) {
        cJSON *ms = cJSON_AddArrayToObject(o, "momenta");
        for (size_t i = 0; i < r->nm; i++)
            cJSON_AddItemToArray(ms, cli_json_value(r->momenta[i]));
    }
    cJSON *ls = cJSON_AddArrayToObject(o, "lrs");
    for (size_t j = 0; j < r->nl; j++)
        cJSON_AddItemToArray(ls, cli_json_value(r->lrs[j]));
    cJSON *g = cJSON_AddArrayToObject(o, "grid");
    static const char *const point_keys[] = {
        "batch", "lr", "spectral_radius", "escape_rate_per_step",
        "escape_rate_per_epoch"};
    for (size_t i = 0; i < rows * r->nl; i++) {
        const sgdstab_phase_point *pt = &r->grid[i];
        const double values[] = {(double)pt->batch, pt->lr, pt->radius.rho,
                                 pt->escape_rate_per_step,
                                 pt->escape_rate_per_epoch};
        cJSON *e = cli_json_append_object(g);
        cli_json_numbers(e, 5, point_keys, values);
        cJSON_AddBoolToObject(e, "stable", pt->stable);
        if (r->lyapunov) {
            cli_json_number(e, "lyapunov_exponent", pt->lyapunov);
            cli_json_number(e, "lyapunov_stderr", pt->lyapunov_stderr);
        }
        if (r->nm)
            cli_json_number(e, "momentum", pt->momentum);
    }
    cJSON *b = cJSON_AddArrayToObject(o, "boundary");
    for (size_t i = 0; i < rows; i++) {
        const sgdstab_phase_boundary *bd = &r->bd[i];
        cJSON *e = cli_json_append_object(b);
        cli_json_size(e, "batch", bd->batch);
        if (r->nm)
            cli_json_number(e, "momentum", bd->momentum);
        cli_json_number(e, "lr_critical", cli_phase_boundary_lr(bd));
        cli_json_number(e, "lr_critical_mean", bd->lr_critical_mean);
        cli_json_number(e, "wu_ma_e", bd->bounds.wu_ma_e);
        cli_json_number(e, "wu_wang_su", bd->bounds.wu_wang_su);
        cli_json_number(e, "mulayoff_michaeli_top",
                        bd->bounds.mulayoff_michaeli_top);
        cli_json_number(e, "mulayoff_michaeli_trace",
                        bd->bounds.mulayoff_michaeli_trace);
        if (r->lyapunov) {
            cli_json_number(e, "lr_lyapunov", bd->lr_lyapunov);
            cJSON_AddStringToObject(e, "lyapunov_crossing",
                                    cli_lyapunov_crossing(bd));
        }
    }
    if (r->lyapunov) {
        cJSON *l = cJSON_AddObjectToObject(o, "lyapunov");
        cli_json_size(l, "runs", r->lyapunov->runs);
        cli_json_size(l, "steps", r->lyapunov->steps);
        cli_json_size(l, "seed", r->lyapunov->seed);
        cli_json_number(l, "seconds", r->lyapunov_seconds);
    }
    cli_json_number(o, "seconds", r->seconds);
    cli_json_size(o, "solves", r->solves);
    return cli_json_print(o);
}

static void print_text(const phase_report *r)
{
    printf("%s: n = %zu, k = %zu, p = %s, rank %zu; sampling %s; loss %s\n",
           r->prob->source, r->prob->n, r->prob->k, cli_params(r->prob->p).s,
           r->red->r,
           sgdstab_sampling_name(r->a->sampling), r->a->loss);
    cli_print_optimizer(r->a, r->cfg);
    const size_t rows = rows_of(r);
    size_t stable = 0;
    for (size_t i = 0; i < rows * r->nl; i++)
        stable += r->grid[i].stable != 0;
    printf("phase diagram: %zu %s x %zu learning rates; %zu of %zu points "
           "stable; %zu solves in %.2f s\n", rows,
           r->nm ? "momenta" : "batch sizes", r->nl, stable, rows * r->nl,
           r->solves, r->seconds);
    printf("The optimizer stays at the minimum exactly for eta <= eta*; "
           "above it the mean-square distance grows by rho per step.\n\n");
    const int lifted = r->nm || sgdstab_optimizer_lifted(&r->cfg->optimizer);
    if (r->lyapunov)
        printf("Monte Carlo: lambda_1 of %zu runs x %zu steps per point "
               "(seed %lu, %.2f s); eta_L, where it turns >= 0, is the "
               "typical run's boundary.\n\n", r->lyapunov->runs,
               r->lyapunov->steps, r->lyapunov->seed, r->lyapunov_seconds);
    printf("%8s  %18s  %18s%s%s\n", r->nm ? "momentum" : "batch",
           r->nm ? "eta*(beta)" : "eta*(B)",
           lifted ? "noise-free limit" : "2/lambda_max(H)",
           r->theory ? "  Wu-Wang-Su bound    MM bound (top)" : "",
           r->lyapunov ? "     eta_L (lambda_1 = 0)" : "");
    for (size_t i = 0; i < rows; i++) {
        const sgdstab_phase_boundary *bd = &r->bd[i];
        if (r->nm)
            printf("%8.4g", bd->momentum);
        else
            printf("%8zu", bd->batch);
        printf("  %18.10g  %18.10g", cli_phase_boundary_lr(bd),
               bd->lr_critical_mean);
        if (r->theory)
            printf("  %16.10g  %16.10g", bd->bounds.wu_wang_su,
                   bd->bounds.mulayoff_michaeli_top);
        if (r->lyapunov && bd->crossing == SGDSTAB_CROSSING_INSIDE)
            printf("  %23.6g", bd->lr_lyapunov);
        else if (r->lyapunov && bd->crossing == SGDSTAB_CROSSING_UNKNOWN)
            printf("  %23s", "unknown");
        else if (r->lyapunov)
            printf("  %10s %12.6g",
                   bd->crossing == SGDSTAB_CROSSING_BELOW ? "<" : ">",
                   r->lrs[bd->crossing == SGDSTAB_CROSSING_BELOW ? 0
                                                                 : r->nl - 1]);
        printf("\n");
    }
    if (rows > 60 || r->nl > 60)
        return;
    printf("\nmap ('.' stable, '#' unstable%s; eta grows upwards, %s to "
           "the right):\n", r->lyapunov ? ", 'o' unstable in mean square "
           "while lambda_1 < 0: the typical run stays" : "",
           r->nm ? "beta" : "B");
    for (size_t jj = r->nl; jj-- > 0;) {
        printf("%12.4g  ", r->lrs[jj]);
        for (size_t i = 0; i < rows; i++) {
            const sgdstab_phase_point *pt = &r->grid[i * r->nl + jj];
            putchar(pt->stable ? '.' : pt->lyapunov < 0 ? 'o' : '#');
        }
        putchar('\n');
    }
    if (r->nm)
        printf("%12s  beta = %g .. %g at B = %zu\n", "", r->momenta[0],
               r->momenta[r->nm - 1], r->batches[0]);
    else
        printf("%12s  B = %zu .. %zu\n", "", r->batches[0],
               r->batches[r->nb - 1]);
}

/* What the options ask for. */
typedef struct {
    cli_args args;
    const char *lr_spec, *boundary_csv, *plot, *color_range;
    double *momenta;            /* --momentum LIST of two or more values */
    size_t nm;
    int width, height, quiet;
    int lyapunov, monte_carlo_given;  /* --lyapunov; --runs and co. */
    sgdstab_lyapunov_options lyap;
    cli_phase_style style;
} phase_request;

static int ascending(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* --momentum LIST: one value (the optimizer's momentum) or several, the
 * rows of a (beta, eta) diagram: a comma-separated list or A:B:N (N evenly
 * spaced, A and B included), each in [0, 1); sorted, without repeats. */
static int parse_momenta(cli_args *a, const char *text, double **out,
                         size_t *m)
{
    char q[CLI_QUOTE_SIZE];
    double lo, hi;
    size_t count = 0;
    char tail;
    int range = sscanf(text, "%lf:%lf:%zu%c", &lo, &hi, &count, &tail) == 3;
    size_t cap = range ? count : 1 + strlen(text) / 2;
    if (range && (count < 2 || count > 10000 || !(lo < hi)))
        return cli_usage_error(a->cmd, "--momentum: '%s' is not A:B:N with "
                               "A < B and 2 <= N <= 10000",
                               cli_quote(text, q, sizeof q));
    double *v = malloc(cap * sizeof *v);
    if (!v)
        return cli_data_error(a->cmd, NULL, "out of memory");
    *m = 0;
    if (range) {
        for (size_t i = 0; i < count; i++)
            v[i] = lo + (hi - lo) * (double)i / (double)(count - 1);
        *m = count;
    } else {
        char buf[64];
        for (const char *p = text;; p++) {  /* p++ skips the comma */
            size_t len = strcspn(p, ",");
            if (len == 0 || len >= sizeof buf) {
                free(v);
                return cli_usage_error(a->cmd, "--momentum: '%s' is not a "
                                       "list of numbers",
                                       cli_quote(text, q, sizeof q));
            }
            memcpy(buf, p, len);
            buf[len] = '\0';
            if (cli_parse_double(a->cmd, "momentum", buf, &v[(*m)++])) {
                free(v);
                return EXIT_USAGE;
            }
            p += len;
            if (!*p)
                break;
        }
    }
    qsort(v, *m, sizeof *v, ascending);
    size_t k = 0;
    for (size_t i = 0; i < *m; i++) {
        if (!(v[i] >= 0 && v[i] < 1)) {
            double bad = v[i];
            free(v);
            return cli_usage_error(a->cmd, "--momentum: %g is not in [0, 1)",
                                   bad);
        }
        if (k == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    }
    *m = k;
    a->optimizer.momentum = v[0];
    a->optimizer_given = 1;
    a->optimizer_set |= CLI_SET_MOMENTUM;
    if (k > 1) {
        *out = v;
        return EXIT_OK;
    }
    free(v);
    *m = 0;
    return EXIT_OK;
}

static int parse_options(int argc, char **argv, phase_request *rq)
{
    static const struct option opts[] = {
        CLI_OPT_BATCH, CLI_ARG("lr", OPT_LR_SPEC), CLI_OPT_SAMPLING,
        CLI_OPT_LOSS, CLI_OPT_HESSIAN, CLI_OPT_RANK_TOL,
        CLI_OPT_NEGATIVE_CURVATURE, CLI_OPTS_PROBLEM_SIZE, CLI_OPT_JSON,
        CLI_OPT_CSV, CLI_ARG("boundary-csv", OPT_BOUNDARY_CSV),
        CLI_ARG("plot", OPT_PLOT), CLI_ARG("plot-size", OPT_PLOT_SIZE),
        CLI_OPT_QUIET, CLI_ARG("title", OPT_TITLE),
        CLI_ARG("legend", OPT_LEGEND), CLI_ARG("curves", OPT_CURVES),
        CLI_ARG("color", OPT_COLOR), CLI_ARG("color-range", OPT_COLOR_RANGE),
        CLI_OPTS_OPTIMIZER, CLI_FLAG("lyapunov", OPT_LYAPUNOV),
        CLI_ARG("runs", OPT_RUNS), CLI_OPT_STEPS, CLI_OPT_SEED,
        CLI_ARG("threads", OPT_THREADS), CLI_OPT_HELP, CLI_OPT_END};
    cli_args *a = &rq->args;
    sgdstab_lyapunov_options *l = &rq->lyap;
    int c, bad = 0;
    while ((c = cli_getopt(argc, argv, a->cmd, opts)) != -1) {
        switch (c) {
        case 'h':
            fputs(PHASE_HELP, stdout);
            return CLI_HELP_SHOWN;
        case OPT_LR_SPEC: rq->lr_spec = optarg; break;
        case OPT_BOUNDARY_CSV: rq->boundary_csv = optarg; break;
        case OPT_PLOT: rq->plot = optarg; break;
        case OPT_QUIET: rq->quiet = 1; break;
        case OPT_PLOT_SIZE:
            bad = cli_parse_plot_size(a->cmd, optarg, &rq->width, &rq->height);
            break;
        case OPT_TITLE:
            bad = cli_check_title(a->cmd, optarg);
            rq->style.title = optarg;
            break;
        case OPT_LEGEND:
            bad = cli_parse_legend(a->cmd, optarg, &rq->style.legend);
            break;
        case OPT_CURVES:
            bad = cli_parse_curves(a->cmd, optarg, &rq->style.curves);
            break;
        case OPT_COLOR:
            bad = cli_parse_color(a->cmd, optarg, &rq->style.color);
            break;
        case OPT_COLOR_RANGE: rq->color_range = optarg; break;
        case OPT_LYAPUNOV: rq->lyapunov = 1; break;
        case OPT_RUNS:
            bad = cli_parse_size(a->cmd, "runs", optarg, 2, &l->runs);
            rq->monte_carlo_given = 1;
            break;
        case OPT_STEPS:
            bad = cli_parse_size(a->cmd, "steps", optarg, 10, &l->steps);
            rq->monte_carlo_given = 1;
            break;
        case OPT_SEED:
            bad = cli_parse_seed(a->cmd, optarg, &l->seed);
            rq->monte_carlo_given = 1;
            break;
        case OPT_THREADS:
            bad = cli_parse_size(a->cmd, "threads", optarg, 1, &l->threads);
            rq->monte_carlo_given = 1;
            break;
        case OPT_MOMENTUM:
            free(rq->momenta);
            rq->momenta = NULL;
            bad = parse_momenta(a, optarg, &rq->momenta, &rq->nm);
            break;
        default:
            bad = cli_common_option(a, c, optarg);
        }
        if (bad)
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The checks before any file is read, in the order their usage errors
 * come; the learning rates of --lr (*lrs malloc'd). */
static int check_options(phase_request *rq, double **lrs, size_t *nl,
                         int *log_lr)
{
    cli_args *a = &rq->args;
    const char *outputs[] = {a->csv, rq->boundary_csv, rq->plot};
    if (cli_require(a, 0, 1) || cli_check_outputs(a, NULL, outputs, 3))
        return EXIT_USAGE;
    if (rq->monte_carlo_given && !rq->lyapunov)
        return cli_usage_error(a->cmd, "--runs, --steps, --seed and "
                               "--threads need --lyapunov (they set its "
                               "Monte Carlo)");
    if (rq->color_range &&
        cli_parse_color_range(a->cmd, rq->color_range, rq->style.color,
                              rq->style.color_range))
        return EXIT_USAGE;
    if (!rq->lr_spec)
        return cli_usage_error(a->cmd, "--lr is required (see --help)");
    if (cli_parse_lrs(a->cmd, rq->lr_spec, lrs, nl, log_lr))
        return EXIT_USAGE;
    const char *plot = rq->plot;
    if (plot && (cli_plot_format(plot) < 0 || cli_plot_check(a->cmd))) {
        free(*lrs);
        *lrs = NULL;
        return cli_plot_format(plot) < 0
            ? cli_usage_error(a->cmd, "--plot: %s: the picture's name must "
                              "end in .png or .svg", plot)
            : EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The diagram over --batch (or --momentum) x lrs, written to the files of
 * pf and printed; the session open. */
static int diagram(phase_request *rq, const cli_session *ses,
                   cli_phase_files *pf, const double *lrs, size_t nl,
                   int log_lr)
{
    cli_args *a = &rq->args;
    size_t *batches = NULL, nb = 0;
    sgdstab_phase_boundary *bd = NULL;
    sgdstab_phase_point *grid = NULL;
    int status = cli_parse_batches(a->cmd, a->batch, ses->prob->n, &batches,
                                   &nb);
    sgdstab_config largest = ses->cfg;
    largest.batch = nb > 0 ? batches[nb - 1] : 1;
    if (!status)
        status = cli_config_check(a, ses->red, &largest,
                                  SGDSTAB_USES_BATCH | SGDSTAB_USES_STEP_MAP);
    if (!status && rq->nm && nb != 1)
        status = cli_usage_error(a->cmd, "--momentum with a list draws the "
                                 "(beta, eta) diagram at one batch size, not "
                                 "%zu", nb);
    const size_t rows = rq->nm ? rq->nm : nb;
    if (!status && rows * nl > 10000000)
        status = cli_usage_error(a->cmd, "a grid of %zu x %zu points is too "
                                 "large", rows, nl);
    if (!status && (!(bd = calloc(rows, sizeof *bd)) ||
                    !(grid = calloc(rows * nl, sizeof *grid))))
        status = cli_data_error(a->cmd, NULL, "out of memory");
    if (status)
        goto done;

    /* The theory's limits are plain SGD's. */
    const int lifted =
        rq->nm > 0 || sgdstab_optimizer_lifted(&ses->cfg.optimizer);
    sgdstab_theory th;
    sgdstab_error err;
    int have_theory =
        !lifted && ses->red->G == NULL && ses->red->hessian_min >= 0 &&
        sgdstab_theory_compute(ses->red, &ses->cfg, &th, &err) == 0;
    cli_progress prog;
    cli_progress_init(&prog, "phase", rq->quiet);
    double t0 = cli_seconds();
    const sgdstab_phase_axes ax = {.batches = batches, .nb = nb, .lrs = lrs,
                                   .nl = nl, .progress = cli_progress_update,
                                   .progress_ctx = &prog,
                                   .momenta = rq->momenta, .nm = rq->nm};
    int st = rq->lyapunov ? sgdstab_phase_lyapunov_check(ses->red, &ses->cfg,
                                                         &ax, &rq->lyap, &err)
                          : SGDSTAB_OK;
    if (!st)
        st = sgdstab_phase_compute(ses->stab, have_theory ? &th : NULL,
                                   &ses->cfg, &ax, bd, grid, &err);
    cli_progress_finish(&prog);
    double t1 = cli_seconds();
    if (!st && rq->lyapunov) {
        cli_progress_init(&prog, "lyapunov", rq->quiet);
        st = sgdstab_phase_lyapunov(ses->red, ses->prob, &ses->cfg, &ax,
                                    &rq->lyap, bd, grid, &err);
        cli_progress_finish(&prog);
    }
    if (st) {
        status = cli_report_file(a->file, &err);
        goto done;
    }
    phase_report rep = {ses->prob, ses->red, a, ses->cfg.loss_scale,
                        t1 - t0, rows * (nl + 1), &ses->cfg,
                        batches, nb, rq->momenta, rq->nm, lrs, nl, bd, grid,
                        have_theory, rq->lyapunov ? &rq->lyap : NULL,
                        cli_seconds() - t1};
    char title[512];
    cli_phase_title(title, sizeof title, ses->prob->source, ses->prob->n,
                    ses->prob->p, a->sampling, a->loss);
    if (rq->nm) {  /* the batch size of every row */
        size_t len = strlen(title);
        snprintf(title + len, sizeof title - len, ", B = %zu", batches[0]);
    }
    cli_phase_style style = rq->style;
    if (!style.title)
        style.title = title;
    cli_plot_options po = {.style = style, .width = rq->width,
                           .height = rq->height,
                           .log_batch = !rq->nm &&
                                        cli_log_spaced_sizes(batches, nb),
                           .log_lr = log_lr, .momentum_axis = rq->nm > 0,
                           .lifted = lifted, .sampling = a->sampling,
                           .n = ses->prob->n,
                           .theory = have_theory ? &th : NULL,
                           .lyapunov = rq->lyapunov};
    status = cli_phase_files_write(a->cmd, pf, &po, bd, rows, grid, lrs, nl);
    if (!status && a->json)
        status = print_json(&rep);
    else if (!status)
        print_text(&rep);
done:
    free(grid);
    free(bd);
    free(batches);
    return status;
}

int cmd_phase(int argc, char **argv)
{
    phase_request rq = {.width = 960, .height = 720,
                        .lyap = SGDSTAB_LYAPUNOV_DEFAULTS};
    cli_args_init(&rq.args, "phase");
    cli_phase_style_init(&rq.style);
    double *lrs = NULL;
    size_t nl = 0;
    int log_lr;
    int status = parse_options(argc, argv, &rq);
    if (!status)
        status = check_options(&rq, &lrs, &nl, &log_lr);
    cli_phase_files pf;
    if (!status && cli_phase_files_open(rq.args.cmd, rq.args.csv,
                                        rq.boundary_csv, rq.plot, &pf))
        status = EXIT_DATA;
    else if (!status) {
        cli_session ses;
        status = cli_session_open(&rq.args, 0, SGDSTAB_USES_STEP_MAP, &ses);
        if (!status) {
            status = diagram(&rq, &ses, &pf, lrs, nl, log_lr);
            cli_session_close(&ses);
        }
        cli_phase_files_abort(&pf);
    }
    free(lrs);
    free(rq.momenta);
    return status == CLI_HELP_SHOWN ? EXIT_OK : status;
}
