#include "sgdstab/phase.h"

#include <math.h>
#include <stdlib.h>

#include "sgdstab/moments.h"
#include "sgdstab/reduce.h"

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

int sgdstab_phase_compute(sgdstab_stability *s, const sgdstab_theory *th,
                          const sgdstab_config *cfg,
                          const sgdstab_phase_axes *ax,
                          sgdstab_phase_boundary *boundary,
                          sgdstab_phase_point *grid, sgdstab_error *err)
{
    const size_t *batches = ax->batches, nb = ax->nb, nl = ax->nl;
    const double *lrs = ax->lrs;
    const sgdstab_reduced *red = sgdstab_stability_reduced(s);
    sgdstab_config at = *cfg;
    for (size_t j = 0; j < nl; j++) {
        at.lr = lrs[j];
        int st = sgdstab_config_check(&at, red, SGDSTAB_USES_LR |
                                      SGDSTAB_USES_STEP_MAP, err);
        if (st)
            return st;
    }
    const size_t n = red->n;
    const size_t total = nb * (nl + 1);
    size_t done = 0;
    sgdstab_critical *crit = malloc((nb ? nb : 1) * sizeof *crit);
    if (!crit)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    int st = sgdstab_critical_curve(s, cfg, batches, nb, crit, err);
    const double mean = sgdstab_lr_mean_limit(red, cfg);
    for (size_t i = 0; i < nb && !st; i++) {
        sgdstab_phase_boundary *bd = &boundary[i];
        bd->batch = batches[i];
        bd->critical = crit[i];
        bd->lr_critical_mean = mean;
        st = sgdstab_batch_coefficients(cfg->sampling, n, batches[i], &bd->a,
                                        &bd->b, err);
        if (!st && th)
            sgdstab_theory_lr_bounds(th, bd->a, bd->b, &bd->bounds);
        else
            bd->bounds = (sgdstab_lr_bounds){NAN, NAN, NAN, NAN, NAN};
        if (!st)
            st = tick(ax->progress, ax->progress_ctx, &done, total, err);
    }
    free(crit);
    /* Up η in even columns, down in odd ones: neighbours follow each other. */
    for (size_t i = 0; i < nb && !st; i++)
        for (size_t jj = 0; jj < nl && !st; jj++) {
            size_t j = i % 2 ? nl - 1 - jj : jj;
            sgdstab_phase_point *pt = &grid[i * nl + j];
            const sgdstab_phase_boundary *bd = &boundary[i];
            pt->batch = batches[i];
            pt->lr = lrs[j];
            at.batch = batches[i];
            at.lr = lrs[j];
            st = sgdstab_spectral_radius(s, &at, &bd->critical, &pt->radius,
                                         NULL, err);
            if (st)
                break;
            sgdstab_escape_rates(pt->radius.rho, n, batches[i],
                                 &pt->escape_rate_per_step,
                                 &pt->escape_rate_per_epoch);
            pt->stable = bd->critical.kind == SGDSTAB_MINIMUM_OK &&
                         lrs[j] <= bd->critical.lr_critical;
            st = tick(ax->progress, ax->progress_ctx, &done, total, err);
        }
    return st;
}
