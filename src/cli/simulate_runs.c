/* sgdstab simulate: R Monte Carlo trajectories of SGD, their moments step
 * by step, growth rate or exit times, with --compare the exact values
 * beside them; text, JSON or CSV. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_simulate.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "progress.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/outfile.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

/* What the outputs show beside the estimates: the window of the
 * growth-rate fit and, with --compare, the exact values. */
typedef struct {
    const sim_request *rq;
    size_t fit_from, fit_to;
    double *exact, *exact_loss, rho, exact_rate, exact_window;
    double stationary;  /* exact stationary E‖δ‖² with additive noise, or
                           NaN */
    sgdstab_sampling exact_sampling;
    sgdstab_verdict verdict;    /* at lr, of the exact sampling */
} trajectories;

static const double Z95 = 1.959963984540054;

/* Above the threshold (rho > 1) the mean of |delta_t|^2 is carried by rare
 * runs whose weight a sample of R runs does not see: the sample mean is
 * then far below E|delta_t|^2, with a sample sd far too small, so neither
 * it, its rate nor its z-scores (not normal) estimate the exact curve.  At
 * the threshold (rho = 1 to rounding) it is still usable. */
static int mean_reliable(const trajectories *tr)
{
    return tr->verdict != SGDSTAB_VERDICT_UNSTABLE;
}

#define UNRELIABLE_WHY                                                     \
    "E|delta_t|^2 grows through rare runs, so the mean over the runs is no "  \
    "usable estimate of it (typically far below it, z-scores not normal, "  \
    "its growth rate no estimate of ln rho); use --epoch for the "          \
    "mean-square rate"

static void json_array(cJSON *o, const char *key, const double *v, size_t m)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    for (size_t t = 0; t < m; t++)
        cJSON_AddItemToArray(arr, cli_json_value(v[t]));
}

static double z_score(const sgdstab_sim_result *res, const trajectories *tr,
                      size_t t)
{
    double se = res->norm2_sd[t] / sqrt((double)res->runs);
    double d = res->norm2_mean[t] - tr->exact[t];
    return se > 0 ? d / se : d == 0 ? 0 : copysign(INFINITY, d);
}

static int write_csv(const char *path, const sgdstab_sim_result *res,
                     const trajectories *tr)
{
    sgdstab_outfile *of = cli_csv_open(path);
    if (!of)
        return EXIT_DATA;
    FILE *f = sgdstab_outfile_stream(of);
    double sq = sqrt((double)res->runs);
    fprintf(f, "step,second_moment,second_moment_ci,loss,loss_ci%s\n",
            tr->rq->compare ? ",exact_second_moment,z_score" : "");
    for (size_t t = 0; t <= res->steps; t++) {
        fprintf(f, "%zu,", t);
        cli_csv_number(f, res->norm2_mean[t], ",");
        cli_csv_number(f, Z95 * res->norm2_sd[t] / sq, ",");
        cli_csv_number(f, res->loss_mean[t], ",");
        cli_csv_number(f, Z95 * res->loss_sd[t] / sq,
                       tr->rq->compare ? "," : "\n");
        if (tr->rq->compare) {
            cli_csv_number(f, tr->exact[t], ",");
            cli_csv_number(f, z_score(res, tr, t), "\n");
        }
    }
    return cli_csv_commit(of);
}

/* The exact E‖δ_t‖² averaged over the fitted steps. */
static double exact_average(const trajectories *tr)
{
    double s = 0;
    for (size_t t = tr->fit_from; t <= tr->fit_to; t++)
        s += tr->exact[t];
    return s / (double)(tr->fit_to - tr->fit_from + 1);
}

static int print_json(const cli_args *a, const cli_session *ses,
                      const trajectories *tr, const sgdstab_sim_result *res)
{
    const sgdstab_sim_options *o = &tr->rq->o;
    cJSON *j = simulate_json_head(a, ses, tr->rq);
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
    sgdstab_sim_growth_rate(res, tr->fit_from, tr->fit_to, &rate, &se);
    cli_json_size(j, "fit_from", tr->fit_from);
    cli_json_size(j, "fit_to", tr->fit_to);
    cli_json_number(j, "growth_rate_per_step", rate);
    cli_json_number(j, "growth_rate_stderr", se);
    size_t T1 = res->steps + 1;
    double *ci = malloc(T1 * sizeof *ci);
    if (!ci) {
        cJSON_Delete(j);
        return cli_data_error("simulate", NULL, "out of memory");
    }
    json_array(j, "second_moment", res->norm2_mean, T1);
    for (size_t t = 0; t < T1; t++)
        ci[t] = Z95 * res->norm2_sd[t] / sqrt((double)res->runs);
    json_array(j, "second_moment_ci", ci, T1);
    json_array(j, "loss", res->loss_mean, T1);
    for (size_t t = 0; t < T1; t++)
        ci[t] = Z95 * res->loss_sd[t] / sqrt((double)res->runs);
    json_array(j, "loss_ci", ci, T1);
    if (tr->rq->compare) {
        cJSON_AddStringToObject(j, "exact_sampling",
                                sgdstab_sampling_name(tr->exact_sampling));
        json_array(j, "exact_second_moment", tr->exact, T1);
        for (size_t t = 0; t < T1; t++)
            ci[t] = z_score(res, tr, t);
        json_array(j, "z_score", ci, T1);
        cli_json_number(j, "exact_spectral_radius", tr->rho);
        cli_json_number(j, "exact_rate_per_step", tr->exact_rate);
        cli_json_number(j, "exact_rate_window", tr->exact_window);
        cJSON_AddBoolToObject(j, "mean_estimate_reliable", mean_reliable(tr));
        if (isfinite(tr->stationary)) {
            double avg, se;
            sgdstab_sim_time_average(res, tr->fit_from, tr->fit_to, &avg,
                                     &se);
            cli_json_number(j, "stationary_second_moment", tr->stationary);
            cli_json_number(j, "time_average_second_moment", avg);
            cli_json_number(j, "time_average_stderr", se);
            cli_json_number(j, "exact_time_average", exact_average(tr));
        }
        if (!mean_reliable(tr))
            cJSON_AddStringToObject(j, "note", "lr above eta*(B) (rho > 1): "
                                    UNRELIABLE_WHY);
    }
    free(ci);
    return cli_json_print(j);
}

static void print_text(const cli_args *a, const trajectories *tr,
                       const sgdstab_sim_result *res)
{
    const sgdstab_sim_options *o = &tr->rq->o;
    printf("%s: %zu runs of %s with lr %.6g, batch %zu (sampling %s), loss "
           "%s, seed %lu",
           a->file, o->runs, sgdstab_optimizer_title(&o->config.optimizer),
           o->config.lr, o->config.batch, tr->rq->sampling_name, a->loss,
           o->seed);
    if (o->noise == SGDSTAB_NOISE_GAUSSIAN)
        printf(", Gaussian noise of scale %.6g", o->noise_scale);
    else if (o->noise == SGDSTAB_NOISE_PARETO)
        printf(", Pareto noise (tail index %.6g, scale %.6g)", o->noise_alpha,
               o->noise_scale);
    if (o->clip > 0)
        printf(", steps clipped to norm %.6g", o->clip);
    printf("\n");
    cli_print_optimizer(a, &o->config);
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
    if (tr->rq->compare)
        printf("  %22s  %8s", "exact E|delta_t|^2", "z");
    printf("\n");
    for (size_t t = 0; t <= o->steps; t++) {
        if (t % every && t != o->steps)
            continue;
        printf("%8zu  %22.15g  %10.3g  %22.15g  %10.3g", t, res->norm2_mean[t],
               Z95 * res->norm2_sd[t] / sq, res->loss_mean[t],
               Z95 * res->loss_sd[t] / sq);
        if (tr->rq->compare)
            printf("  %22.15g  %8.3g", tr->exact[t], z_score(res, tr, t));
        printf("\n");
    }
    double rate, se;
    sgdstab_sim_growth_rate(res, tr->fit_from, tr->fit_to, &rate, &se);
    printf("growth rate of mean |delta_t|^2 over steps %zu..%zu: %.6g per step "
           "(jackknife standard error %.2g)\n", tr->fit_from, tr->fit_to,
           rate, se);
    if (tr->rq->compare) {
        printf("exact (sampling %s): ln rho = %.6g per step (rho = %.10g); "
               "slope of the exact curve over the same steps %.6g\n",
               sgdstab_sampling_name(tr->exact_sampling), tr->exact_rate,
               tr->rho, tr->exact_window);
        if (isfinite(tr->stationary)) {
            double avg, se;
            sgdstab_sim_time_average(res, tr->fit_from, tr->fit_to, &avg,
                                     &se);
            printf("stationary state (exact, as 'sgdstab stationary'): "
                   "E|delta|^2 = %.10g; averaged over steps %zu..%zu, the "
                   "runs' mean |delta_t|^2 %.10g (standard error %.2g) and "
                   "the exact curve %.10g\n", tr->stationary, tr->fit_from,
                   tr->fit_to, avg, se, exact_average(tr));
        }
        if (mean_reliable(tr))
            printf("(|z| above about 3 at many steps means disagreement; "
                   "the estimate of a growing mean is noisy when runs are "
                   "few)\n");
        else
            printf("warning: lr %.10g is above eta*(B) (rho = %.10g > 1): "
                   UNRELIABLE_WHY "\n", o->config.lr, tr->rho);
    }
}

/* The exact columns of --compare. */
static int exact_columns(const cli_args *a, const cli_session *ses,
                         const sgdstab_second_moment *S0, trajectories *tr)
{
    size_t T1 = tr->rq->o.steps + 1;
    sgdstab_config exact = simulate_fresh_batches(&tr->rq->o.config);
    tr->exact_sampling = exact.sampling;
    tr->exact = calloc(T1, sizeof *tr->exact);
    tr->exact_loss = calloc(T1, sizeof *tr->exact_loss);
    if (!tr->exact || !tr->exact_loss)
        return cli_data_error(a->cmd, NULL, "out of memory");
    double *noise = NULL;
    sgdstab_gradient_stats stats;
    int status = cli_gradient_noise(a, ses, &exact, tr->rq->o.label_noise,
                                    &noise, &stats);
    sgdstab_start start = {S0 ? S0->S : NULL,
                           tr->rq->o.init == SGDSTAB_INIT_ZERO};
    if (!status)
        status = cli_exact_evolve(ses, &exact, tr->rq->o.steps, &start, noise,
                                  tr->exact, tr->exact_loss);
    sgdstab_analysis an;
    sgdstab_error err;
    if (!status && sgdstab_analyze(ses->stab, &exact, &an, NULL, &err))
        status = cli_report_file(a->file, &err);
    tr->stationary = NAN;
    if (!status && noise && an.stable && an.radius.rho < 1) {
        size_t r = ses->red->r;
        double *W = malloc((r ? r * r : 1) * sizeof *W);
        sgdstab_stationary_info info;
        sgdstab_stationary_summary sum;
        status = W ? cli_stationary(a, ses, &exact, noise, 0, W, &info, &sum)
                   : cli_data_error(a->cmd, NULL, "out of memory");
        tr->stationary = status ? NAN : sum.second_moment;
        free(W);
    }
    free(noise);
    if (status)
        return status;
    tr->rho = an.radius.rho;
    tr->verdict = an.verdict;
    tr->exact_rate = an.escape_rate_per_step;
    tr->exact_window = sgdstab_log_slope(tr->exact, tr->fit_from, tr->fit_to);
    return EXIT_OK;
}

/* --lyapunov: the top Lyapunov exponent beside the exact ½ ln ρ. */
static int print_lyapunov(const cli_args *a, const cli_session *ses,
                          const trajectories *tr,
                          const sgdstab_sim_result *res)
{
    const sgdstab_sim_options *o = &tr->rq->o;
    sgdstab_config exact = simulate_fresh_batches(&o->config);
    sgdstab_analysis an;
    sgdstab_error err;
    if (sgdstab_analyze(ses->stab, &exact, &an, NULL, &err))
        return cli_report_file(a->file, &err);
    double lam, se, half = 0.5 * log(an.radius.rho);
    sgdstab_sim_lyapunov(res, &lam, &se);
    if (a->json) {
        cJSON *j = simulate_json_head(a, ses, tr->rq);
        cli_json_number(j, "lr", o->config.lr);
        cli_json_size(j, "steps", o->steps);
        cli_json_size(j, "burn_in", o->steps / 10);
        cli_json_number(j, "lyapunov_exponent", lam);
        cli_json_number(j, "lyapunov_stderr", se);
        cli_json_number(j, "half_log_rho", half);
        cli_json_number(j, "spectral_radius", an.radius.rho);
        cli_json_number(j, "lr_critical", an.critical.lr_critical);
        return cli_json_print(j);
    }
    printf("%s: %zu runs of %s with lr %.6g, batch %zu (sampling %s), seed "
           "%lu\n", a->file, o->runs,
           sgdstab_optimizer_title(&o->config.optimizer), o->config.lr,
           o->config.batch, tr->rq->sampling_name, o->seed);
    cli_print_optimizer(a, &o->config);
    printf("  top Lyapunov exponent of |delta_t|  %.6g per step (standard "
           "error %.2g; steps %zu..%zu of each run)\n", lam, se,
           o->steps / 10 + 1, o->steps);
    printf("  (1/2) ln rho, the mean square's     %.6g per step (rho = "
           "%.10g, eta* = %.6g; sampling %s)\n", half, an.radius.rho,
           an.critical.lr_critical, sgdstab_sampling_name(exact.sampling));
    if (lam < 0 && half > 0)
        printf("  mean-square unstable, yet almost every run contracts: "
               "E|delta_t|^2 grows through rare runs\n");
    return EXIT_OK;
}

/* The trajectories' own checks, after the common ones (cmd_simulate.c). */
static int check_options(const cli_args *a, const sim_request *rq,
                         const char *fit_text, trajectories *tr)
{
    const sgdstab_sim_options *o = &rq->o;
    if (rq->compare && (o->noise || o->clip > 0))
        return cli_usage_error(a->cmd, "--compare has no exact counterpart "
                               "with --noise or --clip");
    if (rq->compare && (o->radius > 0 || o->lyapunov))
        return cli_usage_error(a->cmd, "--compare compares moments, which "
                               "--radius and --lyapunov do not record");
    if (o->lyapunov && (a->csv || o->radius > 0))
        return cli_usage_error(a->cmd, "--lyapunov records no per-step "
                               "moments (--csv) nor exits (--radius)");
    if (o->radius > 0 && a->csv)
        return cli_usage_error(a->cmd, "--csv holds per-step moments, which "
                               "--radius does not record (use --json)");
    /* Per-step statistics: 4 arrays per group of runs, and the result. */
    if (!(o->radius > 0) && (double)(o->steps + 1) * 8 * 4 * 26 > 8e9)
        return cli_usage_error(a->cmd, "--steps %zu would need more than "
                               "8 GB of per-step statistics (with --radius "
                               "none are kept)", o->steps);
    tr->fit_to = o->steps;
    tr->fit_from = (o->steps + 1) / 2;
    if (fit_text && (cli_parse_size(a->cmd, "fit-from", fit_text, 0,
                                    &tr->fit_from) ||
                     (tr->fit_from >= o->steps &&
                      cli_usage_error(a->cmd, "--fit-from %zu must be "
                                      "below --steps %zu", tr->fit_from,
                                      o->steps))))
        return EXIT_USAGE;
    return EXIT_OK;
}

/* Run the trajectories and print them, the session open. */
static int simulate(const cli_args *a, const cli_session *ses,
                    const char *init, trajectories *tr)
{
    sgdstab_sim_options o = tr->rq->o;
    sgdstab_second_moment *S0 = NULL;
    sgdstab_sim_result *res = NULL;
    int status = EXIT_OK;
    if (o.init == SGDSTAB_INIT_MATRIX &&
        (status = cli_load_init(init, ses->prob->p, &S0)))
        goto done;
    o.init_moment = S0;
    o.residuals = o.lyapunov ? NULL : ses->prob->R;  /* the product alone */
    if (tr->rq->compare && (status = exact_columns(a, ses, S0, tr)))
        goto done;
    simulate_note_work(tr->rq, sgdstab_sim_work(ses->red, &o));
    cli_progress prog;
    cli_progress_init(&prog, "simulate", tr->rq->quiet || a->json);
    sgdstab_error err;
    int st = sgdstab_simulate(ses->red, ses->prob, &o, &res,
                              cli_progress_update, &prog, &err);
    cli_progress_finish(&prog);
    if (st) {
        status = cli_report_file(a->file, &err);
        goto done;
    }
    if (o.lyapunov) {
        status = print_lyapunov(a, ses, tr, res);
        goto done;
    }
    if (a->csv && (status = write_csv(a->csv, res, tr)))
        goto done;
    if (a->json)
        status = print_json(a, ses, tr, res);
    else
        print_text(a, tr, res);
done:
    sgdstab_sim_result_free(res);
    sgdstab_second_moment_free(S0);
    return status;
}

int simulate_runs(cli_args *a, sim_request *rq, size_t batch,
                  const char *init, const char *fit_text)
{
    trajectories tr = {.rq = rq};
    int status = check_options(a, rq, fit_text, &tr);
    if (status)
        return status;
    if (init && strcmp(init, "zero") == 0)
        rq->o.init = SGDSTAB_INIT_ZERO;
    else if (init)
        rq->o.init = SGDSTAB_INIT_MATRIX;
    cli_session ses;
    status = cli_session_open(a, batch, SGDSTAB_USES_LR | SGDSTAB_USES_BATCH,
                              &ses);
    if (status)
        return status;
    rq->o.config = ses.cfg;
    status = simulate(a, &ses, init, &tr);
    free(tr.exact);
    free(tr.exact_loss);
    cli_session_close(&ses);
    return status;
}
