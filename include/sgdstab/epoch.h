/* sgdstab — the one-epoch second-moment map of linearized SGD, estimated
 * from sampled epochs: escape rate and stability threshold where no
 * per-step map exists (random reshuffling), by Monte Carlo over one epoch
 * at a time.
 *
 * Over an epoch of L = ⌈n/B⌉ steps δ ↦ M δ, M = Π_t (I − η H_ξt), so the
 * second moment at epoch ends evolves exactly by the linear map
 *     𝒰(S) = E[M S Mᵀ].
 * For fresh batches 𝒰 = 𝒯^L (see the README); for reshuffled epochs (one
 * random permutation per epoch, cut into n/B batches) 𝒰 is what replaces
 * 𝒯.  Reversing the order of an epoch's batches turns M into Mᵀ and leaves
 * the distribution of the batch sequence unchanged (for reshuffling this
 * needs B to divide n), so 𝒰 is self-adjoint, and positive: its spectral
 * radius is its largest eigenvalue.
 *
 * The estimate 𝒰̂(S) = (1/N) Σ_j ½(M_j S M_jᵀ + M_jᵀ S M_j) over N sampled
 * epochs is unbiased, self-adjoint and positive; it is formed as a matrix on
 * the r(r+1)/2-dimensional space of symmetric matrices of the reduced
 * coordinates (from the Gram matrix of the vec(M_j), one DSYRK), and its
 * largest eigenvalue ρ̂ estimates ρ(𝒰) on the range of the problem (the
 * directions that never move have M = I there and are left out).  Its
 * standard error is a jackknife over 20 groups of epochs (the largest
 * eigenvalue recomputed with each group left out), which keeps the error
 * of the top eigenvector that a first-order formula misses when the top
 * of the spectrum is clustered.  An epoch is much shorter than the
 * trajectories whose mean ‖δ_t‖² grows heavy tails over many steps, so the
 * estimate is accurate near the threshold (where the products M_j stay of
 * order one); far above it, with long epochs (B ≪ n), the products are
 * heavy-tailed too and ρ̂ typically falls short of ρ(𝒰) by more than its
 * standard error.
 *
 * Cost: N epochs of O(n·k·r²) each, a Gram matrix of N·r⁴ flops, and 21
 * symmetric eigenproblems of order r(r+1)/2.  Memory: N·r² doubles for the
 * sampled M_j, r⁴ for the Gram matrix and 21·(r(r+1)/2)² for the group
 * estimates: meant for reduced dimensions up to a few dozen. */
#ifndef SGDSTAB_EPOCH_H
#define SGDSTAB_EPOCH_H

#include <stddef.h>
#include "sgdstab/reduce.h"
#include "sgdstab/simulate.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t steps;          /* L = ⌈n/B⌉ steps per epoch */
    size_t samples;        /* N sampled epochs */
    double radius;         /* ρ̂: spectral radius of the estimated map */
    double radius_stderr;
    double rate_per_step;  /* ln ρ̂ / L: growth rate of E‖δ‖² per step */
    double rate_stderr;
} sgdstab_epoch_estimate;

/* L = ⌈n/B⌉ (1 when B ≥ n): the steps of one epoch. */
size_t sgdstab_epoch_steps(size_t n, size_t batch);

/* Check the options for the epoch map: of sgdstab_sim_options it uses the
 * configuration (SGDSTAB_USES_EPOCH_MAP: reshuffling needs a batch size
 * that divides n), runs (= N, at least 2), seed and threads; injected
 * noise, residual gradients, label noise, clipping and a radius are
 * refused. */
int sgdstab_epoch_check(const sgdstab_reduced *red,
                        const sgdstab_sim_options *opt, sgdstab_error *err);

/* Floating-point operations of the estimate (about 40 of them for the
 * threshold), for sgdstab_work_check (simulate.h). */
double sgdstab_epoch_work(const sgdstab_reduced *red,
                          const sgdstab_sim_options *opt, int threshold);

/* ρ̂ at the configured learning rate. */
int sgdstab_epoch_estimate_at(const sgdstab_reduced *red,
                              const sgdstab_sim_options *opt,
                              sgdstab_epoch_estimate *out, sgdstab_error *err);

/* The learning rate where ρ̂ crosses 1, for the same sampled batch
 * sequences at every η (they do not depend on η), found by bracketing
 * from the configured learning rate and Brent's method to a relative
 * accuracy of 1e-10; and its standard error by the delta method (the
 * standard error of ln ρ̂ there divided by the slope d ln ρ̂/dη).
 * SGDSTAB_ENUMERIC when no learning rate is stable. */
int sgdstab_epoch_threshold(const sgdstab_reduced *red,
                            const sgdstab_sim_options *opt, double *lr,
                            double *lr_stderr, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
