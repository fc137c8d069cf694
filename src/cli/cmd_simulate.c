/* sgdstab simulate FILE --lr η --batch B --steps T: Monte Carlo SGD;
 * with --epoch or --threshold, the one-epoch second-moment map estimated
 * from sampled epochs (epoch.h). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "progress.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/epoch.h"
#include "sgdstab/outfile.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

enum {
    OPT_STEPS = OPT_FIRST_PRIVATE, OPT_RUNS, OPT_SEED, OPT_INIT, OPT_THREADS,
    OPT_FIT_FROM, OPT_COMPARE, OPT_CLIP, OPT_NOISE, OPT_RADIUS, OPT_QUIET,
    OPT_EPOCH, OPT_THRESHOLD
};

static const char SIMULATE_HELP[] =
    "Usage: sgdstab simulate FILE --lr ETA --batch B --steps T [--runs R]\n"
    "                        [--seed S] [--sampling S] [--init S0.npy|zero]\n"
    "                        [--compare] [--fit-from T0] [--threads N]\n"
    "                        [--noise SPEC] [--clip C] [--radius R]\n"
    "                        [--csv F | --json] [--quiet] [--hessian H.npy]\n"
    "                        [--loss L] [--rank-tol RTOL]\n"
    "                        [--negative-curvature TOL] [--max-memory SIZE]\n"
    "       sgdstab simulate FILE --epoch --lr ETA --batch B [--runs R] [--seed S]\n"
    "                        [--sampling S] [--compare] [--json] ...\n"
    "       sgdstab simulate FILE --threshold --batch B [--lr ETA] [--runs R]\n"
    "                        [--seed S] [--sampling S] [--json] ...\n"
    "\n"
    "Run R independent trajectories of linearized SGD with real minibatches,\n"
    "delta_{t+1} = delta_t - eta (H_xi delta_t - Z_t), and report per step the\n"
    "mean over runs of |delta_t|^2 and of the loss L_t = (c/2) delta_t^T G\n"
    "delta_t with the half-width of a 95% confidence interval (1.96 sd /\n"
    "sqrt(R)), and the growth rate of the mean |delta_t|^2 per step: the\n"
    "least-squares slope of its log over steps T0..T, with a jackknife\n"
    "standard error over 20 groups of runs.  Results depend on the seed only,\n"
    "not on the number of threads.\n"
    "\n"
    "With --epoch, no trajectories: R epochs of ceil(n/B) steps are sampled,\n"
    "each giving the product M of its factors (I - eta H_xi), and the map\n"
    "S -> E[M S M^T] that carries the second moment from one epoch end to the\n"
    "next is estimated by their average (symmetrized, which is exact because\n"
    "reversing an epoch's batches turns M into M^T).  Reported: its spectral\n"
    "radius rho_epoch with a jackknife standard error (20 groups of epochs),\n"
    "and the growth rate ln(rho_epoch)/ceil(n/B) per step.  For fresh\n"
    "batches rho_epoch estimates rho^ceil(n/B) of the exact engine; for\n"
    "reshuffle (B must divide n) it is the only way to the rate.  With\n"
    "short epochs (few steps) the estimate avoids the heavy-tail bias of\n"
    "long trajectories near the threshold; with long epochs (B << n) its\n"
    "products are heavy-tailed too: the standard error is then too small\n"
    "and, far above the threshold, the rate comes out low.  With\n"
    "--threshold, the learning rate where rho_epoch = 1 (same sampled batches\n"
    "at every eta; search started from --lr, by default from the exact\n"
    "eta*(B) of fresh batches drawn without replacement or by --sampling),\n"
    "its standard error, and the exact eta*(B) beside it.\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required, except with --threshold)\n"
    "  --batch B         batch size (required)\n"
    "  --steps T         number of steps (required, except with --epoch or\n"
    "                    --threshold)\n"
    "  --runs R          number of trajectories, or of sampled epochs\n"
    "                    (default 1000, at least 2)\n"
    "  --seed S          random seed, 0 to 2^32 - 1 (default 1)\n"
    "  --sampling S      without (default; B distinct samples, fresh each\n"
    "                    step), with (B i.i.d. draws), bernoulli (each sample\n"
    "                    kept with probability B/n, sum divided by B) or\n"
    "                    reshuffle (each epoch a random permutation cut into\n"
    "                    batches of B; the last has n mod B samples when B\n"
    "                    does not divide n; each averaged over its size)\n"
    "  --init S0.npy     delta_0 ~ N(0, S0), S0 a (p, p) PSD matrix; --init\n"
    "                    zero starts at the minimum (default: N(0, I/p))\n"
    "  --compare         beside the estimates: the exact E|delta_t|^2 (as\n"
    "                    'evolve' computes it; for reshuffle, of sampling\n"
    "                    without), the z-score (mean - exact)/(sd/sqrt(R)),\n"
    "                    the exact ln rho (as 'analyze') and the exact curve's\n"
    "                    slope over the same steps; not with --noise, --clip;\n"
    "                    with --epoch: the exact rho^ceil(n/B) and ln rho.\n"
    "                    Where rho > 1 (lr above eta*(B)) E|delta_t|^2 grows\n"
    "                    through rare runs: the mean over R runs falls far\n"
    "                    below it, its z-scores are not normal and its rate\n"
    "                    is no estimate of ln rho, so a warning says so\n"
    "                    (JSON: mean_estimate_reliable false, note); the\n"
    "                    one-epoch map (--epoch) estimates the rate there\n"
    "  --epoch           estimate the one-epoch map at --lr (see above)\n"
    "  --threshold       estimate where the one-epoch map's radius crosses 1\n"
    "  --fit-from T0     first step of the growth-rate fit (default ceil(T/2))\n"
    "  --threads N       worker threads (default: one per processor)\n"
    "  --noise SPEC      inject noise Z_t into every step:\n"
    "                    gaussian:SCALE     Z = SCALE N(0, I_p)\n"
    "                    pareto:ALPHA:SCALE a uniform direction times\n"
    "                    SCALE U^(-1/ALPHA), U uniform: P(|Z| > x) =\n"
    "                    (x/SCALE)^-ALPHA for x >= SCALE (tail index ALPHA)\n"
    "  --clip C          scale every step eta (H_xi delta - Z) down to norm C\n"
    "                    when it is longer\n"
    "  --radius R        stop each run at its first exit |delta_t| > R and\n"
    "                    report exit-step statistics instead of moments:\n"
    "                    exited runs, fraction never exited within T, mean\n"
    "                    (of exited runs), censored mean (sum over runs of\n"
    "                    min(exit step, T) / exited: the mean if exits are\n"
    "                    memoryless, not biased by runs that never left),\n"
    "                    quantiles 0.1 0.25 0.5 0.75 0.9\n"
    "                    (the ceil(qR)-th smallest exit step, runs that never\n"
    "                    exited counting as infinite)\n"
    "  --csv F           write F: step,second_moment,second_moment_ci,loss,\n"
    "                    loss_ci (and exact_second_moment,z_score)\n"
    "  --json            JSON on stdout\n"
    "  --quiet           no progress bar (drawn only on a terminal anyway)\n"
    CLI_HELP_PROBLEM_OPTIONS
    "  -h, --help        show this help\n";

static const double Z95 = 1.959963984540054;

typedef struct {
    sgdstab_sim_options o;
    const char *sampling_name;
    size_t fit_from, fit_to;
    int compare, quiet, epoch, threshold;
    /* with --compare */
    double *exact, *exact_loss, rho, exact_rate, exact_window;
    sgdstab_sampling exact_sampling;
    sgdstab_verdict verdict;    /* at lr, of the exact sampling */
} sim_run;

/* Above the threshold (rho > 1) the mean of |delta_t|^2 is carried by rare
 * runs whose weight a sample of R runs does not see: the sample mean is
 * then far below E|delta_t|^2, with a sample sd far too small, so neither
 * it, its rate nor its z-scores (not normal) estimate the exact curve.  At
 * the threshold (rho = 1 to rounding) it is still usable. */
static int mean_reliable(const sim_run *sr)
{
    return sr->verdict != SGDSTAB_VERDICT_UNSTABLE;
}

#define UNRELIABLE_WHY                                                     \
    "E|delta_t|^2 grows through rare runs, so the mean over the runs is no "  \
    "usable estimate of it (typically far below it, z-scores not normal, "  \
    "its growth rate no estimate of ln rho); use --epoch for the "          \
    "mean-square rate"

static int parse_noise(const char *cmd, const char *text,
                       sgdstab_sim_options *o)
{
    char *end;
    if (strncmp(text, "gaussian:", 9) == 0) {
        o->noise = SGDSTAB_NOISE_GAUSSIAN;
        o->noise_scale = strtod(text + 9, &end);
        if (end != text + 9 && *end == '\0' && o->noise_scale > 0 &&
            isfinite(o->noise_scale))
            return 0;
    } else if (strncmp(text, "pareto:", 7) == 0) {
        o->noise = SGDSTAB_NOISE_PARETO;
        o->noise_alpha = strtod(text + 7, &end);
        if (end != text + 7 && *end == ':' && o->noise_alpha > 0 &&
            isfinite(o->noise_alpha)) {
            const char *s = end + 1;
            o->noise_scale = strtod(s, &end);
            if (end != s && *end == '\0' && o->noise_scale > 0 &&
                isfinite(o->noise_scale))
                return 0;
        }
    }
    return cli_usage_error(cmd, "--noise: '%s' is not gaussian:SCALE or "
                           "pareto:ALPHA:SCALE with ALPHA, SCALE > 0", text);
}

static int parse_positive(const char *cmd, const char *opt, const char *text,
                          double *out)
{
    if (cli_parse_double(cmd, opt, text, out))
        return EXIT_USAGE;
    if (!(*out > 0))
        return cli_usage_error(cmd, "--%s must be positive, not %s", opt,
                               text);
    return EXIT_OK;
}

static void json_array(cJSON *o, const char *key, const double *v, size_t m)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t t = 0; t < m; t++)
        cJSON_AddItemToArray(arr, cli_json_value(v[t]));
}

static double z_score(const sgdstab_sim_result *res, const sim_run *sr,
                      size_t t)
{
    double se = res->norm2_sd[t] / sqrt((double)res->runs);
    double d = res->norm2_mean[t] - sr->exact[t];
    return se > 0 ? d / se : d == 0 ? 0 : copysign(INFINITY, d);
}

static int write_csv(const char *path, const sgdstab_sim_result *res,
                     const sim_run *sr)
{
    sgdstab_outfile *of = cli_csv_open(path);
    if (!of)
        return EXIT_DATA;
    FILE *f = sgdstab_outfile_stream(of);
    double sq = sqrt((double)res->runs);
    fprintf(f, "step,second_moment,second_moment_ci,loss,loss_ci%s\n",
            sr->compare ? ",exact_second_moment,z_score" : "");
    for (size_t t = 0; t <= res->steps; t++) {
        fprintf(f, "%zu,", t);
        cli_csv_number(f, res->norm2_mean[t], ",");
        cli_csv_number(f, Z95 * res->norm2_sd[t] / sq, ",");
        cli_csv_number(f, res->loss_mean[t], ",");
        cli_csv_number(f, Z95 * res->loss_sd[t] / sq, sr->compare ? "," : "\n");
        if (sr->compare) {
            cli_csv_number(f, sr->exact[t], ",");
            cli_csv_number(f, z_score(res, sr, t), "\n");
        }
    }
    return cli_csv_commit(of);
}

/* The JSON keys every simulate mode shares: the problem and the run. */
static cJSON *json_head(const cli_args *a, const cli_session *ses,
                        const sim_run *sr)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", a->file);
    cli_json_size(j, "n", ses->red->n);
    cli_json_size(j, "k", ses->red->k);
    cli_json_size(j, "p", ses->red->p);
    cli_json_size(j, "rank", ses->red->rank_J);
    cli_json_size(j, "batch", sr->o.config.batch);
    cJSON_AddStringToObject(j, "sampling", sr->sampling_name);
    cli_json_number(j, "loss_scale", sr->o.config.loss_scale);
    cli_json_size(j, "runs", sr->o.runs);
    cli_json_size(j, "seed", sr->o.seed);
    return j;
}

static int print_json(const cli_args *a, const cli_session *ses,
                      const sim_run *sr, const sgdstab_sim_result *res)
{
    const sgdstab_sim_options *o = &sr->o;
    cJSON *j = json_head(a, ses, sr);
    cli_json_number(j, "lr", o->config.lr);
    cli_json_size(j, "steps", o->steps);
    if (o->noise == SGDSTAB_NOISE_GAUSSIAN) {
        cJSON_AddStringToObject(j, "noise", "gaussian");
        cli_json_number(j, "noise_scale", o->noise_scale);
    } else if (o->noise == SGDSTAB_NOISE_PARETO) {
        cJSON_AddStringToObject(j, "noise", "pareto");
        cli_json_number(j, "noise_alpha", o->noise_alpha);
        cli_json_number(j, "noise_scale", o->noise_scale);
    }
    if (o->clip > 0)
        cli_json_number(j, "clip", o->clip);
    if (o->radius > 0) {
        sgdstab_exit_stats es;
        sgdstab_sim_exit_stats(res, &es);
        cJSON *e = cJSON_AddObjectToObject(j, "exit");
        cli_json_number(e, "radius", o->radius);
        cli_json_size(e, "exited", es.exited);
        cli_json_number(e, "never_exited_fraction", es.never_fraction);
        cli_json_number(e, "mean", es.mean);
        cli_json_number(e, "censored_mean", es.censored_mean);
        cli_json_number(e, "median", es.quantiles[2]);
        cJSON *q = cJSON_AddObjectToObject(e, "quantiles");
        for (int i = 0; i < 5; i++) {
            char key[16];
            snprintf(key, sizeof key, "%g", SGDSTAB_EXIT_QUANTILES[i]);
            cli_json_number(q, key, es.quantiles[i]);
        }
        return cli_json_print(j);
    }
    double rate, se;
    sgdstab_sim_growth_rate(res, sr->fit_from, sr->fit_to, &rate, &se);
    cli_json_size(j, "fit_from", sr->fit_from);
    cli_json_size(j, "fit_to", sr->fit_to);
    cli_json_number(j, "growth_rate_per_step", rate);
    cli_json_number(j, "growth_rate_stderr", se);
    size_t T1 = res->steps + 1;
    double *ci = malloc(T1 * sizeof *ci);
    if (!ci) {
        cJSON_Delete(j);
        return cli_usage_error("simulate", "out of memory");
    }
    json_array(j, "second_moment", res->norm2_mean, T1);
    for (size_t t = 0; t < T1; t++)
        ci[t] = Z95 * res->norm2_sd[t] / sqrt((double)res->runs);
    json_array(j, "second_moment_ci", ci, T1);
    json_array(j, "loss", res->loss_mean, T1);
    for (size_t t = 0; t < T1; t++)
        ci[t] = Z95 * res->loss_sd[t] / sqrt((double)res->runs);
    json_array(j, "loss_ci", ci, T1);
    if (sr->compare) {
        cJSON_AddStringToObject(j, "exact_sampling",
                                sgdstab_sampling_name(sr->exact_sampling));
        json_array(j, "exact_second_moment", sr->exact, T1);
        for (size_t t = 0; t < T1; t++)
            ci[t] = z_score(res, sr, t);
        json_array(j, "z_score", ci, T1);
        cli_json_number(j, "exact_spectral_radius", sr->rho);
        cli_json_number(j, "exact_rate_per_step", sr->exact_rate);
        cli_json_number(j, "exact_rate_window", sr->exact_window);
        cJSON_AddBoolToObject(j, "mean_estimate_reliable", mean_reliable(sr));
        if (!mean_reliable(sr))
            cJSON_AddStringToObject(j, "note", "lr above eta*(B) (rho > 1): "
                                    UNRELIABLE_WHY);
    }
    free(ci);
    return cli_json_print(j);
}

static void print_text(const cli_args *a, const sim_run *sr,
                       const sgdstab_sim_result *res)
{
    const sgdstab_sim_options *o = &sr->o;
    printf("%s: %zu runs of SGD with lr %.6g, batch %zu (sampling %s), loss "
           "%s, seed %lu",
           a->file, o->runs, o->config.lr, o->config.batch, sr->sampling_name,
           a->loss, o->seed);
    if (o->noise == SGDSTAB_NOISE_GAUSSIAN)
        printf(", Gaussian noise of scale %.6g", o->noise_scale);
    else if (o->noise == SGDSTAB_NOISE_PARETO)
        printf(", Pareto noise (tail index %.6g, scale %.6g)", o->noise_alpha,
               o->noise_scale);
    if (o->clip > 0)
        printf(", steps clipped to norm %.6g", o->clip);
    printf("\n");
    if (o->radius > 0) {
        sgdstab_exit_stats es;
        sgdstab_sim_exit_stats(res, &es);
        printf("first exit from the ball |delta| <= %.6g within %zu steps: "
               "%zu of %zu runs (%.4g%% never left)\n", o->radius, o->steps,
               es.exited, o->runs, 100 * es.never_fraction);
        if (es.exited)
            printf("  mean exit step (exited runs)  %.6g\n"
                   "  censored mean (memoryless)    %.6g\n", es.mean,
                   es.censored_mean);
        for (int i = 0; i < 5; i++)
            printf("  quantile %-4g exit step       %.6g%s\n",
                   SGDSTAB_EXIT_QUANTILES[i], es.quantiles[i],
                   isinf(es.quantiles[i]) ? " (not within the steps run)" : "");
        return;
    }
    size_t every = o->steps <= 100 ? 1 : (o->steps + 99) / 100;
    double sq = sqrt((double)res->runs);
    if (every > 1)
        printf("(every %zu-th step shown; --csv F writes all)\n", every);
    printf("%8s  %22s  %10s  %22s  %10s", "step", "mean |delta_t|^2", "95% +-",
           "mean L_t", "95% +-");
    if (sr->compare)
        printf("  %22s  %8s", "exact E|delta_t|^2", "z");
    printf("\n");
    for (size_t t = 0; t <= o->steps; t++) {
        if (t % every && t != o->steps)
            continue;
        printf("%8zu  %22.15g  %10.3g  %22.15g  %10.3g", t, res->norm2_mean[t],
               Z95 * res->norm2_sd[t] / sq, res->loss_mean[t],
               Z95 * res->loss_sd[t] / sq);
        if (sr->compare)
            printf("  %22.15g  %8.3g", sr->exact[t], z_score(res, sr, t));
        printf("\n");
    }
    double rate, se;
    sgdstab_sim_growth_rate(res, sr->fit_from, sr->fit_to, &rate, &se);
    printf("growth rate of mean |delta_t|^2 over steps %zu..%zu: %.6g per step "
           "(jackknife standard error %.2g)\n", sr->fit_from, sr->fit_to,
           rate, se);
    if (sr->compare) {
        printf("exact (sampling %s): ln rho = %.6g per step (rho = %.10g); "
               "slope of the exact curve over the same steps %.6g\n",
               sgdstab_sampling_name(sr->exact_sampling), sr->exact_rate,
               sr->rho, sr->exact_window);
        if (mean_reliable(sr))
            printf("(|z| above about 3 at many steps means disagreement; "
                   "the estimate of a growing mean is noisy when runs are "
                   "few)\n");
        else
            printf("warning: lr %.10g is above eta*(B) (rho = %.10g > 1): "
                   UNRELIABLE_WHY "\n", o->config.lr, sr->rho);
    }
}

/* A work that takes minutes is announced, with a rough time (at 1 GFLOP/s,
 * the order of the simulator's rate on two cores), unless --quiet. */
static void note_work(const sim_run *sr, double flops)
{
    if (!sr->quiet && flops > 1e11 && flops <= SGDSTAB_WORK_MAX)
        fprintf(stderr, "sgdstab simulate: note: about %.2g floating-point "
                "operations, roughly %.0f minutes at 1 GFLOP/s\n", flops,
                flops / 1e9 / 60);
}

/* The configuration of the exact engine beside a simulation: reshuffled
 * epochs have no per-step map, fresh batches without replacement stand in
 * for them. */
static sgdstab_config fresh_batches(const sgdstab_config *cfg)
{
    sgdstab_config exact = *cfg;
    if (exact.sampling == SGDSTAB_SAMPLING_RESHUFFLE)
        exact.sampling = SGDSTAB_SAMPLING_WITHOUT;
    return exact;
}

/* The exact columns of --compare. */
static int exact_columns(const cli_args *a, const cli_session *ses,
                         const double *S0, sim_run *sr)
{
    size_t T1 = sr->o.steps + 1;
    sgdstab_config exact = fresh_batches(&sr->o.config);
    sr->exact_sampling = exact.sampling;
    sr->exact = calloc(T1, sizeof *sr->exact);
    sr->exact_loss = calloc(T1, sizeof *sr->exact_loss);
    if (!sr->exact || !sr->exact_loss)
        return cli_usage_error(a->cmd, "out of memory");
    int status = sr->o.init == SGDSTAB_INIT_ZERO
                     ? EXIT_OK
                     : cli_exact_evolve(ses, &exact, sr->o.steps, S0,
                                        sr->exact, sr->exact_loss);
    if (status)
        return status;
    sgdstab_analysis an;
    sgdstab_error err;
    if (sgdstab_analyze(ses->stab, &exact, &an, NULL, &err))
        return cli_report_file(a->file, &err);
    sr->rho = an.radius.rho;
    sr->verdict = an.verdict;
    sr->exact_rate = an.escape_rate_per_step;
    sr->exact_window = sgdstab_log_slope(sr->exact, sr->fit_from, sr->fit_to);
    return EXIT_OK;
}

/* --epoch and --threshold: the estimated one-epoch map (epoch.h) beside
 * the exact engine's fresh-batch values. */
static int run_epoch(const cli_args *a, const cli_session *ses, sim_run *sr)
{
    sgdstab_sim_options *o = &sr->o;
    sgdstab_error err;
    sgdstab_config exact = fresh_batches(&o->config);
    sgdstab_sampling fresh = exact.sampling;
    sgdstab_critical cr = {0};
    if (sr->threshold && sgdstab_critical_lr(ses->stab, &exact, &cr, &err))
        return cli_report_file(a->file, &err);
    double lr_th = NAN, lr_se = NAN;
    sgdstab_epoch_estimate est;
    if (sr->threshold) {
        if (!a->have_lr && cr.kind != SGDSTAB_MINIMUM_OK)
            return cli_usage_error(a->cmd, "--threshold: the exact engine "
                                   "finds no stable learning rate to start "
                                   "from (not a minimum?); give --lr");
        o->config.lr = a->have_lr ? a->lr : cr.lr_critical;
    }
    if (sgdstab_epoch_check(ses->red, o, &err) ||
        sgdstab_work_check(sgdstab_epoch_work(ses->red, o, sr->threshold),
                           SGDSTAB_EPOCH_WORK_MAX,
                           sr->threshold ? "--threshold with these --runs"
                                         : "--epoch with these --runs", &err))
        return cli_report_file(a->file, &err);
    note_work(sr, sgdstab_epoch_work(ses->red, o, sr->threshold));
    if (sr->threshold) {
        if (sgdstab_epoch_threshold(ses->red, o, &lr_th, &lr_se, &err))
            return cli_report_file(a->file, &err);
        o->config.lr = lr_th;
    }
    if (sgdstab_epoch_estimate_at(ses->red, o, &est, &err))
        return cli_report_file(a->file, &err);
    double rho = NAN, rate = NAN;
    if (sr->compare || sr->threshold) {
        sgdstab_radius rad;
        exact.lr = o->config.lr;
        if (sgdstab_spectral_radius(ses->stab, &exact,
                                    sr->threshold ? &cr : NULL, &rad, NULL,
                                    &err))
            return cli_report_file(a->file, &err);
        rho = rad.rho;
        rate = log(rho);
    }
    if (a->json) {
        cJSON *j = json_head(a, ses, sr);
        cli_json_size(j, "epoch_steps", est.steps);
        if (sr->threshold) {
            cli_json_number(j, "lr_threshold", lr_th);
            cli_json_number(j, "lr_threshold_stderr", lr_se);
            cli_json_number(j, "exact_lr_critical", cr.lr_critical);
        }
        cli_json_number(j, "lr", o->config.lr);
        cli_json_number(j, "epoch_spectral_radius", est.radius);
        cli_json_number(j, "epoch_spectral_radius_stderr", est.radius_stderr);
        cli_json_number(j, "rate_per_step", est.rate_per_step);
        cli_json_number(j, "rate_stderr", est.rate_stderr);
        if (sr->compare || sr->threshold) {
            cJSON_AddStringToObject(j, "exact_sampling",
                                    sgdstab_sampling_name(fresh));
            cli_json_number(j, "exact_epoch_spectral_radius",
                            pow(rho, (double)est.steps));
            cli_json_number(j, "exact_rate_per_step", rate);
        }
        return cli_json_print(j);
    }
    printf("%s: one-epoch second-moment map of SGD with batch %zu (sampling "
           "%s), loss %s, from %zu sampled epochs of %zu steps (seed %lu)\n",
           a->file, o->config.batch, sr->sampling_name, a->loss, o->runs,
           est.steps, o->seed);
    if (sr->threshold)
        printf("threshold: rho_epoch = 1 at lr %.10g (standard error %.2g); "
               "exact eta*(B) for fresh batches (sampling %s) %.10g, ratio "
               "%.6g\n", lr_th, lr_se, sgdstab_sampling_name(fresh),
               cr.lr_critical, lr_th / cr.lr_critical);
    printf("at lr %.10g: rho_epoch = %.10g (standard error %.2g), growth rate "
           "of E|delta|^2 %.6g per step (standard error %.2g)\n", o->config.lr,
           est.radius, est.radius_stderr, est.rate_per_step, est.rate_stderr);
    if (sr->compare || sr->threshold)
        printf("exact for fresh batches (sampling %s): rho^%zu = %.10g, ln rho "
               "= %.6g per step\n", sgdstab_sampling_name(fresh), est.steps,
               pow(rho, (double)est.steps), rate);
    return EXIT_OK;
}

int cmd_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_LR, CLI_OPT_BATCH, CLI_OPT_SAMPLING, CLI_OPT_LOSS,
        CLI_OPT_HESSIAN, CLI_OPT_RANK_TOL, CLI_OPT_NEGATIVE_CURVATURE,
        CLI_OPT_MAX_MEMORY,
        CLI_OPT_JSON, CLI_OPT_CSV,
        CLI_OPT("steps", required_argument, OPT_STEPS),
        CLI_OPT("runs", required_argument, OPT_RUNS),
        CLI_OPT("seed", required_argument, OPT_SEED),
        CLI_OPT("init", required_argument, OPT_INIT),
        CLI_OPT("threads", required_argument, OPT_THREADS),
        CLI_OPT("fit-from", required_argument, OPT_FIT_FROM),
        CLI_OPT("compare", no_argument, OPT_COMPARE),
        CLI_OPT("clip", required_argument, OPT_CLIP),
        CLI_OPT("noise", required_argument, OPT_NOISE),
        CLI_OPT("radius", required_argument, OPT_RADIUS),
        CLI_OPT("epoch", no_argument, OPT_EPOCH),
        CLI_OPT("threshold", no_argument, OPT_THRESHOLD),
        CLI_OPT("quiet", no_argument, OPT_QUIET), CLI_OPT_HELP, CLI_OPT_END};
    cli_args args;
    cli_args_init(&args, "simulate");
    sim_run sr;
    memset(&sr, 0, sizeof sr);
    sgdstab_sim_options *o = &sr.o;
    o->runs = 1000;
    o->seed = 1;
    const char *init = NULL, *steps_text = NULL, *fit_text = NULL;
    size_t seed = 1;
    int c, bad = 0;
    while ((c = cli_getopt(argc, argv, args.cmd, opts)) != -1) {
        switch (c) {
        case 'h':
            fputs(SIMULATE_HELP, stdout);
            return EXIT_OK;
        case OPT_STEPS: steps_text = optarg; break;
        case OPT_RUNS: bad = cli_parse_size(args.cmd, "runs", optarg, 2, &o->runs); break;
        case OPT_SEED: bad = cli_parse_size(args.cmd, "seed", optarg, 0, &seed); break;
        case OPT_INIT: init = optarg; break;
        case OPT_THREADS: bad = cli_parse_size(args.cmd, "threads", optarg, 1, &o->threads); break;
        case OPT_FIT_FROM: fit_text = optarg; break;
        case OPT_COMPARE: sr.compare = 1; break;
        case OPT_CLIP: bad = parse_positive(args.cmd, "clip", optarg, &o->clip); break;
        case OPT_NOISE: bad = parse_noise(args.cmd, optarg, o); break;
        case OPT_RADIUS: bad = parse_positive(args.cmd, "radius", optarg, &o->radius); break;
        case OPT_QUIET: sr.quiet = 1; break;
        case OPT_EPOCH: sr.epoch = 1; break;
        case OPT_THRESHOLD: sr.threshold = 1; break;
        default: bad = cli_common_option(&args, c, optarg);
        }
        if (bad)
            return EXIT_USAGE;
    }
    int epoch = sr.epoch || sr.threshold;
    if (cli_require(&args, !sr.threshold, 1) ||
        cli_check_outputs(&args, init && strcmp(init, "zero") ? init : NULL,
                          &args.csv, 1))
        return EXIT_USAGE;
    if (epoch && (steps_text || fit_text || init || o->noise || o->clip > 0 ||
                  o->radius > 0 || args.csv))
        return cli_usage_error(args.cmd, "--epoch and --threshold take none of "
                               "--steps --fit-from --init --noise --clip "
                               "--radius --csv");
    if (!epoch && !steps_text)
        return cli_usage_error(args.cmd, "missing --steps");
    size_t batch;
    if (cli_parse_size(args.cmd, "batch", args.batch, 1, &batch) ||
        (!epoch && cli_parse_size(args.cmd, "steps", steps_text, 1,
                                  &o->steps)))
        return EXIT_USAGE;
    if (seed > 0xFFFFFFFFul)
        return cli_usage_error(args.cmd, "--seed %zu is above 2^32 - 1", seed);
    o->seed = (unsigned long)seed;
    sr.sampling_name = sgdstab_sampling_name(args.sampling);
    if (epoch) {
        cli_session ses;
        unsigned uses = SGDSTAB_USES_BATCH |
                        (sr.threshold ? 0 : SGDSTAB_USES_LR);
        int status = cli_session_open(&args, batch, uses, &ses);
        if (status)
            return status;
        o->config = ses.cfg;
        status = run_epoch(&args, &ses, &sr);
        cli_session_close(&ses);
        return status;
    }
    if (sr.compare && (o->noise || o->clip > 0))
        return cli_usage_error(args.cmd, "--compare has no exact counterpart "
                               "with --noise or --clip");
    if (sr.compare && o->radius > 0)
        return cli_usage_error(args.cmd, "--compare compares moments, which "
                               "--radius does not record");
    if (o->radius > 0 && args.csv)
        return cli_usage_error(args.cmd, "--csv holds per-step moments, which "
                               "--radius does not record (use --json)");
    /* Per-step statistics: 4 arrays per group of runs, and the result. */
    if (!(o->radius > 0) && (double)(o->steps + 1) * 8 * 4 * 26 > 8e9)
        return cli_usage_error(args.cmd, "--steps %zu would need more than "
                               "8 GB of per-step statistics (with --radius "
                               "none are kept)", o->steps);
    sr.fit_to = o->steps;
    sr.fit_from = (o->steps + 1) / 2;
    if (fit_text && (cli_parse_size(args.cmd, "fit-from", fit_text, 0,
                                    &sr.fit_from) ||
                     (sr.fit_from >= o->steps &&
                      cli_usage_error(args.cmd, "--fit-from %zu must be "
                                      "below --steps %zu", sr.fit_from,
                                      o->steps))))
        return EXIT_USAGE;
    if (init && strcmp(init, "zero") == 0)
        o->init = SGDSTAB_INIT_ZERO;
    else if (init)
        o->init = SGDSTAB_INIT_MATRIX;

    cli_session ses;
    int status = cli_session_open(&args, batch, SGDSTAB_USES_LR |
                                  SGDSTAB_USES_BATCH, &ses);
    if (status)
        return status;
    o->config = ses.cfg;
    double *S0 = NULL;
    sgdstab_sim_result *res = NULL;
    if (o->init == SGDSTAB_INIT_MATRIX &&
        (status = cli_load_init(init, ses.prob->p, &S0)))
        goto done;
    o->init_matrix = S0;
    if (sr.compare && (status = exact_columns(&args, &ses, S0, &sr)))
        goto done;
    note_work(&sr, sgdstab_sim_work(ses.red, o));
    cli_progress prog;
    cli_progress_init(&prog, "simulate", sr.quiet || args.json);
    sgdstab_error err;
    int st = sgdstab_simulate(ses.red, ses.prob, o, &res, cli_progress_update,
                              &prog, &err);
    cli_progress_finish(&prog);
    if (st) {
        status = cli_report_file(args.file, &err);
        goto done;
    }
    if (args.csv && (status = write_csv(args.csv, res, &sr)))
        goto done;
    if (args.json)
        status = print_json(&args, &ses, &sr, res);
    else
        print_text(&args, &sr, res);
done:
    sgdstab_sim_result_free(res);
    free(S0);
    free(sr.exact);
    free(sr.exact_loss);
    cli_session_close(&ses);
    return status;
}
