/* The Monte Carlo experiments of a run spec, on one case:
 *
 *   "epoch": thresholds and escape rates of the one-epoch map (epoch.h) for
 *            several samplings — random reshuffling beside fresh batches —
 *            against the exact η*(B) and ln ρ of the spec's sampling;
 *   "exit":  first-exit times of clipped SGD with heavy-tailed injected
 *            noise (simulate.h) over learning rates, and the log-log slope
 *            of the exit time in 1/η (fit.h) beside Wang–Oh–Rhee's
 *            prediction 1 + (α − 1)·⌈R/b⌉. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "sgdstab/epoch.h"
#include "../exit_status.h"

/* ------------------------------------------------------------- epoch */

static sgdstab_sim_options epoch_options(const run_spec *sp,
                                         const cli_session *ses,
                                         sgdstab_sampling s, size_t batch,
                                         double lr)
{
    sgdstab_sim_options o;
    memset(&o, 0, sizeof o);
    o.config = ses->cfg;
    o.config.lr = lr;
    o.config.batch = batch;
    o.config.sampling = s;
    o.runs = sp->epoch.runs;
    o.seed = sp->epoch.seed;
    return o;
}

/* The escape rate of the one-epoch map at row's multiples of η*(B), and
 * the exact ln ρ of fresh batches there. */
static int epoch_rates(const run_spec *sp, const cli_session *ses,
                       size_t c, run_epoch_row *row,
                       const sgdstab_critical *cr)
{
    sgdstab_sampling ms = sp->epoch.sampling[row->sampling];
    sgdstab_sim_options o = epoch_options(sp, ses, ms, row->batch,
                                          row->lr_critical);
    for (size_t k = 0; k < sp->epoch.nfactor; k++) {
        run_epoch_rate *q = &row->rates[k];
        sgdstab_epoch_estimate est;
        sgdstab_radius rad;
        sgdstab_error err;
        sgdstab_config fresh = ses->cfg;
        q->factor = sp->epoch.factor[k];
        q->lr = fresh.lr = o.config.lr = q->factor * row->lr_critical;
        fresh.batch = row->batch;
        if (sgdstab_epoch_estimate_at(ses->red, &o, &est, &err) ||
            sgdstab_spectral_radius(ses->stab, &fresh, cr, &rad, NULL, &err))
            return run_spec_error(sp, "case %zu, B = %zu, lr = %g: %s", c,
                                  row->batch, q->lr, err.msg);
        q->rate = est.rate_per_step;
        q->rate_stderr = est.rate_stderr;
        q->exact = log(rad.rho);
        q->z = NAN;
        /* Only the spec's own sampling has an exact counterpart. */
        if (ms == sp->sampling) {
            /* Rounding floor: at B = n every epoch is the same. */
            double se = fmax(est.rate_stderr, 1e-12 * fmax(1, fabs(q->exact)));
            q->z = (est.rate_per_step - q->exact) / se;
        }
    }
    return EXIT_OK;
}

int run_epoch_compute(const run_spec *sp, const cli_session *ses,
                      run_case_result *r, const sgdstab_critical *cr)
{
    const run_epoch_spec *ep = &sp->epoch;
    size_t c = r->index;
    if (!(r->epoch = calloc(r->ncritical * ep->nsampling, sizeof *r->epoch)))
        return run_spec_error(sp, "out of memory");
    for (size_t i = 0; i < r->ncritical; i++) {
        size_t B = r->critical[i].batch;
        double eta = cr[i].lr_critical;
        if (cr[i].kind != SGDSTAB_MINIMUM_OK)
            return run_spec_error(sp, "case %zu, B = %zu: no stable learning "
                                  "rate, no threshold to compare with", c, B);
        for (size_t s = 0; s < ep->nsampling; s++) {
            run_epoch_row *row = &r->epoch[r->nepoch++];
            sgdstab_sim_options o = epoch_options(sp, ses, ep->sampling[s], B,
                                                  eta);
            sgdstab_error err;
            *row = (run_epoch_row){.batch = B, .sampling = s,
                                   .epoch_steps = sgdstab_epoch_steps(
                                       ses->red->n, B),
                                   .runs = o.runs, .lr_critical = eta};
            if (sgdstab_epoch_threshold(ses->red, &o, &row->lr,
                                        &row->lr_stderr, &err))
                return run_spec_error(sp, "case %zu, B = %zu, %s: %s", c, B,
                                      sgdstab_sampling_name(ep->sampling[s]),
                                      err.msg);
            row->ratio = row->lr / eta;
            row->ratio_stderr = row->lr_stderr / eta;
            if (ep->nfactor &&
                !(row->rates = calloc(ep->nfactor, sizeof *row->rates)))
                return run_spec_error(sp, "out of memory");
            int st = epoch_rates(sp, ses, c, row, &cr[i]);
            if (st)
                return st;
        }
    }
    return EXIT_OK;
}

/* -------------------------------------------------------------- exit */

static size_t jumps_needed(double radius, double clip)
{
    return (size_t)ceil(radius / clip - 1e-12);
}

/* The exit statistics of series es at one batch size and learning rate. */
static int exit_point(const run_spec *sp, const cli_session *ses, size_t c,
                      const run_exit_group *g, double lr, run_exit_point *pt)
{
    const run_exit_spec *ex = &sp->exit;
    const run_exit_series *es = &ex->series[g->series];
    sgdstab_sim_options o;
    memset(&o, 0, sizeof o);
    o.config = ses->cfg;
    o.config.lr = lr;
    o.config.batch = g->batch;
    o.steps = ex->steps;
    o.runs = ex->runs;
    o.seed = ex->seed;
    o.init = SGDSTAB_INIT_ZERO;
    o.noise = SGDSTAB_NOISE_PARETO;
    o.noise_alpha = es->alpha;
    o.noise_scale = ex->noise_scale;
    o.clip = es->clip;
    o.radius = ex->radius;
    sgdstab_sim_result *res;
    sgdstab_error err;
    if (sgdstab_simulate(ses->red, ses->prob, &o, &res, NULL, NULL, &err))
        return run_spec_error(sp, "case %zu, B = %zu, exit series %zu, lr = "
                              "%g: %s", c, g->batch, g->series, lr, err.msg);
    sgdstab_sim_exit_stats(res, &pt->stats);
    sgdstab_sim_result_free(res);
    pt->lr = lr;
    pt->censored_mean_stderr = pt->stats.censored_mean /
                               sqrt((double)pt->stats.exited);
    return EXIT_OK;
}

/* Weighted least squares of ln(censored mean) on ln(1/η), weights the
 * numbers of exits (the relative variance of an exponential mean's
 * estimate is 1/exits); points with too few exits are left out. */
static int exit_fit(const run_spec *sp, run_exit_group *g, size_t m)
{
    double *x = malloc(3 * m * sizeof *x);
    if (!x)
        return run_spec_error(sp, "out of memory");
    double *y = x + m, *w = y + m;
    for (size_t l = 0; l < m; l++) {
        const run_exit_point *pt = &g->points[l];
        x[l] = log(1 / pt->lr);
        y[l] = pt->stats.censored_mean;
        w[l] = pt->stats.exited >= RUN_EXIT_MIN_EXITS
                   ? (double)pt->stats.exited : 0;
    }
    sgdstab_fit_log_line(x, y, w, m, &g->fit);
    free(x);
    return EXIT_OK;
}

int run_exit_compute(const run_spec *sp, const cli_session *ses,
                     run_case_result *r)
{
    const run_exit_spec *ex = &sp->exit;
    if (!(r->exit = calloc(r->ncritical * ex->nseries, sizeof *r->exit)))
        return run_spec_error(sp, "out of memory");
    for (size_t i = 0; i < r->ncritical; i++)
        for (size_t s = 0; s < ex->nseries; s++) {
            const run_exit_series *es = &ex->series[s];
            run_exit_group *g = &r->exit[r->nexit++];
            g->batch = r->critical[i].batch;
            g->series = s;
            g->jumps = jumps_needed(ex->radius, es->clip);
            g->predicted_slope = 1 + (es->alpha - 1) * (double)g->jumps;
            if (!(g->points = calloc(es->nlr, sizeof *g->points)))
                return run_spec_error(sp, "out of memory");
            for (size_t l = 0; l < es->nlr; l++) {
                int st = exit_point(sp, ses, r->index, g, es->lr[l],
                                    &g->points[l]);
                if (st)
                    return st;
            }
            int st = exit_fit(sp, g, es->nlr);
            if (st)
                return st;
        }
    return EXIT_OK;
}
