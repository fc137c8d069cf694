#include "sgdstab/phase.h"

#include <math.h>
#include <stdlib.h>

#include "sgdstab/moments.h"
#include "sgdstab/reduce.h"
#include "sgdstab/simulate.h"

/* One solve done: report it, and turn a request to stop into an error. */
static int tick(sgdstab_progress_fn progress, void *ctx, size_t *done,
                size_t total, sgdstab_error *err)
{
    ++*done;
    if (progress && progress(ctx, *done, total))
        return sgdstab_fail(err, SGDSTAB_ECANCELED, "phase diagram canceled "
                            "after %zu of %zu solves", *done, total);
    return SGDSTAB_OK;
}

size_t sgdstab_phase_rows(const sgdstab_phase_axes *ax)
{
    return ax->nm ? ax->nm : ax->nb;
}

/* The configuration of row i: its batch size or its momentum. */
static sgdstab_config row_config(const sgdstab_config *cfg,
                                 const sgdstab_phase_axes *ax, size_t i)
{
    sgdstab_config at = *cfg;
    at.batch = ax->nm ? ax->batches[0] : ax->batches[i];
    if (ax->nm)
        at.optimizer.momentum = ax->momenta[i];
    return at;
}

/* Every row at every learning rate passes the configuration check. */
static int check_axes(const sgdstab_reduced *red, const sgdstab_config *cfg,
                      const sgdstab_phase_axes *ax, sgdstab_error *err)
{
    if (ax->nm && ax->nb != 1)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "a diagram over momenta "
                            "takes one batch size, not %zu", ax->nb);
    for (size_t i = 0; i < sgdstab_phase_rows(ax); i++)
        for (size_t j = 0; j < ax->nl; j++) {
            sgdstab_config at = row_config(cfg, ax, i);
            at.lr = ax->lrs[j];
            int st = sgdstab_config_check(&at, red, SGDSTAB_USES_LR |
                                          SGDSTAB_USES_BATCH |
                                          SGDSTAB_USES_STEP_MAP, err);
            if (st)
                return st;
        }
    return SGDSTAB_OK;
}

/* η* of every row: one critical curve over the batch sizes, or one solve
 * per momentum (each on the shared basis). */
static int row_boundaries(sgdstab_stability *s, const sgdstab_config *cfg,
                          const sgdstab_phase_axes *ax, sgdstab_critical *crit,
                          sgdstab_error *err)
{
    if (!ax->nm)
        return sgdstab_critical_curve(s, cfg, ax->batches, ax->nb, crit, err);
    int st = SGDSTAB_OK;
    for (size_t i = 0; i < ax->nm && !st; i++) {
        sgdstab_config at = row_config(cfg, ax, i);
        st = sgdstab_critical_lr(s, &at, &crit[i], err);
    }
    return st;
}

int sgdstab_phase_compute(sgdstab_stability *s, const sgdstab_theory *th,
                          const sgdstab_config *cfg,
                          const sgdstab_phase_axes *ax,
                          sgdstab_phase_boundary *boundary,
                          sgdstab_phase_point *grid, sgdstab_error *err)
{
    const size_t rows = sgdstab_phase_rows(ax), nl = ax->nl;
    const double *lrs = ax->lrs;
    const sgdstab_reduced *red = sgdstab_stability_reduced(s);
    int st = check_axes(red, cfg, ax, err);
    if (st)
        return st;
    const size_t n = red->n;
    const size_t total = rows * (nl + 1);
    size_t done = 0;
    sgdstab_critical *crit = malloc((rows ? rows : 1) * sizeof *crit);
    if (!crit)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    st = row_boundaries(s, cfg, ax, crit, err);
    for (size_t i = 0; i < rows && !st; i++) {
        const sgdstab_config at = row_config(cfg, ax, i);
        sgdstab_phase_boundary *bd = &boundary[i];
        bd->batch = at.batch;
        bd->momentum = at.optimizer.momentum;
        bd->critical = crit[i];
        bd->lr_critical_mean = sgdstab_lr_mean_limit(red, &at);
        bd->lr_lyapunov = NAN;
        bd->crossing = SGDSTAB_CROSSING_UNKNOWN;
        st = sgdstab_batch_coefficients(cfg->sampling, n, at.batch, &bd->a,
                                        &bd->b, err);
        if (!st && th && !sgdstab_optimizer_lifted(&at.optimizer))
            sgdstab_theory_lr_bounds(th, bd->a, bd->b, &bd->bounds);
        else
            bd->bounds = (sgdstab_lr_bounds){NAN, NAN, NAN, NAN, NAN};
        if (!st)
            st = tick(ax->progress, ax->progress_ctx, &done, total, err);
    }
    free(crit);
    /* Up η in even rows, down in odd ones: neighbours follow each other. */
    for (size_t i = 0; i < rows && !st; i++)
        for (size_t jj = 0; jj < nl && !st; jj++) {
            size_t j = i % 2 ? nl - 1 - jj : jj;
            sgdstab_phase_point *pt = &grid[i * nl + j];
            const sgdstab_phase_boundary *bd = &boundary[i];
            sgdstab_config at = row_config(cfg, ax, i);
            at.lr = lrs[j];
            pt->batch = at.batch;
            pt->momentum = at.optimizer.momentum;
            pt->lr = lrs[j];
            pt->lyapunov = pt->lyapunov_stderr = NAN;
            st = sgdstab_spectral_radius(s, &at, &bd->critical, &pt->radius,
                                         NULL, err);
            if (st)
                break;
            sgdstab_escape_rates(pt->radius.rho, n, at.batch,
                                 &pt->escape_rate_per_step,
                                 &pt->escape_rate_per_epoch);
            pt->stable = bd->critical.kind == SGDSTAB_MINIMUM_OK &&
                         lrs[j] <= bd->critical.lr_critical;
            st = tick(ax->progress, ax->progress_ctx, &done, total, err);
        }
    return st;
}

/* Where the row's λ₁ first turns ≥ 0 (sgdstab_phase_boundary). */
static void lyapunov_crossing(const double *lrs, const sgdstab_phase_point *row,
                              size_t nl, sgdstab_phase_boundary *bd)
{
    bd->lr_lyapunov = NAN;
    bd->crossing = SGDSTAB_CROSSING_UNKNOWN;
    size_t below = nl;  /* the last point with λ₁ < 0 */
    for (size_t j = 0; j < nl; j++) {
        const double y = row[j].lyapunov;
        if (isnan(y))
            continue;
        bd->crossing = SGDSTAB_CROSSING_ABOVE;
        if (y < 0) {
            below = j;
            continue;
        }
        if (below == nl) {
            bd->crossing = SGDSTAB_CROSSING_BELOW;
            return;
        }
        const double y0 = row[below].lyapunov, l0 = log(lrs[below]);
        const double t = isfinite(y0) && isfinite(y) ? y0 / (y0 - y) : 0.5;
        const double lr = exp(l0 + t * (log(lrs[j]) - l0));
        /* λ₁ ≤ ½ ln ρ < 0 below η*: the crossing is not below it. */
        const double floor = bd->critical.kind == SGDSTAB_MINIMUM_OK
                                 ? bd->critical.lr_critical : 0;
        bd->crossing = SGDSTAB_CROSSING_INSIDE;
        bd->lr_lyapunov = fmax(fmin(lr, lrs[j]), floor);
        return;
    }
}

/* The simulation of grid point (i, j). */
static sgdstab_sim_options lyapunov_options(const sgdstab_config *cfg,
                                            const sgdstab_phase_axes *ax,
                                            const sgdstab_lyapunov_options *o,
                                            size_t i, size_t j)
{
    sgdstab_sim_options so = {.config = row_config(cfg, ax, i),
                              .steps = o->steps, .runs = o->runs,
                              .seed = o->seed, .lyapunov = 1,
                              .threads = o->threads};
    so.config.lr = ax->lrs[j];
    return so;
}

int sgdstab_phase_lyapunov_check(const sgdstab_reduced *red,
                                 const sgdstab_config *cfg,
                                 const sgdstab_phase_axes *ax,
                                 const sgdstab_lyapunov_options *opt,
                                 sgdstab_error *err)
{
    double work = 0;
    for (size_t i = 0; i < sgdstab_phase_rows(ax); i++) {
        sgdstab_sim_options so = lyapunov_options(cfg, ax, opt, i, 0);
        int st = sgdstab_sim_check(red, &so, err);
        if (st)
            return st;
        work += (double)ax->nl * sgdstab_sim_work(red, &so);
    }
    return sgdstab_work_check(work, SGDSTAB_WORK_MAX, "the Monte Carlo of "
                              "the phase diagram", err);
}

int sgdstab_phase_lyapunov(const sgdstab_reduced *red,
                           const sgdstab_problem *prob,
                           const sgdstab_config *cfg,
                           const sgdstab_phase_axes *ax,
                           const sgdstab_lyapunov_options *opt,
                           sgdstab_phase_boundary *boundary,
                           sgdstab_phase_point *grid, sgdstab_error *err)
{
    const size_t rows = sgdstab_phase_rows(ax), nl = ax->nl;
    size_t done = 0;
    int st = sgdstab_phase_lyapunov_check(red, cfg, ax, opt, err);
    for (size_t i = 0; i < rows && !st; i++) {
        for (size_t j = 0; j < nl && !st; j++) {
            sgdstab_sim_options so = lyapunov_options(cfg, ax, opt, i, j);
            sgdstab_sim_result *res = NULL;
            st = sgdstab_simulate(red, prob, &so, &res, NULL, NULL, err);
            if (!st) {
                sgdstab_phase_point *pt = &grid[i * nl + j];
                sgdstab_sim_lyapunov(res, &pt->lyapunov,
                                     &pt->lyapunov_stderr);
                st = tick(ax->progress, ax->progress_ctx, &done, rows * nl,
                          err);
            }
            sgdstab_sim_result_free(res);
        }
        if (!st)
            lyapunov_crossing(ax->lrs, grid + i * nl, nl, &boundary[i]);
    }
    return st;
}
