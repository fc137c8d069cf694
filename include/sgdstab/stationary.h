/* sgdstab — the stationary state of linearized SGD at a minimum that does
 * not interpolate, or under label noise (README, The stationary state).
 *
 * With residuals r_i = f(x_i) − y_i the per-sample gradients c·J_iᵀr_i do
 * not vanish (their mean does, at a stationary point), and label noise
 * (y_i + ε, ε ~ N(0, σ²I_k) fresh each step) adds gradient noise too:
 * S_{t+1} = 𝒯(S_t) + η²c²·C with, in reduced coordinates (g_i = Φ_iᵀ r_i,
 * ḡ their mean, (a, b) the sampling rule's coefficients, moments.h),
 *
 *     C = b·(1/n) Σ_i g_i g_iᵀ − (1 − a)·ḡḡᵀ + (σ²/B)·G,
 *
 * the covariance of the batch's mean of g_i and of its label noise.  For
 * an optimizer with a buffer the noise enters the state (x, buffer) as the
 * batch noise does (optimizer.h), and the stationary x block W solves, per
 * entry (j, l), W = ℓ(1)·(b𝒩(W) + C) with the gain ℓ at z = 1:
 *
 *     (ℒ₁⁻¹ − b𝒩) W = C,
 *
 * symmetric, and positive definite exactly when the map is stable (ρ < 1):
 * plain SGD is the case ℒ₁⁻¹ = (h_j + h_l)/(cη) − h_j h_l.  It is solved by
 * conjugate gradients preconditioned by ℒ₁ (the deterministic part), one
 * application of 𝒩 per iteration. */
#ifndef SGDSTAB_STATIONARY_H
#define SGDSTAB_STATIONARY_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/moments.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ‖ḡ‖ above this fraction of the per-sample spread √(tr Σ_g) is "not a
 * stationary point": the mean gradient would move the first moment. */
#define SGDSTAB_STATIONARY_MEAN_RTOL 1e-2

typedef struct {
    double mean_norm;    /* ‖ḡ‖ (c·J's units: the gradient of the loss) */
    double spread;       /* √(tr Σ_g), Σ_g the per-sample covariance */
    int stationary_point;  /* mean_norm ≤ RTOL·spread (or both 0) */
} sgdstab_gradient_stats;

/* C (r×r, row-major) of the header for red made from prob (its R, NULL
 * meaning zero residuals) and label noise sigma ≥ 0 at cfg's batch size
 * and sampling; stats on the per-sample gradients (optional). */
int sgdstab_gradient_noise(const sgdstab_reduced *red,
                           const sgdstab_problem *prob,
                           const sgdstab_config *cfg, double sigma, double *C,
                           sgdstab_gradient_stats *stats, sgdstab_error *err);

/* Conjugate gradients stop at this relative residual ‖C − A W‖/‖C‖ (of
 * the recurrence) or after max_iterations. */
#define SGDSTAB_STATIONARY_RTOL 1e-12

typedef struct {
    size_t max_iterations;  /* 0: 2000 */
    int unpreconditioned;   /* plain conjugate gradients, for comparison */
} sgdstab_stationary_options;

typedef struct {
    size_t iterations;
    double relative_residual;  /* ‖C − (ℒ₁⁻¹ − b𝒩)W‖/‖C‖, recomputed */
    int converged;
} sgdstab_stationary_info;

/* W (r×r) of the header at cfg for C (r×r), m a workspace of red (opt
 * NULL: the defaults).
 * SGDSTAB_ENUMERIC when conjugate
 * gradients meets a direction of non-positive curvature: the map is not
 * stable (ρ ≥ 1), and there is no stationary state.  SGDSTAB_EINVAL when
 * the reduced space holds an undamped direction (sgdstab_null_drift). */
int sgdstab_stationary_solve(sgdstab_moments *m, const sgdstab_reduced *red,
                             const sgdstab_config *cfg, const double *C,
                             const sgdstab_stationary_options *opt,
                             double *W, sgdstab_stationary_info *info,
                             sgdstab_error *err);

/* Directions of the reduced space the noise-free step does not contract
 * (sgdstab_undamped_directions, plan.h).  There the additive noise
 * is not damped (Mulayoff–Michaeli, Thms 4–5): a random walk, whose
 * variance grows each step by
 *     rate = (s·c·η/(1 − β))² · tr(W_NN C_NN),
 * N those directions, W = QᵀP⁻¹Q their metric in parameter space (I
 * without a preconditioner), s·c·η/(1 − β) the step's response to a
 * constant gradient once the buffer has filled (optimizer.h).  The batch
 * noise of those directions makes ρ ≥ 1 besides: no stationary state. */
typedef struct {
    size_t directions;
    double rate;  /* per step, in E‖δ‖² (parameter space) */
} sgdstab_null_drift;

/* The drift of C (r×r, from sgdstab_gradient_noise; NULL: no noise) at
 * cfg for red made from prob by sgdstab_reduce_for; directions as
 * sgdstab_undamped_directions (plan.h) counts them, rate 0 when there are
 * none or no noise. */
int sgdstab_null_space_drift(const sgdstab_problem *prob,
                             const sgdstab_reduced *red,
                             const sgdstab_config *cfg, const double *C,
                             sgdstab_null_drift *out, sgdstab_error *err);

typedef struct {
    double second_moment;     /* E‖δ‖² = tr S∞, in parameter space */
    double excess_loss;       /* E L = ½ c·E δᵀ H δ, H the loss's curvature
                                 (without weight decay's shift) */
    double gradient_norm_sq;  /* E‖∇L‖² = c²·E ‖H δ‖², in parameter space */
} sgdstab_stationary_summary;

/* The summary of W (from sgdstab_stationary_solve) for red made from prob
 * by sgdstab_reduce_for for cfg.  With a preconditioner P the reduced
 * coordinates are those of y = P^{1/2}δ (param_space.h): E‖δ‖² =
 * tr(QᵀP⁻¹Q W) and ‖Hδ‖² = zᵀ Ĥ QᵀPQ Ĥ z with Ĥ = P^{-1/2}HP^{-1/2} on
 * the reduced space. */
int sgdstab_stationary_summarize(const sgdstab_problem *prob,
                                 const sgdstab_reduced *red,
                                 const sgdstab_config *cfg, const double *W,
                                 sgdstab_stationary_summary *out,
                                 sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
