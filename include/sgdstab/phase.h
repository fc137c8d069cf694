/* sgdstab — stability phase diagrams over batch size and learning rate.
 *
 * On a grid of batch sizes B and learning rates η: the exact ρ⊥ of 𝒯 at
 * every point, and per batch size the exact boundary η*(B) (stability.h),
 * the mean-stability limit and, when the theory quantities are given, the
 * learning-rate limits of theory.h.  All solves share one workspace: the
 * boundary is one critical curve, and the grid is visited column by column
 * (B ascending) going up and down η in turn, so that every solve starts
 * from the eigensolver basis of its neighbour. */
#ifndef SGDSTAB_PHASE_H
#define SGDSTAB_PHASE_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/progress.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"
#include "sgdstab/theory.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t batch;
    double momentum;                /* β of the optimizer at this point */
    double lr;
    sgdstab_radius radius;          /* ρ⊥ and its accuracy */
    double escape_rate_per_step;    /* ln ρ⊥ */
    double escape_rate_per_epoch;   /* (n/B) ln ρ⊥ */
    int stable;                     /* η ≤ η*(B) at a minimum */
} sgdstab_phase_point;

typedef struct {
    size_t batch;
    double momentum;                /* β of the optimizer of this row */
    double a, b;                    /* batch coefficients (moments.h) */
    sgdstab_critical critical;      /* the exact boundary η*(B) */
    double lr_critical_mean;        /* the noise-free limit: 2/λmax(H) for
                                       plain SGD (stability.h) */
    sgdstab_lr_bounds bounds;       /* theory.h; all NaN without theory or
                                       with an optimizer other than plain
                                       SGD (the theory is plain SGD's) */
} sgdstab_phase_boundary;

/* The axes of a diagram: its rows are batch sizes batches[0..nb), or, when
 * nm > 0, momenta[0..nm) (β of cfg's optimizer, each in [0, 1)) at the one
 * batch size batches[0] (nb = 1); its columns learning rates lrs[0..nl) (in
 * the configuration's loss convention).  An optional progress callback
 * (NULL for none) is told after every solve. */
typedef struct {
    const size_t *batches;
    size_t nb;
    const double *lrs;
    size_t nl;
    sgdstab_progress_fn progress;
    void *progress_ctx;
    const double *momenta;
    size_t nm;
} sgdstab_phase_axes;

/* The number of rows of ax: nm, or nb without momenta. */
size_t sgdstab_phase_rows(const sgdstab_phase_axes *ax);

/* The phase diagram on ax's grid for cfg's sampling rule, loss scale and
 * optimizer (cfg->lr and cfg->batch are not used, nor cfg's momentum when
 * momenta are the rows).  boundary has one entry per row; grid has
 * rows·nl, point (i, j) = (row i, lrs[j]) at grid[i·nl + j].  th may be
 * NULL (no theory curves).  η* is solved once per row and serves every
 * point of it. */
int sgdstab_phase_compute(sgdstab_stability *s, const sgdstab_theory *th,
                          const sgdstab_config *cfg,
                          const sgdstab_phase_axes *ax,
                          sgdstab_phase_boundary *boundary,
                          sgdstab_phase_point *grid, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
