/* sgdstab — stability phase diagrams over batch size and learning rate.
 *
 * On a grid of batch sizes B and learning rates η: the exact ρ⊥ of 𝒯 at
 * every point, and per batch size the exact boundary η*(B) (stability.h),
 * the mean-stability limit and, when the theory quantities are given, the
 * learning-rate limits of theory.h.  All solves share one workspace: the
 * boundary is one critical curve, and the grid is visited column by column
 * (B ascending) going up and down η in turn, so that every solve starts
 * from the eigensolver basis of its neighbour.
 *
 * Optionally (sgdstab_phase_lyapunov) the typical run beside the mean
 * square: at every grid point the top Lyapunov exponent λ₁ of the random
 * product by Monte Carlo (simulate.h), and per row the learning rate where
 * λ₁ crosses 0.  λ₁ ≤ ½ ln ρ, so that crossing lies at or above η*(B): in
 * the band between them the mean square diverges while almost every run
 * stays. */
#ifndef SGDSTAB_PHASE_H
#define SGDSTAB_PHASE_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/progress.h"
#include "sgdstab/reduce.h"
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
    double lyapunov;                /* λ₁ per step and its standard error */
    double lyapunov_stderr;         /* (NaN unless sgdstab_phase_lyapunov) */
} sgdstab_phase_point;

/* Where a row's Monte Carlo λ₁ crosses 0 (sgdstab_phase_lyapunov). */
typedef enum {
    SGDSTAB_CROSSING_INSIDE = 0,    /* between two grid points */
    SGDSTAB_CROSSING_BELOW,         /* λ₁ ≥ 0 at the smallest η estimated */
    SGDSTAB_CROSSING_ABOVE,         /* λ₁ < 0 at every η of the grid */
    SGDSTAB_CROSSING_UNKNOWN        /* no finite estimate in the row (or no
                                       Monte Carlo) */
} sgdstab_crossing;

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
    /* From sgdstab_phase_lyapunov: where λ₁ first turns ≥ 0 going up η,
     * interpolated linearly in ln η from the last grid point with λ₁ < 0
     * (points whose estimate is NaN, a state that vanished, are passed
     * over), and not below η*(B) (λ₁ ≤ ½ ln ρ < 0 there): crossing
     * INSIDE; lr_lyapunov is NaN for the other crossings. */
    double lr_lyapunov;
    sgdstab_crossing crossing;
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

/* The Monte Carlo of sgdstab_phase_lyapunov: at every grid point runs
 * trajectories of steps steps (sgdstab_sim_options's lyapunov mode), from
 * the same seed at every point (common random numbers: the estimates of
 * neighbouring points share their noise, and the crossing is sharper);
 * threads 0: one per processor. */
typedef struct {
    size_t runs, steps;
    unsigned long seed;
    size_t threads;
} sgdstab_lyapunov_options;

/* The defaults of the command line and of run specs: 8 runs of 2000
 * steps, seed 1, a thread per processor. */
#define SGDSTAB_LYAPUNOV_DEFAULTS {8, 2000, 1, 0}

/* SGDSTAB_EINVAL when the Monte Carlo of sgdstab_phase_lyapunov is not
 * one sgdstab_sim_check accepts, or would take more than SGDSTAB_WORK_MAX
 * operations in all (simulate.h): to call before any work. */
int sgdstab_phase_lyapunov_check(const sgdstab_reduced *red,
                                 const sgdstab_config *cfg,
                                 const sgdstab_phase_axes *ax,
                                 const sgdstab_lyapunov_options *opt,
                                 sgdstab_error *err);

/* λ₁ at every point of grid (filled by sgdstab_phase_compute on ax, for
 * red made from prob by sgdstab_reduce_for for cfg), and every row's
 * crossing into boundary.  ax's progress callback is told after every
 * point. */
int sgdstab_phase_lyapunov(const sgdstab_reduced *red,
                           const sgdstab_problem *prob,
                           const sgdstab_config *cfg,
                           const sgdstab_phase_axes *ax,
                           const sgdstab_lyapunov_options *opt,
                           sgdstab_phase_boundary *boundary,
                           sgdstab_phase_point *grid, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
