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
    double lr;
    sgdstab_radius radius;          /* ρ⊥ and its accuracy */
    double escape_rate_per_step;    /* ln ρ⊥ */
    double escape_rate_per_epoch;   /* (n/B) ln ρ⊥ */
    int stable;                     /* η ≤ η*(B) at a minimum */
} sgdstab_phase_point;

typedef struct {
    size_t batch;
    double a, b;                    /* batch coefficients (moments.h) */
    sgdstab_critical critical;      /* the exact boundary η*(B) */
    double lr_critical_mean;        /* 2/λmax(H) */
    sgdstab_lr_bounds bounds;       /* theory.h; all NaN without theory */
} sgdstab_phase_boundary;

/* The axes of a diagram: batch sizes batches[0..nb) and learning rates
 * lrs[0..nl) (in the configuration's loss convention), and an optional
 * progress callback (NULL for none) told after every solve. */
typedef struct {
    const size_t *batches;
    size_t nb;
    const double *lrs;
    size_t nl;
    sgdstab_progress_fn progress;
    void *progress_ctx;
} sgdstab_phase_axes;

/* The phase diagram on ax's grid for cfg's sampling rule and loss scale
 * (cfg->lr and cfg->batch are not used).  boundary has nb entries; grid has
 * nb·nl, point (i, j) = (batches[i], lrs[j]) at grid[i·nl + j].  th may be
 * NULL (no theory curves).  η*(B) is solved once per batch size and serves
 * every point of its column. */
int sgdstab_phase_compute(sgdstab_stability *s, const sgdstab_theory *th,
                          const sgdstab_config *cfg,
                          const sgdstab_phase_axes *ax,
                          sgdstab_phase_boundary *boundary,
                          sgdstab_phase_point *grid, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
