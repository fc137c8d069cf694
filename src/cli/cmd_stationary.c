/* sgdstab stationary FILE --lr η --batch B: the stationary state of
 * linearized SGD (every optimizer) at a minimum that does not interpolate
 * or under label noise. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/moments.h"
#include "sgdstab/outfile.h"
#include "sgdstab/plan.h"
#include "sgdstab/stability.h"
#include "sgdstab/stationary.h"
#include "sgdstab/status.h"

enum { OPT_MAX_ITERATIONS = OPT_FIRST_PRIVATE };

static const char STATIONARY_HELP[] =
    "Usage: sgdstab stationary FILE --lr ETA --batch B [--label-noise SIGMA]\n"
    "                          [--sampling S] [--json] [--csv F]\n"
    "                          [--max-iterations N] [--hessian H.npy]\n"
    "                          [--loss L] [--rank-tol RTOL]\n"
    "                          [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                          [--params P]\n"
    "                          [--optimizer O] [--momentum BETA] ...\n"
    "\n"
    "Where the minimum does not interpolate (FILE's member R holds the\n"
    "residuals r_i = f(x_i) - y_i, shape (n, k)) or labels are noisy\n"
    "(--label-noise SIGMA: y_i + N(0, SIGMA^2 I_k), fresh for every sample of\n"
    "every batch), the per-sample gradients add noise that does not vanish at\n"
    "the minimum: S_{t+1} = T(S_t) + eta^2 c^2 C.  When the map is stable\n"
    "(rho < 1) SGD settles into a stationary distribution whose second moment\n"
    "S solves (L1^-1 - b N) S = C (README, The stationary state): solved by\n"
    "conjugate gradients preconditioned by the deterministic part, one\n"
    "application of the noise operator per iteration.  Reported:\n"
    "  second_moment     E|delta|^2 = tr S, in parameter space\n"
    "  excess_loss       E L - L* = (c/2) tr(H S)\n"
    "  gradient_norm_sq  E|grad L|^2 = c^2 tr(H S H)\n"
    "  relaxation_steps  -1/ln rho: steps per factor e towards S\n"
    "and the variance along each eigendirection of H against its curvature\n"
    "(--csv).  Unstable (rho >= 1): there is no stationary state, and the\n"
    "escape rate is reported instead.  Where a supplied H has curvature 0 on\n"
    "directions J moves (and no weight decay acts there) the gradient noise\n"
    "is not damped: a random walk, whose per-step growth of E|delta|^2 is\n"
    "reported (null_space_drift_rate) beside the escape rate.\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required)\n"
    "  --batch B         batch size (required)\n"
    "  --label-noise SIGMA  label noise, >= 0 (default 0)\n"
    CLI_HELP_SAMPLING
    "  --max-iterations N   conjugate-gradient iterations at most (default\n"
    "                    2000); the residual reached is reported\n"
    "  --csv F           write F with columns index,curvature,variance: per\n"
    "                    direction of the reduced basis (H's eigenvectors, of\n"
    "                    P^-1/2 H P^-1/2 with a preconditioner), its curvature\n"
    "                    c h_j (plus coupled weight decay: what the run sees)\n"
    "                    and the stationary variance S_jj there\n"
    "  --json            JSON on stdout: file, input (jacobian or gram), lr,\n"
    "                    batch, sampling, loss_scale,\n"
    "                    optimizer, label_noise, stable, spectral_radius,\n"
    "                    lr_critical, and when stable second_moment,\n"
    "                    excess_loss, gradient_norm_sq, relaxation_steps,\n"
    "                    relative_residual, iterations, converged,\n"
    "                    mean_gradient_norm, gradient_spread; when not,\n"
    "                    escape_rate_per_step; always null_space_directions\n"
    "                    and null_space_drift_rate\n"
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "  -h, --help        show this help\n"
    "\n"
    "A mean gradient |g| above 1e-2 of the per-sample spread (in the reduced\n"
    "coordinates) is not a stationary point: refused, with its size, unless\n"
    "coupled weight decay balances it.\n"
    CLI_HELP_EXIT_STATUSES;

typedef struct {
    sgdstab_analysis an;
    sgdstab_gradient_stats stats;
    sgdstab_stationary_info info;
    sgdstab_stationary_summary sum;
    sgdstab_null_drift drift;
    double sigma;
    double *W;  /* r×r, NULL when unstable */
} stationary_result;

static int write_csv(const char *path, const sgdstab_reduced *red, double c,
                     const double *W)
{
    sgdstab_outfile *of = cli_csv_open(path);
    if (!of)
        return EXIT_DATA;
    FILE *f = sgdstab_outfile_stream(of);
    fprintf(f, "index,curvature,variance\n");
    for (size_t j = 0; j < red->r; j++) {
        fprintf(f, "%zu,", j);
        cli_csv_number(f, c * red->lambda[j], ",");
        cli_csv_number(f, W[j * red->r + j], "\n");
    }
    return cli_csv_commit(of);
}

static double relaxation_steps(double rho)
{
    return rho < 1 && rho > 0 ? -1 / log(rho) : INFINITY;
}

static void print_text(const cli_args *a, const cli_session *ses,
                       const stationary_result *res)
{
    const sgdstab_config *cfg = &ses->cfg;
    printf("%s: %s with lr %.6g, batch %zu (sampling %s), loss %s, label "
           "noise %g\n", a->file, sgdstab_optimizer_title(&cfg->optimizer),
           cfg->lr, cfg->batch, sgdstab_sampling_name(cfg->sampling), a->loss,
           res->sigma);
    cli_print_optimizer(a, cfg);
    const double rho = res->an.radius.rho;
    if (!res->W) {
        printf("  no stationary state: rho = %.15g >= 1 (eta* = %.10g); "
               "E|delta_t|^2 grows at %.6g per step\n", rho,
               res->an.critical.lr_critical, res->an.escape_rate_per_step);
        if (res->drift.directions)
            printf("  null space       H has curvature 0 on %zu direction%s J "
                   "moves: there the gradient noise is a random walk, alone "
                   "adding %.6g to E|delta|^2 per step (Mulayoff-Michaeli, "
                   "Thms 4-5)\n", res->drift.directions,
                   res->drift.directions > 1 ? "s" : "", res->drift.rate);
        return;
    }
    printf("  stationary state (rho = %.15g, eta* = %.10g)\n", rho,
           res->an.critical.lr_critical);
    printf("  E|delta|^2       %.15g\n", res->sum.second_moment);
    printf("  excess loss      %.15g\n", res->sum.excess_loss);
    printf("  E|grad L|^2      %.15g\n", res->sum.gradient_norm_sq);
    printf("  relaxation       %.6g steps per factor e (-1/ln rho)\n",
           relaxation_steps(rho));
    printf("  solve            %zu conjugate-gradient iterations, relative "
           "residual %.2g%s\n", res->info.iterations,
           res->info.relative_residual,
           res->info.converged ? "" : ", NOT CONVERGED");
    printf("  gradients        per-sample spread %.6g, mean %.3g\n",
           res->stats.spread, res->stats.mean_norm);
}

static int print_json(const cli_args *a, const cli_session *ses,
                      const stationary_result *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", a->file);
    cli_json_input(o, ses->prob);
    cli_json_point(o, &ses->cfg);
    cli_json_number(o, "loss_scale", ses->cfg.loss_scale);
    cli_json_optimizer(o, &ses->cfg);
    cli_json_number(o, "label_noise", res->sigma);
    cJSON_AddBoolToObject(o, "stable", res->W != NULL);
    cli_json_number(o, "spectral_radius", res->an.radius.rho);
    cli_json_number(o, "lr_critical", res->an.critical.lr_critical);
    cli_json_size(o, "null_space_directions", res->drift.directions);
    cli_json_number(o, "null_space_drift_rate", res->drift.rate);
    if (!res->W) {
        cli_json_number(o, "escape_rate_per_step",
                        res->an.escape_rate_per_step);
        return cli_json_print(o);
    }
    const char *keys[] = {"second_moment", "excess_loss", "gradient_norm_sq",
                          "relaxation_steps", "relative_residual",
                          "mean_gradient_norm", "gradient_spread"};
    const double values[] = {res->sum.second_moment, res->sum.excess_loss,
                             res->sum.gradient_norm_sq,
                             relaxation_steps(res->an.radius.rho),
                             res->info.relative_residual,
                             res->stats.mean_norm, res->stats.spread};
    cli_json_numbers(o, sizeof keys / sizeof keys[0], keys, values);
    cli_json_size(o, "iterations", res->info.iterations);
    cJSON_AddBoolToObject(o, "converged", res->info.converged);
    return cli_json_print(o);
}

/* Where the map is unstable: the undamped directions and the random walk
 * of the gradient noise there (its mean gradient not checked: the report
 * is of the escape). */
static int null_space_drift(const cli_args *a, const cli_session *ses,
                            stationary_result *res)
{
    const sgdstab_reduced *red = ses->red;
    const size_t r = red->r;
    const int noise = ses->prob->R || res->sigma > 0;
    double *C = NULL;
    sgdstab_error err;
    if (noise && sgdstab_undamped_directions(red, &ses->cfg) &&
        !(C = malloc((r ? r * r : 1) * sizeof *C)))
        return cli_data_error(a->cmd, a->file, "out of memory");
    int failed = (C && sgdstab_gradient_noise(red, ses->prob, &ses->cfg,
                                              res->sigma, C, NULL, &err)) ||
                 sgdstab_null_space_drift(ses->prob, red, &ses->cfg, C,
                                          &res->drift, &err);
    free(C);
    return failed ? cli_report_file(a->file, &err) : EXIT_OK;
}

/* C, the stationary-point check, the solve and its summary. */
static int solve(const cli_args *a, const cli_session *ses, size_t max_it,
                 stationary_result *res)
{
    const sgdstab_reduced *red = ses->red;
    const size_t r = red->r;
    double *C = NULL;
    res->W = calloc(r ? r * r : 1, sizeof *res->W);
    int status = res->W ? EXIT_OK
                        : cli_data_error(a->cmd, a->file, "out of memory");
    if (!status)
        status = cli_gradient_noise(a, ses, &ses->cfg, res->sigma, &C,
                                    &res->stats);
    if (!status && C)
        status = cli_stationary(a, ses, &ses->cfg, C, max_it, res->W,
                                &res->info, &res->sum);
    else if (!status)
        res->info.converged = 1;  /* no noise: S = 0 */
    if (!status && a->csv)
        status = write_csv(a->csv, red, ses->cfg.loss_scale, res->W);
    free(C);
    return status;
}

int cmd_stationary(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPTS_AT_ONE_POINT, CLI_OPTS_OPTIMIZER, CLI_OPT_JSON, CLI_OPT_CSV,
        CLI_OPT_LABEL_NOISE,
        CLI_ARG("max-iterations", OPT_MAX_ITERATIONS), CLI_OPT_HELP,
        CLI_OPT_END};
    cli_args args;
    cli_args_init(&args, "stationary");
    args.residual_noise = 1;
    const char *sigma_text = NULL, *max_text = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, args.cmd, opts)) != -1) {
        if (c == 'h') {
            fputs(STATIONARY_HELP, stdout);
            return EXIT_OK;
        }
        if (c == OPT_LABEL_NOISE)
            sigma_text = optarg;
        else if (c == OPT_MAX_ITERATIONS)
            max_text = optarg;
        else if (cli_common_option(&args, c, optarg))
            return EXIT_USAGE;
    }
    stationary_result res = {.sigma = 0};
    size_t max_it = 0;
    if (cli_check_outputs(&args, NULL, &args.csv, 1) ||
        cli_parse_label_noise(args.cmd, sigma_text, &res.sigma) ||
        (max_text && cli_parse_size(args.cmd, "max-iterations", max_text, 1,
                                    &max_it)))
        return EXIT_USAGE;
    cli_session ses;
    int status = cli_session_at(&args, &ses);
    if (status)
        return status;
    sgdstab_error err;
    if (sgdstab_analyze(ses.stab, &ses.cfg, &res.an, NULL, &err))
        status = cli_report_file(args.file, &err);
    else if (res.an.radius.rho < 1 && res.an.stable)
        status = solve(&args, &ses, max_it, &res);
    else
        status = null_space_drift(&args, &ses, &res);
    if (!status && args.json)
        status = print_json(&args, &ses, &res);
    else if (!status)
        print_text(&args, &ses, &res);
    free(res.W);
    cli_session_close(&ses);
    return status;
}
