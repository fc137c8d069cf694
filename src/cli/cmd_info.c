/* sgdstab info FILE: what is in a problem file, and the basic spectral facts
 * of its Gauss–Newton matrix G = (1/n) Σ J_iᵀJ_i. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/memplan.h"
#include "sgdstab/npy.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"

static const char INFO_HELP[] =
    "Usage: sgdstab info FILE [--json] [--loss L] [--rank-tol RTOL]\n"
    "                    [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                    [--params P]\n"
    "\n"
    "Describe a problem file: the per-sample output Jacobian J and, if present,\n"
    "the Hessian H.  FILE is a .npy holding J with shape (n, p) or (n, k, p),\n"
    "or a .npz holding an array 'J' of those shapes and optionally 'H' (p, p).\n"
    "\n"
    "In place of J a .npz may hold its Gram matrix 'K' = J J^T (the empirical\n"
    "NTK), shape (n*k, n*k) with rows sample-major then output, or (n, k, n,\n"
    "k); for (n*k, n*k), n and k come from meta.json (else k = 1).  K must be\n"
    "finite, symmetric to 1e-10 relative (100 eps for float32) and positive\n"
    "semidefinite: eigenvalues below -RTOL^2 * lambda_max(K) are an error,\n"
    "those above are rounding.  With it: 'R' (the residuals) and 'KP', the\n"
    "preconditioned Gram J P^-1 J^T of Adam, AdamW or RMSprop (sgdstab-export\n"
    "--gram), not 'H' or 'V'.  p is then meta.json's \"p\", --params, or\n"
    "unknown; what needs parameter space (a start S0 given as a matrix, E|d|^2\n"
    "with a preconditioner, coupled weight decay with one) is refused.\n"
    "\n"
    "Reported: n (samples), k (outputs per sample), p (parameters), the dtype\n"
    "J was stored with, the numerical rank r of the (n*k) x p matrix J and the\n"
    "tolerance used, the dimension p - r of the null space (directions no\n"
    "sample moves, projected out of every analysis), the largest eigenvalue\n"
    "and the trace of G = (1/n) sum_i J_i^T J_i (as stored: the Gauss-Newton\n"
    "matrix of the half-mean loss, whatever --loss says), whether H is\n"
    "present, and the loss convention in force with the sharpness\n"
    "lambda_max(H) and tr H in it (H = G when not supplied), the numbers\n"
    "'analyze' reports under the same --loss; with H, its negative\n"
    "eigenvalues within the --negative-curvature tolerance, taken as flat;\n"
    "and the memory a run needs at its peak (memory_required).\n"
    "\n"
    "A .npz may also hold meta.json, a JSON object about the minimum (sgdstab\n"
    "synth and the PyTorch exporter write one).  Read from it: \"loss\", the\n"
    "default of --loss for the commands that take it; \"residual_rms\",\n"
    "\"max_residual\" and \"target_rms\", the RMS and the largest norm of the\n"
    "training residual f(x_i) - y_i and the RMS norm of the targets y_i; and\n"
    "\"n\", \"k\", \"p\", which must be J's.  The minimum counts as interpolating\n"
    "when residual_rms <= 1% of target_rms.  The noise model of sgdstab\n"
    "assumes interpolation: at a minimum that is not interpolating, every\n"
    "command says so in a note on stderr and analyzes the Gauss-Newton\n"
    "surrogate G (or H, when given, without the additive gradient noise).\n"
    "\n"
    "Options:\n"
    "  --json            print one JSON object on stdout (keys: file, n, k, p\n"
    "                    (null when not known), input (jacobian or gram),\n"
    "                    dtype, rank, rank_rtol, rank_tol, null_dim, sigma_max,\n"
    "                    lambda_max_G, trace_G (unscaled G), has_hessian,\n"
    "                    hessian_dtype, loss (half-mean, mse or the number c),\n"
    "                    loss_scale (c), sharpness, hessian_trace (in the\n"
    "                    loss convention, as in 'analyze --json'),\n"
    "                    negative_curvature_tolerance, flat_negative_count,\n"
    "                    flat_negative_min, flat_moved_count (see 'sgdstab\n"
    "                    analyze --help'), memory_required (bytes: the peak\n"
    "                    of loading and factorizing, or of the problem beside\n"
    "                    the eigensolver's bases for rho and eta*),\n"
    "                    residual_rms, max_residual, target_rms, interpolating;\n"
    "                    the last four null when meta.json does not tell)\n"
    "  --loss L          loss convention of sharpness and tr H: half-mean\n"
    "                    (default), mse (scale 2/k) or a positive number c;\n"
    "                    without --loss, the \"loss\" of FILE's meta.json\n"
    "  --rank-tol RTOL   relative rank tolerance: singular values above\n"
    "                    RTOL * sigma_max count (default max(n*k, p) * eps,\n"
    "                    eps the machine epsilon of J's stored precision;\n"
    "                    for K, whose eigenvalues sigma^2 are accurate to\n"
    "                    about eps * lambda_max(K), sqrt(n*k * eps))\n"
    "  --max-memory SIZE the memory loading and factorizing FILE may take, in\n"
    "                    bytes with an optional K, M, G or T (powers of 1000):\n"
    "                    a file that needs more (J as float64, its SVD and,\n"
    "                    with H, its eigendecomposition) is refused before it\n"
    "                    is read; default: the smallest of MemAvailable, the\n"
    "                    environment's SGDSTAB_MAX_MEMORY and what ulimit -v\n"
    "                    leaves; the other commands also fit the eigensolver\n"
    "                    to what is left (90% of MemAvailable, or the limit\n"
    "                    less what is held), with smaller bases if needed,\n"
    "                    and refuse a problem whose r does not fit\n"
    "  --params P        p of a Gram-matrix FILE whose meta.json lacks it\n"
    "  --negative-curvature TOL\n"
    "                    with H: negative eigenvalues down to -TOL*lambda_max(H)\n"
    "                    are flat (default 1e-6, at most 0.01; strict: none)\n"
    "  -h, --help        show this help\n"
    "\n"
    CLI_HELP_EXIT_STATUSES;

static double lambda_max_G(const sgdstab_reduced *red)
{
    return red->sigma[0] * red->sigma[0] / (double)red->n;
}

/* Sharpness and tr H in the loss convention in force, as analyze reports
 * them. */
typedef struct {
    double scale, sharpness, trace;
} info_hessian;

static info_hessian hessian_in_convention(const cli_args *a,
                                          const sgdstab_reduced *red)
{
    sgdstab_config cfg;
    double c = cli_config(a, red->k, &cfg) ? NAN : cfg.loss_scale;
    return (info_hessian){c, c * sgdstab_reduced_hessian_max(red),
                          c * sgdstab_reduced_hessian_trace(red)};
}

static void print_text(const cli_args *a, const sgdstab_problem *prob,
                       const sgdstab_reduced *red)
{
    const char *descr = prob->K ? prob->K_descr : prob->J_descr;
    const char *what = sgdstab_npy_itemsize(descr) == 8   ? "float64"
                       : sgdstab_npy_itemsize(descr) == 4 ? "float32"
                                                          : "float16";
    double lmax = lambda_max_G(red);
    printf("%s\n", prob->source);
    if (prob->K)
        printf("  Gram matrix  K = J J^T of n = %zu samples, k = %zu output%s "
               "each (%zu x %zu, stored as %s '%s'); p = %s parameters\n",
               prob->n, prob->k, prob->k == 1 ? "" : "s", prob->n * prob->k,
               prob->n * prob->k, what, descr, cli_params(prob->p).s);
    else
        printf("  Jacobian J   n = %zu samples, k = %zu output%s each, p = %zu "
               "parameters (stored as %s '%s')\n", prob->n, prob->k,
               prob->k == 1 ? "" : "s", prob->p, what, descr);
    printf("  rank         r = %zu of at most %zu (singular values%s above "
           "%.3g = %.3g * sigma_max)\n", red->rank_J, red->nsv,
           prob->K ? ", the square roots of K's eigenvalues," : "",
           red->rank_tol, red->rank_rtol);
    if (prob->p)
        printf("  null space   %zu of %zu parameter directions never move "
               "(%s); they are projected out\n", prob->p - red->r, prob->p,
               !prob->H ? "no J_i moves them"
               : red->flat_negative > red->flat_moved
                   ? "no J_i moves them, and H is zero or flat there"
                   : "null of H and of every J_i");
    else
        printf("  null space   not known: the Gram matrix does not tell p "
               "(--params P does)\n");
    printf("  G = (1/n) sum J_i^T J_i   lambda_max = %.10g, trace = %.10g "
           "(unscaled)\n", lmax, red->trace_G);
    if (prob->H)
        printf("  Hessian H    supplied (%zu x %zu, stored as '%s'); H - G "
               "acts as a deterministic part of every minibatch Hessian\n",
               prob->p, prob->p, prob->H_descr);
    else
        printf("  Hessian H    not supplied: H = G (the Gauss-Newton matrix, "
               "exact at an interpolating minimum)\n");
    info_hessian hc = hessian_in_convention(a, red);
    printf("  sharpness    lambda_max(H) = %.10g, tr H = %.10g in loss %s "
           "(scale %.6g)\n", hc.sharpness, hc.trace, a->loss, hc.scale);
    cli_print_flat("  flat         ", red, hc.scale, 0);
    char need[32];
    sgdstab_memory_format(sgdstab_run_memory(prob, red, 2), need, sizeof need);
    printf("  memory       a run needs about %s (the problem, its reduced "
           "form and the eigensolver's bases: %d vectors of r(r+1)/2 = %zu "
           "doubles, twice, for each of rho and eta*)\n", need,
           SGDSTAB_BASIS_DEFAULT, red->r * (red->r + 1) / 2);
    cli_print_residual("  minimum      ", prob);
}

static int print_json(const cli_args *a, const sgdstab_problem *prob,
                      const sgdstab_reduced *red)
{
    cJSON *o = cli_json_problem(prob);
    cJSON_AddStringToObject(o, "dtype", prob->K ? prob->K_descr
                                                : prob->J_descr);
    cli_json_size(o, "rank", red->rank_J);
    cli_json_number(o, "rank_rtol", red->rank_rtol);
    cli_json_number(o, "rank_tol", red->rank_tol);
    cli_json_null_dim(o, prob, red);
    cli_json_number(o, "memory_required", sgdstab_run_memory(prob, red, 2));
    cli_json_number(o, "sigma_max", red->sigma[0]);
    cli_json_number(o, "lambda_max_G", lambda_max_G(red));
    cli_json_number(o, "trace_G", red->trace_G);
    cJSON_AddBoolToObject(o, "has_hessian", prob->H != NULL);
    if (prob->H)
        cJSON_AddStringToObject(o, "hessian_dtype", prob->H_descr);
    else
        cJSON_AddNullToObject(o, "hessian_dtype");
    info_hessian hc = hessian_in_convention(a, red);
    cli_json_loss(o, a, prob, hc.scale);
    cli_json_number(o, "sharpness", hc.sharpness);
    cli_json_number(o, "hessian_trace", hc.trace);
    cli_json_flat(o, red, hc.scale, 0);
    cli_json_provenance(o, prob);
    return cli_json_print(o);
}

static int info(cli_args *a)
{
    if (cli_require(a, 0, 0))
        return EXIT_USAGE;
    sgdstab_problem *prob;
    sgdstab_reduced *red;
    if (cli_load(a, &prob, &red))
        return EXIT_DATA;
    int status = EXIT_OK;
    if (a->json)
        status = print_json(a, prob, red);
    else
        print_text(a, prob, red);
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);
    return status;
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_JSON, CLI_OPT_LOSS, CLI_OPT_RANK_TOL,
        CLI_OPT_NEGATIVE_CURVATURE, CLI_OPTS_PROBLEM_SIZE, CLI_OPT_HELP,
        CLI_OPT_END};
    return cli_main("info", argc, argv, opts, INFO_HELP, info);
}
