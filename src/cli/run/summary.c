/* summary.json of `sgdstab run`: the spec and every result, as JSON. */
#include <math.h>
#include <stdlib.h>

#include "../report.h"
#include "write.h"
#include "../exit_status.h"
#include "../output.h"

static void critical_json(cJSON *jc, const run_case_result *r)
{
    cJSON *list = cJSON_AddArrayToObject(jc, "critical");
    for (size_t i = 0; i < r->ncritical; i++) {
        double vals[RUN_CRITICAL_COLUMNS];
        run_critical_values(&r->critical[i], vals);
        cJSON *row = cli_json_append_object(list);
        cli_json_size(row, "batch", r->critical[i].batch);
        for (size_t j = 0; j < RUN_CRITICAL_COLUMNS; j++)
            cli_json_number(row, RUN_CRITICAL_NAMES[j], vals[j]);
    }
}

static void verify_json(cJSON *jc, const run_case_result *r)
{
    cJSON *rows = cJSON_AddArrayToObject(jc, "verify");
    for (size_t k = 0; k < r->nverify; k++) {
        const run_verify_row *row = &r->verify[k];
        const sgdstab_verification *v = &row->v;
        cJSON *j = cli_json_append_object(rows);
        cli_json_size(j, "batch", row->batch);
        cli_json_number(j, "lr", row->lr);
        cli_json_number(j, "lr_factor", row->factor);
        cJSON_AddBoolToObject(j, "stable", v->analysis.stable);
        cJSON_AddStringToObject(j, "verdict",
                                sgdstab_verdict_name(v->analysis.verdict));
        cli_json_number(j, "spectral_radius", v->analysis.radius.rho);
        cli_json_number(j, "escape_rate_per_step",
                        v->analysis.escape_rate_per_step);
        cli_json_number(j, "alignment_top", v->alignment_top);
        cli_json_size(j, "theorems_failed", v->theorems_failed);
        cJSON *checks = cJSON_AddObjectToObject(j, "checks");
        for (size_t i = 0; i < v->nchecks; i++) {
            cJSON *ch = cJSON_AddObjectToObject(checks, v->checks[i].name);
            cli_json_number(ch, "value", v->checks[i].value);
            cli_json_number(ch, "bound", v->checks[i].bound);
            cJSON_AddBoolToObject(ch, "holds", v->checks[i].holds);
            cJSON_AddBoolToObject(ch, "theorem", v->checks[i].theorem);
        }
    }
}

static void phase_json(cJSON *jc, const run_phase_result *ph)
{
    cJSON *jp = cJSON_AddObjectToObject(jc, "phase");
    cJSON_AddStringToObject(jp, "grid_csv", ph->grid_csv);
    cJSON_AddStringToObject(jp, "boundary_csv", ph->boundary_csv);
    cJSON_AddStringToObject(jp, "plot", ph->plot);
    cli_json_size(jp, "batches", ph->batches);
    cli_json_size(jp, "lrs", ph->lrs);
    cli_json_number(jp, "lr_min", ph->lr_min);
    cli_json_number(jp, "lr_max", ph->lr_max);
    cli_json_size(jp, "stable_points", ph->stable_points);
    if (ph->lyapunov) {
        cli_json_size(jp, "lyapunov_rows_inside", ph->lyapunov_inside);
        cli_json_number(jp, "lyapunov_band_min",
                        ph->lyapunov_inside ? ph->band_min : NAN);
        cli_json_number(jp, "lyapunov_band_max",
                        ph->lyapunov_inside ? ph->band_max : NAN);
    }
}

static const char *const rate_keys[] = {"lr_factor", "rate_per_step",
                                        "rate_stderr", "exact_rate_per_step"};
static const char *const exit_point_keys[] = {"lr", "exited", "censored_mean",
                                              "median"};

static void epoch_json(cJSON *jc, const run_spec *sp,
                       const run_case_result *r)
{
    cJSON *je = cJSON_AddArrayToObject(jc, "epoch");
    for (size_t i = 0; i < r->nepoch; i++) {
        const run_epoch_row *e = &r->epoch[i];
        cJSON *j = cli_json_append_object(je);
        cli_json_size(j, "batch", e->batch);
        cJSON_AddStringToObject(j, "sampling", sgdstab_sampling_name(
                                    sp->epoch.sampling[e->sampling]));
        cli_json_number(j, "lr_threshold", e->lr);
        cli_json_number(j, "lr_threshold_stderr", e->lr_stderr);
        cli_json_number(j, "lr_critical", e->lr_critical);
        cJSON *rates = cJSON_AddArrayToObject(j, "rates");
        for (size_t k = 0; k < sp->epoch.nfactor; k++) {
            const run_epoch_rate *q = &e->rates[k];
            const double values[] = {q->factor, q->rate, q->rate_stderr,
                                     q->exact};
            cli_json_numbers(cli_json_append_object(rates), 4, rate_keys,
                             values);
        }
    }
}

static void exit_json(cJSON *jc, const run_spec *sp, const run_case_result *r)
{
    cJSON *jx = cJSON_AddArrayToObject(jc, "exit");
    for (size_t i = 0; i < r->nexit; i++) {
        const run_exit_group *g = &r->exit[i];
        const run_exit_series *es = &sp->exit.series[g->series];
        cJSON *j = cli_json_append_object(jx);
        cli_json_size(j, "batch", g->batch);
        cli_json_number(j, "alpha", es->alpha);
        cli_json_number(j, "clip", es->clip);
        cli_json_size(j, "jumps", g->jumps);
        cJSON *pts = cJSON_AddArrayToObject(j, "points");
        for (size_t l = 0; l < es->nlr; l++) {
            const run_exit_point *pt = &g->points[l];
            const double values[] = {pt->lr, (double)pt->stats.exited,
                                     pt->stats.censored_mean,
                                     pt->stats.quantiles[2]};
            cli_json_numbers(cli_json_append_object(pts), 4, exit_point_keys,
                             values);
        }
        cli_json_size(j, "points_fitted", g->fit.points);
        cli_json_number(j, "fitted_slope", g->fit.slope);
        cli_json_number(j, "fitted_slope_stderr", g->fit.slope_stderr);
        cli_json_number(j, "chi2_per_dof", g->fit.chi2_per_dof);
        cli_json_number(j, "predicted_slope", g->predicted_slope);
    }
}

/* A file case's problem, where a synthesized case has its meta: the file
 * as the spec gives it, its input and sizes (p null when not known; d
 * null: a file has no input dimension), the largest training residual
 * (null without R) and the loss convention. */
static void problem_json(cJSON *jc, const run_spec *sp,
                         const run_source *src, const run_case_result *r)
{
    cJSON *o = cJSON_AddObjectToObject(jc, "problem");
    cJSON_AddStringToObject(o, "file", sp->problem);
    cJSON_AddStringToObject(o, "input", r->input);
    cli_json_size(o, "n", r->n);
    cli_json_size(o, "k", r->k);
    cli_json_params(o, r->p);
    cJSON_AddNullToObject(o, "d");
    cli_json_number(o, "residual", r->residual);
    cJSON_AddStringToObject(o, "loss", src->loss_name);
}

static cJSON *case_json(const run_spec *sp, const run_source *src,
                        const run_case_result *r)
{
    cJSON *jc = cJSON_CreateObject();
    cli_json_size(jc, "case", r->index);
    cJSON *sweep = cJSON_AddObjectToObject(jc, "sweep");
    for (size_t ax = 0; ax < sp->naxes; ax++)
        cJSON_AddItemToObject(sweep, sp->axis[ax].key,
                              cJSON_Duplicate(r->value[ax], 0));
    /* A synthetic minimum's meta: the library's text byte for byte where
     * it sits in summary.json (summary → cases → case → meta). */
    if (r->input)
        problem_json(jc, sp, src, r);
    else
        cJSON_AddItemToObject(jc, "meta",
                              r->meta ? cli_json_verbatim(r->meta, 3) : NULL);
    cli_json_size(jc, "rank", r->rank);
    cli_json_theory(jc, &r->th);
    cli_json_number(jc, "lr_critical_mean", r->lr_critical_mean);
    critical_json(jc, r);
    cJSON_AddBoolToObject(jc, "lr_critical_nondecreasing", r->nondecreasing);
    if (sp->nlr + sp->nfactor)
        verify_json(jc, r);
    if (r->phase)
        phase_json(jc, r->phase);
    if (sp->epoch.on)
        epoch_json(jc, sp, r);
    if (sp->exit.on)
        exit_json(jc, sp, r);
    return jc;
}

int run_write_summary(const run_spec *sp, const run_context *ctx,
                      const run_results *res, const char *command,
                      run_files *files)
{
    cJSON *summary = cJSON_CreateObject();
    if (!summary) {
        return cli_data_error("run", NULL, "out of memory");
    }
    cJSON_AddStringToObject(summary, "spec", sp->path);
    cJSON_AddStringToObject(summary, "command", command);
    cJSON_AddItemToObject(summary, "spec_contents",
                          cJSON_Duplicate(sp->root, 1));
    cJSON *cases = cJSON_AddArrayToObject(summary, "cases");
    for (size_t c = 0; c < res->ncases; c++)
        cJSON_AddItemToArray(cases, case_json(sp, ctx->source,
                                              &res->cases[c]));
    cli_json_size(summary, "theorems_failed", res->theorems_failed);
    cJSON_AddBoolToObject(summary, "lr_critical_nondecreasing",
                          res->not_monotone == 0);
    char *text = cJSON_Print(summary);
    cJSON_Delete(summary);
    if (!text) {
        return cli_data_error("run", NULL, "out of memory");
    }
    fprintf(sgdstab_outfile_stream(files->summary), "%s\n", text);
    free(text);
    return EXIT_OK;
}
