/* The CSV tables of `sgdstab run`: every row starts with the case and its
 * sweep values. */
#include <math.h>

#include "write.h"
#include "../output.h"

const char *const RUN_CRITICAL_NAMES[RUN_CRITICAL_COLUMNS] = {
    "b", "lr_critical", "rel_accuracy", "lr_critical_mean",
    "mulayoff_michaeli_top", "mulayoff_michaeli_trace", "wu_wang_su_lr",
    "stable_sharpness"};

void run_critical_values(const run_critical_row *row,
                         double vals[RUN_CRITICAL_COLUMNS])
{
    const double v[RUN_CRITICAL_COLUMNS] = {
        row->b, row->lr_critical, row->rel_accuracy, row->bounds.mean,
        row->bounds.mulayoff_michaeli_top,
        row->bounds.mulayoff_michaeli_trace, row->bounds.wu_wang_su,
        row->stable_sharpness};
    for (size_t j = 0; j < RUN_CRITICAL_COLUMNS; j++)
        vals[j] = v[j];
}

static void axes_header(FILE *f, const run_spec *sp)
{
    fputs("case,", f);
    for (size_t ax = 0; ax < sp->naxes; ax++)
        fprintf(f, "%s,", sp->axis[ax].key);
}

static void axes_row(FILE *f, const run_spec *sp, const run_case_result *r)
{
    fprintf(f, "%zu,", r->index);
    for (size_t ax = 0; ax < sp->naxes; ax++) {
        if (cJSON_IsString(r->value[ax]))
            fprintf(f, "%s,", r->value[ax]->valuestring);
        else
            cli_csv_number(f, r->value[ax]->valuedouble, ",");
    }
}

/* Numbers separated by commas, the last followed by end. */
static void numbers(FILE *f, const double *v, size_t m, const char *end)
{
    for (size_t i = 0; i < m; i++)
        cli_csv_number(f, v[i], i + 1 < m ? "," : end);
}

/* A count, empty when 0 (not known, or not applicable), then a comma. */
static void count(FILE *f, size_t value)
{
    if (value)
        fprintf(f, "%zu", value);
    fputc(',', f);
}

static void case_rows(FILE *cases, FILE *critical, const run_spec *sp,
                      const run_case_result *r)
{
    axes_row(cases, sp, r);
    if (r->input)
        fprintf(cases, "%s,", r->input);
    fprintf(cases, "%zu,%zu,", r->n, r->k);
    count(cases, r->p);
    count(cases, r->d);
    fprintf(cases, "%zu,", r->rank);
    /* empty: a problem file without residuals */
    if (!isnan(r->residual))
        cli_csv_number(cases, r->residual, "");
    fputc(',', cases);
    double row[] = {r->th.sharpness, r->th.hessian_frobenius,
                    r->th.hessian_trace, r->th.nonuniformity,
                    r->th.alignment_min, r->lr_critical_mean};
    numbers(cases, row, sizeof row / sizeof row[0], "\n");
    for (size_t i = 0; i < r->ncritical; i++) {
        double vals[RUN_CRITICAL_COLUMNS];
        run_critical_values(&r->critical[i], vals);
        axes_row(critical, sp, r);
        fprintf(critical, "%zu,", r->critical[i].batch);
        numbers(critical, vals, RUN_CRITICAL_COLUMNS, "\n");
    }
}

/* verify.csv's header: its last columns are named after the checks of the
 * first verification. */
static void verify_header(FILE *f, const run_spec *sp,
                          const sgdstab_verification *v)
{
    axes_header(f, sp);
    fputs("batch,lr,lr_factor,stable,verdict,spectral_radius,"
          "escape_rate_per_step,alignment_top,frobenius_bound,growth_bound,"
          "theorems_failed", f);
    for (size_t i = 0; i < v->nchecks; i++)
        fprintf(f, ",%s_holds,%s_ratio", v->checks[i].name,
                v->checks[i].name);
    fputc('\n', f);
}

static void verify_rows(FILE *f, const run_spec *sp, const run_case_result *r)
{
    for (size_t k = 0; k < r->nverify; k++) {
        const run_verify_row *row = &r->verify[k];
        const sgdstab_verification *v = &row->v;
        axes_row(f, sp, r);
        fprintf(f, "%zu,", row->batch);
        double head[] = {row->lr, row->factor};
        numbers(f, head, 2, ",");
        fprintf(f, "%s,%s,", v->analysis.stable ? "true" : "false",
                sgdstab_verdict_name(v->analysis.verdict));
        double vals[] = {v->analysis.radius.rho,
                         v->analysis.escape_rate_per_step, v->alignment_top,
                         v->frobenius_bound, v->growth_bound};
        numbers(f, vals, sizeof vals / sizeof vals[0], ",");
        fprintf(f, "%zu", v->theorems_failed);
        for (size_t i = 0; i < v->nchecks; i++) {
            fprintf(f, ",%s,", v->checks[i].holds ? "true" : "false");
            cli_csv_number(f, v->checks[i].ratio, "");
        }
        fputc('\n', f);
    }
}

static void epoch_rows(FILE *threshold, FILE *rate, const run_spec *sp,
                       const run_case_result *r)
{
    for (size_t i = 0; i < r->nepoch; i++) {
        const run_epoch_row *e = &r->epoch[i];
        const char *name =
            sgdstab_sampling_name(sp->epoch.sampling[e->sampling]);
        axes_row(threshold, sp, r);
        fprintf(threshold, "%zu,%s,%zu,%zu,", e->batch, name, e->epoch_steps,
                e->runs);
        double vals[] = {e->lr, e->lr_stderr, e->lr_critical, e->ratio,
                         e->ratio_stderr};
        numbers(threshold, vals, sizeof vals / sizeof vals[0], "\n");
        for (size_t k = 0; k < sp->epoch.nfactor; k++) {
            const run_epoch_rate *q = &e->rates[k];
            axes_row(rate, sp, r);
            fprintf(rate, "%zu,", e->batch);
            double head[] = {q->factor, q->lr};
            numbers(rate, head, 2, ",");
            fprintf(rate, "%s,", name);
            double tail[] = {q->rate, q->rate_stderr, q->exact, q->z};
            numbers(rate, tail, 4, "\n");
        }
    }
}

/* The series' α and b, and l*: the first columns after batch. */
static void exit_series_columns(FILE *f, const run_spec *sp,
                                const run_exit_group *g)
{
    const run_exit_series *es = &sp->exit.series[g->series];
    fprintf(f, "%zu,", g->batch);
    double ab[] = {es->alpha, es->clip};
    numbers(f, ab, 2, ",");
    fprintf(f, "%zu,", g->jumps);
}

static void exit_rows(FILE *points, FILE *fits, const run_spec *sp,
                      const run_case_result *r)
{
    for (size_t i = 0; i < r->nexit; i++) {
        const run_exit_group *g = &r->exit[i];
        const run_exit_series *es = &sp->exit.series[g->series];
        for (size_t l = 0; l < es->nlr; l++) {
            const run_exit_point *pt = &g->points[l];
            const sgdstab_exit_stats *st = &pt->stats;
            axes_row(points, sp, r);
            exit_series_columns(points, sp, g);
            cli_csv_number(points, pt->lr, ",");
            fprintf(points, "%zu,%zu,%zu,", sp->exit.runs, sp->exit.steps,
                    st->exited);
            double vals[] = {st->never_fraction, st->mean, st->censored_mean,
                             pt->censored_mean_stderr, st->quantiles[0],
                             st->quantiles[2], st->quantiles[4]};
            numbers(points, vals, sizeof vals / sizeof vals[0], "\n");
        }
        axes_row(fits, sp, r);
        exit_series_columns(fits, sp, g);
        fprintf(fits, "%zu,", g->fit.points);
        double vals[] = {g->fit.slope, g->fit.slope_stderr,
                         g->fit.chi2_per_dof, g->predicted_slope};
        numbers(fits, vals, sizeof vals / sizeof vals[0], "\n");
    }
}

/* The stream of an output file, or NULL where there is none. */
static FILE *stream(sgdstab_outfile *of)
{
    return of ? sgdstab_outfile_stream(of) : NULL;
}

static void headers(const run_spec *sp, run_files *files)
{
    static const char *const HEADERS[] = {
        "n,k,p,d,rank,residual,sharpness,hessian_frobenius,hessian_trace,"
        "nonuniformity,alignment_min,lr_critical_mean\n",
        "batch,b,lr_critical,rel_accuracy,lr_critical_mean,"
        "mulayoff_michaeli_top,mulayoff_michaeli_trace,wu_wang_su_lr,"
        "stable_sharpness\n",
        "batch,sampling,epoch_steps,runs,lr_threshold,lr_threshold_stderr,"
        "lr_critical,threshold_ratio,threshold_ratio_stderr\n",
        "batch,lr_factor,lr,sampling,rate_per_step,rate_stderr,"
        "exact_rate_per_step,z_vs_exact\n",
        "batch,alpha,clip,jumps,lr,runs,steps,exited,never_exited_fraction,"
        "mean_exited,censored_mean,censored_mean_stderr,q10,median,q90\n",
        "batch,alpha,clip,jumps,points,fitted_slope,fitted_slope_stderr,"
        "chi2_per_dof,predicted_slope\n"};
    sgdstab_outfile *of[] = {files->cases, files->critical,
                             files->epoch_threshold, files->epoch_rate,
                             files->exit_points, files->exit_fit};
    for (size_t i = 0; i < sizeof of / sizeof of[0]; i++)
        if (of[i]) {
            axes_header(stream(of[i]), sp);
            if (of[i] == files->cases && sp->problem)
                fputs("input,", stream(of[i]));
            fputs(HEADERS[i], stream(of[i]));
        }
}

void run_write_tables(const run_spec *sp, const run_results *res,
                      run_files *files)
{
    headers(sp, files);
    for (size_t c = 0; c < res->ncases; c++) {
        const run_case_result *r = &res->cases[c];
        case_rows(stream(files->cases), stream(files->critical), sp, r);
        if (files->verify && r->nverify) {
            if (c == 0)
                verify_header(stream(files->verify), sp, &r->verify[0].v);
            verify_rows(stream(files->verify), sp, r);
        }
        if (files->epoch_threshold)
            epoch_rows(stream(files->epoch_threshold),
                       stream(files->epoch_rate), sp, r);
        if (files->exit_points)
            exit_rows(stream(files->exit_points), stream(files->exit_fit), sp,
                      r);
    }
}
