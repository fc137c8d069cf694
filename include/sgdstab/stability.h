/* sgdstab — the verdict: spectral radius on the range, escape rate and the
 * critical learning rate η*(B) (README, The mathematics).
 *
 * ρ⊥ = λmax(𝒯) on symmetric r×r matrices of the reduced space (𝒯 preserves
 * the PSD cone and is self-adjoint, so its spectral radius is its largest
 * eigenvalue, with a PSD eigenmatrix).  E‖δ_t‖² grows like ρ⊥^t: the escape
 * rate is ln ρ⊥ per step and (n/B)·ln ρ⊥ per epoch, and the RMS distance
 * changes by a factor e every 2/|ln ρ⊥| steps.
 *
 * η*(B) = 1 / λmax(𝒜₁^{-1/2} 𝒜₂ 𝒜₁^{-1/2}) (README, η*(B)): the stable rates
 * are exactly (0, η*], so the verdict "stable" is η ≤ η*.  𝒜₁^{-1/2} acts
 * entry-wise in H's eigenbasis, Z_jl / √(h_j + h_l).
 *
 * Learning rates here are in the user's loss convention: with loss scale c
 * (A_i → c·A_i, H → c·H) the operators see c·η, and η* is divided by c. */
#ifndef SGDSTAB_STABILITY_H
#define SGDSTAB_STABILITY_H

#include <stddef.h>
#include "sgdstab/eig.h"
#include "sgdstab/moments.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why η* is 0 without an eigenproblem. */
typedef enum {
    SGDSTAB_MINIMUM_OK = 0,
    SGDSTAB_NOT_A_MINIMUM,  /* H has a negative eigenvalue */
    SGDSTAB_DEGENERATE      /* H is singular on a direction some J_i moves:
                               with batch noise (b > 0) nothing damps it */
} sgdstab_minimum_kind;

typedef struct sgdstab_stability sgdstab_stability;

/* Workspace for one reduced problem; loss_scale c > 0 (1 = canonical). */
sgdstab_stability *sgdstab_stability_alloc(const sgdstab_reduced *red,
                                           double loss_scale,
                                           sgdstab_error *err);
void sgdstab_stability_free(sgdstab_stability *s);

/* Solver settings for every solve of this workspace (NULL: defaults); ncv
 * is the largest basis size.  Set before the first solve.  The default
 * tolerance is 1e-11 for ρ⊥ (and at most 5e-11 absolute) and 3e-10 for η*
 * (relative error estimates). */
void sgdstab_stability_set_eig(sgdstab_stability *s,
                               const sgdstab_eig_options *opt);

typedef struct {
    double rho;          /* ρ⊥, the largest eigenvalue of 𝒯 on the range */
    double residual;     /* rigorous: ρ⊥ is within this of an eigenvalue */
    double error_estimate;  /* a-posteriori estimate of |ρ⊥ − λmax| */
    size_t matvecs;      /* applications of the noise operator this solve
                            made, those that seeded a new basis included */
    int converged;
} sgdstab_radius;

/* The escape rate ln ρ⊥ per step (−∞ for ρ⊥ ≤ 0, which rounding can give
 * when 𝒯 is nilpotent on the range) and (n/B)·ln ρ⊥ per epoch. */
void sgdstab_escape_rates(double rho, size_t n, size_t batch,
                          double *per_step, double *per_epoch);

int sgdstab_spectral_radius(sgdstab_stability *s, double lr,
                            sgdstab_sampling sampling, size_t batch,
                            sgdstab_radius *out, sgdstab_error *err);

/* The same, and a top eigenmatrix of 𝒯 in S (r×r, unit Frobenius norm, sign
 * arbitrary): the shape E δ_tδ_tᵀ takes as t grows when ρ⊥ is simple.  It
 * is converged to a residual ‖𝒯S − ρ⊥S‖_F ≤ 1e-10·ρ⊥ (out->residual), so
 * its error is about that over the gap to the next eigenvalue of 𝒯. */
int sgdstab_spectral_radius_matrix(sgdstab_stability *s, double lr,
                                   sgdstab_sampling sampling, size_t batch,
                                   sgdstab_radius *out, double *S,
                                   sgdstab_error *err);

/* η* = 1/(c·θ) with θ the converged Ritz value of K = 𝒜₁^{-1/2}𝒜₂𝒜₁^{-1/2}
 * and R its residual: the residual interval.  θ is a Rayleigh quotient, so
 * θ ≤ λmax(K) and η* ≤ lr_upper always; an eigenvalue of K lies within ‖R‖
 * of θ, so η* ≥ lr_lower = 1/(c·(θ + ‖R‖)) provided that eigenvalue is the
 * largest — checked (θ is at least every Rayleigh quotient of K at a unit
 * matrix, or the solve is repeated), not proven.  Both ends are widened by
 * the rounding of θ, 4·√dim·ε relative.  rel_accuracy is the much tighter
 * a-posteriori estimate: tests hold the true error within twice it. */
typedef struct {
    size_t batch;
    double lr_critical;      /* η*(B); 0 when kind != SGDSTAB_MINIMUM_OK */
    double rel_accuracy;     /* estimate of |Δη*| / η* (eig.h) */
    double rel_residual;     /* ‖R‖/θ */
    double lr_lower, lr_upper;  /* the interval above (both 0 when kind !=
                                   SGDSTAB_MINIMUM_OK; equal to lr_critical
                                   where it is a closed form) */
    double threshold_band;   /* relative half-width of "at the threshold":
                                2·(rel_accuracy + tol), tol the η*
                                tolerance, so that an η* from any other
                                solve (its error within 2·tol) lands in it */
    size_t matvecs;          /* as in sgdstab_radius */
    int converged;
    sgdstab_minimum_kind kind;
} sgdstab_critical;

int sgdstab_critical_lr(sgdstab_stability *s, sgdstab_sampling sampling,
                        size_t batch, sgdstab_critical *out,
                        sgdstab_error *err);

/* η*(B) for m batch sizes.  All solves of one workspace share their
 * eigensolver basis (eig.h), so neighbouring batch sizes cost little. */
int sgdstab_critical_curve(sgdstab_stability *s, sgdstab_sampling sampling,
                           const size_t *batches, size_t m,
                           sgdstab_critical *out, sgdstab_error *err);

/* The reduced problem the workspace was made for. */
const sgdstab_reduced *sgdstab_stability_reduced(const sgdstab_stability *s);

/* The loss scale c the workspace was made with. */
double sgdstab_stability_loss_scale(const sgdstab_stability *s);

/* Mean (first-moment) stability limit 2/λmax(H); 0 if H has a negative
 * eigenvalue (no η > 0 is stable even in the mean). */
double sgdstab_lr_mean_limit(const sgdstab_stability *s);

/* The verdict at (η, B): stable (η < η*), unstable (η > η*, or no η is
 * stable), or at the threshold: |η/η* − 1| ≤ threshold_band, where the
 * accuracy reached cannot tell the side of 1 on which ρ⊥ falls. */
typedef enum {
    SGDSTAB_VERDICT_STABLE = 0,
    SGDSTAB_VERDICT_UNSTABLE,
    SGDSTAB_VERDICT_THRESHOLD
} sgdstab_verdict;

/* "stable", "unstable", "threshold". */
const char *sgdstab_verdict_name(sgdstab_verdict v);

/* The verdict of learning rate lr against a solved η*(B). */
sgdstab_verdict sgdstab_verdict_at(const sgdstab_critical *crit, double lr);

/* Everything `sgdstab analyze` reports. */
typedef struct {
    double lr, loss_scale;
    size_t batch;
    sgdstab_sampling sampling;
    double a, b;
    sgdstab_radius radius;
    sgdstab_critical critical;
    int stable;                   /* lr ≤ η*(B) */
    sgdstab_verdict verdict;
    double escape_rate_per_step;  /* ln ρ⊥ */
    double escape_rate_per_epoch; /* (n/B)·ln ρ⊥ */
    double rms_efold_steps;       /* 2/|ln ρ⊥| (+∞ if ρ⊥ = 1) */
    double lr_critical_mean;      /* 2/λmax(H) */
    double sharpness;             /* λmax(H) */
    double hessian_frobenius;     /* ‖H‖_F */
    double hessian_trace;         /* tr H */
} sgdstab_analysis;

int sgdstab_analyze(sgdstab_stability *s, double lr, sgdstab_sampling sampling,
                    size_t batch, sgdstab_analysis *out, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
