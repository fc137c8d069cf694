/* Loading and factorizing the problem for every subcommand. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/memplan.h"
#include "sgdstab/moments.h"
#include "sgdstab/param_space.h"
#include "sgdstab/plan.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

const char *cli_file_loss(const sgdstab_problem *prob, char *text,
                          size_t size, const char **shown)
{
    const char *name = sgdstab_problem_loss(prob);
    *shown = name;
    if (prob->provenance.loss[0]) {
        snprintf(text, size, "%s from the file's metadata", name);
        *shown = text;
    }
    return name;
}

/* Without --loss, the convention of the file. */
static void file_loss(cli_args *a, const sgdstab_problem *prob)
{
    if (!a->have_loss)
        a->loss_name = cli_file_loss(prob, a->loss_text, sizeof a->loss_text,
                                     &a->loss);
}

/* FILE (and --hessian) loaded, the file's loss convention taken. */
static int load_problem(cli_args *a, sgdstab_problem **prob)
{
    sgdstab_error err;
    sgdstab_load_options lo = {0, a->max_memory, a->params};
    if (sgdstab_problem_load_with_hessian(a->file, a->hessian, &lo, prob, &err))
        return cli_report_file(a->file, &err);
    file_loss(a, *prob);
    return EXIT_OK;
}

/* The reduced problem as cfg's optimizer sees it (plan.h). */
static int reduce_for(cli_args *a, const sgdstab_problem *prob,
                      const sgdstab_config *cfg, sgdstab_reduced **red)
{
    sgdstab_error err;
    sgdstab_reduce_options opt = {a->rank_rtol, a->flat_rtol, 0};
    if (sgdstab_reduce_for(prob, &opt, cfg, red, &err))
        return cli_report_file(a->file, &err);
    cli_note_interpolation(a->cmd, a->file, a->residual_noise, prob);
    return EXIT_OK;
}

int cli_load(cli_args *a, sgdstab_problem **prob, sgdstab_reduced **red)
{
    *red = NULL;
    if (load_problem(a, prob))
        return EXIT_DATA;
    sgdstab_config plain;
    sgdstab_config_init(&plain);
    if (!reduce_for(a, *prob, &plain, red))
        return EXIT_OK;
    sgdstab_problem_free(*prob);
    *prob = NULL;
    return EXIT_DATA;
}

int cli_config(const cli_args *a, size_t k, sgdstab_config *cfg)
{
    sgdstab_error err;
    sgdstab_config_init(cfg);
    cfg->lr = a->have_lr ? a->lr : 0;
    cfg->sampling = a->sampling;
    /* The kind's defaults, then the settings given. */
    const sgdstab_optimizer *given = &a->optimizer;
    sgdstab_optimizer *o = &cfg->optimizer;
    sgdstab_optimizer_defaults(o, given->kind);
    o->nesterov = given->nesterov;
    const unsigned set = a->optimizer_set;
    o->momentum = set & CLI_SET_MOMENTUM ? given->momentum : o->momentum;
    o->dampening = set & CLI_SET_DAMPENING ? given->dampening : o->dampening;
    o->weight_decay =
        set & CLI_SET_WEIGHT_DECAY ? given->weight_decay : o->weight_decay;
    o->beta2 = set & CLI_SET_BETA2 ? given->beta2 : o->beta2;
    o->eps = set & CLI_SET_EPS ? given->eps : o->eps;
    if (sgdstab_loss_scale(a->loss_name, k, &cfg->loss_scale, &err))
        return cli_report_file(a->file, &err);
    return EXIT_OK;
}

/* --second-moment V.npy: p values, finite and > 0 (errors name V). */
static int load_second_moment(const cli_args *a, size_t p, double **out)
{
    sgdstab_array v;
    sgdstab_error err;
    *out = NULL;
    if (sgdstab_npy_read(a->second_moment, &v, &err))
        return cli_report_file(a->second_moment, &err);
    *out = v.data;
    if (v.size != p)
        return cli_data_error(a->cmd, a->second_moment, "has %zu values, the "
                              "problem %zu parameters", v.size, p);
    for (size_t j = 0; j < p; j++)
        if (!(v.data[j] > 0) || !isfinite(v.data[j]))
            return cli_data_error(a->cmd, a->second_moment, "entry %zu is "
                                  "%g: the second moment must be finite and "
                                  "> 0", j, v.data[j]);
    return EXIT_OK;
}

/* Without optimizer options, the optimizer of the file's meta.json (as
 * the loss convention); its second moment is then the member V. */
static void file_optimizer(cli_args *a, const sgdstab_problem *prob)
{
    const sgdstab_provenance *pv = &prob->provenance;
    if (a->optimizer_given || !pv->has_optimizer)
        return;
    a->optimizer = pv->optimizer;
    a->optimizer_set = CLI_SET_ALL;
    a->optimizer_from_file = 1;
}

/* For a Gram-matrix problem: the preconditioner of Adam, AdamW and the
 * file's own RMSprop is the one KP was made with (problem.h), ε included. */
static int gram_preconditioner(const cli_args *a, const sgdstab_problem *prob,
                               sgdstab_optimizer *o)
{
    const sgdstab_provenance *pv = &prob->provenance;
    if (o->kind == SGDSTAB_OPTIMIZER_SGD &&
        !(a->optimizer_from_file && pv->preconditioned))
        return EXIT_OK;
    if (!prob->KP)
        return cli_data_error(a->cmd, a->file, "is a Gram matrix without the "
                              "preconditioned KP that %s needs (sgdstab-export "
                              "--gram writes it from the optimizer's state)",
                              sgdstab_optimizer_title(o));
    if (!pv->has_optimizer)
        return cli_data_error(a->cmd, a->file, "holds KP but its meta.json "
                              "does not say the optimizer (and eps) it was "
                              "made with");
    if (o->eps != pv->optimizer.eps)
        return cli_data_error(a->cmd, a->file, "KP was made with the "
                              "preconditioner's eps = %g (meta.json), not the "
                              "%g of this run", pv->optimizer.eps, o->eps);
    o->precond_in_gram = 1;
    return EXIT_OK;
}

/* The configuration of the options for prob, its optimizer checked (a
 * usage error), the second moment read: --second-moment, else the member
 * V for Adam and AdamW, and for the file's own RMSprop. */
static int session_config(cli_args *a, cli_session *ses, size_t batch)
{
    const sgdstab_problem *prob = ses->prob;
    file_optimizer(a, prob);
    int status = cli_config(a, prob->k, &ses->cfg);
    ses->cfg.batch = batch;
    sgdstab_optimizer *o = &ses->cfg.optimizer;
    const int member = prob->V && (o->kind != SGDSTAB_OPTIMIZER_SGD ||
                                   (a->optimizer_from_file &&
                                    prob->provenance.preconditioned));
    if (!status && a->second_moment)
        status = load_second_moment(a, prob->p, &ses->second_moment);
    if (!status && (a->second_moment || member)) {
        o->second_moment = a->second_moment ? ses->second_moment : prob->V;
        o->second_moment_len = prob->p;
    }
    if (!status && prob->K && !a->second_moment)
        status = gram_preconditioner(a, prob, o);
    sgdstab_error err;
    if (!status && sgdstab_optimizer_check(o, prob->p, &err)) {
        /* The file's own settings and V are data; the options, usage. */
        char q[4 * SGDSTAB_ERROR_MSG_MAX];
        status = a->optimizer_from_file ||
                         (o->second_moment && o->second_moment == prob->V)
                     ? cli_report_file(a->file, &err)
                     : cli_usage_error(a->cmd, "%s",
                                       cli_quote(err.msg, q, sizeof q));
    }
    return status;
}

int cli_config_check(const cli_args *a, const sgdstab_reduced *red,
                     const sgdstab_config *cfg, unsigned uses)
{
    sgdstab_error err;
    if (!sgdstab_config_check(cfg, red, uses, &err))
        return EXIT_OK;
    if (err.status == SGDSTAB_EVALUE)  /* out of range for this problem */
        return cli_report_file(a->file, &err);
    char q[4 * SGDSTAB_ERROR_MSG_MAX];
    return cli_usage_error(a->cmd, "%s", cli_quote(err.msg, q, sizeof q));
}

int cli_stability(const cli_args *a, const sgdstab_reduced *red,
                  int families, sgdstab_stability **s)
{
    sgdstab_error err;
    sgdstab_engine_plan plan;
    *s = sgdstab_stability_alloc_fit(red, families, a->max_memory, &plan,
                                     &err);
    if (!*s)
        return cli_report_file(a->file, &err);
    if (plan.basis < SGDSTAB_BASIS_DEFAULT) {
        char have[32];
        sgdstab_memory_format(plan.available, have, sizeof have);
        cli_note(a->cmd, "eigensolver bases of %zu vectors instead of %d, to "
                 "fit the %s available (%s): solves take more applications",
                 plan.basis, SGDSTAB_BASIS_DEFAULT, have, plan.source);
    }
    return EXIT_OK;
}

int cli_session_open(cli_args *a, size_t batch, unsigned uses,
                     cli_session *ses)
{
    ses->stab = NULL;
    ses->red = NULL;
    ses->second_moment = NULL;
    if (load_problem(a, &ses->prob))
        return EXIT_DATA;
    int status = session_config(a, ses, batch);
    if (!status)
        status = reduce_for(a, ses->prob, &ses->cfg, &ses->red);
    if (!status)
        status = cli_config_check(a, ses->red, &ses->cfg, uses);
    if (!status)
        status = cli_stability(a, ses->red, uses & SGDSTAB_USES_LR ? 2 : 1,
                               &ses->stab);
    if (status)
        cli_session_close(ses);
    return status;
}

int cli_session_at(cli_args *a, cli_session *ses)
{
    size_t batch;
    if (cli_require(a, 1, 1) ||
        cli_parse_size(a->cmd, "batch", a->batch, 1, &batch))
        return EXIT_USAGE;
    return cli_session_open(a, batch, SGDSTAB_USES_LR | SGDSTAB_USES_BATCH |
                            SGDSTAB_USES_STEP_MAP, ses);
}

int cli_main_at(const char *cmd, int argc, char **argv,
                const struct option *longopts, const char *help,
                cli_point_job job)
{
    cli_args args;
    cli_session ses;
    int status = cli_parse_common(argc, argv, cmd, &args, longopts, help);
    if (status)
        return status == CLI_HELP_SHOWN ? EXIT_OK : status;
    if ((status = cli_session_at(&args, &ses)))
        return status;
    status = job(&args, &ses);
    cli_session_close(&ses);
    return status;
}

void cli_session_close(cli_session *ses)
{
    sgdstab_stability_free(ses->stab);
    sgdstab_reduced_free(ses->red);
    sgdstab_problem_free(ses->prob);
    free(ses->second_moment);
    ses->second_moment = NULL;
    ses->stab = NULL;
    ses->red = NULL;
    ses->prob = NULL;
}

int cli_load_init(const char *path, size_t p, sgdstab_second_moment **S0)
{
    sgdstab_error err;
    return sgdstab_second_moment_load(path, p, S0, &err)
               ? cli_report_file(path, &err)
               : EXIT_OK;
}

int cli_exact_evolve(const cli_session *ses, const sgdstab_config *cfg,
                     size_t steps, const sgdstab_start *start,
                     const double *noise, double *m2, double *loss)
{
    sgdstab_error err;
    if (sgdstab_evolve(ses->prob, ses->red, cfg, start, noise, steps, m2,
                       loss, &err))
        return cli_report(&err);
    return EXIT_OK;
}

int cli_gradient_noise(const cli_args *a, const cli_session *ses,
                       const sgdstab_config *cfg, double sigma, double **C,
                       sgdstab_gradient_stats *stats)
{
    const size_t r = ses->red->r;
    *C = NULL;
    memset(stats, 0, sizeof *stats);
    stats->stationary_point = 1;
    if (!ses->prob->R && sigma == 0)
        return EXIT_OK;
    sgdstab_error err;
    if (!(*C = malloc((r ? r * r : 1) * sizeof **C)))
        return cli_data_error(a->cmd, a->file, "out of memory");
    int status = EXIT_OK;
    if (sgdstab_gradient_noise(ses->red, ses->prob, cfg, sigma, *C, stats,
                               &err))
        status = cli_report_file(a->file, &err);
    else if (!stats->stationary_point && !(cfg->optimizer.weight_decay > 0))
        status = cli_data_error(a->cmd, a->file, "not a stationary point: "
                                "the mean gradient %.3g is %.3g of the "
                                "per-sample spread %.3g (more than %g)",
                                stats->mean_norm,
                                stats->mean_norm / stats->spread,
                                stats->spread, SGDSTAB_STATIONARY_MEAN_RTOL);
    if (status) {
        free(*C);
        *C = NULL;
    }
    return status;
}

int cli_stationary(const cli_args *a, const cli_session *ses,
                   const sgdstab_config *cfg, const double *C, size_t max_it,
                   double *W, sgdstab_stationary_info *info,
                   sgdstab_stationary_summary *sum)
{
    sgdstab_error err;
    sgdstab_moments *m = sgdstab_moments_alloc(ses->red, &err);
    int failed = !m ||
                 sgdstab_stationary_solve(m, ses->red, cfg, C,
                                          &(sgdstab_stationary_options){
                                              max_it, 0},
                                          W, info, &err) ||
                 sgdstab_stationary_summarize(ses->prob, ses->red, cfg, W,
                                              sum, &err);
    sgdstab_moments_free(m);
    return failed ? cli_report_file(a->file, &err) : EXIT_OK;
}

/* Steps over which a flat eigenvalue λ < 0 would grow the RMS distance by
 * a factor e at effective rate c·lr: ln(1 + c·lr·|λ|) per step. */
static double flat_steps(const sgdstab_reduced *red, double c, double lr)
{
    return lr > 0 && red->flat_min < 0 ? 1 / log1p(c * lr * -red->flat_min)
                                       : INFINITY;
}

void cli_print_flat(const char *label, const sgdstab_reduced *red, double c,
                    double lr)
{
    if (!red->flat_negative)
        return;
    printf("%s%zu negative eigenvalue%s of H, down to %.3g, within the "
           "tolerance %.3g lambda_max (--negative-curvature): flat, their "
           "sign below what H resolves", label, red->flat_negative,
           red->flat_negative > 1 ? "s" : "", c * red->flat_min,
           red->flat_rtol);
    if (red->flat_moved)
        printf("; %zu on directions J moves, analyzed with curvature |h|",
               red->flat_moved);
    if (lr > 0)
        printf("; at this eta a curvature %.3g would matter only after about "
               "%.3g steps", c * red->flat_min, flat_steps(red, c, lr));
    printf("\n");
}

void cli_json_flat(cJSON *obj, const sgdstab_reduced *red, double c,
                   double lr)
{
    cli_json_number(obj, "negative_curvature_tolerance", red->flat_rtol);
    cli_json_size(obj, "flat_negative_count", red->flat_negative);
    cli_json_number(obj, "flat_negative_min", c * red->flat_min);
    cli_json_size(obj, "flat_moved_count", red->flat_moved);
    if (lr > 0)
        cli_json_number(obj, "flat_negative_steps", flat_steps(red, c, lr));
}
