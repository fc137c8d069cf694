/* sgdstab bench: speed on a random problem, as ratios to this machine's
 * DGEMM rate measured in the same run. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/eig.h"
#include "sgdstab/moments.h"
#include "sgdstab/npy.h"
#include "sgdstab/phase.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/rng.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "sgdstab/stationary.h"
#include "sgdstab/status.h"

/* Runs of each timing whose fastest is reported (BENCH_HELP). */
enum { BENCH_RUNS = 3 };

enum {
    OPT_SAMPLES = OPT_FIRST_PRIVATE, OPT_PARAMS, OPT_OUTPUTS, OPT_CURVE, OPT_PHASE, OPT_ARPACK,
    OPT_STATIONARY, OPT_GRAM
};

static const char BENCH_HELP[] =
    "Usage: sgdstab bench [--samples N] [--params P] [--outputs K] [--batch B]\n"
    "                     [--sampling S] [--curve M] [--phase M] [--seed S]\n"
    "                     [--arpack] [--momentum BETA] [--stationary] [--json]\n"
    "       sgdstab bench --gram [--samples N] [--outputs K] [--params P]\n"
    "                     [--batch B] [--max-memory SIZE] [--json]\n"
    "\n"
    "Time the engine on a random Jacobian with i.i.d. N(0, 1/p) entries\n"
    "(defaults: N = 2000, P = 1500, K = 1, B = 32, the reference case) and\n"
    "report, next to the DGEMM rate of this machine measured in the same run:\n"
    "  factorization      the SVD that makes the reduced coordinates\n"
    "  one application    of the second-moment map T: seconds, GFLOP/s\n"
    "                     (2 n k r^2 flops) and the fraction of the DGEMM rate\n"
    "  eta*(B)            seconds (with the factorization), applications\n"
    "  analyze            at eta = 1.5 eta* (unstable) and 0.5 eta* (stable)\n"
    "  curve              eta*(B) for M log-spaced B in 1..N (default 50),\n"
    "                     and its time over the time of one eta*(B)\n"
    "  phase diagram      with --phase M: an M x M grid, M log-spaced B in\n"
    "                     1..N and M log-spaced eta from eta*(1)/2 to\n"
    "                     2 eta*(N), with its boundary, as `sgdstab phase`\n"
    "                     computes it: solves per second, applications per\n"
    "                     solve (the 40 x 40 case: --samples 1000 --params 500\n"
    "                     --phase 40, about a minute; at the default size each\n"
    "                     solve at a stable eta costs many applications)\n"
    "  simulate           Monte Carlo trajectories at eta = 0.5 eta*(B):\n"
    "                     trajectory-steps per second, and GFLOP/s counting\n"
    "                     4 B k r flops per step\n"
    "  memory             peak resident size; doubles per basis vector\n"
    "  momentum           with --momentum BETA (heavy ball): eta*(B; BETA)\n"
    "                     over plain eta*(B) (solve times), rho at\n"
    "                     0.5 eta*(B; BETA) over plain rho at 0.5 eta*(B),\n"
    "                     and the curve over one eta*(B; BETA), both with\n"
    "                     the factorization (as the plain curve)\n"
    "  stationary         with --stationary: the stationary solve of\n"
    "                     'sgdstab stationary' at 0.5 eta*(B) for residuals\n"
    "                     with i.i.d. N(0, 1) entries, by preconditioned and\n"
    "                     by plain conjugate gradients: seconds, iterations,\n"
    "                     the residual reached, and the time per decade of\n"
    "                     residual reduction in applications of T\n"
    "With --gram, the engine at the limit of the machine: K = J J^T (J as\n"
    "above; default P = 2 N K, so that K has full rank r = N K), then once\n"
    "each: the factorization of K (its symmetric eigendecomposition), one\n"
    "application of T against DGEMM, and eta*(B) end to end (factorization\n"
    "and solve, the workspace fitted to --max-memory as every command fits\n"
    "it); memory: peak resident size and the basis vectors per basis.\n"
    "With --arpack, eta*(B) is also solved with ARPACK-ng from scratch, for\n"
    "comparison with the shared-basis Davidson solver used by default.\n"
    "The factorization, eta*(B) and the curve are each timed 3 times, each\n"
    "from scratch, and the fastest run is reported, so that their ratio moves\n"
    "less with the machine's load; other timings vary with it.\n";

/* GFLOP/s of a square DGEMM of size 2000, best of repeated runs ≥ 1 s. */
static double dgemm_rate(sgdstab_rng *rng)
{
    const int N = 2000;
    double *A = malloc((size_t)N * N * sizeof *A);
    double *B = malloc((size_t)N * N * sizeof *B);
    double *C = malloc((size_t)N * N * sizeof *C);
    double best = 0;
    if (A && B && C) {
        sgdstab_rng_gaussian(rng, 1.0, (size_t)N * N, A);
        sgdstab_rng_gaussian(rng, 1.0, (size_t)N * N, B);
        double start = cli_seconds();
        for (int rep = 0;
             rep < 50 && (rep < 3 || cli_seconds() - start < 1.0); rep++) {
            double t = cli_seconds();
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0,
                        A, N, B, N, 0.0, C, N);
            double rate = 2.0 * N * N * N / (cli_seconds() - t) / 1e9;
            if (rate > best)
                best = rate;
        }
    }
    free(A);
    free(B);
    free(C);
    return best;
}

/* What to time: the problem's shape and the optional parts. */
typedef struct {
    size_t n, p, k, batch, curve, phase, seed;
    int arpack, stationary, gram;
} bench_request;

typedef struct {
    double gemm, fact, apply, apply_gflops, crit, crit_total;
    size_t crit_mv, r;
    double crit_value, crit_acc;
    double unstable_total, unstable_rho, unstable_res;
    size_t unstable_mv;
    double stable_time, stable_rho, stable_res, stable_est;
    size_t stable_mv;
    int stable_conv;
    double curve, curve_total, curve_ratio;
    size_t curve_mv, curve_m;
    double sim, sim_rate, sim_gflops;
    size_t sim_steps;
    double phase, phase_rate, phase_mv_per_solve;
    size_t phase_m, phase_solves;
    double arpack, arpack_value;
    size_t arpack_mv;
    double rss_mb;
    double gram_make;   /* --gram: forming K = J Jᵀ (DSYRK) */
    int gram_route;     /* the factorization took the Gram route */
    double fact_svd;    /* the same J by dgesdd, and how far the two */
    double sigma_diff;  /* σ lie apart (max |Δσ_j| / σ_j) */
    size_t basis;       /* vectors per eigensolver basis (memory plan) */
    /* With --momentum: η*(B; β), ρ at 0.5 η*(B; β) and the curve, each
     * against its plain-SGD yardstick. */
    double mom_crit, mom_crit_value, mom_crit_ratio;
    size_t mom_crit_mv;
    double mom_rho_time, mom_rho, mom_rho_ratio;
    size_t mom_rho_mv;
    double mom_curve, mom_curve_ratio;
    size_t mom_curve_mv;
    /* With --stationary: the solve with and without its preconditioner. */
    double stat_time[2], stat_residual[2], stat_per_decade[2];
    size_t stat_iterations[2];
} bench_result;

/* η*(B) for m batch sizes (m = 1: one η*) on a fresh workspace,
 * BENCH_RUNS times; the fastest time of making the workspace and
 * solving. */
static int time_critical(const cli_args *a, const sgdstab_config *cfg,
                         const sgdstab_reduced *red,
                         const size_t *batches, size_t m,
                         const sgdstab_eig_options *opt, int runs,
                         sgdstab_critical *cr, double *seconds)
{
    *seconds = INFINITY;
    for (int run = 0; run < runs; run++) {
        sgdstab_stability *s;
        double t = cli_seconds();
        if (cli_stability(a, red, 1, &s))
            return EXIT_DATA;
        if (opt)
            sgdstab_stability_set_eig(s, opt);
        sgdstab_error err;
        int st = sgdstab_critical_curve(s, cfg, batches, m, cr, &err);
        *seconds = fmin(*seconds, cli_seconds() - t);
        sgdstab_stability_free(s);
        if (st)
            return cli_report(&err);
    }
    return EXIT_OK;
}

/* Monte Carlo SGD at a stable η: 64 runs, 3e9 flops in all, enough for a
 * steady rate while keeping bench short. */
static int time_simulate(const sgdstab_config *cfg,
                         const sgdstab_problem *prob,
                         const sgdstab_reduced *red, double lr,
                         bench_result *b)
{
    sgdstab_sim_options o;
    memset(&o, 0, sizeof o);
    o.config = *cfg;
    o.config.lr = lr;
    size_t batch = cfg->batch;
    o.runs = 64;
    o.seed = 1;
    double flops = 4.0 * (double)batch * (double)red->k * (double)red->r;
    o.steps = (size_t)fmax(10, fmin(1e6, 3e9 / flops / (double)o.runs));
    sgdstab_sim_result *res;
    sgdstab_error err;
    double t = cli_seconds();
    if (sgdstab_simulate(red, prob, &o, &res, NULL, NULL, &err))
        return cli_report(&err);
    b->sim = cli_seconds() - t;
    sgdstab_sim_result_free(res);
    b->sim_steps = o.steps * o.runs;
    b->sim_rate = (double)b->sim_steps / b->sim;
    b->sim_gflops = b->sim_rate * flops / 1e9;
    return EXIT_OK;
}

/* An m × m phase diagram on a fresh workspace: m log-spaced batch sizes in
 * 1..n and m log-spaced learning rates over [lr_lo, lr_hi]. */
static int time_phase(const cli_args *a, const sgdstab_config *cfg,
                      const sgdstab_reduced *red, size_t m, double lr_lo,
                      double lr_hi, bench_result *b)
{
    char spec[64];
    size_t *batches = NULL, nb;
    snprintf(spec, sizeof spec, "1:%zu:%zu:log", red->n, m);
    if (cli_parse_batches(a->cmd, spec, red->n, &batches, &nb))
        return EXIT_USAGE;
    sgdstab_stability *s = NULL;
    double *lrs = malloc(m * sizeof *lrs);
    sgdstab_phase_boundary *bd = malloc(nb * sizeof *bd);
    sgdstab_phase_point *grid = malloc(nb * m * sizeof *grid);
    int status = EXIT_OK;
    if (!lrs || !bd || !grid) {
        status = cli_data_error(a->cmd, NULL, "out of memory");
        goto done;
    }
    if ((status = cli_stability(a, red, 2, &s)))
        goto done;
    for (size_t j = 0; j < m; j++)
        lrs[j] = lr_lo * pow(lr_hi / lr_lo, (double)j / (double)(m - 1));
    sgdstab_error err;
    double t = cli_seconds();
    const sgdstab_phase_axes ax = {.batches = batches, .nb = nb, .lrs = lrs,
                                   .nl = m};
    if (sgdstab_phase_compute(s, NULL, cfg, &ax, bd, grid, &err)) {
        status = cli_report(&err);
        goto done;
    }
    b->phase = cli_seconds() - t;
    b->phase_m = nb;
    b->phase_solves = nb * (m + 1);
    b->phase_rate = (double)b->phase_solves / b->phase;
    size_t mv = 0;
    for (size_t i = 0; i < nb; i++) {
        mv += bd[i].critical.matvecs;
        for (size_t j = 0; j < m; j++)
            mv += grid[i * m + j].radius.matvecs;
    }
    b->phase_mv_per_solve = (double)mv / (double)b->phase_solves;
done:
    sgdstab_stability_free(s);
    free(batches);
    free(lrs);
    free(bd);
    free(grid);
    return status;
}

/* The problem of K = J Jᵀ (one DSYRK, timed), J freed. */
static int gram_problem(sgdstab_array *J, bench_result *b,
                        sgdstab_problem **prob)
{
    const size_t rows = J->shape[0] * J->shape[1], p = J->shape[2];
    sgdstab_array K = {.ndim = 2, .shape = {rows, rows, 1},
                       .size = rows * rows};
    snprintf(K.descr, sizeof K.descr, "<f8");
    if (!(K.data = malloc(K.size * sizeof *K.data))) {
        sgdstab_array_free(J);
        return cli_data_error("bench", NULL, "out of memory for a %zu x %zu "
                              "Gram matrix", rows, rows);
    }
    double t = cli_seconds();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)rows, (int)p,
                1.0, J->data, (int)p, 0.0, K.data, (int)rows);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < i; j++)
            K.data[i * rows + j] = K.data[j * rows + i];
    b->gram_make = cli_seconds() - t;
    const size_t n = J->shape[0], k = J->shape[1];
    sgdstab_array_free(J);
    sgdstab_error err;
    if (sgdstab_problem_from_gram("bench", &K, NULL, n, k, p, NULL, prob,
                                  &err))
        return cli_report(&err);
    return EXIT_OK;
}

/* The random problem (J with i.i.d. N(0, 1/p) entries, or with gram its
 * Gram matrix), and the DGEMM rate measured with the same generator. */
static int make_problem(const cli_args *a, size_t n, size_t p, size_t k,
                        int gram, unsigned long seed, bench_result *b,
                        sgdstab_problem **prob)
{
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    if (!rng)
        return cli_data_error(a->cmd, NULL, "out of memory");
    b->gemm = dgemm_rate(rng);

    sgdstab_array J = {.ndim = 3, .shape = {n, k, p}, .size = n * k * p};
    snprintf(J.descr, sizeof J.descr, "<f8");
    J.data = malloc(J.size * sizeof *J.data);
    if (!J.data) {
        sgdstab_rng_free(rng);
        return cli_data_error(a->cmd, NULL, "out of memory for a %zu x %zu "
                              "x %zu Jacobian", n, k, p);
    }
    sgdstab_rng_gaussian(rng, 1 / sqrt((double)p), J.size, J.data);
    sgdstab_rng_free(rng);
    if (gram)
        return gram_problem(&J, b, prob);
    sgdstab_error err;
    if (sgdstab_problem_from_arrays("bench", &J, NULL, NULL, prob, &err))
        return cli_report(&err);
    return EXIT_OK;
}

/* The factorization, the fastest of runs; *red the last one's. */
static int time_factorization(const sgdstab_problem *prob, int runs,
                              bench_result *b, sgdstab_reduced **red)
{
    sgdstab_error err;
    b->fact = INFINITY;
    for (int run = 0; run < runs; run++) {
        sgdstab_reduced_free(*red);
        double t = cli_seconds();
        if (sgdstab_reduce(prob, NULL, red, &err)) {
            *red = NULL;
            return cli_report(&err);
        }
        b->fact = fmin(b->fact, cli_seconds() - t);
    }
    b->r = (*red)->r;
    b->gram_route = (*red)->gram_route && !prob->K;
    if (!b->gram_route)
        return EXIT_OK;
    /* dgesdd on the same J, for comparison */
    sgdstab_reduce_options svd;
    sgdstab_reduce_options_init(&svd);
    svd.svd_only = 1;
    b->fact_svd = INFINITY;
    for (int run = 0; run < runs; run++) {
        sgdstab_reduced *other;
        double t = cli_seconds();
        if (sgdstab_reduce(prob, &svd, &other, &err))
            return cli_report(&err);
        b->fact_svd = fmin(b->fact_svd, cli_seconds() - t);
        b->sigma_diff = 0;
        for (size_t j = 0; j < other->nsv; j++)
            b->sigma_diff = fmax(b->sigma_diff,
                                 fabs((*red)->sigma[j] - other->sigma[j]) /
                                     other->sigma[j]);
        if (other->rank_J != (*red)->rank_J)
            b->sigma_diff = INFINITY;
        sgdstab_reduced_free(other);
    }
    return EXIT_OK;
}

/* One application of 𝒯 (a, b of the batch size), averaged. */
static int time_apply(const cli_args *a, const sgdstab_config *cfg,
                      const sgdstab_reduced *red, bench_result *b)
{
    double ca, cb;
    sgdstab_error err;
    sgdstab_moments *m = NULL;
    if (sgdstab_batch_coefficients(cfg->sampling, red->n, cfg->batch, &ca,
                                   &cb, &err) ||
        !(m = sgdstab_moments_alloc(red, &err)))
        return cli_report(&err);
    size_t r = red->r;
    double *Z = malloc(r * r * sizeof *Z), *Y = malloc(r * r * sizeof *Y);
    int status = EXIT_OK;
    if (!Z || !Y) {
        status = cli_data_error(a->cmd, NULL, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < r * r; j++)
        Z[j] = 0;
    for (size_t j = 0; j < r; j++)
        Z[j * r + j] = 1.0 / (double)r;
    sgdstab_moments_step(m, 1.0, ca, cb, Z, Y);  /* warm-up */
    int reps = 0;
    double t = cli_seconds();
    do {
        sgdstab_moments_step(m, 1.0, ca, cb, reps % 2 ? Y : Z, reps % 2 ? Z : Y);
        reps++;
    } while (reps < 5 || (cli_seconds() - t < 1.0 && reps < 100));
    b->apply = (cli_seconds() - t) / reps;
    b->apply_gflops = sgdstab_moments_sigma_flops(m) / b->apply / 1e9;
done:
    free(Z);
    free(Y);
    sgdstab_moments_free(m);
    return status;
}

/* η*(B) from a fresh workspace, and with --arpack by ARPACK-ng. */
static int time_eta_star(const cli_args *a, const sgdstab_config *cfg,
                         const sgdstab_reduced *red, int arpack,
                         bench_result *b)
{
    sgdstab_critical cr;
    int status = time_critical(a, cfg, red, &cfg->batch, 1, NULL, BENCH_RUNS,
                               &cr,
                               &b->crit);
    if (status)
        return status;
    b->crit_total = b->fact + b->crit;
    b->crit_mv = cr.matvecs;
    b->crit_value = cr.lr_critical;
    b->crit_acc = cr.rel_accuracy;
    if (arpack) {
        sgdstab_eig_options opt = {.arpack = 1};
        if ((status = time_critical(a, cfg, red, &cfg->batch, 1, &opt, BENCH_RUNS,
                                    &cr,
                                    &b->arpack)))
            return status;
        b->arpack_mv = cr.matvecs;
        b->arpack_value = cr.lr_critical;
    }
    return EXIT_OK;
}

/* analyze at 1.5 η* (from scratch: factorization + η* + ρ), then ρ at a
 * stable 0.5 η*, where slow modes cluster near 1. */
static int time_analyze(const cli_args *a, sgdstab_config cfg,
                        const sgdstab_reduced *red, bench_result *b)
{
    sgdstab_stability *s;
    int status = cli_stability(a, red, 2, &s);
    if (status)
        return status;
    sgdstab_error err;
    sgdstab_analysis an;
    double t = cli_seconds();
    cfg.lr = 1.5 * b->crit_value;
    if (sgdstab_analyze(s, &cfg, &an, NULL, &err)) {
        status = cli_report(&err);
        goto done;
    }
    b->unstable_total = b->fact + cli_seconds() - t;
    b->unstable_rho = an.radius.rho;
    b->unstable_res = an.radius.residual;
    b->unstable_mv = an.matvecs;
    sgdstab_radius rad;
    t = cli_seconds();
    cfg.lr = 0.5 * b->crit_value;
    if (sgdstab_spectral_radius(s, &cfg, &an.critical, &rad, NULL, &err)) {
        status = cli_report(&err);
        goto done;
    }
    b->stable_time = cli_seconds() - t;
    b->stable_rho = rad.rho;
    b->stable_res = rad.residual;
    b->stable_est = rad.error_estimate;
    b->stable_mv = rad.matvecs;
    b->stable_conv = rad.converged;
done:
    sgdstab_stability_free(s);
    return status;
}

/* A curve of η* over curve_m log-spaced batch sizes in 1..n (*m distinct
 * ones), timed on fresh workspaces (time_critical): its seconds, its
 * applications and lr_range[] its smallest and largest η*, those of B = 1
 * and B = n. */
static int timed_curve(const cli_args *a, const sgdstab_config *cfg,
                       const sgdstab_reduced *red, size_t curve_m, size_t *m,
                       double *seconds, size_t *matvecs, double lr_range[2])
{
    char spec[64];
    size_t *batches = NULL;
    snprintf(spec, sizeof spec, "1:%zu:%zu:log", red->n, curve_m);
    int status = cli_parse_batches(a->cmd, spec, red->n, &batches, m);
    if (status)
        return status;
    sgdstab_critical *curve = malloc(*m * sizeof *curve);
    if (!curve)
        status = cli_data_error(a->cmd, NULL, "out of memory");
    if (!status)
        status = time_critical(a, cfg, red, batches, *m, NULL, BENCH_RUNS,
                               curve,
                               seconds);
    for (size_t i = 0; !status && i < *m; i++)
        *matvecs += curve[i].matvecs;
    if (!status) {
        lr_range[0] = curve[0].lr_critical;
        lr_range[1] = curve[*m - 1].lr_critical;
    }
    free(batches);
    free(curve);
    return status;
}

/* The plain curve, against one η* (both with the factorization). */
static int time_curve(const cli_args *a, const sgdstab_config *cfg,
                      const sgdstab_reduced *red, size_t curve_m,
                      bench_result *b, double lr_range[2])
{
    int status = timed_curve(a, cfg, red, curve_m, &b->curve_m, &b->curve,
                             &b->curve_mv, lr_range);
    b->curve_total = b->fact + b->curve;
    b->curve_ratio = b->curve_total / b->crit_total;
    return status;
}

/* Heavy-ball momentum β (--momentum): η*(B; β) against plain η*(B) (solve
 * times, fresh workspaces); ρ at 0.5 η*(B; β) after an analyze at
 * 1.5 η*(B; β) on the same workspace, as plain ρ is timed (time_analyze);
 * the curve against one η*(B; β), both with the factorization as the plain
 * curve is timed. */
static int time_momentum(const cli_args *a, const sgdstab_config *plain,
                         const sgdstab_reduced *red, size_t curve_m,
                         bench_result *b)
{
    sgdstab_config cfg = *plain;
    cfg.optimizer.momentum = a->optimizer.momentum;
    sgdstab_critical cr;
    int status = time_critical(a, &cfg, red, &cfg.batch, 1, NULL, BENCH_RUNS,
                               &cr,
                               &b->mom_crit);
    if (status)
        return status;
    b->mom_crit_value = cr.lr_critical;
    b->mom_crit_mv = cr.matvecs;
    b->mom_crit_ratio = b->mom_crit / b->crit;
    sgdstab_stability *s;
    if ((status = cli_stability(a, red, 2, &s)))
        return status;
    sgdstab_error err;
    sgdstab_radius rad;
    sgdstab_analysis an;
    cfg.lr = 1.5 * cr.lr_critical;
    if (sgdstab_analyze(s, &cfg, &an, NULL, &err))
        status = cli_report(&err);
    cfg.lr = 0.5 * cr.lr_critical;
    double t = cli_seconds();
    if (!status && sgdstab_spectral_radius(s, &cfg, &cr, &rad, NULL, &err))
        status = cli_report(&err);
    b->mom_rho_time = cli_seconds() - t;
    sgdstab_stability_free(s);
    if (status)
        return status;
    b->mom_rho = rad.rho;
    b->mom_rho_mv = rad.matvecs;
    b->mom_rho_ratio = b->mom_rho_time / b->stable_time;
    size_t m = 0;
    double range[2];
    status = timed_curve(a, &cfg, red, curve_m, &m, &b->mom_curve,
                         &b->mom_curve_mv, range);
    /* As the plain curve: both with the factorization, what `critical`
     * takes end to end for one batch size and for the curve. */
    b->mom_curve_ratio = (b->fact + b->mom_curve) / (b->fact + b->mom_crit);
    return status;
}

/* The stationary solve at 0.5 η*(B) for residuals with i.i.d. N(0, 1)
 * entries, with its preconditioner ([0]) and without ([1]): seconds,
 * iterations, the residual reached and the time per decade of residual
 * reduction in applications of 𝒯. */
static int time_stationary(const sgdstab_config *plain,
                           sgdstab_problem *prob, const sgdstab_reduced *red,
                           bench_result *b)
{
    const size_t nk = red->n * red->k, r = red->r;
    sgdstab_config cfg = *plain;
    cfg.lr = 0.5 * b->crit_value;
    sgdstab_error err;
    int status = EXIT_OK;
    prob->R = malloc(nk * sizeof *prob->R);
    double *C = malloc(r * r * sizeof *C), *W = malloc(r * r * sizeof *W);
    sgdstab_moments *m = NULL;
    if (!prob->R || !C || !W)
        status = cli_data_error("bench", NULL, "out of memory");
    if (!status) {
        sgdstab_rng *rng = sgdstab_rng_alloc(7);
        sgdstab_rng_gaussian(rng, 1.0, nk, prob->R);
        sgdstab_rng_free(rng);
    }
    if (!status && (sgdstab_gradient_noise(red, prob, &cfg, 0, C, NULL, &err) ||
                    !(m = sgdstab_moments_alloc(red, &err))))
        status = cli_report(&err);
    for (int plainly = 0; plainly < 2 && !status; plainly++) {
        sgdstab_stationary_options opt = {0, plainly};
        sgdstab_stationary_info info;
        double t = cli_seconds();
        if (sgdstab_stationary_solve(m, red, &cfg, C, &opt, W, &info, &err))
            status = cli_report(&err);
        b->stat_time[plainly] = cli_seconds() - t;
        b->stat_iterations[plainly] = info.iterations;
        b->stat_residual[plainly] = info.relative_residual;
        double decades = -log10(fmax(info.relative_residual, 1e-300));
        b->stat_per_decade[plainly] =
            b->stat_time[plainly] / b->apply / fmax(decades, 1e-300);
    }
    sgdstab_moments_free(m);
    free(C);
    free(W);
    free(prob->R);
    prob->R = NULL;
    return status;
}

static int run(const cli_args *a, const bench_request *q, bench_result *b)
{
    sgdstab_problem *prob = NULL;
    sgdstab_reduced *red = NULL;
    int status = make_problem(a, q->n, q->p, q->k, q->gram,
                              (unsigned long)q->seed, b, &prob);
    if (status)
        return status;
    sgdstab_config cfg;
    sgdstab_config_init(&cfg);
    cfg.sampling = a->sampling;
    cfg.batch = q->batch;
    double lr_range[2] = {0, 0};
    if (q->gram) {  /* at the machine's limit: each part once */
        sgdstab_critical cr;
        sgdstab_engine_plan plan;
        sgdstab_error err;
        if ((status = time_factorization(prob, 1, b, &red)) ||
            (status = time_apply(a, &cfg, red, b)))
            goto done;
        if (sgdstab_engine_plan_fit(red, 1, a->max_memory, &plan, &err)) {
            status = cli_report(&err);
            goto done;
        }
        b->basis = plan.basis;
        if ((status = time_critical(a, &cfg, red, &cfg.batch, 1, NULL, 1, &cr,
                                    &b->crit)))
            goto done;
        b->crit_total = b->crit + b->fact;
        b->crit_mv = cr.matvecs;
        b->crit_value = cr.lr_critical;
        b->crit_acc = cr.rel_accuracy;
    } else if ((status = time_factorization(prob, BENCH_RUNS, b, &red)) ||
        (status = time_apply(a, &cfg, red, b)) ||
        (status = time_eta_star(a, &cfg, red, q->arpack, b)) ||
        (status = time_analyze(a, cfg, red, b)) ||
        (status = time_curve(a, &cfg, red, q->curve, b, lr_range)) ||
        (status = time_simulate(&cfg, prob, red, 0.5 * b->crit_value, b)) ||
        (q->phase && (status = time_phase(a, &cfg, red, q->phase,
                                          lr_range[0] / 2, 2 * lr_range[1],
                                          b))) ||
        (a->optimizer.momentum > 0 &&
         (status = time_momentum(a, &cfg, red, q->curve, b))) ||
        (q->stationary && (status = time_stationary(&cfg, prob, red, b))))
        goto done;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    b->rss_mb = (double)ru.ru_maxrss / 1024.0;
done:
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);
    return status;
}

/* The table; with --gram only its first rows (each part timed once, at the
 * limit of the machine), with the forming of K and the basis size. */
static void print_text(const bench_request *q, const cli_args *a,
                       const bench_result *b)
{
    printf("sgdstab bench%s: %sJ with i.i.d. N(0, 1/p) entries, n = %zu, "
           "k = %zu, p = %zu (r = %zu), B = %zu, sampling %s\n\n",
           q->gram ? " --gram" : "", q->gram ? "K = J J^T for " : "", q->n,
           q->k, q->p, b->r, q->batch, sgdstab_sampling_name(a->sampling));
    printf("  %-34s %10.1f GFLOP/s  (yardstick)\n", "DGEMM 2000x2000", b->gemm);
    if (q->gram)
        printf("  %-34s %10.3f s  (DSYRK, not part of a run from a file)\n"
               "  %-34s %10.3f s\n", "forming K", b->gram_make,
               "factorization (dsyevr of K)", b->fact);
    else if (b->gram_route)
        printf("  %-34s %10.3f s  (DSYRK + dsyevr; dgesdd: %.3f s, %.2f x; "
               "max |d sigma_j| / sigma_j = %.1g)\n",
               "factorization (Gram route)", b->fact, b->fact_svd,
               b->fact_svd / b->fact, b->sigma_diff);
    else
        printf("  %-34s %10.3f s\n", "factorization (SVD of J)", b->fact);
    printf("  %-34s %10.4f s  %.1f GFLOP/s = %.0f%% of DGEMM\n",
           "one application of T", b->apply, b->apply_gflops,
           100 * b->apply_gflops / b->gemm);
    printf("  %-34s %10.3f s  (%.3f s + factorization), %zu applications, "
           "eta* = %.10g, rel. accuracy %.1g\n", "eta*(B)", b->crit_total,
           b->crit, b->crit_mv, b->crit_value, b->crit_acc);
    if (q->gram) {
        printf("  %-34s %10.0f MB peak; %zu doubles per basis vector, %zu "
               "vectors per basis\n", "memory", b->rss_mb,
               b->r * (b->r + 1) / 2, b->basis);
        return;
    }
    if (q->arpack)
        printf("  %-34s %10.3f s  (solve only), %zu applications, eta* = "
               "%.10g\n", "eta*(B) with ARPACK-ng", b->arpack, b->arpack_mv,
               b->arpack_value);
    printf("  %-34s %10.3f s  (with factorization), %zu applications, rho = "
           "%.10g (residual %.1g)\n", "analyze at 1.5 eta* (unstable)",
           b->unstable_total, b->unstable_mv, b->unstable_rho, b->unstable_res);
    printf("  %-34s %10.3f s  %zu applications, rho = %.12g (residual %.1g, "
           "estimate %.1g%s)\n", "rho at 0.5 eta* (stable)", b->stable_time,
           b->stable_mv, b->stable_rho, b->stable_res, b->stable_est,
           b->stable_conv ? "" : ", not converged");
    printf("  %-34s %10.3f s  (%.3f s + factorization), %zu applications, "
           "%.2f x one eta*(B)\n", "curve of log-spaced batch sizes",
           b->curve_total, b->curve, b->curve_mv, b->curve_ratio);
    printf("  %-34s %10.3f s  %zu trajectory-steps, %.3g per second, %.1f "
           "GFLOP/s = %.1f%% of DGEMM\n", "simulate (64 runs, 0.5 eta*)",
           b->sim, b->sim_steps, b->sim_rate, b->sim_gflops,
           100 * b->sim_gflops / b->gemm);
    if (b->phase_m)
        printf("  %-34s %10.3f s  %zu solves (%zu x %zu grid + boundary), "
               "%.1f solves/s, %.1f applications per solve\n",
               "phase diagram", b->phase, b->phase_solves, b->phase_m,
               b->phase_m, b->phase_rate, b->phase_mv_per_solve);
    if (a->optimizer.momentum > 0)  /* the three momentum rows */
        printf("  %-34s %10.3f s  (solve only) %zu applications, eta* = "
               "%.10g: %.2f x plain eta*(B)\n  %-34s %10.3f s  %zu "
               "applications, rho = %.12g: %.2f x plain rho\n  %-34s %10.3f "
               "s  (solve only) %zu applications: %.2f x one eta*(B) with "
               "momentum (%.2f x solve only)\n",
               "eta*(B) with momentum", b->mom_crit, b->mom_crit_mv,
               b->mom_crit_value, b->mom_crit_ratio,
               "rho with momentum at 0.5 eta*", b->mom_rho_time,
               b->mom_rho_mv, b->mom_rho, b->mom_rho_ratio,
               "curve with momentum", b->mom_curve, b->mom_curve_mv,
               b->mom_curve_ratio, b->mom_curve / b->mom_crit);
    for (int i = 0; q->stationary && i < 2; i++)
        printf("  %-34s %10.3f s  %zu iterations to a relative residual of "
               "%.2g: %.2f applications' time per decade\n",
               i ? "stationary, unpreconditioned" : "stationary at 0.5 eta*",
               b->stat_time[i], b->stat_iterations[i], b->stat_residual[i],
               b->stat_per_decade[i]);
    printf("  %-34s %10.0f MB peak; %zu doubles per basis vector (r(r+1)/2, "
           "stored twice)\n", "memory", b->rss_mb, b->r * (b->r + 1) / 2);
    printf("\n(the curve has %zu distinct batch sizes)\n", b->curve_m);
}

static int print_json(const bench_request *q, const cli_args *a,
                      const bench_result *b)
{
    cJSON *o = cJSON_CreateObject();
    cli_json_size(o, "n", q->n);
    cli_json_size(o, "k", q->k);
    cli_json_size(o, "p", q->p);
    cli_json_size(o, "r", b->r);
    cli_json_size(o, "batch", q->batch);
    cJSON_AddStringToObject(o, "sampling", sgdstab_sampling_name(a->sampling));
    static const char *const machine[] = {
        "dgemm_gflops", "factorization_seconds", "apply_seconds",
        "apply_gflops", "apply_fraction_of_dgemm"};
    const double machine_values[] = {b->gemm, b->fact, b->apply,
                                     b->apply_gflops,
                                     b->apply_gflops / b->gemm};
    cli_json_numbers(o, 5, machine, machine_values);
    cJSON_AddBoolToObject(o, "gram_route", b->gram_route);
    if (b->gram_route) {
        cli_json_number(o, "factorization_svd_seconds", b->fact_svd);
        cli_json_number(o, "gram_route_sigma_rel_diff", b->sigma_diff);
    }
    cli_json_number(o, "critical_seconds_total", b->crit_total);
    cli_json_size(o, "critical_applications", b->crit_mv);
    cli_json_number(o, "lr_critical", b->crit_value);
    if (q->gram) {
        cJSON_AddBoolToObject(o, "gram", 1);
        cli_json_number(o, "gram_make_seconds", b->gram_make);
        cli_json_number(o, "critical_seconds", b->crit);
        cli_json_number(o, "critical_rel_accuracy", b->crit_acc);
        cli_json_size(o, "basis_vectors", b->basis);
        cli_json_number(o, "peak_rss_mb", b->rss_mb);
        return cli_json_print(o);
    }
    if (q->arpack) {
        cli_json_number(o, "critical_arpack_seconds", b->arpack);
        cli_json_size(o, "critical_arpack_applications", b->arpack_mv);
        cli_json_number(o, "lr_critical_arpack", b->arpack_value);
    }
    cli_json_number(o, "analyze_unstable_seconds_total", b->unstable_total);
    cli_json_size(o, "analyze_unstable_applications", b->unstable_mv);
    cli_json_number(o, "stable_rho_seconds", b->stable_time);
    cli_json_size(o, "stable_rho_applications", b->stable_mv);
    cli_json_number(o, "stable_rho_residual", b->stable_res);
    cli_json_size(o, "curve_batches", b->curve_m);
    cli_json_number(o, "curve_seconds_total", b->curve_total);
    cli_json_size(o, "curve_applications", b->curve_mv);
    cli_json_number(o, "curve_over_critical", b->curve_ratio);
    cli_json_number(o, "simulate_seconds", b->sim);
    cli_json_number(o, "simulate_steps_per_second", b->sim_rate);
    cli_json_number(o, "simulate_fraction_of_dgemm", b->sim_gflops / b->gemm);
    if (b->phase_m) {
        cli_json_size(o, "phase_grid_size", b->phase_m);
        cli_json_number(o, "phase_seconds", b->phase);
        cli_json_size(o, "phase_solves", b->phase_solves);
        cli_json_number(o, "phase_solves_per_second", b->phase_rate);
        cli_json_number(o, "phase_applications_per_solve",
                        b->phase_mv_per_solve);
    }
    if (a->optimizer.momentum > 0) {
        static const char *const keys[] = {
            "momentum", "momentum_critical_seconds",
            "momentum_critical_over_plain", "momentum_rho_seconds",
            "momentum_rho_over_plain", "momentum_curve_seconds",
            "momentum_curve_over_critical", "momentum_critical_applications",
            "momentum_rho_applications", "momentum_curve_applications"};
        const double values[] = {
            a->optimizer.momentum, b->mom_crit, b->mom_crit_ratio,
            b->mom_rho_time, b->mom_rho_ratio, b->mom_curve,
            b->mom_curve_ratio, (double)b->mom_crit_mv,
            (double)b->mom_rho_mv, (double)b->mom_curve_mv};
        cli_json_numbers(o, 10, keys, values);
    }
    if (q->stationary) {
        static const char *const keys[] = {
            "stationary_seconds", "stationary_iterations",
            "stationary_relative_residual",
            "stationary_applications_per_decade",
            "stationary_unpreconditioned_seconds",
            "stationary_unpreconditioned_iterations",
            "stationary_unpreconditioned_relative_residual",
            "stationary_unpreconditioned_applications_per_decade"};
        double values[8];
        for (int i = 0; i < 2; i++) {
            values[4 * i] = b->stat_time[i];
            values[4 * i + 1] = (double)b->stat_iterations[i];
            values[4 * i + 2] = b->stat_residual[i];
            values[4 * i + 3] = b->stat_per_decade[i];
        }
        cli_json_numbers(o, 8, keys, values);
    }
    cli_json_number(o, "peak_rss_mb", b->rss_mb);
    return cli_json_print(o);
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_BATCH, CLI_OPT_SAMPLING, CLI_OPT_JSON, CLI_OPT_SEED,
        CLI_ARG("samples", OPT_SAMPLES), CLI_ARG("params", OPT_PARAMS),
        CLI_ARG("outputs", OPT_OUTPUTS), CLI_ARG("curve", OPT_CURVE),
        CLI_ARG("phase", OPT_PHASE), CLI_FLAG("arpack", OPT_ARPACK),
        CLI_ARG("momentum", OPT_MOMENTUM),
        CLI_FLAG("stationary", OPT_STATIONARY), CLI_FLAG("gram", OPT_GRAM),
        CLI_ARG("max-memory", OPT_MAX_MEMORY), CLI_OPT_HELP, CLI_OPT_END};
    cli_args args;
    cli_args_init(&args, "bench");
    size_t n = 2000, p = 1500, k = 1, batch = 32, curve = 50, phase = 0;
    size_t seed = 1;
    int arpack = 0, stationary = 0, gram = 0, params_given = 0, c, bad = 0;
    while ((c = cli_getopt(argc, argv, args.cmd, opts)) != -1) {
        switch (c) {
        case 'h':
            fputs(BENCH_HELP, stdout);
            return EXIT_OK;
        case OPT_SAMPLES: bad = cli_parse_size(args.cmd, "samples", optarg, 1, &n); break;
        case OPT_PARAMS:
            bad = cli_parse_size(args.cmd, "params", optarg, 1, &p);
            params_given = 1;
            break;
        case OPT_OUTPUTS: bad = cli_parse_size(args.cmd, "outputs", optarg, 1, &k); break;
        case OPT_SEED: bad = cli_parse_size(args.cmd, "seed", optarg, 0, &seed); break;
        case OPT_CURVE: bad = cli_parse_size(args.cmd, "curve", optarg, 2, &curve); break;
        case OPT_PHASE: bad = cli_parse_size(args.cmd, "phase", optarg, 2, &phase); break;
        case OPT_ARPACK: arpack = 1; break;
        case OPT_STATIONARY: stationary = 1; break;
        case OPT_GRAM: gram = 1; break;
        case 1:
            return cli_usage_error(args.cmd, "unexpected argument '%s'", optarg);
        default:
            bad = cli_common_option(&args, c, optarg);
        }
        if (bad)
            return EXIT_USAGE;
    }
    if (args.batch && cli_parse_size(args.cmd, "batch", args.batch, 1, &batch))
        return EXIT_USAGE;
    if (batch > n)
        return cli_usage_error(args.cmd, "--batch %zu exceeds --samples %zu",
                               batch, n);
    bench_result b;
    memset(&b, 0, sizeof b);
    if (gram && (arpack || stationary || phase || args.optimizer_given))
        return cli_usage_error(args.cmd, "--gram times eta*(B) alone: not "
                               "with --arpack, --stationary, --phase or "
                               "--momentum");
    if (gram && !params_given)
        p = 2 * n * k;  /* full rank, well conditioned */
    bench_request q = {n, p, k, batch, curve, phase, seed, arpack,
                       stationary, gram};
    int status = run(&args, &q, &b);
    if (status)
        return status;
    if (args.json)
        return print_json(&q, &args, &b);
    print_text(&q, &args, &b);
    return EXIT_OK;
}
